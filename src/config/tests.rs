use super::locate::line_col;
use super::*;

/// The config from issue #2, word for word: keys in it may never be renamed.
pub(super) const CONTRACT: &str = r#"[server]
interface = "br1"            # the bridge or VLAN interface to serve on
address = "10.123.0.1"       # this server's address on it
boot_dir = "/srv/pxed/boot"  # root of everything served by TFTP and HTTP
state_dir = "/var/lib/pxed"

[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
router = "10.123.0.1"
lease_time = "1h"

[http]
listen = "0.0.0.0:8080"

[profiles.fedora]
kernel = "vmlinuz"               # relative to boot_dir
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 inst.stage2=..."

[hosts."de:00:00:00:00:de"]
profile = "fedora"
"#;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("test.toml"), text)
}

pub(super) fn err_of(text: &str) -> (usize, String, String) {
    match parse_str(text).expect_err("config should be refused") {
        ConfigError::Invalid {
            line, key, message, ..
        } => (line, key, message),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn contract_config_parses_exactly_as_written() {
    let c = parse_str(CONTRACT).unwrap();
    assert_eq!(c.server.interface, "br1");
    assert_eq!(c.server.address, Ipv4Addr::new(10, 123, 0, 1));
    assert_eq!(c.server.boot_dir, PathBuf::from("/srv/pxed/boot"));
    assert_eq!(c.dhcp.primary().subnet.to_string(), "10.123.0.0/24");
    assert_eq!(
        c.dhcp.primary().range,
        Some((
            Ipv4Addr::new(10, 123, 0, 100),
            Ipv4Addr::new(10, 123, 0, 200)
        ))
    );
    assert_eq!(c.dhcp.lease_time, Duration::from_secs(3600));
    assert_eq!(c.http.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.http_base(), "http://10.123.0.1:8080");
    assert_eq!(
        c.profiles["fedora"],
        Profile::Kernel {
            kernel: "vmlinuz".into(),
            initrd: vec!["initrd.gz".into()],
            cmdline: "console=ttyS0 inst.stage2=...".into()
        }
    );
    let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
    assert_eq!(c.profile_for(&mac), Some("fedora"));
    assert_eq!(c.profile_for(&"52:54:00:00:00:01".parse().unwrap()), None);
    assert_eq!(c.first_stage, FirstStage::default());
    assert_eq!(c.pool_size(), 101);
}

#[test]
fn mac_keys_match_case_insensitively_with_either_separator() {
    let text = CONTRACT.replace("de:00:00:00:00:de", "DE-00-00-00-00-DE");
    let c = parse_str(&text).unwrap();
    assert_eq!(
        c.profile_for(&"de:00:00:00:00:de".parse().unwrap()),
        Some("fedora")
    );
}

#[test]
fn every_profile_kind_and_host_options() {
    let text = format!(
        "{CONTRACT}
[profiles.disk]
action = \"local\"
[profiles.chained]
chain = \"http://10.0.0.5/boot.ipxe?mac={{{{mac}}}}\"
[profiles.custom]
script = \"custom.ipxe\"
[hosts.\"52:54:00:00:00:01\"]
profile = \"disk\"
ip = \"10.123.0.50\"
hostname = \"db-1\"
[defaults]
profile = \"disk\"
"
    );
    let c = parse_str(&text).unwrap();
    assert_eq!(c.profiles["disk"], Profile::Local);
    assert_eq!(c.profiles["custom"].kind(), "script");
    assert_eq!(c.profiles["chained"].kind(), "chain");
    let h = &c.hosts[&"52:54:00:00:00:01".parse().unwrap()];
    assert_eq!(h.ip, Some(Ipv4Addr::new(10, 123, 0, 50)));
    assert_eq!(h.hostname.as_deref(), Some("db-1"));
    assert_eq!(
        c.profile_for(&"52:54:00:99:99:99".parse().unwrap()),
        Some("disk")
    );
    assert_eq!(c.reserved().len(), 1);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = CONTRACT.replace(
        "state_dir = \"/var/lib/pxed\"",
        "state_dir = \"/var/lib/pxed\"\nstate_dri = 1",
    );
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:6:1: key `server.state_dri`: unknown field `state_dri`"),
        "{err}"
    );
}

#[test]
fn host_with_missing_profile_is_refused() {
    let (line, key, msg) =
        err_of(&CONTRACT.replace("profile = \"fedora\"", "profile = \"ubuntu\""));
    assert_eq!(line, 22);
    assert_eq!(key, "hosts.\"de:00:00:00:00:de\".profile");
    assert!(msg.contains("no profile named `ubuntu`"), "{msg}");
}

#[test]
fn range_outside_subnet_is_refused() {
    let (line, key, msg) = err_of(&CONTRACT.replace("\"10.123.0.200\"", "\"10.124.0.200\""));
    assert_eq!((line, key.as_str()), (9, "dhcp.range"));
    assert!(msg.contains("10.124.0.200"), "{msg}");
    let (_, key, _) = err_of(&CONTRACT.replace(
        "\"10.123.0.100\", \"10.123.0.200\"",
        "\"10.123.0.200\", \"10.123.0.100\"",
    ));
    assert_eq!(key, "dhcp.range");
}

#[test]
fn duplicate_macs_are_refused_even_when_written_differently() {
    let text = format!("{CONTRACT}\n[hosts.\"DE-00-00-00-00-DE\"]\nprofile = \"fedora\"\n");
    let (line, key, msg) = err_of(&text);
    let both = format!("{key} {msg}");
    assert!(
        both.contains("DE-00-00-00-00-DE") && both.contains("de:00:00:00:00:de"),
        "{both}"
    );
    assert!([21, 24].contains(&line), "{line}");
    assert!(msg.contains("duplicate MAC"), "{msg}");
}

#[test]
fn paths_that_escape_boot_dir_are_refused() {
    for bad in ["../etc/shadow", "/etc/shadow", "a/../../b"] {
        let (line, key, msg) =
            err_of(&CONTRACT.replace("kernel = \"vmlinuz\"", &format!("kernel = \"{bad}\"")));
        assert_eq!(
            (line, key.as_str()),
            (17, "profiles.fedora.kernel"),
            "{bad}"
        );
        assert!(msg.contains("boot_dir"), "{msg}");
    }
    let (_, key, _) = err_of(&format!(
        "{CONTRACT}\n[first_stage]\nbios = \"../x.kpxe\"\n"
    ));
    assert_eq!(key, "first_stage.bios");
}

#[test]
fn bad_values_are_refused_with_their_key() {
    let cases = [
        (
            "lease_time = \"1h\"",
            "lease_time = \"soon\"",
            "dhcp.lease_time",
        ),
        (
            "subnet = \"10.123.0.0/24\"",
            "subnet = \"10.123.0.1/24\"",
            "dhcp.subnet",
        ),
        (
            "address = \"10.123.0.1\" ",
            "address = \"10.123.0\" ",
            "server.address",
        ),
        (
            "address = \"10.123.0.1\" ",
            "address = \"10.9.0.1\" ",
            "server.address",
        ),
        (
            "profile = \"fedora\"",
            "profile = \"fedora\"\nip = \"10.99.0.5\"",
            "hosts.\"de:00:00:00:00:de\".ip",
        ),
        (
            "profile = \"fedora\"",
            "profile = \"fedora\"\nhostname = \"a b\"",
            "hosts.\"de:00:00:00:00:de\".hostname",
        ),
        (
            "cmdline = \"console=ttyS0 inst.stage2=...\"",
            "cmdline = \"{{ macaddr }}\"",
            "profiles.fedora.cmdline",
        ),
        (
            "kernel = \"vmlinuz\"",
            "kernel = \"vmlinuz\"\naction = \"local\"",
            "profiles.fedora",
        ),
        (
            "[hosts.\"de:00:00:00:00:de\"]",
            "[hosts.\"de:00:00:00:00\"]",
            "hosts.\"de:00:00:00:00\"",
        ),
        ("[http]", "[htp]", "htp"),
    ];
    for (from, to, want_key) in cases {
        let text = CONTRACT.replace(from, to);
        assert_ne!(text, CONTRACT, "{from} not found");
        let (_, key, msg) = err_of(&text);
        assert_eq!(key, want_key, "{to}: {msg}");
    }
}

#[test]
fn unknown_action_is_refused() {
    let text = format!("{CONTRACT}\n[profiles.x]\naction = \"reboot\"\n");
    let (line, key, msg) = err_of(&text);
    assert_eq!((line, key.as_str()), (25, "profiles.x.action"));
    assert!(msg.contains("local"));
}

fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example configs in {}", dir.display());
    files
}

#[test]
fn every_example_config_parses() {
    for file in example_configs() {
        let text = std::fs::read_to_string(&file).unwrap();
        parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Adds a bogus key to every table (and inline table) of every example config in turn, and
/// expects each variant to be refused with that key named.
#[test]
fn an_unknown_key_in_any_table_of_any_example_is_refused() {
    fn tables(t: &dyn toml_edit::TableLike, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for (k, item) in t.iter() {
            let mut p = path.clone();
            p.push(k.to_string());
            if let Some(sub) = item.as_table_like() {
                tables(sub, p, out);
            } else if let toml_edit::Item::ArrayOfTables(a) = item {
                for (i, sub) in a.iter().enumerate() {
                    let mut pi = p.clone();
                    pi.push(i.to_string());
                    tables(sub, pi, out);
                }
            }
        }
    }
    let mut tried = 0;
    for file in example_configs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let mut paths = Vec::new();
        tables(doc.as_table(), Vec::new(), &mut paths);
        for path in paths {
            let mut doc2 = doc.clone();
            let mut t: &mut dyn toml_edit::TableLike = doc2.as_table_mut();
            let mut i = 0;
            while i < path.len() {
                let item = t.get_mut(&path[i]).unwrap();
                t = match item {
                    toml_edit::Item::ArrayOfTables(a) => {
                        i += 1;
                        a.get_mut(path[i].parse().unwrap()).unwrap()
                    }
                    other => other.as_table_like_mut().unwrap(),
                };
                i += 1;
            }
            t.insert("bogus_key", toml_edit::value(1));
            let (_, key, msg) = err_of(&doc2.to_string());
            assert!(
                key.ends_with("bogus_key"),
                "{}: {path:?}: key {key}: {msg}",
                file.display()
            );
            tried += 1;
        }
    }
    assert!(tried >= 8, "only {tried} tables tried");
}

#[test]
fn line_and_column() {
    assert_eq!(line_col("a\nbc\n", 0), (1, 1));
    assert_eq!(line_col("a\nbc\n", 3), (2, 2));
}

#[test]
fn load_warns_about_missing_boot_files_but_accepts_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join("vmlinuz"), b"k").unwrap();
    std::fs::write(boot.join("undionly.kpxe"), b"u").unwrap();
    let text = CONTRACT.replace("/srv/pxed/boot", boot.to_str().unwrap());
    let file = dir.path().join("pxed.toml");
    std::fs::write(&file, &text).unwrap();
    let (_, warnings) = load(&file).unwrap();
    let keys: Vec<(&str, Option<usize>)> =
        warnings.iter().map(|w| (w.key.as_str(), w.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("first_stage.efi_x64", None),
            ("profiles.fedora.initrd", Some(18))
        ],
        "{warnings:?}"
    );
    assert!(
        warnings[1].message.contains("initrd.gz does not exist"),
        "{warnings:?}"
    );
    // A Secure Boot host: the shim and the GRUB it loads are checked too.
    std::fs::write(boot.join("shimx64.efi"), b"s").unwrap();
    std::fs::write(&file, format!("{text}secure_boot = true\n")).unwrap();
    let (_, warnings) = load(&file).unwrap();
    let missing: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        missing
            .iter()
            .any(|m| m.contains("grubx64.efi does not exist"))
            && !missing.iter().any(|m| m.contains("shimx64.efi")),
        "{warnings:?}"
    );
}

#[test]
fn load_names_the_file_when_it_cannot_be_read() {
    let err = load(Path::new("/nonexistent/pxed.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/pxed.toml: cannot read config"),
        "{err}"
    );
}

#[test]
fn proxy_mode_takes_no_range_and_server_mode_needs_one() {
    let proxy = CONTRACT.replace(
        "range = [\"10.123.0.100\", \"10.123.0.200\"]",
        "mode = \"proxy\"",
    );
    let c = parse_str(&proxy).unwrap();
    assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
    assert_eq!(c.dhcp.primary().range, None);
    assert_eq!(c.pool_size(), 0);
    let (_, key, msg) =
        err_of(&CONTRACT.replace("range = [\"10.123.0.100\", \"10.123.0.200\"]", ""));
    assert_eq!(key, "dhcp");
    assert!(msg.contains("range"), "{msg}");
    let (_, key, _) = err_of(&CONTRACT.replace(
        "lease_time = \"1h\"",
        "lease_time = \"1h\"\nmode = \"proxy\"",
    ));
    assert_eq!(key, "dhcp.range");
    let (_, key, _) = err_of(&CONTRACT.replace(
        "lease_time = \"1h\"",
        "lease_time = \"1h\"\nmode = \"relay\"",
    ));
    assert_eq!(key, "dhcp.mode");
}

#[test]
fn relayed_subnets_are_validated_like_the_first() {
    let extra = "\n[[dhcp.subnets]]\nsubnet = \"10.50.0.0/24\"\nrange = [\"10.50.0.100\", \"10.50.0.150\"]\nrouter = \"10.50.0.1\"\n";
    let text = CONTRACT.replace(
        "lease_time = \"1h\"\n",
        &format!("lease_time = \"1h\"\n{extra}"),
    );
    let c = parse_str(&text).unwrap();
    assert_eq!(c.dhcp.pools.len(), 2);
    assert_eq!(c.dhcp.pools[1].router, Some(Ipv4Addr::new(10, 50, 0, 1)));
    assert_eq!(
        c.dhcp
            .pool_for(Ipv4Addr::new(10, 50, 0, 7))
            .unwrap()
            .subnet
            .to_string(),
        "10.50.0.0/24"
    );
    assert_eq!(c.pool_size(), 101 + 51);

    let overlap = text
        .replace("subnet = \"10.50.0.0/24\"", "subnet = \"10.123.0.0/16\"")
        .replace("10.50.0.", "10.123.9.");
    let (line, key, msg) = err_of(&overlap);
    assert_eq!((line, key.as_str()), (14, "dhcp.subnets.0.subnet"), "{msg}");
    assert!(msg.contains("overlaps"), "{msg}");
    let outside = text.replace("\"10.50.0.150\"", "\"10.51.0.150\"");
    let (line, key, _) = err_of(&outside);
    assert_eq!((line, key.as_str()), (15, "dhcp.subnets.0.range"));
    let bogus = text.replace(
        "router = \"10.50.0.1\"",
        "router = \"10.50.0.1\"\nbogus = 1",
    );
    let (_, key, _) = err_of(&bogus);
    assert_eq!(key, "dhcp.subnets.0.bogus");
}

#[test]
fn a_subnet_on_its_own_interface_needs_its_address() {
    let extra = "\n[[dhcp.subnets]]\nsubnet = \"10.60.0.0/24\"\ninterface = \"br2\"\naddress = \"10.60.0.1\"\nrange = [\"10.60.0.100\", \"10.60.0.150\"]\n";
    let text = CONTRACT.replace(
        "lease_time = \"1h\"\n",
        &format!("lease_time = \"1h\"\n{extra}"),
    );
    let c = parse_str(&text).unwrap();
    assert_eq!(c.dhcp.pools[0].interface.as_deref(), Some("br1"));
    assert_eq!(c.dhcp.pools[0].server, Ipv4Addr::new(10, 123, 0, 1));
    assert_eq!(c.dhcp.pools[1].interface.as_deref(), Some("br2"));
    assert_eq!(c.dhcp.pools[1].server, Ipv4Addr::new(10, 60, 0, 1));
    let (_, key, _) = err_of(&text.replace("address = \"10.60.0.1\"\n", ""));
    assert_eq!(key, "dhcp.subnets.0.interface");
    let (_, key, _) = err_of(&text.replace("address = \"10.60.0.1\"", "address = \"10.61.0.1\""));
    assert_eq!(key, "dhcp.subnets.0.address");
    let (_, key, msg) = err_of(&text.replace("interface = \"br2\"", "interface = \"br1\""));
    assert_eq!(key, "dhcp.subnets.0.interface");
    assert!(msg.contains("already serves"), "{msg}");
}

/// Values that reach a rendered iPXE script, each with a newline, a space, a command
/// terminator or a leading `#`, are refused naming file, line and key.
#[test]
fn values_that_could_add_ipxe_commands_are_refused() {
    let check = |text: String, want_line: usize, want_key: &str| {
        let err = parse_str(&text).expect_err(&text).to_string();
        let (line, key, _) = err_of(&text);
        assert_eq!((line, key.as_str()), (want_line, want_key), "{err}");
        assert!(err.starts_with(&format!("test.toml:{want_line}:")), "{err}");
        assert!(!err.contains('\n'), "{err}");
    };
    // In [profiles.fedora], replacing the line with that key (lines 17 to 19).
    let fedora = [
        ("kernel", r#""vmlinuz\nshell""#),
        ("kernel", r#""vmlinuz quiet""#),
        ("kernel", r#""vmlinuz\t""#),
        ("kernel", r#""vmlinuz\u007f""#),
        ("kernel", r##""#vmlinuz""##),
        ("kernel", r#""http://x/k\r\nshell""#),
        ("initrd", r#"["initrd.gz", "x\nshell"]"#),
        ("cmdline", r#""a\nchain http://x/""#),
        ("cmdline", r#""a\rb""#),
        ("cmdline", r#""a || shell""#),
        ("cmdline", r#""a && shell""#),
        ("cmdline", r#""a ; shell""#),
        ("cmdline", r##""quiet #""##),
        ("cmdline", r#""a {{ip}}|| shell""#),
    ];
    for (key, value) in fedora {
        let line = CONTRACT.lines().position(|l| l.starts_with(key)).unwrap();
        let old = CONTRACT.lines().nth(line).unwrap();
        let text = CONTRACT.replace(old, &format!("{key} = {value}"));
        check(text, line + 1, &format!("profiles.fedora.{key}"));
    }
    // In a table appended after the contract (its key on line 25).
    let appended = [
        ("profiles.c", "chain", r#""http://x/\nshell""#),
        ("profiles.c", "chain", r#""http://x/ {{mac}}""#),
        ("profiles.c", "chain", r##""#http://x/""##),
        ("profiles.s", "script", r#""s.ipxe\nshell""#),
        ("first_stage", "bios", r#""x.kpxe\nshell""#),
        ("first_stage", "efi_x64", r#""ipxe.efi x""#),
        ("first_stage", "http_x64", r#""http://x/i\n""#),
    ];
    for (table, key, value) in appended {
        let text = format!("{CONTRACT}\n[{table}]\n{key} = {value}\n");
        check(text, 25, &format!("{table}.{key}"));
    }
    // Profile names, named by their table header on line 24.
    for name in [r#""a b""#, r##""menu\nshell\n#""##, r#""a;b""#] {
        let text = format!("{CONTRACT}\n[profiles.{name}]\naction = \"local\"\n");
        check(text, 24, &format!("profiles.{name}"));
    }
    // What operators write on purpose stays accepted.
    let ok = CONTRACT.replace("console=ttyS0", "ip=${net0/ip} mac={{ mac }} a||b")
        + "[profiles.c]\nchain = \"http://x/{{ mac }}?h={{hostname}}#top\"\n"
        + "[profiles.\"fedora-40.x86_64\"]\naction = \"local\"\n";
    parse_str(&ok).unwrap();
}

#[test]
fn secure_boot_hosts_must_have_a_profile_grub_can_boot() {
    let base = format!(
        "{CONTRACT}[profiles.custom]\nscript = \"custom.ipxe\"\n[profiles.disk]\naction = \"local\"\n[profiles.far]\nkernel = \"http://mirror.example/vmlinuz\"\n"
    );
    // Kernel and local profiles are fine.
    for p in ["fedora", "disk"] {
        let c = parse_str(&format!(
            "{base}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"{p}\"\nsecure_boot = true\n"
        ))
        .unwrap();
        assert!(c.secure_boot_for(&"de:00:00:00:00:5b".parse().unwrap()));
        assert!(!c.secure_boot_for(&"de:00:00:00:00:de".parse().unwrap()));
    }
    // An iPXE script on a Secure Boot host: the error names the host's secure_boot key.
    let text =
        format!("{base}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"custom\"\nsecure_boot = true\n");
    let (line, key, msg) = err_of(&text);
    assert_eq!(key, "hosts.\"de:00:00:00:00:5b\".secure_boot");
    assert_eq!(line, text.lines().count());
    assert!(msg.contains("profile `custom` (script profile)"), "{msg}");
    assert!(msg.contains("iPXE script cannot run under GRUB"), "{msg}");
    // A URL: Debian's signed GRUB has no HTTP.
    let (_, _, msg) = err_of(&format!(
        "{base}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"far\"\nsecure_boot = true\n"
    ));
    assert!(msg.contains("TFTP only"), "{msg}");
    // Inherited from [defaults]: the error names the host's profile.
    let (_, key, _) = err_of(&format!(
        "[defaults]\nsecure_boot = true\n{base}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"custom\"\n"
    ));
    assert_eq!(key, "hosts.\"de:00:00:00:00:5b\".profile");
    // [defaults] profile for unknown machines, under [defaults] secure_boot.
    let (_, key, _) = err_of(&format!(
        "[defaults]\nsecure_boot = true\nprofile = \"custom\"\n{base}"
    ));
    assert_eq!(key, "defaults.secure_boot");
    // Opting a host out keeps its iPXE script.
    assert!(parse_str(&format!(
        "[defaults]\nsecure_boot = true\n{base}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"custom\"\nsecure_boot = false\n"
    ))
    .is_ok());
}

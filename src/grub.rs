//! GRUB configs for the signed chains (x86-64 Secure Boot: shim → GRUB → kernel; arm64
//! UEFI: GRUB → kernel). Pure: no IO.
//!
//! Debian's signed network GRUB starts with `$prefix` = `(tftp,SERVER)/grub` and loads
//! `grub/grub.cfg`. pxed renders the machine's profile there, picking the machine by the
//! address the request came from (its lease). Where pxed knows no machine at that address
//! (proxy mode), the config it serves asks for `grub/grub.cfg-01-$net_default_mac`, which
//! pxed renders for that MAC; `grub.cfg-01-<mac with dashes>` is also the name GRUB's own
//! `net_search_cfg` feature asks for. The same kernel profile that renders to an iPXE
//! script renders here; iPXE-only profiles do not.

use crate::mac::Mac;
use crate::profiles::{is_url, render_template, Profile, TemplateError, Vars};

/// A request for a GRUB config that pxed renders rather than reads from `boot_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `grub/grub.cfg-01-aa-bb-cc-dd-ee-ff`: the config of that MAC.
    Mac(Mac),
    /// `grub/grub.cfg`: the config of the machine at the requesting address.
    ByAddress,
    /// `grub/grub.cfg-0A7B…`: GRUB's search by address prefix, which pxed never answers (the
    /// MAC form comes first, and `grub.cfg` answers by address).
    AddressPrefix,
}

/// Recognises the config names GRUB's network search asks for, with or without leading `/`.
pub fn asked(path: &str) -> Option<Asked> {
    let path = path.trim_start_matches('/');
    let name = path.strip_prefix("grub/")?;
    if name == "grub.cfg" {
        return Some(Asked::ByAddress);
    }
    let suffix = name.strip_prefix("grub.cfg-")?;
    if let Some(mac) = suffix.strip_prefix("01-") {
        let mac = mac.replace('-', ":").parse::<Mac>().ok()?;
        return Some(Asked::Mac(mac));
    }
    (!suffix.is_empty() && suffix.len() <= 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(Asked::AddressPrefix)
}

/// Whether a profile can boot through GRUB; `Err` says why not.
pub fn supports(profile: &Profile) -> Result<(), &'static str> {
    match profile {
        Profile::Kernel { kernel, initrd, .. } => {
            if std::iter::once(kernel)
                .chain(initrd)
                .any(|p| is_url(p) && loader_of_url(p).is_none())
            {
                return Err("GRUB 2.06 loads URLs only as plain http:// on port 80");
            }
            Ok(())
        }
        Profile::Local => Ok(()),
        Profile::Script { .. } => Err("an iPXE script cannot run under GRUB"),
        Profile::Chain { .. } => Err("an iPXE chain cannot run under GRUB"),
    }
}

/// `http://host[:80]/path` as GRUB's `(http,host)/path`; `None` for any other URL, which
/// GRUB 2.06 cannot fetch (it parses no port and has no TLS).
fn loader_of_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.strip_suffix(":80").unwrap_or(authority);
    if host.is_empty() || host.contains(['@', ':', '[']) {
        return None;
    }
    Some(format!(
        "(http,{host}){}",
        if path.is_empty() { "/" } else { path }
    ))
}

/// Quotes one word for GRUB's shell: single quotes, inside which nothing is special.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Renders the GRUB config for `profile`. `device` is where files under `boot_dir` are
/// loaded from: `(tftp,ADDR)`, or `(http,ADDR)` when pxed's HTTP listener is on port 80.
pub fn render(
    name: &str,
    profile: &Profile,
    vars: &Vars<'_>,
    device: &str,
) -> Result<String, TemplateError> {
    let mac = vars.mac;
    let head = format!("# pxed: profile {name} for {mac}\nset timeout=0\n");
    let fail = |why: &str| {
        format!(
            "{head}echo {}\nsleep 5\nexit 1\n",
            quote(&format!(
                "pxed: profile {name} cannot boot under GRUB: {why}; trying the next boot device"
            ))
        )
    };
    match profile {
        Profile::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            if let Err(why) = supports(profile) {
                return Ok(fail(why));
            }
            let at = |p: &str| match loader_of_url(p) {
                Some(u) => u,
                None => format!("{device}/{}", p.trim_start_matches('/')),
            };
            let cmdline = render_template(cmdline, vars)?;
            let mut linux = format!("linux {}", quote(&at(kernel)));
            for word in cmdline.split_whitespace() {
                linux.push(' ');
                linux.push_str(&quote(word));
            }
            let mut s = head.clone();
            s.push_str(&format!(
                "echo {}\n{linux}\n",
                quote(&format!("pxed: booting profile {name} for {mac}"))
            ));
            if !initrd.is_empty() {
                s.push_str("initrd");
                for i in initrd {
                    s.push(' ');
                    s.push_str(&quote(&at(i)));
                }
                s.push('\n');
            }
            s.push_str("boot\n");
            s.push_str(&format!(
                "echo {}\nsleep 5\nexit 1\n",
                quote(&format!(
                    "pxed: profile {name} failed to boot, trying the next boot device"
                ))
            ));
            Ok(s)
        }
        Profile::Local => Ok(format!(
            "{head}echo {}\n{}",
            quote(&format!("pxed: {mac} boots from its local disk")),
            local_disk(vars.arch)
        )),
        Profile::Script { .. } | Profile::Chain { .. } => Ok(fail(
            supports(profile).err().unwrap_or("not a GRUB profile"),
        )),
    }
}

/// Boot loaders GRUB looks for on the local disks, in order: the removable-media path every
/// firmware boots, then the shims and loaders distributions install.
const LOCAL_LOADERS_X64: &[&str] = &[
    "/EFI/BOOT/BOOTX64.EFI",
    "/EFI/debian/shimx64.efi",
    "/EFI/ubuntu/shimx64.efi",
    "/EFI/fedora/shimx64.efi",
    "/EFI/redhat/shimx64.efi",
    "/EFI/centos/shimx64.efi",
    "/EFI/rocky/shimx64.efi",
    "/EFI/almalinux/shimx64.efi",
    "/EFI/opensuse/shim.efi",
    "/EFI/sles/shim.efi",
    "/EFI/Microsoft/Boot/bootmgfw.efi",
];

/// The same for arm64.
const LOCAL_LOADERS_ARM64: &[&str] = &[
    "/EFI/BOOT/BOOTAA64.EFI",
    "/EFI/debian/shimaa64.efi",
    "/EFI/ubuntu/shimaa64.efi",
    "/EFI/fedora/shimaa64.efi",
    "/EFI/redhat/shimaa64.efi",
    "/EFI/opensuse/shim.efi",
    "/EFI/sles/shim.efi",
];

/// GRUB script that boots the local disk. GRUB 2.06's `exit` always returns success to the
/// firmware, and on success OVMF (like most firmware) stops and shows its boot menu instead
/// of trying the next boot option. So GRUB chainloads the first boot loader it finds on a
/// local disk (verified through shim under Secure Boot), and only exits when there is none.
fn local_disk(arch: &str) -> String {
    let loaders = match arch {
        "efi-arm64" | "http-efi-arm64" => LOCAL_LOADERS_ARM64,
        _ => LOCAL_LOADERS_X64,
    };
    let mut s = format!("for loader in {}; do\n", loaders.join(" "));
    s.push_str(
        "  if search --no-floppy --file --set=root $loader; then\n\
         \x20   echo \"pxed: chainloading ($root)$loader\"\n\
         \x20   chainloader ($root)$loader\n\
         \x20   boot\n\
         \x20 fi\n\
         done\n\
         echo 'pxed: no boot loader on a local disk; handing the machine back to its firmware'\n\
         sleep 5\n\
         exit 1\n",
    );
    s
}

/// The config served at `grub/grub.cfg` to an address pxed cannot tie to a machine with a
/// profile (in proxy mode pxed leases no addresses): it asks again by the MAC GRUB booted
/// from, and if that names no machine either, hands it back to its firmware.
pub fn unknown_machine() -> String {
    "# pxed: no machine known at this address; ask by this machine's MAC\n\
     configfile \"$prefix/grub.cfg-01-$net_default_mac\"\n\
     echo 'pxed: no boot profile for this machine; trying the next boot device'\n\
     sleep 5\n\
     exit 1\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn vars() -> Vars<'static> {
        Vars {
            mac: "de:00:00:00:00:5b".parse().unwrap(),
            ip: Some(Ipv4Addr::new(10, 123, 0, 100)),
            hostname: Some("vm-sb"),
            server: Ipv4Addr::new(10, 123, 0, 1),
            http: "http://10.123.0.1:8080",
            arch: "efi-x64",
        }
    }

    #[test]
    fn names_grub_asks_for() {
        let mac: Mac = "de:00:00:00:00:5b".parse().unwrap();
        assert_eq!(
            asked("/grub/grub.cfg-01-de-00-00-00-00-5b"),
            Some(Asked::Mac(mac))
        );
        assert_eq!(
            asked("grub/grub.cfg-01-DE-00-00-00-00-5B"),
            Some(Asked::Mac(mac))
        );
        // $net_default_mac, as unknown_machine() asks for it.
        assert_eq!(
            asked("/grub/grub.cfg-01-de:00:00:00:00:5b"),
            Some(Asked::Mac(mac))
        );
        assert_eq!(asked("/grub/grub.cfg"), Some(Asked::ByAddress));
        assert_eq!(asked("/grub/grub.cfg-0A7B0064"), Some(Asked::AddressPrefix));
        assert_eq!(asked("/grub/grub.cfg-0"), Some(Asked::AddressPrefix));
        assert_eq!(asked("/grub/grub.cfg-01-zz"), None);
        assert_eq!(asked("/grub/grub.cfg-xyz"), None);
        assert_eq!(asked("/grub/x86_64-efi/normal.mod"), None);
        assert_eq!(asked("/grub.cfg"), None);
        assert_eq!(asked("/vmlinuz"), None);
    }

    #[test]
    fn kernel_profile_renders_over_tftp_with_quoted_words() {
        let p = Profile::Kernel {
            kernel: "vmlinuz".into(),
            initrd: vec!["/initrd.gz".into(), "extra.img".into()],
            cmdline: "console=ttyS0 host={{ hostname }} arch={{arch}} x='y'".into(),
        };
        let s = render("sb", &p, &vars(), "(tftp,10.123.0.1)").unwrap();
        assert_eq!(
            s,
            "# pxed: profile sb for de:00:00:00:00:5b\n\
             set timeout=0\n\
             echo 'pxed: booting profile sb for de:00:00:00:00:5b'\n\
             linux '(tftp,10.123.0.1)/vmlinuz' 'console=ttyS0' 'host=vm-sb' 'arch=efi-x64' 'x='\\''y'\\'''\n\
             initrd '(tftp,10.123.0.1)/initrd.gz' '(tftp,10.123.0.1)/extra.img'\n\
             boot\n\
             echo 'pxed: profile sb failed to boot, trying the next boot device'\n\
             sleep 5\n\
             exit 1\n"
        );
        assert!(!s.contains("initrd="), "GRUB needs no initrd= names");
    }

    #[test]
    fn values_cannot_break_out_of_their_word() {
        let mut v = vars();
        v.hostname = Some("a'b;c\n$d");
        let p = Profile::Kernel {
            kernel: "vmlinuz".into(),
            initrd: vec![],
            cmdline: "h={{hostname}}".into(),
        };
        let s = render("p", &p, &v, "(tftp,10.123.0.1)").unwrap();
        assert!(s.contains("'h=a%27b%3Bc%0A%24d'\n"), "{s}");
        assert!(!s.contains("initrd"));
    }

    #[test]
    fn port_80_urls_load_over_http_and_others_are_refused() {
        let ok = Profile::Kernel {
            kernel: "http://mirror.example/d/vmlinuz".into(),
            initrd: vec!["http://mirror.example:80/d/initrd.gz".into()],
            cmdline: String::new(),
        };
        assert!(supports(&ok).is_ok());
        let s = render("m", &ok, &vars(), "(http,10.123.0.1)").unwrap();
        assert!(
            s.contains("linux '(http,mirror.example)/d/vmlinuz'\n"),
            "{s}"
        );
        assert!(
            s.contains("initrd '(http,mirror.example)/d/initrd.gz'\n"),
            "{s}"
        );

        for bad in [
            "http://mirror.example:8080/vmlinuz",
            "https://mirror.example/vmlinuz",
        ] {
            let p = Profile::Kernel {
                kernel: bad.into(),
                initrd: vec![],
                cmdline: String::new(),
            };
            assert!(supports(&p).is_err(), "{bad}");
            let s = render("m", &p, &vars(), "(tftp,10.123.0.1)").unwrap();
            assert!(
                s.contains("cannot boot under GRUB") && s.ends_with("exit 1\n"),
                "{s}"
            );
            assert!(!s.contains("linux"), "{s}");
        }
    }

    #[test]
    fn local_exits_to_the_firmware_and_ipxe_profiles_do_not_render() {
        let s = render("disk", &Profile::Local, &vars(), "(tftp,10.123.0.1)").unwrap();
        assert!(
            s.contains("for loader in /EFI/BOOT/BOOTX64.EFI /EFI/debian/shimx64.efi "),
            "{s}"
        );
        assert!(
            s.contains("    chainloader ($root)$loader\n    boot\n"),
            "{s}"
        );
        assert!(s.ends_with("exit 1\n"), "{s}");
        assert!(!s.contains("\nlinux "), "{s}");
        let mut arm = vars();
        arm.arch = "efi-arm64";
        let s = render("disk", &Profile::Local, &arm, "(tftp,10.123.0.1)").unwrap();
        assert!(s.contains("for loader in /EFI/BOOT/BOOTAA64.EFI "), "{s}");
        assert!(!s.contains("X64"), "{s}");
        for p in [
            Profile::Script {
                script: "x.ipxe".into(),
            },
            Profile::Chain {
                url: "http://x/".into(),
            },
        ] {
            assert!(supports(&p).is_err());
            let s = render("i", &p, &vars(), "(tftp,10.123.0.1)").unwrap();
            assert!(
                s.contains("cannot boot under GRUB") && s.ends_with("exit 1\n"),
                "{s}"
            );
        }
        let u = unknown_machine();
        assert!(
            u.contains("configfile \"$prefix/grub.cfg-01-$net_default_mac\"\n"),
            "{u}"
        );
        assert!(u.ends_with("exit 1\n"), "{u}");
    }
}

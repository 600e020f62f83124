//! The real pxed binary in a network namespace, checked by real clients: busybox udhcpc for
//! DHCP, curl and atftp for TFTP, curl for HTTP, and raw probes (tests/tools/probe.py) for
//! what those clients cannot do (abort with ERROR, stall, send garbage).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const KNOWN: &str = "de:00:00:00:00:de";

fn probe() -> String {
    tool("probe.py")
}

/// A boot dir with generated files, a secret next to it and a symlink pointing at the secret.
fn boot_dir(lab: &Lab) -> (PathBuf, Vec<u8>) {
    let boot = lab.path("boot");
    std::fs::create_dir_all(boot.join("sub")).unwrap();
    // Deterministic pseudo-random bytes (xorshift), 4 MiB + 123 so the end is a short block.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let big: Vec<u8> = (0..(4 << 20) + 123)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(boot.join("big.bin"), &big).unwrap();
    std::fs::write(boot.join("ipxe.efi"), &big[..100_000]).unwrap();
    std::fs::write(boot.join("undionly.kpxe"), &big[..70_000]).unwrap();
    std::fs::write(boot.join("vmlinuz"), &big[..300_000]).unwrap();
    std::fs::write(boot.join("sub/initrd.gz"), &big[..5_000]).unwrap();
    std::fs::write(lab.path("secret"), "TOP-SECRET\n").unwrap();
    std::os::unix::fs::symlink(lab.path("secret"), boot.join("escape")).unwrap();
    (boot, big)
}

fn lab_config(lab: &Lab, boot: &Path) -> String {
    config(
        boot,
        &lab.path("state"),
        r#"[profiles.fedora]
kernel = "vmlinuz"
initrd = ["sub/initrd.gz"]
cmdline = "console=ttyS0 host={{ hostname }} arch={{ arch }}"

[hosts."de:00:00:00:00:de"]
profile = "fedora"
hostname = "vm-de"
"#,
    )
}

#[test]
fn dhcp_leases_and_boot_files_seen_by_udhcpc() {
    require(&["ip", "busybox", "python3"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let mut pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    let c = lab.client(KNOWN, None);

    // UEFI x64 PXE firmware.
    let uefi = udhcpc(
        &lab,
        &c,
        &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"],
    )
    .expect("lease for uefi");
    assert!(uefi.contains(" ip=10.123.0.100 "), "{uefi}");
    assert!(uefi.contains(" subnet=255.255.255.0 "), "{uefi}");
    assert!(uefi.contains(" router=10.123.0.1 "), "{uefi}");
    assert!(uefi.contains(" serverid=10.123.0.1 "), "{uefi}");
    assert!(uefi.contains(" lease=3600 "), "{uefi}");
    assert!(uefi.contains(" siaddr=10.123.0.1 "), "{uefi}");
    assert!(uefi.contains(" boot_file=ipxe.efi "), "{uefi}");
    assert!(uefi.contains(" hostname=vm-de"), "{uefi}");

    // BIOS PXE firmware, same MAC: same address, BIOS first stage.
    let bios = udhcpc(
        &lab,
        &c,
        &["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"],
    )
    .expect("lease for bios");
    assert!(bios.contains(" ip=10.123.0.100 "), "{bios}");
    assert!(bios.contains(" boot_file=undionly.kpxe "), "{bios}");

    // iPXE (user class "iPXE"): its own script URL.
    let ipxe = udhcpc(&lab, &c, &["-x", "0x4d:69505845"]).expect("lease for ipxe");
    assert!(ipxe.contains(" ip=10.123.0.100 "), "{ipxe}");
    assert!(
        ipxe.contains(" boot_file=http://10.123.0.1:8080/ipxe/de:00:00:00:00:de "),
        "{ipxe}"
    );

    // An unmanaged MAC gets no answer at all.
    let stranger = lab.client("52:54:00:aa:bb:cc", None);
    assert_eq!(
        udhcpc(&lab, &stranger, &["-V", "PXEClient:Arch:00007:UNDI:003016"]),
        None
    );
    let log = pxed.wait_for_log(
        |l| l.contains("reason=\"unmanaged mac\""),
        Duration::from_secs(5),
        "unmanaged mac",
    );
    assert!(!log
        .lines()
        .any(|l| l.contains("dhcp reply sent") && l.contains("52:54:00:aa:bb:cc")));

    // Malformed datagrams are logged and dropped, and serving goes on.
    c.ip(&["addr", "add", "10.123.0.50/24", "dev", "vc"]);
    let (ok, out, err) = run_limited(
        c.cmd("python3").args([&probe(), "dhcp-garbage", SERVER_IP]),
        Duration::from_secs(10),
    );
    assert!(ok, "{out}{err}");
    // Logged, at most once a second (anyone can send them at any rate), and counted.
    pxed.wait_for_log(
        |l| l.contains("dropping malformed dhcp packet"),
        Duration::from_secs(5),
        "malformed packets logged",
    );
    let metrics = admin_get(&lab, "/metrics");
    let malformed: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("pxed_requests_total{protocol=\"dhcp\",outcome=\"malformed\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(malformed >= 4, "{metrics}");
    let again = udhcpc(&lab, &c, &["-x", "0x4d:69505845"]).expect("still serving after garbage");
    assert!(again.contains(" ip=10.123.0.100 "), "{again}");
}

#[test]
fn two_interfaces_each_serve_their_own_subnet() {
    require(&["ip", "busybox", "curl"]);
    let mut lab = Lab::new();
    lab.server.ip(&["link", "add", "br2", "type", "bridge"]);
    lab.server
        .ip(&["addr", "add", "10.60.0.1/24", "dev", "br2"]);
    lab.server.ip(&["link", "set", "br2", "up"]);
    let (boot, big) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot).replace(
        "lease_time = \"1h\"\n",
        "lease_time = \"1h\"\n\n[[dhcp.subnets]]\nsubnet = \"10.60.0.0/24\"\ninterface = \"br2\"\naddress = \"10.60.0.1\"\nrange = [\"10.60.0.100\", \"10.60.0.150\"]\nrouter = \"10.60.0.1\"\n",
    ) + "\n[defaults]\nprofile = \"fedora\"\n";
    let pxed = Pxed::start(&lab, &cfg);
    assert_eq!(
        pxed.log().matches("dhcp listener ready").count(),
        2,
        "{}",
        pxed.log()
    );
    let a = lab.client_on("br1", "52:54:00:00:01:01", None);
    let b = lab.client_on("br2", "52:54:00:00:02:02", None);
    let ipxe = ["-x", "0x4d:69505845"];
    let la = udhcpc(&lab, &a, &ipxe).expect("lease on br1");
    assert!(
        la.contains(" ip=10.123.0.100 ") && la.contains(" serverid=10.123.0.1 "),
        "{la}"
    );
    assert!(
        la.contains(" boot_file=http://10.123.0.1:8080/ipxe/52:54:00:00:01:01 "),
        "{la}"
    );
    let lb = udhcpc(&lab, &b, &ipxe).expect("lease on br2");
    assert!(
        lb.contains(" ip=10.60.0.100 ") && lb.contains(" serverid=10.60.0.1 "),
        "{lb}"
    );
    assert!(
        lb.contains(" router=10.60.0.1 ") && lb.contains(" siaddr=10.60.0.1 "),
        "{lb}"
    );
    assert!(
        lb.contains(" boot_file=http://10.60.0.1:8080/ipxe/52:54:00:00:02:02 "),
        "{lb}"
    );
    let pxe = udhcpc(
        &lab,
        &b,
        &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"],
    )
    .expect("pxe on br2");
    assert!(
        pxe.contains(" boot_file=ipxe.efi ") && pxe.contains(" siaddr=10.60.0.1 "),
        "{pxe}"
    );
    // The first stage comes over TFTP from pxed's address on br2.
    b.ip(&["addr", "add", "10.60.0.100/24", "dev", "vc"]);
    let out = lab.path("br2.bin");
    let (ok, _, err) = run_limited(
        b.cmd("curl")
            .args(["-sS", "--tftp-blksize", "1468", "-o"])
            .arg(&out)
            .arg("tftp://10.60.0.1/big.bin"),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    assert!(std::fs::read(&out).unwrap() == big);
}

#[test]
fn exhausted_pool_offers_nothing_warns_and_keeps_serving_leaseholders() {
    require(&["ip", "busybox"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot).replace(
        "\"10.123.0.100\", \"10.123.0.200\"",
        "\"10.123.0.100\", \"10.123.0.100\"",
    ) + "\n[defaults]\nprofile = \"fedora\"\n";
    let mut pxed = Pxed::start(&lab, &cfg);
    let a = lab.client("52:54:00:00:0a:01", None);
    let b = lab.client("52:54:00:00:0b:02", None);
    let first = udhcpc(&lab, &a, &[]).expect("the one address");
    assert!(first.contains(" ip=10.123.0.100 "), "{first}");
    assert_eq!(
        udhcpc(&lab, &b, &[]),
        None,
        "a second client got an address from a full pool"
    );
    let log = pxed.wait_for_log(
        |l| l.contains("dhcp pool exhausted"),
        Duration::from_secs(5),
        "exhaustion warning",
    );
    assert!(
        log.lines().any(|l| l.contains("dhcp pool exhausted")
            && l.contains("WARN")
            && l.contains("total=")),
        "{log}"
    );
    let again =
        udhcpc(&lab, &a, &["-r", "10.123.0.100"]).expect("the leaseholder keeps its address");
    assert!(again.contains(" ip=10.123.0.100 "), "{again}");
}

#[test]
fn sighup_reloads_a_good_file_and_refuses_a_broken_one() {
    require(&["ip", "busybox", "curl"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot);
    let mut pxed = Pxed::start(&lab, &cfg);
    let known = lab.client(KNOWN, None);
    let newcomer = lab.client("52:54:00:00:0c:03", None);
    assert_eq!(udhcpc(&lab, &newcomer, &[]), None, "not managed yet");

    std::fs::write(
        pxed.config_path(),
        format!("{cfg}\n[hosts.\"52:54:00:00:0c:03\"]\nprofile = \"fedora\"\n"),
    )
    .unwrap();
    pxed.signal("-HUP");
    pxed.wait_for_log(
        |l| l.contains("config reloaded"),
        Duration::from_secs(5),
        "reload",
    );
    let got = udhcpc(&lab, &newcomer, &[]).expect("managed after the reload");
    assert!(got.contains(" ip=10.123.0."), "{got}");
    let (ok, hosts, _) = run_limited(
        lab.server
            .cmd("curl")
            .args(["-sS", "http://127.0.0.1:9091/api/v1/hosts"]),
        Duration::from_secs(10),
    );
    assert!(ok && hosts.contains("52:54:00:00:0c:03"), "{hosts}");

    // A broken file: refused, logged with file, line and key, and serving goes on.
    std::fs::write(
        pxed.config_path(),
        cfg.replace(
            "[hosts.\"de:00:00:00:00:de\"]\nprofile = \"fedora\"",
            "[hosts.\"de:00:00:00:00:de\"]\nprofile = \"nope\"",
        ),
    )
    .unwrap();
    pxed.signal("-HUP");
    let log = pxed.wait_for_log(
        |l| l.contains("config reload refused"),
        Duration::from_secs(5),
        "refusal",
    );
    let line = log
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap();
    assert!(
        line.contains(".toml:22:1: key `hosts.\"de:00:00:00:00:de\".profile`"),
        "{line}"
    );
    let still = udhcpc(&lab, &known, &[]).expect("old config still serves");
    assert!(still.contains(" ip=10.123.0."), "{still}");
    let again = udhcpc(&lab, &newcomer, &[]).expect("the reloaded host is still managed");
    assert!(again.contains(" ip=10.123.0."), "{again}");
}

#[test]
fn a_saved_config_is_picked_up_within_two_seconds() {
    require(&["ip", "busybox"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot);
    let mut pxed = Pxed::start(&lab, &cfg);
    let newcomer = lab.client("52:54:00:00:0d:04", None);
    // Save the way editors do: write a new file, then rename it over the old one.
    let path = pxed.config_path();
    let save = |text: &str| {
        let tmp = path.with_extension("toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    save(&format!(
        "{cfg}\n[hosts.\"52:54:00:00:0d:04\"]\nprofile = \"fedora\"\n"
    ));
    let started = std::time::Instant::now();
    pxed.wait_for_log(
        |l| l.contains("config reloaded") && l.contains("trigger=\"file\""),
        Duration::from_secs(2),
        "reload within 2 s of the save",
    );
    println!("file change picked up in {:?}", started.elapsed());
    assert!(
        udhcpc(&lab, &newcomer, &[]).is_some(),
        "new host not served after the reload"
    );
    // A plain write in place (same inode, no rename) is seen too.
    let third = "52:54:00:00:0d:05";
    std::fs::write(
        &path,
        format!("{cfg}\n[hosts.\"52:54:00:00:0d:04\"]\nprofile = \"fedora\"\n[hosts.\"{third}\"]\nprofile = \"fedora\"\n"),
    )
    .unwrap();
    pxed.wait_for_log(
        |l| l.matches("config reloaded").count() >= 2,
        Duration::from_secs(3),
        "reload after an in-place write",
    );
    let third_ns = lab.client(third, None);
    assert!(
        udhcpc(&lab, &third_ns, &[]).is_some(),
        "host added in place not served"
    );
    // A broken save is refused; the host added before stays served.
    save("[server]\ninterface = \"br1\"\n");
    pxed.wait_for_log(
        |l| l.contains("config reload refused") && l.contains("trigger=\"file\""),
        Duration::from_secs(2),
        "refusal within 2 s",
    );
    assert!(
        udhcpc(&lab, &newcomer, &[]).is_some(),
        "old config not kept"
    );
}

/// The served script of the known host, fetched with curl inside the lab.
fn script_of(lab: &Lab) -> String {
    let (ok, out, err) = run_limited(
        lab.server
            .cmd("curl")
            .args(["-fsS", &format!("http://{SERVER_IP}:8080/ipxe/{KNOWN}")]),
        Duration::from_secs(10),
    );
    assert!(ok, "script fetch failed: {err}");
    out
}

#[test]
fn a_kubelet_configmap_update_goes_live_without_a_restart() {
    require(&["ip", "curl"]);
    let lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = |rev: u32| {
        lab_config(&lab, &boot).replace("console=ttyS0", &format!("console=ttyS0 rev={rev}"))
    };
    // pxed.toml -> ..data/pxed.toml, ..data -> ..<timestamp>: what a ConfigMap mount holds.
    let mut cm = ConfigMapDir::new(&lab.path("configmap"), &[("pxed.toml", &cfg(1))]);
    let mut cmd = lab.server.cmd(pxed_bin());
    cmd.args(["serve", "--config"]).arg(cm.file("pxed.toml"));
    cmd.env("PXED_LOG", "info,pxed::watch=debug");
    let mut pxed = Pxed::launch(&lab, cmd, "configmap");
    assert!(script_of(&lab).contains(" rev=1 "), "{}", script_of(&lab));
    for rev in 2..=3 {
        cm.update(&[("pxed.toml", &cfg(rev))]);
        pxed.wait_for_log(
            |l| l.matches("config reloaded").count() >= (rev - 1) as usize,
            Duration::from_secs(3),
            "a reload after the kubelet's ..data swap",
        );
        let script = script_of(&lab);
        assert!(
            script.contains(&format!(" rev={rev} ")),
            "update {rev} not live:\n{script}"
        );
    }
    // Idle, the watcher stays idle: its own reads of the file must not wake it again.
    let looks = |l: &str| l.matches("config file touched but unchanged").count();
    let before = looks(&pxed.log());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        looks(&pxed.log()),
        before,
        "the watcher wakes itself:\n{}",
        pxed.log()
    );
    // A broken update is refused and the last good one stays live.
    cm.update(&[(
        "pxed.toml",
        &cfg(4).replace("profile = \"fedora\"", "profile = \"nope\""),
    )]);
    pxed.wait_for_log(
        |l| l.contains("config reload refused"),
        Duration::from_secs(3),
        "refusal of a broken ConfigMap update",
    );
    assert!(script_of(&lab).contains(" rev=3 "));
}

#[test]
fn an_in_place_edit_behind_a_symlink_goes_live() {
    require(&["ip", "curl"]);
    let lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = |rev: u32| {
        lab_config(&lab, &boot).replace("console=ttyS0", &format!("console=ttyS0 rev={rev}"))
    };
    // /etc/pxed/pxed.toml -> /srv/configs/pxed.toml, edited in place where it really is.
    std::fs::create_dir(lab.path("etc")).unwrap();
    std::fs::create_dir(lab.path("configs")).unwrap();
    let real = lab.path("configs/pxed.toml");
    std::fs::write(&real, cfg(1)).unwrap();
    let link = lab.path("etc/pxed.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut cmd = lab.server.cmd(pxed_bin());
    cmd.args(["serve", "--config"]).arg(&link);
    let mut pxed = Pxed::launch(&lab, cmd, "symlinked");
    assert!(script_of(&lab).contains(" rev=1 "));
    std::fs::write(&real, cfg(2)).unwrap();
    pxed.wait_for_log(
        |l| l.contains("config reloaded"),
        Duration::from_secs(3),
        "a reload after an in-place edit of the symlink's target",
    );
    assert!(script_of(&lab).contains(" rev=2 "), "{}", script_of(&lab));
}

/// Runs pxed in `lab` as `setpriv ARGS -- pxed serve --config CFG`, from a copy of the binary
/// that any user can run.
fn setpriv_pxed(lab: &Lab, cfg: &Path, setpriv: &[&str]) -> Command {
    let bin = lab.path("pxed-bin");
    if !bin.exists() {
        std::fs::copy(pxed_bin(), &bin).unwrap();
    }
    let mut cmd = lab.server.cmd("setpriv");
    cmd.args(setpriv).arg("--").arg(&bin);
    cmd.args(["serve", "--config"]).arg(cfg);
    cmd
}

fn status_of(lab: &Lab) -> serde_json::Value {
    let out = admin_get(lab, "/api/v1/status");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The pod's settings (OpenShift's restricted-v2): an arbitrary UID with GID 0, no
/// capabilities at all, no_new_privs. And docker's default capability set, as root.
#[test]
fn without_capabilities_pxed_starts_says_what_it_lacks_and_broadcasts() {
    require(&["ip", "busybox", "curl", "setpriv", "sysctl"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    // Readable by anyone, writable by group 0 only where pxed must write (the state dir).
    let chmod = |mode: &str, p: &Path| {
        assert!(Command::new("chmod")
            .arg(mode)
            .arg(p)
            .status()
            .unwrap()
            .success());
    };
    chmod("0755", lab.dir.path());
    let state = lab.path("state");
    std::fs::create_dir(&state).unwrap();
    chmod("0770", &state);
    let cfg = lab.path("pod.toml");
    std::fs::write(&cfg, lab_config(&lab, &boot)).unwrap();
    let pod = [
        "--reuid=1000650000",
        "--regid=0",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
    ];

    // Without the sysctl the pod cannot bind 67, and says why.
    let mut p = Pxed::spawn(&lab, &mut setpriv_pxed(&lab, &cfg, &pod), "nobind");
    let (status, log) = p.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("capability=\"CAP_NET_BIND_SERVICE\"")
            && log.contains(
                "needs CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start <= 67"
            ),
        "{log}"
    );

    // With it (as the Deployment sets it), pxed starts and reports what it lacks.
    lab.server.sysctl("net.ipv4.ip_unprivileged_port_start=0");
    let mut cmd = setpriv_pxed(&lab, &cfg, &pod);
    cmd.env("PXED_LOG", "debug");
    let pxed = Pxed::launch(&lab, cmd, "pod");
    let log = pxed.log();
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("running without an ability"))
        .collect();
    assert_eq!(warns.len(), 2, "{log}");
    assert!(
        warns[0].contains(" WARN ")
            && warns[0].contains("capability=\"CAP_NET_ADMIN\"")
            && warns[0].contains(
                "consequence=\"DHCP replies to clients without an address are broadcast\""
            ),
        "{}",
        warns[0]
    );
    assert!(
        warns[1].contains("admin API edits of hosts and profiles answer write_failed"),
        "{}",
        warns[1]
    );
    let status = status_of(&lab);
    assert_eq!(
        status["missing"],
        serde_json::json!(["dhcp_unicast", "config_writes"]),
        "{status}"
    );
    // DHCP still works: the reply to a client without an address is broadcast.
    let client = lab.client(KNOWN, None);
    let bound = udhcpc(&lab, &client, &[]).expect("a lease without CAP_NET_ADMIN");
    assert!(bound.contains(" ip=10.123.0."), "{bound}");
    let log = pxed.log();
    assert!(
        log.lines()
            .any(|l| l.contains("dhcp reply sent") && l.contains("to=255.255.255.255:68")),
        "{log}"
    );
    // Without CAP_NET_ADMIN pxed does not even try the ARP entry.
    assert!(!log.contains("arp injection failed"), "{log}");
    drop(pxed);

    // The runtimes' default capability sets, as root, with the sysctl back at its default:
    // ports come from CAP_NET_BIND_SERVICE, and only the ARP entry is missing.
    lab.server
        .sysctl("net.ipv4.ip_unprivileged_port_start=1024");
    let defaults = [
        // docker and containerd
        ("docker", "-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap"),
        // CRI-O (no NET_RAW)
        ("crio", "-all,+chown,+dac_override,+fsetid,+fowner,+setgid,+setuid,+setpcap,+net_bind_service,+kill"),
    ];
    for (runtime, set) in defaults {
        let bounding = format!("--bounding-set={set}");
        let pxed = Pxed::launch(
            &lab,
            setpriv_pxed(&lab, &cfg, &[&bounding, "--inh-caps=-all"]),
            runtime,
        );
        assert_eq!(
            status_of(&lab)["missing"],
            serde_json::json!(["dhcp_unicast"]),
            "{runtime}"
        );
        assert_eq!(
            pxed.log().matches("running without an ability").count(),
            1,
            "{runtime}"
        );
    }
}

#[test]
fn readme_admin_examples_work_against_a_live_pxed() {
    require(&["ip", "curl"]);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- admin-examples")
        .expect("README admin examples");
    let end = readme
        .find("<!-- /admin-examples -->")
        .expect("end of README admin examples");
    let examples: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(examples.len() >= 8, "only {} examples", examples.len());
    let lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    // The container health check command agrees with /healthz.
    let (ok, _, err) = run_limited(
        lab.server.cmd(pxed_bin()).arg("health"),
        Duration::from_secs(10),
    );
    assert!(ok, "pxed health failed against a running pxed: {err}");
    for ex in examples {
        let (ok, out, err) = run_limited(
            lab.server.cmd("sh").args(["-c", ex]),
            Duration::from_secs(10),
        );
        assert!(ok, "README example failed: {ex}\n{out}{err}");
        assert!(!out.is_empty(), "{ex} printed nothing");
    }
    // The edits above were pxed's own writes: the watcher must not have reloaded them.
    // Absence can only be observed by waiting, here longer than the watcher's settle time.
    std::thread::sleep(Duration::from_millis(800));
    let log = pxed.log();
    assert!(log.contains("config edited through the admin api"), "{log}");
    assert!(
        !log.contains("trigger=\"file\""),
        "pxed reloaded its own write:\n{log}"
    );
}

#[test]
fn admin_off_loopback_needs_a_token_and_checks_it() {
    require(&["ip", "curl"]);
    let lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot) + "\n[admin]\nlisten = \"10.123.0.1:9091\"\n";
    let path = lab.path("open-admin.toml");
    std::fs::write(&path, &cfg).unwrap();
    // No token anywhere: refused at startup, before anything is served.
    let (ok, _, err) = run_limited(
        lab.server
            .cmd(pxed_bin())
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("PXED_ADMIN_TOKEN"),
        Duration::from_secs(10),
    );
    assert!(!ok, "pxed served an open admin API beyond loopback");
    assert!(
        err.contains("not a loopback address, so a token is required"),
        "{err}"
    );
    // The placeholder that older manifests shipped is refused, and so is a short token.
    let token = lab.path("admin.token");
    for weak in ["replace-with-a-long-random-token\n", "t0k3n\n"] {
        std::fs::write(&token, weak).unwrap();
        let (ok, _, err) = run_limited(
            lab.server
                .cmd(pxed_bin())
                .args(["serve", "--config"])
                .arg(&path)
                .env("PXED_ADMIN_TOKEN", weak.trim()),
            Duration::from_secs(10),
        );
        assert!(!ok, "pxed started with the weak token {weak:?}");
        assert!(
            err.contains("the admin token from PXED_ADMIN_TOKEN"),
            "{err}"
        );
        assert!(
            !err.contains(weak.trim()),
            "the token reached the error: {err}"
        );
    }
    // The same refusal for a token file.
    std::fs::write(&token, "replace-with-a-long-random-token\n").unwrap();
    let weak_file = lab.path("weak-token.toml");
    std::fs::write(
        &weak_file,
        format!("{cfg}token_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let (ok, _, err) = run_limited(
        lab.server
            .cmd(pxed_bin())
            .args(["serve", "--config"])
            .arg(&weak_file),
        Duration::from_secs(10),
    );
    assert!(!ok, "pxed started with a placeholder token file");
    assert!(
        err.contains("the admin token from [admin] token_file") && err.contains("placeholder"),
        "{err}"
    );
    // With a token file: requests need it, and the log never shows it.
    std::fs::write(&token, "t0k3n-for-tests-0123456789\n").unwrap();
    let pxed = Pxed::start(
        &lab,
        &format!("{cfg}token_file = \"{}\"\n", token.display()),
    );
    let code = |auth: Option<&str>| {
        let mut c = lab.server.cmd("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(a) = auth {
            c.args(["-H", a]);
        }
        c.arg("http://10.123.0.1:9091/api/v1/hosts");
        run_limited(&mut c, Duration::from_secs(10)).1
    };
    assert_eq!(code(None), "401");
    assert_eq!(code(Some("Authorization: Bearer wrong")), "401");
    assert_eq!(
        code(Some("Authorization: Bearer t0k3n-for-tests-0123456789")),
        "200"
    );
    let log = pxed.log();
    assert!(log.contains("admin request refused"), "{log}");
    assert!(
        !log.contains("t0k3n") && !log.contains("wrong"),
        "a token reached the log:\n{log}"
    );
}

#[test]
fn a_reload_does_not_disturb_a_download_in_progress() {
    require(&["ip", "python3"]);
    let mut lab = Lab::new();
    let (boot, big) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot);
    let mut pxed = Pxed::start(&lab, &cfg);
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));
    let out = lab.path("slow.bin");
    // A client that reads slowly (about 3 s); the reload happens in the middle.
    let mut slow = c
        .cmd("python3")
        .arg(probe())
        .args(["http-slow", &format!("http://{SERVER_IP}:8080/big.bin")])
        .arg(&out)
        .arg("3")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pxed.wait_for_log(
        |l| l.contains("path=/big.bin"),
        Duration::from_secs(5),
        "download started",
    );
    std::fs::write(
        pxed.config_path(),
        cfg.replace("cmdline = \"console=ttyS0", "cmdline = \"console=ttyS1"),
    )
    .unwrap();
    pxed.signal("-HUP");
    pxed.wait_for_log(
        |l| l.contains("config reloaded"),
        Duration::from_secs(5),
        "reload",
    );
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the download ended before the reload; the test proves nothing"
    );
    assert!(slow.wait().unwrap().success());
    assert!(
        std::fs::read(&out).unwrap() == big,
        "the download was damaged by the reload"
    );
}

#[test]
fn acked_leases_survive_kill_9() {
    require(&["ip", "busybox"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = format!(
        "{}\n[defaults]\nprofile = \"fedora\"\n",
        lab_config(&lab, &boot)
    );
    let mut pxed = Pxed::start(&lab, &cfg);
    let a = lab.client("52:54:00:00:0a:01", None);
    let b = lab.client("52:54:00:00:0b:02", None);
    let first = udhcpc(&lab, &a, &[]).expect("lease for a");
    assert!(first.contains(" ip=10.123.0.100 "), "{first}");
    pxed.kill9();

    let mut pxed = Pxed::start(&lab, &cfg);
    let log = pxed.log();
    assert!(
        log.lines()
            .any(|l| l.contains("leases restored") && l.ends_with("leases=1")),
        "{log}"
    );
    // Another machine must not get a's address, and a gets its own back.
    let other = udhcpc(&lab, &b, &[]).expect("lease for b");
    assert!(other.contains(" ip=10.123.0.101 "), "{other}");
    let again = udhcpc(&lab, &a, &["-r", "10.123.0.100"]).expect("lease for a again");
    assert!(again.contains(" ip=10.123.0.100 "), "{again}");
    pxed.wait_for_log(
        |l| l.matches("reply=\"ack\"").count() >= 2,
        Duration::from_secs(5),
        "acks after restart",
    );
}

#[test]
fn tftp_transfers_seen_by_curl_and_atftp() {
    require(&["ip", "curl", "atftp", "python3"]);
    let mut lab = Lab::new();
    let (boot, big) = boot_dir(&lab);
    let mut pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));
    let out = lab.path("out");
    let fetch = |cmd: &mut Command, what: &str| {
        let _ = std::fs::remove_file(&out);
        let (ok, so, se) = run_limited(cmd, Duration::from_secs(60));
        assert!(ok, "{what} failed: {so}{se}");
        let got = std::fs::read(&out).unwrap();
        assert!(
            got == big,
            "{what}: received {} bytes that differ from the {} sent",
            got.len(),
            big.len()
        );
    };

    fetch(
        c.cmd("curl")
            .args(["-sS", "--tftp-blksize", "1468", "-o"])
            .arg(&out)
            .arg(format!("tftp://{SERVER_IP}/big.bin")),
        "curl blksize 1468",
    );
    fetch(
        c.cmd("curl")
            .args(["-sS", "-o"])
            .arg(&out)
            .arg(format!("tftp://{SERVER_IP}/big.bin")),
        "curl default blksize",
    );
    fetch(
        c.cmd("atftp")
            .args([
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 16",
                "-g",
                "-r",
                "big.bin",
                "-l",
            ])
            .arg(&out)
            .arg(SERVER_IP),
        "atftp windowsize 16",
    );
    let log = pxed.log();
    assert!(
        log.contains("file=big.bin size=4194427 blksize=1468 windowsize=16"),
        "{log}"
    );
    assert!(
        log.contains("file=big.bin size=4194427 blksize=512 windowsize=1"),
        "{log}"
    );

    // Refusals: traversal, a symlink out of boot_dir, a missing file, a write.
    for bad in ["../secret", "sub/../../secret", "escape", "missing.bin"] {
        let (ok, so, _) = run_limited(
            c.cmd("curl")
                .args(["-sS"])
                .arg(format!("tftp://{SERVER_IP}/{bad}")),
            Duration::from_secs(20),
        );
        assert!(!ok && !so.contains("TOP-SECRET"), "{bad} was served: {so}");
    }
    // Logged (at most once a second: anyone can send these at any rate) and counted.
    pxed.wait_for_log(
        |l| l.contains("tftp request refused"),
        Duration::from_secs(5),
        "refusals logged",
    );
    let metrics = admin_get(&lab, "/metrics");
    assert!(
        metrics.contains("pxed_requests_total{protocol=\"tftp\",outcome=\"failed\"} 4\n"),
        "{metrics}"
    );
    let upload = lab.path("upload.txt");
    std::fs::write(&upload, "x").unwrap();
    let (ok, _, _) = run_limited(
        c.cmd("curl")
            .args(["-sS", "-T"])
            .arg(&upload)
            .arg(format!("tftp://{SERVER_IP}/upload.txt")),
        Duration::from_secs(20),
    );
    assert!(!ok, "upload accepted");
    assert!(!boot.join("upload.txt").exists());
    pxed.wait_for_log(
        |l| l.contains("tftp write refused"),
        Duration::from_secs(5),
        "write refused",
    );
}

#[test]
fn tftp_client_error_ends_the_transfer_and_transfers_do_not_serialize() {
    require(&["ip", "curl", "atftp", "python3"]);
    let mut lab = Lab::new();
    let (boot, big) = boot_dir(&lab);
    let mut pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));

    // OVMF's size probe: RRQ with tsize, OACK, ERROR 8. Then the same mid-transfer.
    for phase in ["oack", "data"] {
        let (ok, out, err) = run_limited(
            c.cmd("python3")
                .args([&probe(), "tftp-abort", SERVER_IP, "big.bin", phase]),
            Duration::from_secs(15),
        );
        assert!(ok, "{out}{err}");
        assert!(
            out.contains("after_error=0"),
            "{phase}: server kept sending after the client's ERROR: {out}"
        );
    }
    pxed.wait_for_log(
        |l| l.matches("tftp transfer aborted by client").count() == 2,
        Duration::from_secs(5),
        "both aborts logged",
    );

    // A client that never ACKs holds a transfer open; others must still go through.
    let mut stall = c
        .cmd("python3")
        .args([&probe(), "tftp-stall", SERVER_IP, "big.bin", "8"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    pxed.wait_for_log(
        |l| l.matches("file=big.bin").count() >= 3,
        Duration::from_secs(5),
        "stalled transfer started",
    );
    let mut children = Vec::new();
    for i in 0..8 {
        let out = lab.path(&format!("par{i}"));
        let child = c
            .cmd("atftp")
            .args([
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 8",
                "-g",
                "-r",
                "big.bin",
                "-l",
            ])
            .arg(&out)
            .arg(SERVER_IP)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        children.push((child, out));
    }
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        assert!(
            std::fs::read(&out).unwrap() == big,
            "parallel download {} corrupt",
            out.display()
        );
    }
    assert!(
        stall.try_wait().unwrap().is_none(),
        "the stalled transfer ended before the others finished; they may have waited for it"
    );
    let _ = stall.kill();
    let _ = stall.wait();
    let log = pxed.log();
    assert_eq!(log.matches("tftp transfer finished").count(), 8, "{log}");
}

#[test]
fn http_scripts_and_files_seen_by_curl() {
    require(&["ip", "curl"]);
    let mut lab = Lab::new();
    let (boot, big) = boot_dir(&lab);
    let mut pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));
    let base = format!("http://{SERVER_IP}:8080");
    let curl = |args: &[&str]| -> (String, String) {
        let mut cmd = c.cmd("curl");
        cmd.args(["-sS", "-w", "\n%{http_code}"]).args(args);
        let (ok, out, err) = run_limited(&mut cmd, Duration::from_secs(30));
        assert!(ok, "curl {args:?}: {err}");
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };

    let (code, script) = curl(&[&format!("{base}/ipxe/{KNOWN}")]);
    assert_eq!(code, "200");
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains(&format!("kernel {base}/vmlinuz initrd=initrd.gz console=ttyS0 host=vm-de arch=unknown || goto failed")),
        "{script}"
    );
    assert!(
        script.contains(&format!("initrd {base}/sub/initrd.gz")),
        "{script}"
    );
    pxed.wait_for_log(
        |l| l.contains("path=/ipxe/de:00:00:00:00:de") && l.contains("mac=de:00:00:00:00:de"),
        Duration::from_secs(5),
        "script request logged with its mac",
    );

    let (code, body) = curl(&[&format!("{base}/ipxe/52:54:00:00:00:99")]);
    assert_eq!(code, "404");
    assert!(
        body.contains("no boot profile for MAC 52:54:00:00:00:99"),
        "{body}"
    );

    // A whole file, a range, and a conditional GET with the ETag.
    let out = lab.path("big.out");
    let mut cmd = c.cmd("curl");
    cmd.args(["-sS", "-o"])
        .arg(&out)
        .arg(format!("{base}/big.bin"));
    assert!(run_limited(&mut cmd, Duration::from_secs(30)).0);
    assert!(std::fs::read(&out).unwrap() == big);
    let mut cmd = c.cmd("curl");
    cmd.args(["-sS", "-r", "1000-1099", "-o"])
        .arg(&out)
        .arg(format!("{base}/big.bin"));
    assert!(run_limited(&mut cmd, Duration::from_secs(30)).0);
    assert_eq!(std::fs::read(&out).unwrap(), big[1000..1100]);
    let (_, headers) = curl(&["-I", &format!("{base}/big.bin")]);
    let etag = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("etag: ")
                .or_else(|| l.strip_prefix("ETag: "))
        })
        .expect("etag header")
        .trim()
        .to_string();
    let (code, _) = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{base}/big.bin"),
    ]);
    assert_eq!(code, "304");

    // Traversal and symlinks out of boot_dir are refused; writes too.
    for bad in [
        "/../secret",
        "/sub/../../secret",
        "/%2e%2e/secret",
        "/escape",
    ] {
        let (code, body) = curl(&["--path-as-is", &format!("{base}{bad}")]);
        assert!(code == "403" || code == "404", "{bad}: {code}");
        assert!(!body.contains("TOP-SECRET"), "{bad} leaked");
    }
    let (code, _) = curl(&["-X", "PUT", "-d", "x", &format!("{base}/big.bin")]);
    assert_eq!(code, "405");
}

/// What HTTP clients other than curl send: pipelined keep-alive requests, HTTP/1.0, a body
/// on a read-only server, and heads that are garbage or too long. Each is answered on the
/// wire as HTTP says, and the server keeps serving.
#[test]
fn http_framing_on_the_wire() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let (boot, big) = boot_dir(&lab);
    let _pxed = Pxed::start(&lab, &lab_config(&lab, &boot));
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));
    let out = lab.path("raw.out");
    let raw = |request: &str| -> (String, Vec<u8>) {
        let mut cmd = c.cmd("python3");
        cmd.arg(probe()).args([
            "http-raw",
            SERVER_IP,
            "8080",
            request,
            out.to_str().unwrap(),
        ]);
        let (ok, state, err) = run_limited(&mut cmd, Duration::from_secs(20));
        assert!(ok, "http-raw {request:?}: {err}");
        (state.trim().to_string(), std::fs::read(&out).unwrap())
    };
    // Splits a byte stream into responses: (status line, lower-cased headers, body). The
    // answer to a HEAD has a Content-Length and no body, so the caller says which are HEADs.
    type Parsed = (String, Vec<(String, String)>, Vec<u8>);
    fn responses(mut bytes: &[u8], heads: &[bool]) -> Vec<Parsed> {
        let mut all = Vec::new();
        while !bytes.is_empty() {
            let end = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a complete head");
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().to_string();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (k, v) = l.split_once(": ").unwrap();
                    (k.to_ascii_lowercase(), v.to_string())
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let len = if heads.get(all.len()) == Some(&true) {
                0
            } else {
                len
            };
            let body = &bytes[end + 4..];
            assert!(body.len() >= len, "a body shorter than its content-length");
            all.push((status, headers, body[..len].to_vec()));
            bytes = &body[len..];
        }
        all
    }
    fn header(h: &[(String, String)], k: &str) -> Option<String> {
        h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    // Three pipelined requests on one connection: a range, a HEAD and the whole file; the
    // last says close, and the server closes after answering it.
    let (state, bytes) = raw(
        "GET /big.bin HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=10-19\\r\\n\\r\\n\
         HEAD /vmlinuz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\
         GET /big.bin HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n",
    );
    assert_eq!(state, "closed");
    let r = responses(&bytes, &[false, true, false]);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].0, "HTTP/1.1 206 Partial Content");
    assert_eq!(
        header(&r[0].1, "content-range"),
        Some(format!("bytes 10-19/{}", big.len()))
    );
    assert_eq!(r[0].2, big[10..20]);
    assert_eq!(r[1].0, "HTTP/1.1 200 OK");
    assert_eq!(header(&r[1].1, "content-length").as_deref(), Some("300000"));
    assert_eq!(header(&r[1].1, "connection").as_deref(), Some("keep-alive"));
    assert_eq!(r[2].0, "HTTP/1.1 200 OK");
    assert_eq!(header(&r[2].1, "connection").as_deref(), Some("close"));
    assert!(r[2].2 == big, "the whole file, byte for byte");

    // HTTP/1.0 without keep-alive: one answer, then the server closes.
    let (state, bytes) = raw("GET /sub/initrd.gz HTTP/1.0\\r\\n\\r\\n");
    assert_eq!(state, "closed");
    let r = responses(&bytes, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].2, big[..5_000]);

    // A body on a read-only server: refused, and the connection closed.
    let (state, bytes) =
        raw("PUT /big.bin HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n\\r\\nhello");
    assert_eq!(state, "closed");
    let r = responses(&bytes, &[]);
    assert_eq!(r[0].0, "HTTP/1.1 405 Method Not Allowed");

    // Garbage, and a head longer than 16 KiB: an error status, then close.
    let (state, bytes) = raw("\\x01\\x02 not http\\r\\n\\r\\n");
    assert_eq!(state, "closed");
    assert!(
        bytes.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let long = format!(
        "GET /big.bin HTTP/1.1\\r\\nX-Pad: {}\\r\\n\\r\\n",
        "a".repeat(20_000)
    );
    let (state, bytes) = raw(&long);
    assert_eq!(state, "closed");
    assert!(
        bytes.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );

    // And the server still serves.
    let (state, bytes) =
        raw("GET /ipxe/de:00:00:00:00:de HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n");
    assert_eq!(state, "closed");
    let r = responses(&bytes, &[]);
    assert!(r[0].2.starts_with(b"#!ipxe\n"));
}

#[test]
fn sigterm_and_sigint_stop_everything_within_two_seconds() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let (boot, _) = boot_dir(&lab);
    let cfg = lab_config(&lab, &boot);
    let c = lab.client("de:00:00:00:00:01", Some("10.123.0.50/24"));
    for signal in ["TERM", "INT"] {
        let mut pxed = Pxed::start(&lab, &cfg);
        // A transfer that would never finish on its own must not hold the shutdown.
        let mut stall = c
            .cmd("python3")
            .args([&probe(), "tftp-stall", SERVER_IP, "big.bin", "10"])
            .spawn()
            .unwrap();
        pxed.wait_for_log(
            |l| l.contains("tftp transfer started"),
            Duration::from_secs(5),
            "stalled transfer",
        );
        let (took, status) = if signal == "TERM" {
            pxed.stop()
        } else {
            pxed.stop_with("-INT")
        };
        let _ = stall.kill();
        let _ = stall.wait();
        assert!(status.success(), "SIG{signal}: exit status {status}");
        assert!(took < Duration::from_secs(2), "SIG{signal}: took {took:?}");
        assert!(pxed.log().contains("stopped"));
    }
    // The ports were freed: a new instance binds them all again.
    let _again = Pxed::start(&lab, &cfg);
}

#[test]
fn check_validates_and_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        config(
            &dir.path().join("boot"),
            &dir.path().join("state"),
            "[profiles.a]\naction = \"local\"\n[hosts.\"de:00:00:00:00:de\"]\nprofile = \"a\"\n",
        ),
    )
    .unwrap();
    let out = pxed_check(&good);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("pool 10.123.0.100-10.123.0.200 (101 addresses)"),
        "{text}"
    );
    assert!(text.contains("profiles (1):\n  a (local)"), "{text}");
    assert!(
        text.contains("hosts (1):\n  de:00:00:00:00:de -> a"),
        "{text}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        config(
            &dir.path().join("boot"),
            &dir.path().join("state"),
            "[hosts.\"de:00:00:00:00:de\"]\nprofile = \"nope\"\n",
        ),
    )
    .unwrap();
    let out = pxed_check(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{}:17:1: key `hosts.\"de:00:00:00:00:de\".profile`: no profile named `nope`",
            bad.display()
        )),
        "{err}"
    );
    // `serve` refuses the same file before binding anything.
    let out = Command::new(pxed_bin())
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn help_describes_every_subcommand_and_flag() {
    let out = Command::new(pxed_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "check", "DHCP", "TFTP", "HTTP"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = Command::new(pxed_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--config", "PXED_CONFIG", "--log-format", "json"] {
        assert!(text.contains(word), "serve --help lacks {word}: {text}");
    }
}

//! The signed chains, booted by real firmware under TCG from the real pxed on a bridge br1
//! in a throwaway namespace:
//! - OVMF with Secure Boot enforced (Microsoft's keys) → Debian's signed shim → signed GRUB →
//!   Debian's signed kernel, which must say `Secure boot enabled`;
//! - the same firmware, mapped to `action = "local"`, falling through to its (signed) disk;
//! - arm64 AAVMF → signed GRUB → arm64 kernel.
//!
//! Each VM test asserts what the VM printed on its console and what pxed served.
//! Boot payload: boot-images/out (built by tests/run), or $PXED_BOOT_DIR.
//!
//! UEFI HTTP Boot, which no firmware build here offers, and the GRUB configs on the wire are
//! tested with a scripted client (tests/tools/firmware_dhcp.py) that sends what the firmware
//! sends, then with curl over HTTP and TFTP.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::vm::*;
use common::*;

#[test]
fn secure_boot_vm_boots_shim_grub_and_the_signed_kernel_of_its_profile() {
    let (_g, boot_dir) = setup_signed(Firmware::SecureBoot);
    let mut lab = Lab::new();
    let mut pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.installer]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=secure-boot host={{ hostname }} arch={{ arch }}"

[profiles.other]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=WRONG-PROFILE"

[hosts."de:00:00:00:00:5b"]
profile = "installer"
hostname = "vm-sb"
secure_boot = true

[hosts."de:00:00:00:00:01"]
profile = "other"
secure_boot = true
"#,
        ),
    );
    let (line, log) = boot_to_kernel(
        &mut lab,
        &mut pxed,
        Firmware::SecureBoot,
        "de:00:00:00:00:5b",
    );
    let console = std::fs::read_dir(lab.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-console.log"))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .collect::<String>();
    assert!(
        console.contains("Secure boot enabled"),
        "the kernel did not run under Secure Boot:\n{console}"
    );
    assert!(
        line.contains("pxed.test=secure-boot host=vm-sb arch=efi-x64"),
        "{line}"
    );
    assert!(
        !line.contains("WRONG-PROFILE") && !line.contains("initrd="),
        "{line}"
    );
    // The chain, in order: DHCP (PXE, arch 7) -> TFTP shim -> TFTP GRUB -> the machine's GRUB
    // config (by its leased address) -> kernel and initrd over TFTP (Debian's signed GRUB
    // has no HTTP).
    in_order(
        &log,
        &[
            "kind=Pxe arch=efi-x64 user_class=\"\" file=shimx64.efi",
            "file=shimx64.efi bytes=",
            "file=grubx64.efi bytes=",
            "grub config served mac=de:00:00:00:00:5b profile=\"installer\"",
            "file=/vmlinuz bytes=",
            "file=/initrd.gz bytes=",
        ],
    );
    // The timeline and the metrics count it like any other boot.
    let events = admin_get(&lab, "/api/v1/machines/de:00:00:00:00:5b/events");
    assert!(events.contains("\"loader\":\"grub\""), "{events}");
    assert!(events.contains("\"profile\":\"installer\""), "{events}");
    let metrics = admin_get(&lab, "/metrics");
    assert!(
        metrics.contains("pxed_boots_total{stage=\"completed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn secure_boot_host_mapped_to_local_reaches_its_disk() {
    let (_g, boot_dir) = setup_signed(Firmware::SecureBoot);
    let disk = secure_boot_disk();
    let mut lab = Lab::new();
    // The disk is written by nobody (GRUB only reads it), but each VM gets its own copy.
    let own_disk = lab.path("esp.img");
    std::fs::copy(&disk, &own_disk).unwrap();
    let pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.installer]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1"

[profiles.disk]
action = "local"

[hosts."de:00:00:00:00:5c"]
profile = "disk"
secure_boot = true
"#,
        ),
    );
    let b = boot(
        &mut lab,
        Firmware::SecureBoot,
        "de:00:00:00:00:5c",
        Some(&own_disk),
        &[KERNEL_MARKER, DISK_MARKER],
        Duration::from_secs(300),
    );
    println!("Secure Boot VM to disk: {:.1} s", b.took.as_secs_f64());
    assert!(!b.console.contains(KERNEL_MARKER), "{}", b.console);
    assert!(
        b.console.contains(DISK_MARKER),
        "the VM did not reach its disk; console:\n{}\npxed:\n{}",
        b.console,
        pxed.log()
    );
    let log = pxed.log();
    in_order(
        &log,
        &[
            "file=grubx64.efi bytes=",
            "grub config served mac=de:00:00:00:00:5c profile=\"disk\" kind=\"local\"",
        ],
    );
    assert!(!log.contains("file=/vmlinuz"), "{log}");
}

#[test]
fn arm64_vm_boots_grub_then_the_arm64_kernel_of_its_profile() {
    let (_g, boot_dir) = setup_signed(Firmware::Arm64);
    let mut lab = Lab::new();
    let mut pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.arm]
kernel = "arm64/vmlinuz"
initrd = ["arm64/initrd.gz"]
cmdline = "console=ttyAMA0 panic=1 pxed.test=arm64-profile host={{ hostname }} arch={{ arch }}"

[hosts."de:00:00:00:00:a6"]
profile = "arm"
hostname = "vm-arm"
"#,
        ),
    );
    let (line, log) = boot_to_kernel(&mut lab, &mut pxed, Firmware::Arm64, "de:00:00:00:00:a6");
    assert!(
        line.contains("pxed.test=arm64-profile host=vm-arm arch=efi-arm64"),
        "{line}"
    );
    in_order(
        &log,
        &[
            "kind=Pxe arch=efi-arm64 user_class=\"\" file=grubaa64.efi",
            "file=grubaa64.efi bytes=",
            "grub config served mac=de:00:00:00:00:a6 profile=\"arm\"",
            "file=/arm64/vmlinuz bytes=",
        ],
    );
}

/// DHCP as firmware of `kind` does it, from a new client namespace with `mac`; returns the
/// namespace (now holding the leased address) and the `ACK ...` line.
fn firmware_lease(lab: &mut Lab, mac: &str, kind: &str) -> (Netns, String) {
    let c = lab.client(mac, None);
    let (ok, out, err) = run_limited(
        c.cmd("python3")
            .args([&tool("firmware_dhcp.py"), "vc", mac, kind]),
        Duration::from_secs(20),
    );
    assert!(ok, "{kind} DHCP for {mac} failed: {out}{err}");
    let ack = out
        .lines()
        .find(|l| l.starts_with("ACK "))
        .unwrap()
        .to_string();
    let ip = field(&ack, "ip");
    c.ip(&["addr", "add", &format!("{ip}/24"), "dev", "vc"]);
    (c, ack)
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .to_string()
}

/// A boot dir of distinct generated first stages, so that each fetch proves which file came.
fn fake_boot_dir(lab: &Lab) -> PathBuf {
    let boot = lab.path("boot");
    std::fs::create_dir_all(&boot).unwrap();
    for (i, f) in [
        "ipxe.efi",
        "undionly.kpxe",
        "shimx64.efi",
        "grubx64.efi",
        "grubaa64.efi",
        "vmlinuz",
        "initrd.gz",
    ]
    .iter()
    .enumerate()
    {
        let body: Vec<u8> = (0..20_000 + i * 1000)
            .map(|n| (n * (i + 3)) as u8)
            .collect();
        std::fs::write(boot.join(f), body).unwrap();
    }
    std::fs::create_dir_all(boot.join("grub")).unwrap();
    std::fs::write(boot.join("grub/grub.cfg"), "STATIC\n").unwrap();
    std::fs::write(boot.join("grub/fonts.txt"), "fonts from boot_dir\n").unwrap();
    boot
}

const WIRE_PROFILES: &str = r#"[profiles.installer]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 pxed.test=installer host={{ hostname }}"

[profiles.rescue]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 pxed.test=rescue"

[profiles.custom]
script = "custom.ipxe"

[profiles.disk]
action = "local"

[hosts."de:00:00:00:00:01"]
profile = "installer"

[hosts."de:00:00:00:00:5b"]
profile = "installer"
hostname = "vm-sb"
secure_boot = true

[hosts."de:00:00:00:00:a6"]
profile = "installer"
"#;

fn fetch(c: &Netns, url: &str) -> (bool, Vec<u8>) {
    let out = c.cmd("curl").args(["-sS", "-f", url]).output().unwrap();
    (out.status.success(), out.stdout)
}

#[test]
fn http_boot_clients_get_option_60_and_a_url_to_a_first_stage_that_can_go_on() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = fake_boot_dir(&lab);
    let _pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), WIRE_PROFILES));
    let (c, ack) = firmware_lease(&mut lab, "de:00:00:00:00:01", "http-x64");
    assert_eq!(field(&ack, "vendor"), "HTTPClient", "{ack}");
    let url = field(&ack, "file");
    assert_eq!(url, format!("http://{SERVER_IP}:8080/ipxe.efi"), "{ack}");
    let (ok, got) = fetch(&c, &url);
    assert!(ok, "GET {url} failed");
    assert_eq!(got, std::fs::read(boot.join("ipxe.efi")).unwrap(), "{url}");
    // The signed GRUB reads its config over TFTP only, so HTTP Boot of a Secure Boot host, or
    // of arm64 (GRUB), gets an address and no boot file: the firmware moves on to PXE.
    for (mac, kind) in [
        ("de:00:00:00:00:5b", "http-x64"),
        ("de:00:00:00:00:a6", "http-arm64"),
    ] {
        let (_, ack) = firmware_lease(&mut lab, mac, kind);
        assert_eq!(field(&ack, "file"), "", "{ack}");
        assert_eq!(field(&ack, "vendor"), "", "{ack}");
    }
    // The arm64 machine's PXE gets GRUB.
    let (_, ack) = firmware_lease(&mut lab, "de:00:00:00:00:a6", "pxe-arm64");
    assert_eq!(field(&ack, "file"), "grubaa64.efi", "{ack}");
    // The same Secure Boot host booting by PXE gets the shim over TFTP.
    let (c, ack) = firmware_lease(&mut lab, "de:00:00:00:00:5b", "pxe-x64");
    assert_eq!(field(&ack, "file"), "shimx64.efi", "{ack}");
    assert_eq!(field(&ack, "vendor"), "PXEClient", "{ack}");
    let (ok, got) = fetch(&c, &format!("tftp://{SERVER_IP}/shimx64.efi"));
    assert!(ok);
    assert_eq!(got, std::fs::read(boot.join("shimx64.efi")).unwrap());
}

#[test]
fn grub_configs_follow_the_lease_the_mac_and_the_next_boot() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = fake_boot_dir(&lab);
    let pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), WIRE_PROFILES));
    let (owner, _) = firmware_lease(&mut lab, "de:00:00:00:00:5b", "pxe-x64");
    let tftp = |c: &Netns, name: &str| fetch(c, &format!("tftp://{SERVER_IP}/{name}"));
    let text = |c: &Netns, name: &str| {
        let (ok, body) = tftp(c, name);
        assert!(ok, "TFTP {name} failed:\n{}", pxed.log());
        String::from_utf8(body).unwrap()
    };

    // By address: the lease names the machine.
    let cfg = text(&owner, "grub/grub.cfg");
    assert!(
        cfg.contains("linux '(tftp,10.123.0.1)/vmlinuz' 'console=ttyS0' 'pxed.test=installer' 'host=vm-sb'\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains("initrd '(tftp,10.123.0.1)/initrd.gz'\nboot\n"),
        "{cfg}"
    );
    // By MAC, as GRUB's net_search_cfg and pxed's own fallback ask: the same config.
    assert_eq!(text(&owner, "grub/grub.cfg-01-de-00-00-00-00-5b"), cfg);
    // GRUB's search by address prefix finds nothing, quickly.
    assert!(!tftp(&owner, "grub/grub.cfg-0A7B00").0);
    // pxed owns those names: a grub.cfg in boot_dir is not served, but the rest of
    // boot_dir/grub/ is (README, "What is served").
    assert!(!cfg.contains("STATIC"), "{cfg}");
    assert_eq!(text(&owner, "grub/fonts.txt"), "fonts from boot_dir\n");

    // A neighbour with a static address: grub.cfg asks again by the MAC GRUB booted from,
    // and the leased machine's own config is not served to it.
    let stranger = lab.client("de:00:00:00:00:77", Some("10.123.0.50/24"));
    let cfg = text(&stranger, "grub/grub.cfg");
    assert!(
        cfg.contains("configfile \"$prefix/grub.cfg-01-$net_default_mac\""),
        "{cfg}"
    );
    assert!(!cfg.contains("\nlinux "), "{cfg}");
    assert!(!tftp(&stranger, "grub/grub.cfg-01-de-00-00-00-00-5b").0);
    // A MAC without a lease is served by MAC to anyone (proxy mode, static addresses), and
    // that does not make the address the machine's: grub.cfg names machines by leases only.
    let cfg = text(&stranger, "grub/grub.cfg-01-de:00:00:00:00:a6");
    assert!(cfg.contains("'pxed.test=installer'"), "{cfg}");
    assert!(text(&stranger, "grub/grub.cfg").contains("configfile"));

    // Next-boot: once the rescue profile, then the host's own again.
    let admin = |method: &str, path: &str, body: &str| {
        let (ok, out, err) = run_limited(
            lab.server.cmd("curl").args([
                "-sS",
                "-X",
                method,
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                &format!("http://127.0.0.1:9091{path}"),
            ]),
            Duration::from_secs(10),
        );
        assert!(ok, "{method} {path}: {err}");
        out
    };
    let out = admin(
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:5b/next-boot",
        r#"{"profile": "rescue"}"#,
    );
    assert!(
        out.contains("\"next_boot\":{\"profile\":\"rescue\"}"),
        "{out}"
    );
    // An iPXE script cannot be a Secure Boot host's next boot.
    let out = admin(
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:5b/next-boot",
        r#"{"profile": "custom"}"#,
    );
    assert!(out.contains("cannot run under GRUB"), "{out}");
    // A transfer that never completes (the client aborts after the only DATA block, as a
    // forged request's source never ACKs) does not spend it.
    let (ok, out, err) = run_limited(
        owner.cmd("python3").args([
            &tool("probe.py"),
            "tftp-abort",
            SERVER_IP,
            "grub/grub.cfg",
            "data",
        ]),
        Duration::from_secs(20),
    );
    assert!(ok, "{out}{err}");
    let out = admin("GET", "/api/v1/hosts/de:00:00:00:00:5b/next-boot", "");
    assert!(
        out.contains("\"profile\":\"rescue\""),
        "spent by an aborted transfer: {out}"
    );
    assert!(text(&owner, "grub/grub.cfg").contains("'pxed.test=rescue'"));
    assert!(text(&owner, "grub/grub.cfg").contains("'pxed.test=installer'"));
    let log = pxed.log();
    assert!(
        log.contains("one-shot boot spent mac=de:00:00:00:00:5b profile=\"rescue\""),
        "{log}"
    );

    // A host's profile set to local over the admin API: GRUB hands the machine to its disk.
    let out = admin(
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:5b",
        r#"{"profile": "disk", "secure_boot": true}"#,
    );
    assert!(out.contains("\"secure_boot\":true"), "{out}");
    let cfg = text(&owner, "grub/grub.cfg");
    assert!(cfg.contains("chainloader ($root)$loader"), "{cfg}");
    // And a Secure Boot host cannot be given an iPXE script.
    let out = admin(
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:5b",
        r#"{"profile": "custom", "secure_boot": true}"#,
    );
    assert!(out.contains("cannot run under GRUB"), "{out}");
}

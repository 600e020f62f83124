//! QEMU VMs (TCG) network-booting from the real pxed on a bridge br1 in a throwaway
//! namespace. Each test asserts only what the VM printed on its serial console and what
//! pxed served. VMs run one at a time: under TCG each one needs a whole core.
//!
//! Boot payload: boot-images/out (built by tests/run), or $PXED_BOOT_DIR.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::vm::*;
use common::*;

#[test]
fn bios_vm_boots_the_kernel_of_its_profile() {
    let (_g, boot_dir) = setup();
    let mut lab = Lab::new();
    let mut pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=bios-profile host={{ hostname }} arch={{ arch }}"

[profiles.other]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=WRONG-PROFILE"

[hosts."de:00:00:00:00:de"]
profile = "fedora"
hostname = "vm-bios"

[hosts."de:00:00:00:00:01"]
profile = "other"
"#,
        ),
    );
    let (line, log) = boot_to_kernel(&mut lab, &mut pxed, Firmware::Bios, "de:00:00:00:00:de");
    assert!(
        line.contains("pxed.test=bios-profile host=vm-bios arch=bios"),
        "{line}"
    );
    assert!(line.contains("initrd=initrd.gz"), "{line}");
    assert!(!line.contains("WRONG-PROFILE"));
    assert!(
        log.contains("kind=Ipxe arch=bios user_class=\"iPXE\""),
        "{log}"
    );
}

#[test]
fn uefi_vm_boots_through_tftp_ipxe_efi_then_http() {
    let (_g, boot_dir) = setup();
    let mut lab = Lab::new();
    let mut pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.uefi]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=uefi-profile arch={{ arch }}"

[hosts."de:00:00:00:00:ef"]
profile = "uefi"
"#,
        ),
    );
    let (line, log) = boot_to_kernel(&mut lab, &mut pxed, Firmware::Uefi, "de:00:00:00:00:ef");
    assert!(
        line.contains("pxed.test=uefi-profile arch=efi-x64"),
        "{line}"
    );
    assert!(line.contains("initrd=initrd.gz"), "{line}");
    // The chain, in order: DHCP (PXE) -> TFTP ipxe.efi -> DHCP (iPXE) -> HTTP script -> kernel.
    in_order(
        &log,
        &[
            "kind=Pxe arch=efi-x64 user_class=\"\" file=ipxe.efi",
            "file=ipxe.efi bytes=",
            "kind=Ipxe arch=efi-x64 user_class=\"iPXE\"",
            "ipxe script served mac=de:00:00:00:00:ef",
            "path=/vmlinuz status=200",
        ],
    );
    assert!(log.contains("tftp transfer finished"), "{log}");
}

/// A BIOS VM with a network NIC (bootindex 1) and a marker disk (bootindex 2), as a KubeVirt
/// VM with `bootOrder: 1` and `2`. Fails unless it reaches the disk without loading a kernel.
fn boot_to_disk(hosts: &str, mac: &str) -> (Pxed, Lab) {
    let (_g, boot_dir) = setup();
    let mut lab = Lab::new();
    let disk = lab.path("disk.img");
    marker_disk(&disk);
    let profiles = "[profiles.installer]\nkernel = \"vmlinuz\"\ninitrd = [\"initrd.gz\"]\ncmdline = \"console=ttyS0 panic=1\"\n\n[profiles.disk]\naction = \"local\"\n\n";
    let pxed = Pxed::start(
        &lab,
        &vm_config(&lab, &boot_dir, &format!("{profiles}{hosts}")),
    );
    let until = [KERNEL_MARKER, DISK_MARKER];
    let b = boot(
        &mut lab,
        Firmware::Bios,
        mac,
        Some(&disk),
        &until,
        Duration::from_secs(300),
    );
    println!("BIOS VM {mac} to disk: {:.1} s", b.took.as_secs_f64());
    assert!(
        !b.console.contains(KERNEL_MARKER),
        "the kernel booted:\n{}",
        b.console
    );
    assert!(
        b.console.contains(DISK_MARKER),
        "the VM did not reach its disk; console:\n{}\npxed:\n{}",
        b.console,
        pxed.log()
    );
    (pxed, lab)
}

#[test]
fn local_profile_falls_through_to_the_disk() {
    let (mut pxed, _lab) = boot_to_disk(
        "[hosts.\"de:00:00:00:00:de\"]\nprofile = \"disk\"\n",
        "de:00:00:00:00:de",
    );
    let log = pxed.wait_for_log(
        |l| l.contains("kind=\"local\""),
        Duration::from_secs(5),
        "local script served",
    );
    assert!(
        log.contains("ipxe script served mac=de:00:00:00:00:de profile=\"disk\""),
        "{log}"
    );
    assert!(!log.contains("path=/vmlinuz"), "kernel was fetched:\n{log}");
}

#[test]
fn unknown_mac_is_not_booted() {
    let stranger = "52:54:00:de:ad:01";
    let (pxed, _lab) = boot_to_disk(
        "[hosts.\"de:00:00:00:00:de\"]\nprofile = \"installer\"\n",
        stranger,
    );
    let log = pxed.log();
    assert!(
        log.contains(&format!("mac={stranger}")) && log.contains("reason=\"unmanaged mac\""),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("dhcp reply sent") && l.contains(stranger)),
        "{log}"
    );
    assert!(!log.contains("http request"), "{log}");
}

/// proxyDHCP: dnsmasq, in its own namespace on br1, hands out addresses and nothing else;
/// pxed in `mode = "proxy"` adds the boot information. Both firmware kinds must boot.
#[test]
fn proxy_mode_boots_bios_and_uefi_next_to_an_address_only_dnsmasq() {
    let (_g, boot_dir) = setup();
    require(&["dnsmasq"]);
    let mut lab = Lab::new();
    let dns = lab.client("02:00:00:00:00:02", Some("10.123.0.2/24"));
    let leases = lab.path("dnsmasq.leases");
    let mut dnsmasq = dns
        .cmd("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--port=0",
            "--no-ping",
            "--interface=vc",
            "--bind-interfaces",
        ])
        .args([
            "--dhcp-range=10.123.0.150,10.123.0.199,255.255.255.0,1h",
            "--user=root",
        ])
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", lab.path("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let config = config(
        &boot_dir,
        &lab.path("state"),
        r#"[profiles.bios]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=proxy-bios"

[profiles.uefi]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=proxy-uefi"

[hosts."de:00:00:00:00:de"]
profile = "bios"

[hosts."de:00:00:00:00:ef"]
profile = "uefi"
"#,
    )
    .replace(
        "range = [\"10.123.0.100\", \"10.123.0.200\"]\n",
        "mode = \"proxy\"\n",
    );
    let mut pxed = Pxed::start(&lab, &config);
    let cases = [
        (Firmware::Bios, "de:00:00:00:00:de", "pxed.test=proxy-bios"),
        (Firmware::Uefi, "de:00:00:00:00:ef", "pxed.test=proxy-uefi"),
    ];
    for (fw, mac, want) in cases {
        let (line, log) = boot_to_kernel(&mut lab, &mut pxed, fw, mac);
        assert!(line.contains(want), "{fw:?}: {line}");
        // The address came from dnsmasq, the boot file from pxed.
        let offers: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("dhcp reply sent") && l.contains(mac))
            .collect();
        assert!(
            !offers.is_empty() && offers.iter().all(|l| l.contains("ip=0.0.0.0")),
            "{fw:?}: pxed offered an address:\n{log}"
        );
        let peer = log
            .lines()
            .find(|l| l.contains("path=/vmlinuz") && l.contains(mac))
            .and_then(|l| l.split("peer=10.123.0.").nth(1))
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<u8>().ok())
            .unwrap_or_else(|| panic!("{fw:?}: no kernel request from the VM:\n{log}"));
        assert!(
            (150..=199).contains(&peer),
            "{fw:?}: the VM's address 10.123.0.{peer} is not from dnsmasq's range"
        );
    }
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
}

/// A VM on another subnet (10.50.0.0/24, bridge br2 in a router namespace) boots through
/// isc-dhcp-relay: pxed picks the subnet from giaddr and answers the relay on port 67.
#[test]
fn vm_behind_isc_dhcp_relay_boots_its_profile() {
    let (_g, boot_dir) = setup();
    require(&["dhcrelay"]);
    let mut lab = Lab::new();
    // The router: one leg on br1 (10.123.0.254), one bridge br2 (10.50.0.1) for the VM.
    let router = lab.client("02:00:00:00:00:fe", Some("10.123.0.254/24"));
    router.ip(&["link", "add", "br2", "type", "bridge"]);
    router.ip(&["addr", "add", "10.50.0.1/24", "dev", "br2"]);
    router.ip(&["link", "set", "br2", "up"]);
    router.ip(&["tuntap", "add", "dev", "tap9", "mode", "tap"]);
    router.ip(&["link", "set", "tap9", "master", "br2", "up"]);
    router.sysctl("net.ipv4.ip_forward=1");
    lab.server
        .ip(&["route", "add", "10.50.0.0/24", "via", "10.123.0.254"]);
    let mut relay = router
        .cmd("dhcrelay")
        .args(["-4", "-d", "-id", "br2", "-iu", "vc", SERVER_IP])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(lab.path("dhcrelay.log")).unwrap())
        .spawn()
        .expect("dhcrelay");
    let config = config(
        &boot_dir,
        &lab.path("state"),
        r#"[profiles.rack2]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=relayed ip={{ ip }}"

[hosts."de:00:00:00:00:de"]
profile = "rack2"
"#,
    )
    .replace(
        "lease_time = \"1h\"\n",
        "lease_time = \"1h\"\n\n[[dhcp.subnets]]\nsubnet = \"10.50.0.0/24\"\nrange = [\"10.50.0.100\", \"10.50.0.150\"]\nrouter = \"10.50.0.1\"\n",
    );
    let mut pxed = Pxed::start(&lab, &config);
    let b = boot_at(
        &router,
        "tap9",
        lab.dir.path(),
        Firmware::Bios,
        "de:00:00:00:00:de",
        None,
        &[KERNEL_MARKER],
        Duration::from_secs(300),
    );
    let _ = relay.kill();
    let _ = relay.wait();
    let Some(line) = console_line(&b.console, KERNEL_MARKER) else {
        panic!(
            "no boot marker; console:\n{}\npxed:\n{}",
            b.console,
            pxed.log()
        );
    };
    println!("relayed BIOS VM boot time: {:.1} s", b.took.as_secs_f64());
    assert!(line.contains("pxed.test=relayed ip=10.50.0.100"), "{line}");
    let log = pxed.wait_for_log(
        |l| l.contains("path=/initrd.gz"),
        Duration::from_secs(5),
        "initrd served",
    );
    assert!(
        log.lines().any(|l| l.contains("reply=\"ack\"")
            && l.contains("ip=10.50.0.100")
            && l.contains("to=10.50.0.1:67")),
        "no ACK to the relay:\n{log}"
    );
    assert!(
        log.contains("peer=10.50.0.100:"),
        "kernel not fetched from the relayed VM:\n{log}"
    );
}

/// A host mapped to `local` gets a one-shot installer boot through the admin API: the first
/// boot runs the kernel, the second boot of the same VM goes to its disk.
#[test]
fn next_boot_boots_the_installer_once_then_the_disk() {
    let (_g, boot_dir) = setup();
    require(&["curl"]);
    let mut lab = Lab::new();
    let disk = lab.path("disk.img");
    marker_disk(&disk);
    let mut pxed = Pxed::start(
        &lab,
        &vm_config(
            &lab,
            &boot_dir,
            r#"[profiles.installer]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.test=one-shot-installer"

[profiles.disk]
action = "local"

[hosts."de:00:00:00:00:de"]
profile = "disk"
"#,
        ),
    );
    let (ok, out, err) = run_limited(
        lab.server.cmd("curl").args([
            "-fsS",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"profile": "installer"}"#,
            "http://127.0.0.1:9091/api/v1/hosts/de:00:00:00:00:de/next-boot",
        ]),
        Duration::from_secs(10),
    );
    assert!(ok, "{out}{err}");
    let until = [KERNEL_MARKER, DISK_MARKER];
    let first = boot(
        &mut lab,
        Firmware::Bios,
        "de:00:00:00:00:de",
        Some(&disk),
        &until,
        Duration::from_secs(300),
    );
    let line = console_line(&first.console, KERNEL_MARKER).unwrap_or_else(|| {
        panic!(
            "first boot did not run the installer:\n{}\n{}",
            first.console,
            pxed.log()
        )
    });
    assert!(line.contains("pxed.test=one-shot-installer"), "{line}");
    let second = boot(
        &mut lab,
        Firmware::Bios,
        "de:00:00:00:00:de",
        Some(&disk),
        &until,
        Duration::from_secs(300),
    );
    assert!(
        !second.console.contains(KERNEL_MARKER),
        "second boot ran the installer again:\n{}",
        second.console
    );
    assert!(
        second.console.contains(DISK_MARKER),
        "second boot did not reach the disk:\n{}",
        second.console
    );
    let log = pxed.wait_for_log(
        |l| l.contains("one-shot boot spent"),
        Duration::from_secs(5),
        "spent",
    );
    assert_eq!(log.matches("path=/vmlinuz").count(), 1, "{log}");
    println!(
        "one-shot: installer boot {:.1} s, then disk {:.1} s",
        first.took.as_secs_f64(),
        second.took.as_secs_f64()
    );
}

//! QEMU VMs (TCG) on a lab's bridge br1: BIOS (SeaBIOS with QEMU's iPXE NIC ROM) and UEFI
//! (OVMF's own PXE), serial console captured. VMs run one at a time: under TCG each needs a
//! whole core.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

pub static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

pub const KERNEL_MARKER: &str = "PXED-DEMO-BOOTED cmdline:";
pub const DISK_MARKER: &str = "PXED-DISK-BOOTED";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Firmware {
    /// SeaBIOS with QEMU's iPXE NIC ROM.
    Bios,
    /// OVMF with the NIC ROM disabled: OVMF's own PXE stack.
    Uefi,
    /// OVMF's Secure Boot build with Microsoft's keys enrolled and Secure Boot enforced
    /// (SMM, secure pflash), NIC ROM disabled: KubeVirt's default UEFI VM.
    SecureBoot,
    /// qemu-system-aarch64 `virt` with AAVMF (arm64 UEFI), NIC ROM disabled.
    Arm64,
}

/// A 1 MiB raw disk whose MBR prints DISK_MARKER on COM1 and exits QEMU through
/// isa-debug-exit: the "disk with bootOrder 2" a VM falls through to.
pub fn marker_disk(path: &Path) {
    let mut mbr = vec![
        0xFA, // cli
        0xFC, // cld
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0xBE, 0x1B, 0x7C, // mov si, 0x7c1b (the message)
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
        0xAC, // next: lodsb
        0x84, 0xC0, // test al, al
        0x74, 0x03, // jz done
        0xEE, // out dx, al
        0xEB, 0xF8, // jmp next
        0xB0, 0x00, // done: mov al, 0
        0xE6, 0xF4, // out 0xf4, al (isa-debug-exit)
        0xF4, // halt: hlt
        0xEB, 0xFD, // jmp halt
    ];
    assert_eq!(mbr.len(), 0x1B);
    mbr.extend(format!("\r\n{DISK_MARKER}\r\n\0").as_bytes());
    mbr.resize(510, 0);
    mbr.extend([0x55, 0xAA]);
    mbr.resize(1 << 20, 0);
    std::fs::write(path, mbr).unwrap();
}

pub struct Boot {
    pub console: String,
    pub took: Duration,
}

/// Boots a VM on a new tap of `lab`'s br1 until its console shows one of `until`, QEMU
/// exits, or `limit` passes.
pub fn boot(
    lab: &mut Lab,
    fw: Firmware,
    mac: &str,
    disk: Option<&Path>,
    until: &[&str],
    limit: Duration,
) -> Boot {
    let tap = lab.tap();
    boot_at(
        &lab.server,
        &tap,
        lab.dir.path(),
        fw,
        mac,
        disk,
        until,
        limit,
    )
}

/// Boots a VM on `tap` in namespace `ns`; its files go in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn boot_at(
    ns: &Netns,
    tap: &str,
    dir: &Path,
    fw: Firmware,
    mac: &str,
    disk: Option<&Path>,
    until: &[&str],
    limit: Duration,
) -> Boot {
    let console_path = dir.join(format!("{tap}-console.log"));
    let program = match fw {
        Firmware::Arm64 => "qemu-system-aarch64",
        _ => "qemu-system-x86_64",
    };
    let mut cmd = ns.cmd(program);
    cmd.args([
        "-accel",
        "tcg",
        "-m",
        if fw == Firmware::Bios { "512" } else { "1024" },
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
    ]);
    if fw != Firmware::Arm64 {
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    }
    cmd.args([
        "-netdev",
        &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
    ]);
    let pflash = |cmd: &mut std::process::Command, code: &str, vars_template: &str| {
        let vars = dir.join(format!("{tap}-vars.fd"));
        std::fs::copy(vars_template, &vars)
            .unwrap_or_else(|e| panic!("{vars_template} (firmware package): {e}"));
        cmd.args([
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={code}"),
        ]);
        cmd.args([
            "-drive",
            &format!("if=pflash,format=raw,file={}", vars.display()),
        ]);
    };
    match fw {
        Firmware::Bios => {
            cmd.args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1"),
            ]);
        }
        Firmware::Uefi | Firmware::SecureBoot | Firmware::Arm64 => {
            match fw {
                Firmware::Uefi => pflash(
                    &mut cmd,
                    "/usr/share/OVMF/OVMF_CODE_4M.fd",
                    "/usr/share/OVMF/OVMF_VARS_4M.fd",
                ),
                Firmware::SecureBoot => {
                    cmd.args([
                        "-machine",
                        "q35,smm=on",
                        "-global",
                        "driver=cfi.pflash01,property=secure,value=on",
                    ]);
                    pflash(
                        &mut cmd,
                        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
                    )
                }
                _ => {
                    cmd.args(["-machine", "virt", "-cpu", "cortex-a57"]);
                    pflash(
                        &mut cmd,
                        "/usr/share/AAVMF/AAVMF_CODE.fd",
                        "/usr/share/AAVMF/AAVMF_VARS.fd",
                    )
                }
            }
            cmd.args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={mac},romfile=,bootindex=1"),
            ]);
        }
    }
    if let Some(d) = disk {
        cmd.args([
            "-drive",
            &format!("file={},format=raw,if=none,id=d0", d.display()),
        ]);
        cmd.args(["-device", "virtio-blk-pci,drive=d0,bootindex=2"]);
    }
    let console = std::fs::File::create(&console_path).unwrap();
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text =
        || String::from_utf8_lossy(&std::fs::read(&console_path).unwrap_or_default()).into_owned();
    loop {
        let t = text();
        if until.iter().any(|m| t.contains(m))
            || child.try_wait().unwrap().is_some()
            || started.elapsed() > limit
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    // Give a just-written final console line time to land.
    Boot {
        console: text(),
        took,
    }
}

pub fn vm_config(lab: &Lab, boot_dir: &Path, rest: &str) -> String {
    config(boot_dir, &lab.path("state"), rest)
}

pub fn console_line<'a>(console: &'a str, marker: &str) -> Option<&'a str> {
    console
        .lines()
        .find(|l| l.contains(marker))
        .map(|l| l.trim())
}

/// Boots a VM that must reach its kernel; returns the console marker line and pxed's log
/// once the initrd was served.
pub fn boot_to_kernel(lab: &mut Lab, pxed: &mut Pxed, fw: Firmware, mac: &str) -> (String, String) {
    let b = boot(
        lab,
        fw,
        mac,
        None,
        &[KERNEL_MARKER],
        Duration::from_secs(300),
    );
    let Some(line) = console_line(&b.console, KERNEL_MARKER) else {
        panic!(
            "no boot marker; console:\n{}\npxed:\n{}",
            b.console,
            pxed.log()
        );
    };
    println!("{fw:?} VM boot time: {:.1} s", b.took.as_secs_f64());
    let log = pxed.wait_for_log(
        |l| {
            l.contains("initrd.gz")
                && (l.contains("http request") || l.contains("tftp transfer finished"))
        },
        Duration::from_secs(5),
        "initrd served",
    );
    (line.to_string(), log)
}

pub fn setup() -> (std::sync::MutexGuard<'static, ()>, PathBuf) {
    let guard = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require(&["ip", "qemu-system-x86_64"]);
    (guard, boot_fixture())
}

/// Like [`setup`], for the signed chains: also needs shim and the GRUBs in the boot dir
/// (boot-images/fetch-signed.sh) and, for arm64, its kernel and emulator.
pub fn setup_signed(fw: Firmware) -> (std::sync::MutexGuard<'static, ()>, PathBuf) {
    let (guard, dir) = setup();
    let mut files = vec!["shimx64.efi", "grubx64.efi", "grubaa64.efi"];
    if fw == Firmware::Arm64 {
        require(&["qemu-system-aarch64"]);
        files.extend([
            "arm64/vmlinuz",
            "arm64/initrd.gz",
            "/usr/share/AAVMF/AAVMF_CODE.fd",
        ]);
    } else {
        files.push("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd");
    }
    for f in files {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run boot-images/fetch-signed.sh and boot-images/build-demo.sh DIR arm64 (tests/run does), and install ovmf and qemu-efi-aarch64",
            dir.join(f).display()
        );
    }
    (guard, dir)
}

/// The FAT disk a Secure Boot VM falls through to: signed shim and GRUB that print
/// DISK_MARKER (built by `boot-images/fetch-signed.sh DIR target/fixtures/esp.img`).
pub fn secure_boot_disk() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/esp.img");
    assert!(
        p.is_file(),
        "{} is missing: run boot-images/fetch-signed.sh boot-images/out {} (tests/run does)",
        p.display(),
        p.display()
    );
    p
}

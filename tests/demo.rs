//! README's first command, as a new user runs it: `scripts/demo.sh` (BIOS) and
//! `scripts/demo.sh secureboot` (OVMF enforcing Secure Boot) each boot a VM from pxed in a
//! throwaway namespace and print its console line. The test asserts that line, and the
//! kernel's Secure Boot line, in what the script printed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::run_limited;

fn demo(firmware: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let (ok, out, err) = run_limited(
        Command::new("bash").arg(script).arg(firmware),
        Duration::from_secs(900),
    );
    assert!(ok, "scripts/demo.sh {firmware} failed:\n{out}\n{err}");
    out
}

/// The VM's console line, with the demo profile's cmdline, in what the demo printed.
fn booted(out: &str) {
    let line = out
        .lines()
        .find(|l| l.starts_with("PXED-DEMO-BOOTED cmdline:"))
        .unwrap_or_else(|| panic!("no console line:\n{out}"));
    assert!(
        line.contains("pxed.demo=hello-from-pxed pxed.host=demo-vm"),
        "{line}"
    );
}

#[test]
fn demo_boots_bios_and_secure_boot_vms_as_the_readme_says() {
    let _vm = common::vm::ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    common::require(&["ip", "qemu-system-x86_64", "cargo"]);
    let out = demo("bios");
    booted(&out);
    assert!(out.contains("ipxe script served"), "{out}");

    let out = demo("secureboot");
    assert!(out.contains("secureboot: Secure boot enabled"), "{out}");
    booted(&out);
    assert!(
        out.contains("file=shimx64.efi") && out.contains("grub config served"),
        "{out}"
    );
}

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
pub(crate) enum Asked {
    /// `grub/grub.cfg-01-aa-bb-cc-dd-ee-ff`: the config of that MAC.
    Mac(Mac),
    /// `grub/grub.cfg`: the config of the machine at the requesting address.
    ByAddress,
    /// `grub/grub.cfg-0A7B…`: GRUB's search by address prefix, which pxed never answers
    /// (`grub.cfg` answers by address).
    AddressPrefix,
}

/// Recognises the config names GRUB's network search asks for, with or without leading `/`.
pub(crate) fn asked(path: &str) -> Option<Asked> {
    let path = path.trim_start_matches('/');
    let name = path.strip_prefix("grub/")?;
    if name == "grub.cfg" {
        return Some(Asked::ByAddress);
    }
    let suffix = name.strip_prefix("grub.cfg-")?;
    if let Some(mac) = suffix.strip_prefix("01-") {
        // One separator throughout: `-` (net_search_cfg) or `:` ($net_default_mac).
        let mac = mac.parse::<Mac>().ok()?;
        return Some(Asked::Mac(mac));
    }
    (!suffix.is_empty() && suffix.len() <= 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(Asked::AddressPrefix)
}

/// Whether a profile can boot through GRUB; `Err` says why not. Debian's signed network
/// GRUB has no HTTP module (its `tftp` is the only network file system), so a kernel profile
/// must name files under `boot_dir`, which GRUB loads from pxed over TFTP.
pub(crate) fn supports(profile: &Profile) -> Result<(), &'static str> {
    match profile {
        Profile::Kernel { kernel, initrd, .. } => {
            if std::iter::once(kernel).chain(initrd).any(|p| is_url(p)) {
                return Err("Debian's signed GRUB loads files over TFTP only, so kernel and initrd must be paths under boot_dir, not URLs");
            }
            Ok(())
        }
        Profile::Local => Ok(()),
        Profile::Script { .. } => Err("an iPXE script cannot run under GRUB"),
        Profile::Chain { .. } => Err("an iPXE chain cannot run under GRUB"),
    }
}

/// Quotes one word for GRUB's shell: single quotes, inside which nothing is special.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Renders the GRUB config for `profile`. `device` is where files under `boot_dir` are
/// loaded from: `(tftp,ADDR)`, pxed's address as the machine reached it. Every way out that
/// is not the kernel (a `local` profile, a failed boot, a profile GRUB cannot run) boots the
/// local disk ([`local_disk`]).
pub(crate) fn render(
    name: &str,
    profile: &Profile,
    vars: &Vars<'_>,
    device: &str,
) -> Result<String, TemplateError> {
    let mac = vars.mac;
    let head = format!("# pxed: profile {name} for {mac}\nset timeout=0\n");
    if let Err(why) = supports(profile) {
        return Ok(head
            + &to_disk(&format!(
                "pxed: profile {name} cannot boot under GRUB: {why}; booting the local disk"
            )));
    }
    let Profile::Kernel {
        kernel,
        initrd,
        cmdline,
    } = profile
    else {
        return Ok(head + &to_disk(&format!("pxed: {mac} boots from its local disk")));
    };
    let at = |p: &str| quote(&format!("{device}/{}", p.trim_start_matches('/')));
    let cmdline = render_template(cmdline, vars)?;
    let mut s = format!(
        "{head}echo {}\nlinux {}",
        quote(&format!("pxed: booting profile {name} for {mac}")),
        at(kernel)
    );
    // ASCII whitespace only, as iPXE splits: both loaders pass the kernel the same words.
    for word in cmdline.split_ascii_whitespace() {
        s.push(' ');
        s.push_str(&quote(word));
    }
    s.push('\n');
    if !initrd.is_empty() {
        s.push_str("initrd");
        for i in initrd {
            s.push(' ');
            s.push_str(&at(i));
        }
        s.push('\n');
    }
    s.push_str("boot\n");
    s.push_str(&to_disk(&format!(
        "pxed: profile {name} failed to boot; booting the local disk"
    )));
    Ok(s)
}

/// Says `why` on the console, then boots the local disk ([`local_disk`]).
fn to_disk(why: &str) -> String {
    format!("echo {}\n{}", quote(why), local_disk())
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
/// The list is chosen by GRUB's own `$grub_cpu`, so it is right even when pxed has not seen
/// the machine's architecture.
pub(crate) fn local_disk() -> String {
    let search = |loaders: &[&str]| {
        format!(
            "  for loader in {}; do\n\
             \x20   if search --no-floppy --file --set=root $loader; then\n\
             \x20     echo \"pxed: chainloading ($root)$loader\"\n\
             \x20     chainloader ($root)$loader\n\
             \x20     boot\n\
             \x20   fi\n\
             \x20 done\n",
            loaders.join(" ")
        )
    };
    format!(
        "if [ \"$grub_cpu\" = arm64 ]; then\n{}else\n{}fi\n\
         echo 'pxed: no boot loader on a local disk; handing the machine back to its firmware'\n\
         sleep 5\n\
         exit 1\n",
        search(LOCAL_LOADERS_ARM64),
        search(LOCAL_LOADERS_X64)
    )
}

/// The config served at `grub/grub.cfg` to an address pxed cannot tie to a machine with a
/// profile (in proxy mode pxed leases no addresses): it asks again by the MAC GRUB booted
/// from, and if that names no machine either, boots the local disk.
pub(crate) fn unknown_machine() -> String {
    "# pxed: no machine known at this address; ask by this machine's MAC\n\
     set timeout=0\n\
     configfile \"$prefix/grub.cfg-01-$net_default_mac\"\n"
        .to_string()
        + &to_disk("pxed: no boot profile for this machine; booting the local disk")
}

/// The config for a machine whose profile cannot be rendered: it boots the local disk.
pub(crate) fn cannot_render(name: &str) -> String {
    format!("# pxed: profile {name} cannot be rendered\nset timeout=0\n")
        + &to_disk(&format!(
            "pxed: profile {name} cannot be rendered; booting the local disk"
        ))
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
        // Found by fuzzing: mixed separators and a sign are not MACs.
        assert_eq!(asked("/grub/grub.cfg-01-de-00:00-00-00-00"), None);
        assert_eq!(asked("grub/grub.cfg-01-+e-00-00-00-00-00"), None);
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
        let want = format!(
            "# pxed: profile sb for de:00:00:00:00:5b\n\
             set timeout=0\n\
             echo 'pxed: booting profile sb for de:00:00:00:00:5b'\n\
             linux '(tftp,10.123.0.1)/vmlinuz' 'console=ttyS0' 'host=vm-sb' 'arch=efi-x64' 'x='\\''y'\\'''\n\
             initrd '(tftp,10.123.0.1)/initrd.gz' '(tftp,10.123.0.1)/extra.img'\n\
             boot\n\
             echo 'pxed: profile sb failed to boot; booting the local disk'\n{}",
            local_disk()
        );
        assert_eq!(s, want);
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
        assert!(s.contains(" 'h=a%27b%3Bc%0A%24d'\nboot\n"), "{s}");
        assert!(!s.contains("\ninitrd"));
    }

    #[test]
    fn urls_are_refused_because_the_signed_grub_speaks_only_tftp() {
        for url in [
            "http://mirror.example/vmlinuz",
            "http://mirror.example:8080/vmlinuz",
            "https://mirror.example/vmlinuz",
        ] {
            let p = Profile::Kernel {
                kernel: url.into(),
                initrd: vec![],
                cmdline: String::new(),
            };
            assert!(supports(&p).is_err(), "{url}");
            let s = render("m", &p, &vars(), "(tftp,10.123.0.1)").unwrap();
            assert!(s.contains("cannot boot under GRUB"), "{s}");
            assert!(!s.contains("\nlinux "), "{s}");
            assert!(s.contains("chainloader ($root)$loader"), "{s}");
        }
    }

    #[test]
    fn local_and_every_failure_chainload_the_disk() {
        let disk = local_disk();
        assert!(
            disk.starts_with(
                "if [ \"$grub_cpu\" = arm64 ]; then\n  for loader in /EFI/BOOT/BOOTAA64.EFI "
            ),
            "{disk}"
        );
        assert!(
            disk.contains("else\n  for loader in /EFI/BOOT/BOOTX64.EFI /EFI/debian/shimx64.efi "),
            "{disk}"
        );
        assert!(
            disk.contains("      chainloader ($root)$loader\n      boot\n"),
            "{disk}"
        );
        assert!(disk.ends_with("exit 1\n"), "{disk}");
        let s = render("disk", &Profile::Local, &vars(), "(tftp,10.123.0.1)").unwrap();
        assert!(s.ends_with(&disk), "{s}");
        assert!(!s.contains("\nlinux "), "{s}");
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
                s.contains("cannot boot under GRUB") && s.ends_with(&disk),
                "{s}"
            );
        }
        let u = unknown_machine();
        assert!(
            u.contains("configfile \"$prefix/grub.cfg-01-$net_default_mac\"\n"),
            "{u}"
        );
        assert!(u.ends_with(&disk), "{u}");
        let c = cannot_render("p");
        assert!(c.ends_with(&disk) && !c.contains("configfile"), "{c}");
    }
}

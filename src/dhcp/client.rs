//! Who sent a request: the MAC, the lease key, and what kind of boot client it is, read from
//! the request's options. Also the one table of client architectures (option 93), which the
//! boot file choice, logs and `{{ arch }}` all read.

use dhcproto::v4::{DhcpOption, HType, Message, OptionCode};

use crate::leases::ClientId;
use crate::mac::Mac;

/// Client architectures (option 93, RFC 4578 and the IANA registry) that pxed boots.
pub(crate) mod arch {
    /// Legacy BIOS; also what an absent option 93 means.
    pub(crate) const BIOS: u16 = 0;
    /// 32-bit x86 UEFI.
    pub(crate) const EFI_IA32: u16 = 6;
    /// x86-64 UEFI.
    pub(crate) const EFI_X64: u16 = 7;
    /// EFI byte code: sent by some x86-64 firmware (OVMF among them) in place of 7.
    pub(crate) const EFI_BC: u16 = 9;
    /// 32-bit Arm UEFI.
    pub(crate) const EFI_ARM32: u16 = 10;
    /// arm64 UEFI.
    pub(crate) const EFI_ARM64: u16 = 11;
    /// UEFI HTTP Boot, 32-bit x86.
    pub(crate) const HTTP_IA32: u16 = 15;
    /// UEFI HTTP Boot, x86-64; also what an HTTP Boot client without option 93 gets.
    pub(crate) const HTTP_X64: u16 = 16;
    /// UEFI HTTP Boot, 32-bit Arm.
    pub(crate) const HTTP_ARM32: u16 = 18;
    /// UEFI HTTP Boot, arm64.
    pub(crate) const HTTP_ARM64: u16 = 19;

    /// The name logs, timelines and `{{ arch }}` use.
    pub(crate) fn name(code: u16) -> String {
        match code {
            BIOS => "bios".into(),
            EFI_IA32 => "efi-ia32".into(),
            EFI_X64 | EFI_BC => "efi-x64".into(),
            EFI_ARM32 => "efi-arm32".into(),
            EFI_ARM64 => "efi-arm64".into(),
            HTTP_IA32 => "http-efi-ia32".into(),
            HTTP_X64 => "http-efi-x64".into(),
            HTTP_ARM32 => "http-efi-arm32".into(),
            HTTP_ARM64 => "http-efi-arm64".into(),
            n => format!("arch-{n}"),
        }
    }
}

/// What kind of client sent a request, which decides the boot file it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// iPXE (user class `iPXE` or option 175): gets its per-MAC script URL.
    Ipxe,
    /// A firmware PXE client (vendor class `PXEClient`): gets a first stage over TFTP.
    Pxe,
    /// A UEFI HTTP boot client (vendor class `HTTPClient`): gets a first stage URL.
    HttpBoot,
    /// Anything else (an installed OS, udhcpc): gets an address and no boot file.
    Plain,
}

/// What pxed learned about a client from one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub mac: Mac,
    /// The lease key: option 61 when sent, else derived from the MAC.
    pub id: ClientId,
    /// Which boot file it gets.
    pub kind: ClientKind,
    /// Option 93, if sent.
    pub arch: Option<u16>,
    /// Option 77 as text, if sent.
    pub user_class: Option<String>,
}

impl Client {
    /// The architecture's name; `bios` when option 93 was absent.
    pub(crate) fn arch_name(&self) -> String {
        arch::name(self.arch.unwrap_or(arch::BIOS))
    }
}

/// Reads a request's sender from its options; `None` for anything but a 6-byte Ethernet
/// hardware address, which is all pxed can match to `[hosts]`.
pub(crate) fn classify(msg: &Message) -> Option<Client> {
    if msg.htype() != HType::Eth || msg.hlen() != 6 {
        return None;
    }
    let mac = Mac::from_chaddr(msg.chaddr())?;
    let opts = msg.opts();
    let user_class = match opts.get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(v)) => Some(String::from_utf8_lossy(v).into_owned()),
        _ => None,
    };
    let vendor = match opts.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => v.as_slice(),
        _ => &[],
    };
    let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(u16::from(*a)),
        _ => None,
    };
    let ipxe_option = opts.get(OptionCode::Unknown(175)).is_some();
    // iPXE's user class is the RFC 3004 list form ("\x04iPXE") or the bare string.
    let ipxe_class = user_class
        .as_deref()
        .is_some_and(|u| u == "iPXE" || u.ends_with("iPXE"));
    let kind = if ipxe_class || ipxe_option {
        ClientKind::Ipxe
    } else if vendor.starts_with(b"PXEClient") {
        ClientKind::Pxe
    } else if vendor.starts_with(b"HTTPClient") {
        ClientKind::HttpBoot
    } else {
        ClientKind::Plain
    };
    let id = match opts.get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(v)) if !v.is_empty() => ClientId(v.clone()),
        _ => ClientId::from_mac(mac),
    };
    Some(Client {
        mac,
        id,
        kind,
        arch,
        user_class,
    })
}

#[cfg(test)]
mod tests {
    use super::arch::name as arch_name;

    #[test]
    fn arch_names() {
        assert_eq!(arch_name(0), "bios");
        assert_eq!(arch_name(7), "efi-x64");
        assert_eq!(arch_name(9), "efi-x64");
        assert_eq!(arch_name(11), "efi-arm64");
        assert_eq!(arch_name(16), "http-efi-x64");
        assert_eq!(arch_name(42), "arch-42");
    }
}

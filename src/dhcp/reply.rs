//! The one DHCP reply builder, shared by address mode ([`super::decide`]) and proxy mode
//! ([`super::proxy`]): what a decision is, why there is no reply, the reply header, the boot
//! options and where a reply goes. Pure.

use std::net::{Ipv4Addr, SocketAddr};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};

use super::client::{arch, Client, ClientKind};
use crate::config::Config;
use crate::mac::Mac;
use crate::metrics::Refusal;

/// BOOTP's minimum message size (RFC 1542 §2.1); some PXE ROMs drop shorter replies.
pub(crate) const MIN_REPLY_LEN: usize = 300;

/// Option 43 for PXE clients: sub-option 6 (PXE_DISCOVERY_CONTROL), length 1, value 8
/// ("download the boot file named in the reply"), then end. Without it, PXE firmware such
/// as OVMF goes on to boot-server discovery on port 4011.
pub(crate) const PXE_VENDOR_OPTIONS: [u8; 4] = [6, 1, 8, 255];

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// To the relay agent at giaddr, port 67.
    Relay(Ipv4Addr),
    /// To the client's configured address (ciaddr), port 68.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255 port 68, on the interface the request came in on.
    Broadcast,
    /// To yiaddr and chaddr, port 68, although the client has no address yet: needs an ARP
    /// entry, or falls back to broadcast.
    Hardware(Ipv4Addr, Mac),
    /// Back to the address and port a request came from (proxyDHCP on port 4011).
    Peer(SocketAddr),
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// The message, not yet encoded: the shell fits it to the client's maximum size.
    pub msg: Box<Message>,
    pub to: Destination,
    /// The client, for logs and timelines.
    pub client: Client,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Send a reply.
    Reply(Reply),
    /// Send nothing.
    NoReply {
        reason: Reason,
        /// The client, when the request named one: its timeline records the reason.
        client: Option<Client>,
    },
}

impl Decision {
    /// Sends `msg` to `to`.
    pub(crate) fn reply(msg: Message, to: Destination, client: Client) -> Self {
        Decision::Reply(Reply {
            msg: Box::new(msg),
            to,
            client,
        })
    }

    /// The client the request named, if any.
    pub(crate) fn client(&self) -> Option<&Client> {
        match self {
            Decision::Reply(r) => Some(&r.client),
            Decision::NoReply { client, .. } => client.as_ref(),
        }
    }
}

/// Sends nothing, for `reason`.
pub(crate) fn no_reply(reason: Reason, client: Option<Client>) -> Decision {
    Decision::NoReply { reason, client }
}

/// Why a request gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// BOOTREPLY or a bad opcode: only servers send those.
    NotBootRequest,
    /// No 6-byte Ethernet hardware address to match `[hosts]` by.
    NotEthernet,
    /// No option 53.
    NoMessageType,
    /// Neither in `[hosts]` nor covered by `[defaults]`: on a shared VLAN pxed must not
    /// hijack machines it does not manage.
    UnmanagedMac,
    /// `giaddr` is not inside any served subnet: replying would reflect to any address.
    GiaddrOutside,
    /// The relay names a subnet pxed does not serve.
    UnservedSubnet,
    /// The interface the request came in on has no subnet.
    NoSubnet,
    /// `ciaddr` is not inside the client's subnet: replying would reflect to any address.
    CiaddrOutside,
    /// A new client outside `[hosts]` beyond `[dhcp] unknown_client_rate`.
    RateLimited,
    /// No free address in the pool.
    PoolExhausted,
    /// A REQUEST selecting another server's offer (ours is forgotten).
    OtherServer,
    /// INIT-REBOOT from a client pxed has no record of: RFC 2131 §4.3.2 says stay silent.
    InitRebootWithoutLease,
    /// A REQUEST with neither a server id, ciaddr nor a requested address.
    RequestWithoutAddress,
    /// A RELEASE: the lease is freed, and RELEASE has no reply.
    Released,
    /// A DECLINE: the address is set aside, and DECLINE has no reply.
    Declined,
    /// An INFORM with nowhere to send the answer.
    InformWithoutCiaddr,
    /// A message type only servers send.
    NotClientMessage,
    /// Proxy mode answers PXE, HTTP Boot and iPXE clients only.
    NotPxeClient,
    /// Proxy mode, port 67: the address server answers everything but DISCOVER.
    AddressServerAnswers,
    /// Proxy mode, port 4011: only REQUEST and INFORM are asked there.
    NotARequest,
    /// Proxy mode: nothing to boot for this architecture.
    NoBootFile,
    /// A port-4011 request from a source no PXE client would use.
    ImplausibleProxySource,
}

impl Reason {
    /// A constant lowercase phrase for logs and timelines.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::NotBootRequest => "not a boot request",
            Reason::NotEthernet => "not an ethernet client",
            Reason::NoMessageType => "no message type",
            Reason::UnmanagedMac => "unmanaged mac",
            Reason::GiaddrOutside => "giaddr outside every served subnet",
            Reason::UnservedSubnet => "relay from an unserved subnet",
            Reason::NoSubnet => "no subnet on this interface",
            Reason::CiaddrOutside => "ciaddr outside the client's subnet",
            Reason::RateLimited => "unknown client rate limit",
            Reason::PoolExhausted => "pool exhausted",
            Reason::OtherServer => "client chose another server",
            Reason::InitRebootWithoutLease => "init-reboot from a client without a lease",
            Reason::RequestWithoutAddress => "request without an address",
            Reason::Released => "released",
            Reason::Declined => "declined",
            Reason::InformWithoutCiaddr => "inform without ciaddr",
            Reason::NotClientMessage => "not a client message",
            Reason::NotPxeClient => "not a pxe client",
            Reason::AddressServerAnswers => "proxy mode: the address server answers this",
            Reason::NotARequest => "not a request",
            Reason::NoBootFile => "no boot file for this architecture",
            Reason::ImplausibleProxySource => "implausible proxy request source",
        }
    }

    /// The refusal a policy on the hostile boot network counts this as, if it is one.
    pub(crate) fn refusal(self) -> Option<Refusal> {
        match self {
            Reason::GiaddrOutside | Reason::CiaddrOutside => Some(Refusal::DhcpBadAddress),
            Reason::RateLimited => Some(Refusal::DhcpRateLimited),
            Reason::ImplausibleProxySource => Some(Refusal::DhcpProxyImplausible),
            _ => None,
        }
    }

    /// Whether the message was handled in full (a RELEASE or DECLINE, which have no reply)
    /// rather than ignored.
    pub(crate) fn handled(self) -> bool {
        matches!(self, Reason::Released | Reason::Declined)
    }

    /// Whether anyone on the boot network can cause this at any rate, so its log line is
    /// throttled.
    pub(crate) fn floodable(self) -> bool {
        self.refusal().is_some() || self == Reason::UnmanagedMac
    }
}

/// A reply of type `mtype`: the request's xid, flags, ciaddr, giaddr and chaddr, with
/// `yiaddr` and `siaddr`; the relay agent information (option 82) comes back unchanged
/// (RFC 3046 §2.2).
pub(crate) fn header(
    req: &Message,
    mtype: MessageType,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
) -> Message {
    let mut m = Message::new_with_id(
        req.xid(),
        req.ciaddr(),
        yiaddr,
        siaddr,
        req.giaddr(),
        req.chaddr(),
    );
    m.set_opcode(Opcode::BootReply);
    m.set_htype(req.htype());
    m.set_flags(req.flags());
    m.set_secs(0);
    m.opts_mut().insert(DhcpOption::MessageType(mtype));
    if let Some(o82 @ DhcpOption::RelayAgentInformation(_)) =
        req.opts().get(OptionCode::RelayAgentInformation)
    {
        m.opts_mut().insert(o82.clone());
    }
    m
}

/// Which server is answering: the two modes differ in how a client recognises a boot offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// pxed hands out the address too.
    Address,
    /// Another server hands out addresses: every reply must carry option 60 (`PXEClient` or
    /// `HTTPClient`), or firmware and iPXE do not take it as a proxy offer.
    Proxy,
}

/// Adds the boot options for `client` to `m`: option 60 and 43 where the client needs them
/// to take the offer, option 66 for TFTP clients, option 67 and, when it fits in 128 bytes,
/// the BOOTP file field.
pub(crate) fn add_boot_options(
    m: &mut Message,
    client: &Client,
    mode: Mode,
    server: Ipv4Addr,
    file: &str,
) {
    let class: Option<&[u8]> = match (client.kind, mode) {
        (ClientKind::HttpBoot, _) => Some(b"HTTPClient"),
        (ClientKind::Pxe, _) | (_, Mode::Proxy) => Some(b"PXEClient"),
        _ => None,
    };
    let o = m.opts_mut();
    if let Some(class) = class {
        o.insert(DhcpOption::ClassIdentifier(class.to_vec()));
        if class == b"PXEClient" {
            o.insert(DhcpOption::VendorExtensions(PXE_VENDOR_OPTIONS.to_vec()));
        }
    }
    if client.kind == ClientKind::Pxe {
        o.insert(DhcpOption::TFTPServerName(server.to_string().into_bytes()));
    }
    o.insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
    // The file field is 128 bytes with a terminating NUL; longer names go in option 67 only.
    if file.len() < 128 {
        m.set_fname_str(file);
    }
}

/// The boot file a client gets, or `None` for clients that are not network booting. A
/// Secure Boot host's x86-64 UEFI firmware gets the signed shim, which loads the signed
/// GRUB; arm64 gets GRUB (Debian has no arm64 iPXE); everything else gets iPXE, and iPXE
/// gets its script URL. UEFI HTTP Boot gets a URL only to a first stage that can go on over
/// HTTP: Debian's signed GRUB reads its config over TFTP only, so a Secure Boot host's HTTP
/// Boot, and arm64's unless `[first_stage] http_arm64` names an arm64 iPXE, get no boot
/// file and their firmware moves on to its PXE boot option.
pub(crate) fn boot_file(cfg: &Config, server: Ipv4Addr, client: &Client) -> Option<String> {
    let fs = &cfg.first_stage;
    let http = cfg.http_base_at(server);
    let secure = cfg.secure_boot_for(&client.mac);
    let url = |path: &str| (!path.is_empty()).then(|| crate::profiles::url_for(&http, path));
    let code = match client.kind {
        ClientKind::Ipxe => return Some(crate::http::script_url(&http, client.mac)),
        ClientKind::Plain => return None,
        ClientKind::Pxe => client.arch.unwrap_or(arch::BIOS),
        ClientKind::HttpBoot => match client.arch.unwrap_or(arch::HTTP_X64) {
            a @ (arch::HTTP_IA32 | arch::HTTP_ARM64) => a,
            _ => arch::HTTP_X64,
        },
    };
    match code {
        arch::BIOS => Some(fs.bios.clone()),
        arch::EFI_IA32 => Some(fs.efi_ia32.clone()),
        arch::EFI_X64 | arch::EFI_BC if secure => Some(fs.secure_boot_x64.clone()),
        arch::EFI_X64 | arch::EFI_BC => Some(fs.efi_x64.clone()),
        arch::EFI_ARM64 => Some(fs.efi_arm64.clone()),
        arch::HTTP_IA32 => url(&fs.http_ia32),
        arch::HTTP_X64 if secure => None,
        arch::HTTP_X64 => url(&fs.http_x64),
        arch::HTTP_ARM64 => url(&fs.http_arm64),
        _ => None,
    }
}

/// RFC 2131 §4.1 for an OFFER or ACK of `yiaddr`: giaddr, then ciaddr, then the broadcast
/// bit, then unicast to yiaddr.
pub(crate) fn destination(req: &Message, yiaddr: Ipv4Addr, mac: Mac) -> Destination {
    if !req.giaddr().is_unspecified() {
        Destination::Relay(req.giaddr())
    } else if !req.ciaddr().is_unspecified() {
        Destination::Unicast(req.ciaddr())
    } else if req.flags().broadcast() {
        Destination::Broadcast
    } else {
        Destination::Hardware(yiaddr, mac)
    }
}

/// A NAK from `server`, with `why` in option 56: broadcast, or to the relay, which must
/// broadcast it on the client's segment.
pub(crate) fn nak(req: &Message, server: Ipv4Addr, client: Client, why: &str) -> Decision {
    let mut reply = header(
        req,
        MessageType::Nak,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
    );
    let o = reply.opts_mut();
    o.insert(DhcpOption::ServerIdentifier(server));
    o.insert(DhcpOption::Message(why.to_string()));
    let to = if req.giaddr().is_unspecified() {
        Destination::Broadcast
    } else {
        reply.set_flags(Flags::default().set_broadcast());
        Destination::Relay(req.giaddr())
    };
    Decision::reply(reply, to, client)
}

/// The largest reply a request allows (option 57, RFC 2132 §9.10): the client's maximum
/// IP datagram, never below 576, less 28 bytes of IP and UDP headers.
pub(crate) fn max_reply_len(req: &Message) -> usize {
    let max_datagram = match req.opts().get(OptionCode::MaxMessageSize) {
        Some(DhcpOption::MaxMessageSize(n)) => usize::from(*n).max(576),
        _ => 576,
    };
    max_datagram - 28
}

/// Options dropped, in this order, when a reply does not fit the client's maximum size.
const TRIMMABLE: [OptionCode; 5] = [
    OptionCode::DomainName,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::TFTPServerName,
    OptionCode::Router,
];

/// Encodes a reply within `max_len` bytes (dropping optional options if it must), padded to
/// the BOOTP minimum of 300 bytes.
pub(crate) fn encode(
    msg: &Message,
    max_len: usize,
) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    use dhcproto::Encodable;
    let mut buf = msg.to_vec()?;
    if buf.len() > max_len {
        let mut trimmed = msg.clone();
        for code in TRIMMABLE {
            trimmed.opts_mut().remove(code);
            buf = trimmed.to_vec()?;
            if buf.len() <= max_len {
                break;
            }
        }
    }
    if buf.len() < MIN_REPLY_LEN {
        buf.resize(MIN_REPLY_LEN, 0);
    }
    Ok(buf)
}

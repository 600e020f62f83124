//! The DHCP decision: one request in, at most one reply out. Pure: the caller passes the
//! config, the lease table and the time, and sends what comes back.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};

use crate::config::{Config, Pool};
use crate::leases::{ClientId, LeaseTable, State, OFFER_HOLD_SECS};
use crate::mac::Mac;
use crate::profiles::arch_name;

/// BOOTP's minimum message size (RFC 1542 §2.1); some PXE ROMs drop shorter replies.
pub const MIN_REPLY_LEN: usize = 300;

/// Option 43 for PXE clients: sub-option 6 (PXE_DISCOVERY_CONTROL), length 1, value 8
/// ("download the boot file named in the reply"), then end.
pub const PXE_VENDOR_OPTIONS: [u8; 4] = [6, 1, 8, 255];

/// What kind of client sent a request, which decides the boot file it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
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
pub struct Client {
    /// The hardware address.
    pub mac: Mac,
    /// The lease key: option 61 when sent, else derived from the MAC.
    pub id: ClientId,
    /// Its kind.
    pub kind: ClientKind,
    /// Option 93, if sent.
    pub arch: Option<u16>,
    /// Option 77 as text, if sent.
    pub user_class: Option<String>,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
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
    Peer(std::net::SocketAddr),
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send `msg` to `to`.
    Reply {
        /// The reply.
        msg: Box<Message>,
        /// Where it goes.
        to: Destination,
        /// The client, for logs and events.
        client: Client,
    },
    /// Send nothing.
    Ignore {
        /// Why, as a constant lowercase phrase for logs.
        reason: &'static str,
        /// The client, when the request named one.
        client: Option<Client>,
    },
}

/// Reasons for no reply that a policy on the hostile boot network chose; the shell counts
/// each as a refusal.
pub mod refused {
    /// `giaddr` is not inside any served subnet: replying would reflect to any address.
    pub const GIADDR: &str = "giaddr outside every served subnet";
    /// `ciaddr` is not inside the client's subnet: replying would reflect to any address.
    pub const CIADDR: &str = "ciaddr outside the client's subnet";
    /// A new client outside `[hosts]` beyond `[dhcp] unknown_client_rate`.
    pub const RATE: &str = "unknown client rate limit";
    /// A proxyDHCP request on port 4011 from a source no PXE client would use.
    pub const PROXY_SOURCE: &str = "implausible proxy request source";
}

fn ignore(reason: &'static str, client: Option<Client>) -> Decision {
    Decision::Ignore { reason, client }
}

/// Classifies a request's sender by its options.
pub fn classify(msg: &Message) -> Option<Client> {
    let mac = if msg.htype() == HType::Eth && msg.hlen() == 6 {
        Mac::from_chaddr(msg.chaddr())?
    } else {
        return None;
    };
    let opts = msg.opts();
    let user_class = match opts.get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(v)) => Some(String::from_utf8_lossy(v).into_owned()),
        _ => None,
    };
    let vendor = match opts.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => v.clone(),
        _ => Vec::new(),
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

/// Decides the reply to one request that arrived on the served interface.
pub fn decide(msg: &Message, cfg: &Config, leases: &mut LeaseTable, now: u64) -> Decision {
    decide_on(msg, cfg, 0, leases, now)
}

/// Decides the reply to one request that arrived on the interface of `cfg.dhcp.pools[home]`.
pub fn decide_on(
    msg: &Message,
    cfg: &Config,
    home: usize,
    leases: &mut LeaseTable,
    now: u64,
) -> Decision {
    if msg.opcode() != Opcode::BootRequest {
        return ignore("not a boot request", None);
    }
    let Some(client) = classify(msg) else {
        return ignore("not an ethernet client", None);
    };
    let Some(mtype) = message_type(msg) else {
        return ignore("no message type", Some(client));
    };
    if cfg.profile_for(&client.mac).is_none() {
        // On a shared VLAN pxed must not hijack machines it doesn't manage.
        return ignore("unmanaged mac", Some(client));
    }
    let giaddr = msg.giaddr();
    // Replies go to giaddr or ciaddr as given, so both must be addresses of the boot network:
    // anything else turns pxed into a reflector toward whoever the request names.
    if !giaddr.is_unspecified() && !cfg.dhcp.relay_allowed(giaddr) {
        return ignore(refused::GIADDR, Some(client));
    }
    // The client's subnet: named by the relay, else the served interface's own.
    let pool = match link_address(msg) {
        Some(link) => match cfg.dhcp.pool_for(link) {
            Some(p) => p,
            None => return ignore("relay from an unserved subnet", Some(client)),
        },
        // A unicast RELEASE, INFORM or RENEW from a relayed subnet names its subnet by
        // its own address.
        None => {
            let ciaddr = msg.ciaddr();
            let own = (!ciaddr.is_unspecified())
                .then(|| cfg.dhcp.pool_for(ciaddr))
                .flatten();
            match own.or_else(|| cfg.dhcp.pools.get(home)) {
                Some(p) => p,
                None => return ignore("no subnet on this interface", Some(client)),
            }
        }
    };
    let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let ciaddr = msg.ciaddr();
    if !ciaddr.is_unspecified() && !pool.subnet.contains(&ciaddr) {
        return ignore(refused::CIADDR, Some(client));
    }
    let mac = client.mac;
    let id = client.id.clone();
    let lease_secs = cfg.dhcp.lease_time.as_secs();

    match mtype {
        MessageType::Discover => {
            if !admits_new(cfg, leases, &id, mac, now) {
                return ignore(refused::RATE, Some(client));
            }
            leases.make_room_for(&id, mac, cfg.dhcp.max_leases_per_mac, now);
            let Some(ip) = leases.choose(cfg, pool, &id, mac, requested, now) else {
                return ignore("pool exhausted", Some(client));
            };
            leases.bind(&id, mac, ip, State::Offered, now + OFFER_HOLD_SECS);
            answer(msg, cfg, pool, client, MessageType::Offer, ip)
        }
        MessageType::Request => {
            let ip = match (server_id, ciaddr.is_unspecified(), requested) {
                // SELECTING another server's offer: forget ours.
                (Some(sid), _, _) if sid != pool.server => {
                    leases.drop_offer(&id);
                    return ignore("client chose another server", Some(client));
                }
                // SELECTING our offer.
                (Some(_), _, Some(ip)) => ip,
                (Some(_), _, None) => return nak(msg, pool, client, "no requested address"),
                // INIT-REBOOT: confirm the address the client believes it has.
                (None, true, Some(ip)) => {
                    if !pool.subnet.contains(&ip) {
                        return nak(msg, pool, client, "address is not on this network");
                    }
                    let pinned = cfg
                        .hosts
                        .get(&mac)
                        .and_then(|h| h.ip)
                        .filter(|p| pool.subnet.contains(p));
                    match (leases.get(&id), pinned) {
                        (Some(l), _) if l.ip != ip => {
                            return nak(msg, pool, client, "that is not your address")
                        }
                        (None, Some(p)) if p != ip => {
                            return nak(msg, pool, client, "that is not your address")
                        }
                        // RFC 2131 §4.3.2: with no record of the client, stay silent.
                        (None, None) => {
                            return ignore(
                                "init-reboot from a client without a lease",
                                Some(client),
                            )
                        }
                        _ => ip,
                    }
                }
                (None, true, None) => return ignore("request without an address", Some(client)),
                // RENEWING (unicast) or REBINDING (broadcast).
                (None, false, _) => ciaddr,
            };
            // A new unknown client may skip DISCOVER and REQUEST a free address outright:
            // the same rate limit applies.
            if !admits_new(cfg, leases, &id, mac, now) {
                return ignore(refused::RATE, Some(client));
            }
            match leases.check(cfg, pool, &id, mac, ip, now) {
                Ok(()) => {
                    leases.make_room_for(&id, mac, cfg.dhcp.max_leases_per_mac, now);
                    leases.bind(&id, mac, ip, State::Bound, now + lease_secs);
                    answer(msg, cfg, pool, client, MessageType::Ack, ip)
                }
                Err(_) => nak(msg, pool, client, "requested address not available"),
            }
        }
        MessageType::Release => {
            leases.release(&id, msg.ciaddr(), now);
            ignore("released", Some(client))
        }
        MessageType::Decline => {
            if let Some(ip) = requested {
                leases.decline(&id, ip, now + cfg.dhcp.decline_time.as_secs());
            }
            ignore("declined", Some(client))
        }
        MessageType::Inform if ciaddr.is_unspecified() && giaddr.is_unspecified() => {
            ignore("inform without ciaddr", Some(client))
        }
        MessageType::Inform => {
            let mut reply = build(
                msg,
                cfg,
                pool,
                &client,
                MessageType::Ack,
                Ipv4Addr::UNSPECIFIED,
            );
            for code in [
                OptionCode::AddressLeaseTime,
                OptionCode::Renewal,
                OptionCode::Rebinding,
            ] {
                reply.opts_mut().remove(code);
            }
            let to = if giaddr.is_unspecified() {
                Destination::Unicast(msg.ciaddr())
            } else {
                Destination::Relay(giaddr)
            };
            Decision::Reply {
                msg: Box::new(reply),
                to,
                client,
            }
        }
        _ => ignore("not a client message", Some(client)),
    }
}

/// Whether `[dhcp] unknown_client_rate` lets this client have a lease now: hosts of the
/// config always may, and so may a client pxed already has a binding for.
fn admits_new(cfg: &Config, leases: &mut LeaseTable, id: &ClientId, mac: Mac, now: u64) -> bool {
    cfg.hosts.contains_key(&mac)
        || leases.admit_unknown(
            id,
            cfg.dhcp.unknown_client_rate,
            cfg.dhcp.unknown_client_burst,
            now,
        )
}

/// The address that names the client's link, in the order RFC 3527 §3 gives: the relay's
/// link-selection sub-option (82.5), the subnet-selection option (118), then giaddr. `None`
/// for a client on the served interface itself.
pub fn link_address(msg: &Message) -> Option<Ipv4Addr> {
    use dhcproto::v4::relay::{RelayCode, RelayInfo};
    if let Some(DhcpOption::RelayAgentInformation(info)) =
        msg.opts().get(OptionCode::RelayAgentInformation)
    {
        if let Some(RelayInfo::LinkSelection(ip)) = info.get(RelayCode::LinkSelection) {
            return Some(*ip);
        }
    }
    if let Some(DhcpOption::SubnetSelection(ip)) = msg.opts().get(OptionCode::SubnetSelection) {
        return Some(*ip);
    }
    (!msg.giaddr().is_unspecified()).then_some(msg.giaddr())
}

fn message_type(msg: &Message) -> Option<MessageType> {
    match msg.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// An OFFER or ACK of `ip`, addressed per RFC 2131 §4.1.
fn answer(
    req: &Message,
    cfg: &Config,
    pool: &Pool,
    client: Client,
    mtype: MessageType,
    ip: Ipv4Addr,
) -> Decision {
    let reply = build(req, cfg, pool, &client, mtype, ip);
    Decision::Reply {
        msg: Box::new(reply),
        to: destination(req, ip, client.mac),
        client,
    }
}

/// RFC 2131 §4.1: giaddr, then ciaddr, then the broadcast bit, then unicast to yiaddr.
fn destination(req: &Message, yiaddr: Ipv4Addr, mac: Mac) -> Destination {
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

fn nak(req: &Message, pool: &Pool, client: Client, why: &str) -> Decision {
    let mut reply = base_reply(req, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    let o = reply.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Nak));
    o.insert(DhcpOption::ServerIdentifier(pool.server));
    o.insert(DhcpOption::Message(why.to_string()));
    let to = if req.giaddr().is_unspecified() {
        Destination::Broadcast
    } else {
        // The relay must broadcast a NAK on the client's segment.
        reply.set_flags(Flags::default().set_broadcast());
        Destination::Relay(req.giaddr())
    };
    Decision::Reply {
        msg: Box::new(reply),
        to,
        client,
    }
}

fn base_reply(req: &Message, yiaddr: Ipv4Addr, siaddr: Ipv4Addr) -> Message {
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
    // RFC 3046 §2.2: the relay agent information comes back unchanged.
    if let Some(o82 @ DhcpOption::RelayAgentInformation(_)) =
        req.opts().get(OptionCode::RelayAgentInformation)
    {
        m.opts_mut().insert(o82.clone());
    }
    m
}

/// An OFFER or ACK for `ip`, with the standard options and the boot file for this client.
fn build(
    req: &Message,
    cfg: &Config,
    pool: &Pool,
    client: &Client,
    mtype: MessageType,
    ip: Ipv4Addr,
) -> Message {
    let mut m = base_reply(req, ip, pool.server);
    let lease = cfg.dhcp.lease_time.as_secs() as u32;
    let prl = match req.opts().get(OptionCode::ParameterRequestList) {
        Some(DhcpOption::ParameterRequestList(codes)) => Some(codes.clone()),
        _ => None,
    };
    // Options the client did not ask for are left out when it sent a request list (RFC 2131
    // §4.3.1); mask, lease times, server id and the boot options are always sent.
    let wants = |code: OptionCode| prl.as_ref().is_none_or(|p| p.contains(&code));
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(mtype));
    o.insert(DhcpOption::ServerIdentifier(pool.server));
    o.insert(DhcpOption::SubnetMask(pool.subnet.netmask()));
    if let Some(r) = pool.router.filter(|_| wants(OptionCode::Router)) {
        o.insert(DhcpOption::Router(vec![r]));
    }
    if !pool.dns.is_empty() && wants(OptionCode::DomainNameServer) {
        o.insert(DhcpOption::DomainNameServer(pool.dns.clone()));
    }
    if let Some(d) = pool
        .domain
        .as_ref()
        .filter(|_| wants(OptionCode::DomainName))
    {
        o.insert(DhcpOption::DomainName(d.clone()));
    }
    o.insert(DhcpOption::AddressLeaseTime(lease));
    o.insert(DhcpOption::Renewal(lease / 2));
    o.insert(DhcpOption::Rebinding(lease / 8 * 7));
    if let Some(h) = cfg
        .hosts
        .get(&client.mac)
        .and_then(|h| h.hostname.clone())
        .filter(|_| wants(OptionCode::Hostname))
    {
        o.insert(DhcpOption::Hostname(h));
    }
    if let Some(file) = boot_file(cfg, pool.server, client) {
        match client.kind {
            ClientKind::Pxe => {
                o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
                // PXE_DISCOVERY_CONTROL = 8: boot the file named here. Without it, PXE
                // firmware such as OVMF goes on to boot-server discovery on port 4011.
                o.insert(DhcpOption::VendorExtensions(PXE_VENDOR_OPTIONS.to_vec()));
                o.insert(DhcpOption::TFTPServerName(
                    pool.server.to_string().into_bytes(),
                ));
            }
            ClientKind::HttpBoot => {
                o.insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
            }
            ClientKind::Ipxe | ClientKind::Plain => {}
        }
        o.insert(DhcpOption::BootfileName(file.clone().into_bytes()));
        if file.len() < 128 {
            m.set_fname_str(&file);
        }
    }
    m
}

/// The boot file a client gets, or `None` for clients that are not network booting. A
/// Secure Boot host's x86-64 UEFI firmware gets the signed shim, which loads the signed
/// GRUB; arm64 gets GRUB (Debian has no arm64 iPXE); everything else gets iPXE, and iPXE
/// gets its script URL. UEFI HTTP Boot gets a URL only to a first stage that can go on over
/// HTTP: Debian's signed GRUB reads its config over TFTP only, so a Secure Boot host's HTTP
/// Boot, and arm64's unless `[first_stage] http_arm64` names an arm64 iPXE, get no boot
/// file and their firmware moves on to its PXE boot option.
pub fn boot_file(cfg: &Config, server: Ipv4Addr, client: &Client) -> Option<String> {
    let fs = &cfg.first_stage;
    let http = cfg.http_base_at(server);
    let secure = cfg.secure_boot_for(&client.mac);
    let url = |path: &str| (!path.is_empty()).then(|| crate::profiles::url_for(&http, path));
    let arch = match client.kind {
        ClientKind::Ipxe => return Some(format!("{http}/ipxe/{}", client.mac)),
        ClientKind::Plain => return None,
        ClientKind::Pxe => client.arch.unwrap_or(0),
        ClientKind::HttpBoot => match client.arch.unwrap_or(16) {
            a @ (15 | 19) => a,
            _ => 16,
        },
    };
    match arch {
        0 => Some(fs.bios.clone()),
        6 => Some(fs.efi_ia32.clone()),
        7 | 9 if secure => Some(fs.secure_boot_x64.clone()),
        7 | 9 => Some(fs.efi_x64.clone()),
        11 => Some(fs.efi_arm64.clone()),
        15 => url(&fs.http_ia32),
        16 if secure => None,
        16 => url(&fs.http_x64),
        19 => url(&fs.http_arm64),
        _ => None,
    }
}

/// The largest reply a request allows (option 57, RFC 2132 §9.10): the client's maximum
/// IP datagram, never below 576, less 28 bytes of IP and UDP headers.
pub fn max_reply_len(req: &Message) -> usize {
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
pub fn encode(msg: &Message, max_len: usize) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
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

/// The arch name for logs and templates; `bios` when option 93 was absent.
pub fn client_arch_name(client: &Client) -> String {
    arch_name(client.arch.unwrap_or(0))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

//! The DHCP decision in address mode: one request in, at most one reply out. Pure: the
//! caller passes the config, the lease table and the time, and sends what comes back.
//!
//! [`decide_on`] reads the request ([`triage`]: who, which subnet, which message) and hands
//! it to the handler for its message type: [`discover`], [`request`], [`release`],
//! [`decline`] or [`inform`]. Replies are built by [`super::reply`], which proxy mode shares.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use super::client::{classify, Client};
use super::reply::{self, no_reply, Decision, Destination, Mode, Reason};
use crate::config::{Config, Pool};
use crate::leases::{LeaseTable, State, OFFER_HOLD_SECS};

#[cfg(test)]
/// Decides the reply to one request that arrived on the served interface.
pub(crate) fn decide(msg: &Message, cfg: &Config, leases: &mut LeaseTable, now: u64) -> Decision {
    decide_on(msg, cfg, 0, leases, now)
}

/// Decides the reply to one request that arrived on the interface of `cfg.dhcp.pools[home]`.
pub(crate) fn decide_on(
    msg: &Message,
    cfg: &Config,
    home: usize,
    leases: &mut LeaseTable,
    now: u64,
) -> Decision {
    let (mtype, req) = match triage(msg, cfg, home) {
        Ok(t) => t,
        Err(d) => return d,
    };
    match mtype {
        MessageType::Discover => discover(&req, leases, now),
        MessageType::Request => request(&req, leases, now),
        MessageType::Release => release(req, leases, now),
        MessageType::Decline => decline(req, leases, now),
        MessageType::Inform => inform(req),
        _ => no_reply(Reason::NotClientMessage, Some(req.client)),
    }
}

/// One request, read: what every handler needs.
struct Request<'a> {
    msg: &'a Message,
    cfg: &'a Config,
    /// The client's subnet.
    pool: &'a Pool,
    client: Client,
    /// Option 54, if sent.
    server_id: Option<Ipv4Addr>,
    /// Option 50, if sent.
    requested: Option<Ipv4Addr>,
}

/// Reads who sent `msg`, its message type and its subnet, or decides there is no reply:
/// a request that is not a boot request, from an unmanaged MAC, or that names addresses
/// outside the served subnets (replies go to giaddr or ciaddr as given, so anything else
/// would turn pxed into a reflector toward whoever the request names).
fn triage<'a>(
    msg: &'a Message,
    cfg: &'a Config,
    home: usize,
) -> Result<(MessageType, Request<'a>), Decision> {
    let (client, mtype) = managed_client(msg, cfg)?;
    let giaddr = msg.giaddr();
    if !giaddr.is_unspecified() && !cfg.dhcp.relay_allowed(giaddr) {
        return Err(no_reply(Reason::GiaddrOutside, Some(client)));
    }
    let pool = match client_pool(msg, cfg, home) {
        Ok(p) => p,
        Err(reason) => return Err(no_reply(reason, Some(client))),
    };
    let ciaddr = msg.ciaddr();
    if !ciaddr.is_unspecified() && !pool.subnet.contains(&ciaddr) {
        return Err(no_reply(Reason::CiaddrOutside, Some(client)));
    }
    let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let req = Request {
        msg,
        cfg,
        pool,
        client,
        server_id,
        requested,
    };
    Ok((mtype, req))
}

/// The checks both modes make first: a boot request, from an Ethernet client, with a
/// message type, from a MAC pxed manages.
pub(crate) fn managed_client(
    msg: &Message,
    cfg: &Config,
) -> Result<(Client, MessageType), Decision> {
    if msg.opcode() != Opcode::BootRequest {
        return Err(no_reply(Reason::NotBootRequest, None));
    }
    let Some(client) = classify(msg) else {
        return Err(no_reply(Reason::NotEthernet, None));
    };
    let Some(mtype) = message_type(msg) else {
        return Err(no_reply(Reason::NoMessageType, Some(client)));
    };
    if cfg.profile_for(&client.mac).is_none() {
        return Err(no_reply(Reason::UnmanagedMac, Some(client)));
    }
    Ok((client, mtype))
}

/// The client's subnet: the one the relay names, else (for a unicast RELEASE, INFORM or
/// RENEW from a relayed subnet) the one its own address is in, else the served interface's.
fn client_pool<'a>(msg: &Message, cfg: &'a Config, home: usize) -> Result<&'a Pool, Reason> {
    if let Some(link) = link_address(msg) {
        return cfg.dhcp.pool_for(link).ok_or(Reason::UnservedSubnet);
    }
    let ciaddr = msg.ciaddr();
    let own = (!ciaddr.is_unspecified())
        .then(|| cfg.dhcp.pool_for(ciaddr))
        .flatten();
    own.or_else(|| cfg.dhcp.pools.get(home))
        .ok_or(Reason::NoSubnet)
}

/// DISCOVER: hold an address for the client and OFFER it.
fn discover(req: &Request, leases: &mut LeaseTable, now: u64) -> Decision {
    let (cfg, c) = (req.cfg, &req.client);
    if !admits_new(req, leases, now) {
        return no_reply(Reason::RateLimited, Some(c.clone()));
    }
    leases.make_room_for(&c.id, c.mac, cfg.dhcp.max_leases_per_mac, now);
    let Some(ip) = leases.choose(cfg, req.pool, &c.id, c.mac, req.requested, now) else {
        return no_reply(Reason::PoolExhausted, Some(c.clone()));
    };
    leases.bind(&c.id, c.mac, ip, State::Offered, now + OFFER_HOLD_SECS);
    offer_or_ack(req, MessageType::Offer, ip)
}

/// REQUEST: confirm the address the client asks for (SELECTING, INIT-REBOOT, RENEWING or
/// REBINDING) and ACK it, or NAK.
fn request(req: &Request, leases: &mut LeaseTable, now: u64) -> Decision {
    let ip = match requested_address(req, leases) {
        Ok(ip) => ip,
        Err(d) => return d,
    };
    let (cfg, c) = (req.cfg, &req.client);
    // A new unknown client may skip DISCOVER and REQUEST a free address outright: the same
    // rate limit applies.
    if !admits_new(req, leases, now) {
        return no_reply(Reason::RateLimited, Some(c.clone()));
    }
    if leases.check(cfg, req.pool, &c.id, c.mac, ip, now).is_err() {
        return nak(req, "requested address not available");
    }
    leases.make_room_for(&c.id, c.mac, cfg.dhcp.max_leases_per_mac, now);
    let expires = now + cfg.dhcp.lease_time.as_secs();
    leases.bind(&c.id, c.mac, ip, State::Bound, expires);
    offer_or_ack(req, MessageType::Ack, ip)
}

/// The address a REQUEST asks to have confirmed, by its RFC 2131 §4.3.2 state; or the
/// NAK or silence that answers it.
fn requested_address(req: &Request, leases: &mut LeaseTable) -> Result<Ipv4Addr, Decision> {
    let (pool, c) = (req.pool, &req.client);
    let ciaddr = req.msg.ciaddr();
    match (req.server_id, ciaddr.is_unspecified(), req.requested) {
        // SELECTING another server's offer: forget ours.
        (Some(sid), _, _) if sid != pool.server => {
            leases.drop_offer(&c.id);
            Err(no_reply(Reason::OtherServer, Some(c.clone())))
        }
        // SELECTING our offer.
        (Some(_), _, Some(ip)) => Ok(ip),
        (Some(_), _, None) => Err(nak(req, "no requested address")),
        (None, true, Some(ip)) => init_reboot(req, leases, ip),
        (None, true, None) => Err(no_reply(Reason::RequestWithoutAddress, Some(c.clone()))),
        // RENEWING (unicast) or REBINDING (broadcast).
        (None, false, _) => Ok(ciaddr),
    }
}

/// INIT-REBOOT: the client believes it has `ip`; NAK if pxed knows otherwise.
fn init_reboot(req: &Request, leases: &LeaseTable, ip: Ipv4Addr) -> Result<Ipv4Addr, Decision> {
    let (pool, c) = (req.pool, &req.client);
    if !pool.subnet.contains(&ip) {
        return Err(nak(req, "address is not on this network"));
    }
    let pinned = req
        .cfg
        .hosts
        .get(&c.mac)
        .and_then(|h| h.ip)
        .filter(|p| pool.subnet.contains(p));
    match (leases.get(&c.id), pinned) {
        (Some(l), _) if l.ip != ip => Err(nak(req, "that is not your address")),
        (None, Some(p)) if p != ip => Err(nak(req, "that is not your address")),
        // RFC 2131 §4.3.2: with no record of the client, stay silent.
        (None, None) => Err(no_reply(Reason::InitRebootWithoutLease, Some(c.clone()))),
        _ => Ok(ip),
    }
}

/// RELEASE: free the lease. There is no reply.
fn release(req: Request, leases: &mut LeaseTable, now: u64) -> Decision {
    leases.release(&req.client.id, req.msg.ciaddr(), now);
    no_reply(Reason::Released, Some(req.client))
}

/// DECLINE: the client found the address in use; set it aside. There is no reply.
fn decline(req: Request, leases: &mut LeaseTable, now: u64) -> Decision {
    if let Some(ip) = req.requested {
        let until = now + req.cfg.dhcp.decline_time.as_secs();
        leases.decline(&req.client.id, ip, until);
    }
    no_reply(Reason::Declined, Some(req.client))
}

/// INFORM: the client has an address of its own and wants the rest; an ACK without lease
/// times, to ciaddr or the relay.
fn inform(req: Request) -> Decision {
    let giaddr = req.msg.giaddr();
    let to = if !giaddr.is_unspecified() {
        Destination::Relay(giaddr)
    } else if !req.msg.ciaddr().is_unspecified() {
        Destination::Unicast(req.msg.ciaddr())
    } else {
        return no_reply(Reason::InformWithoutCiaddr, Some(req.client));
    };
    let mut reply = build(&req, MessageType::Ack, Ipv4Addr::UNSPECIFIED);
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        reply.opts_mut().remove(code);
    }
    Decision::reply(reply, to, req.client)
}

/// Whether `[dhcp] unknown_client_rate` lets this client have a lease now: hosts of the
/// config always may, and so may a client pxed already has a binding for.
fn admits_new(req: &Request, leases: &mut LeaseTable, now: u64) -> bool {
    let d = &req.cfg.dhcp;
    req.cfg.hosts.contains_key(&req.client.mac)
        || leases.admit_unknown(
            &req.client.id,
            d.unknown_client_rate,
            d.unknown_client_burst,
            now,
        )
}

/// The address that names the client's link, in the order RFC 3527 §3 gives: the relay's
/// link-selection sub-option (82.5), the subnet-selection option (118), then giaddr. `None`
/// for a client on the served interface itself.
pub(crate) fn link_address(msg: &Message) -> Option<Ipv4Addr> {
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

/// Option 53.
pub(crate) fn message_type(msg: &Message) -> Option<MessageType> {
    match msg.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// An OFFER or ACK of `ip`, addressed per RFC 2131 §4.1.
fn offer_or_ack(req: &Request, mtype: MessageType, ip: Ipv4Addr) -> Decision {
    let reply = build(req, mtype, ip);
    let to = reply::destination(req.msg, ip, req.client.mac);
    Decision::reply(reply, to, req.client.clone())
}

fn nak(req: &Request, why: &str) -> Decision {
    reply::nak(req.msg, req.pool.server, req.client.clone(), why)
}

/// An OFFER or ACK for `ip`, with the subnet's options and the boot file for this client.
fn build(req: &Request, mtype: MessageType, ip: Ipv4Addr) -> Message {
    let (cfg, pool) = (req.cfg, req.pool);
    let mut m = reply::header(req.msg, mtype, ip, pool.server);
    add_subnet_options(&mut m, req);
    if let Some(file) = reply::boot_file(cfg, pool.server, &req.client) {
        reply::add_boot_options(&mut m, &req.client, Mode::Address, pool.server, &file);
    }
    m
}

/// Server id, mask and lease times always; router, DNS, domain and hostname unless the
/// client sent a request list without them (RFC 2131 §4.3.1).
fn add_subnet_options(m: &mut Message, req: &Request) {
    let (cfg, pool) = (req.cfg, req.pool);
    let lease = cfg.dhcp.lease_time.as_secs() as u32;
    let prl = match req.msg.opts().get(OptionCode::ParameterRequestList) {
        Some(DhcpOption::ParameterRequestList(codes)) => Some(codes.clone()),
        _ => None,
    };
    let wants = |code: OptionCode| prl.as_ref().is_none_or(|p| p.contains(&code));
    let o = m.opts_mut();
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
    let hostname = cfg
        .hosts
        .get(&req.client.mac)
        .and_then(|h| h.hostname.clone());
    if let Some(h) = hostname.filter(|_| wants(OptionCode::Hostname)) {
        o.insert(DhcpOption::Hostname(h));
    }
}

#[cfg(test)]
mod tests;

//! proxyDHCP (PXE spec §2.2.3, `[dhcp] mode = "proxy"`): another server hands out addresses;
//! pxed answers PXE clients with boot information only. A DISCOVER on port 67 gets a proxy
//! OFFER (no address, option 60 `PXEClient`, the boot file); a REQUEST or INFORM on port
//! 4011 gets the same as an ACK, sent back to where it came from. Pure, like [`super::decide`].

use std::net::{Ipv4Addr, SocketAddr};

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};

use super::client::{Client, ClientKind};
use super::decide::managed_client;
use super::reply::{self, no_reply, Decision, Destination, Mode, Reason};
use crate::config::Config;

/// Which socket a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// UDP 67, shared with the real DHCP server.
    Dhcp,
    /// UDP 4011, the PXE boot-server port.
    Proxy,
}

/// Whether a port-4011 request could come from a PXE client: from the DHCP client port (68)
/// or 4011, from an address in a served subnet, matching its own `ciaddr` when it set one.
/// The reply goes back to the source, so anything else would reflect it to a victim.
pub(crate) fn plausible_proxy_source(msg: &Message, cfg: &Config, peer: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = peer else {
        return false;
    };
    let ip = *v4.ip();
    let ciaddr = msg.ciaddr();
    matches!(v4.port(), 68 | 4011)
        && cfg.dhcp.pool_for(ip).is_some()
        && (ciaddr.is_unspecified() || ciaddr == ip)
        && msg.giaddr().is_unspecified()
}

/// Decides the proxyDHCP answer to one request.
pub(crate) fn decide_proxy(msg: &Message, cfg: &Config, port: Port, peer: SocketAddr) -> Decision {
    let (client, mtype) = match managed_client(msg, cfg) {
        Ok(c) => c,
        Err(d) => return d,
    };
    if client.kind == ClientKind::Plain {
        return no_reply(Reason::NotPxeClient, Some(client));
    }
    let (reply_type, to) = match answer_to(msg, cfg, port, mtype, peer) {
        Ok(x) => x,
        Err(reason) => return no_reply(reason, Some(client)),
    };
    let Some(file) = reply::boot_file(cfg, cfg.server.address, &client) else {
        return no_reply(Reason::NoBootFile, Some(client));
    };
    let m = proxy_reply(msg, cfg, &client, reply_type, &file);
    Decision::reply(m, to, client)
}

/// Which requests proxy mode answers, with what, and where the answer goes: a DISCOVER on
/// port 67 gets an OFFER, broadcast or to its relay; a REQUEST or INFORM on port 4011 gets
/// an ACK back to its source.
fn answer_to(
    msg: &Message,
    cfg: &Config,
    port: Port,
    mtype: MessageType,
    peer: SocketAddr,
) -> Result<(MessageType, Destination), Reason> {
    let giaddr = msg.giaddr();
    match (port, mtype) {
        (Port::Dhcp, MessageType::Discover) if giaddr.is_unspecified() => {
            Ok((MessageType::Offer, Destination::Broadcast))
        }
        (Port::Dhcp, MessageType::Discover) if cfg.dhcp.relay_allowed(giaddr) => {
            Ok((MessageType::Offer, Destination::Relay(giaddr)))
        }
        (Port::Dhcp, MessageType::Discover) => Err(Reason::GiaddrOutside),
        (Port::Proxy, MessageType::Request | MessageType::Inform) => {
            if plausible_proxy_source(msg, cfg, peer) {
                Ok((MessageType::Ack, Destination::Peer(peer)))
            } else {
                Err(Reason::ImplausibleProxySource)
            }
        }
        (Port::Dhcp, _) => Err(Reason::AddressServerAnswers),
        (Port::Proxy, _) => Err(Reason::NotARequest),
    }
}

/// A proxy OFFER or ACK: no address, no lease, the boot options, and the client's UUID
/// (option 97) echoed as the PXE spec asks.
fn proxy_reply(
    msg: &Message,
    cfg: &Config,
    client: &Client,
    mtype: MessageType,
    file: &str,
) -> Message {
    let server = cfg.server.address;
    let mut m = reply::header(msg, mtype, Ipv4Addr::UNSPECIFIED, server);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    if let Some(DhcpOption::ClientMachineIdentifier(uuid)) =
        msg.opts().get(OptionCode::ClientMachineIdentifier)
    {
        let uuid = DhcpOption::ClientMachineIdentifier(uuid.clone());
        m.opts_mut().insert(uuid);
    }
    reply::add_boot_options(&mut m, client, Mode::Proxy, server, file);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::reply::{encode, Reply};
    use crate::testkit::{decode_dhcp, dhcp_request};

    const CONFIG: &str = r#"
[dhcp]
mode = "proxy"
subnet = "10.123.0.0/24"
[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
[hosts."de:00:00:00:00:de"]
profile = "fedora"
"#;

    /// A broadcast request from `mac` with `options`.
    fn request(mac: [u8; 6], ciaddr: [u8; 4], options: &[&[u8]]) -> Message {
        decode_dhcp(&dhcp_request(mac, 0x8000, ciaddr, [0; 4], options))
    }

    const KNOWN: [u8; 6] = [0xde, 0, 0, 0, 0, 0xde];
    const OVMF_CLASS: &[u8] = b"\x3c\x20PXEClient:Arch:00007:UNDI:003016"; // option 60, 32 bytes
    const ARCH_X64: &[u8] = &[93, 2, 0, 7]; // option 93: x64 UEFI
    const UUID: &[u8] = &[
        97, 17, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ]; // option 97
    const DISCOVER: &[u8] = &[53, 1, 1];
    const REQUEST: &[u8] = &[53, 1, 3];

    fn cfg() -> Config {
        crate::testkit::config(&format!("{}{CONFIG}", crate::testkit::SERVER))
    }

    fn peer() -> SocketAddr {
        "10.123.0.57:68".parse().unwrap()
    }

    fn reply(d: Decision) -> (Message, Destination) {
        match d {
            Decision::Reply(Reply { msg, to, .. }) => {
                let wire = encode(&msg, 1472).unwrap();
                (decode_dhcp(&wire), to)
            }
            other => panic!("no reply: {other:?}"),
        }
    }

    #[test]
    fn discover_gets_a_proxy_offer_without_an_address() {
        let d = decide_proxy(
            &request(KNOWN, [0; 4], &[DISCOVER, ARCH_X64, OVMF_CLASS, UUID]),
            &cfg(),
            Port::Dhcp,
            peer(),
        );
        let (m, to) = reply(d);
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 123, 0, 1));
        let o = m.opts();
        assert_eq!(
            o.get(OptionCode::MessageType),
            Some(&DhcpOption::MessageType(MessageType::Offer))
        );
        assert_eq!(
            o.get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"ipxe.efi".to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
        );
        assert_eq!(
            o.get(OptionCode::ClientMachineIdentifier),
            Some(&DhcpOption::ClientMachineIdentifier(UUID[2..].to_vec()))
        );
        // No lease, no address options.
        for code in [
            OptionCode::AddressLeaseTime,
            OptionCode::SubnetMask,
            OptionCode::Router,
        ] {
            assert_eq!(o.get(code), None, "{code:?}");
        }
    }

    #[test]
    fn port_4011_request_gets_an_ack_sent_back_to_its_sender() {
        let req = request(KNOWN, [10, 123, 0, 57], &[REQUEST, ARCH_X64, OVMF_CLASS]);
        let (m, to) = reply(decide_proxy(
            &req,
            &cfg(),
            Port::Proxy,
            "10.123.0.57:4011".parse().unwrap(),
        ));
        assert_eq!(to, Destination::Peer("10.123.0.57:4011".parse().unwrap()));
        assert_eq!(m.ciaddr(), Ipv4Addr::new(10, 123, 0, 57));
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            m.opts().get(OptionCode::MessageType),
            Some(&DhcpOption::MessageType(MessageType::Ack))
        );
        assert_eq!(
            m.opts().get(OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"ipxe.efi".to_vec()))
        );
    }

    #[test]
    fn ipxe_gets_its_script_url_from_the_proxy_too() {
        let ipxe: &[u8] = &[77, 4, b'i', b'P', b'X', b'E'];
        let d = decide_proxy(
            &request(KNOWN, [0; 4], &[DISCOVER, ipxe, OVMF_CLASS]),
            &cfg(),
            Port::Dhcp,
            peer(),
        );
        let (m, _) = reply(d);
        assert_eq!(
            m.opts().get(OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(
                b"http://10.123.0.1:8080/ipxe/de:00:00:00:00:de".to_vec()
            ))
        );
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
    }

    #[test]
    fn non_pxe_unmanaged_and_address_traffic_are_left_to_the_real_server() {
        let c = cfg();
        let plain = decide_proxy(&request(KNOWN, [0; 4], &[DISCOVER]), &c, Port::Dhcp, peer());
        assert!(matches!(
            plain,
            Decision::NoReply {
                reason: Reason::NotPxeClient,
                ..
            }
        ));
        let stranger = decide_proxy(
            &request([2, 0, 0, 0, 0, 1], [0; 4], &[DISCOVER, OVMF_CLASS]),
            &c,
            Port::Dhcp,
            peer(),
        );
        assert!(matches!(
            stranger,
            Decision::NoReply {
                reason: Reason::UnmanagedMac,
                ..
            }
        ));
        let req67 = decide_proxy(
            &request(KNOWN, [0; 4], &[REQUEST, OVMF_CLASS]),
            &c,
            Port::Dhcp,
            peer(),
        );
        assert!(matches!(req67, Decision::NoReply { .. }));
    }

    #[test]
    fn port_4011_answers_only_plausible_pxe_sources() {
        let req = |ciaddr| request(KNOWN, ciaddr, &[REQUEST, ARCH_X64, OVMF_CLASS]);
        let ignored = |d: Decision| match d {
            Decision::NoReply { reason, .. } => reason.as_str(),
            Decision::Reply(_) => "replied",
        };
        let at = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let c = cfg();
        // A forged source outside the boot network, a service port, a ciaddr that is not the
        // source: each would reflect the ACK at someone else.
        for (ciaddr, from) in [
            ([0, 0, 0, 0], "192.0.2.7:4444"),
            ([0, 0, 0, 0], "10.123.0.57:53"),
            ([10, 123, 0, 58], "10.123.0.57:68"),
        ] {
            assert_eq!(
                ignored(decide_proxy(&req(ciaddr), &c, Port::Proxy, at(from))),
                Reason::ImplausibleProxySource.as_str(),
                "{from}"
            );
        }
        for (ciaddr, from) in [
            ([0, 0, 0, 0], "10.123.0.57:68"),
            ([10, 123, 0, 57], "10.123.0.57:4011"),
        ] {
            assert_eq!(
                ignored(decide_proxy(&req(ciaddr), &c, Port::Proxy, at(from))),
                "replied"
            );
        }
    }
}

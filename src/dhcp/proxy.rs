//! proxyDHCP (PXE spec §2.2.3, `[dhcp] mode = "proxy"`): another server hands out addresses;
//! pxed answers PXE clients with boot information only. A DISCOVER on port 67 gets a proxy
//! OFFER (no address, option 60 `PXEClient`, the boot file); a REQUEST or INFORM on port
//! 4011 gets the same as an ACK, sent back to where it came from. Pure, like [`super::decide`].

use std::net::{Ipv4Addr, SocketAddr};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use super::decide::{boot_file, classify, ClientKind, Decision, Destination, PXE_VENDOR_OPTIONS};
use crate::config::Config;

/// Which socket a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// UDP 67, shared with the real DHCP server.
    Dhcp,
    /// UDP 4011, the PXE boot-server port.
    Proxy,
}

fn ignore(reason: &'static str, client: Option<super::decide::Client>) -> Decision {
    Decision::Ignore { reason, client }
}

/// Whether a port-4011 request could come from a PXE client: from the DHCP client port (68)
/// or 4011, from an address in a served subnet, matching its own `ciaddr` when it set one.
/// The reply goes back to the source, so anything else would reflect it to a victim.
pub fn plausible_proxy_source(msg: &Message, cfg: &Config, peer: SocketAddr) -> bool {
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
pub fn decide_proxy(msg: &Message, cfg: &Config, port: Port, peer: SocketAddr) -> Decision {
    if msg.opcode() != Opcode::BootRequest {
        return ignore("not a boot request", None);
    }
    let Some(client) = classify(msg) else {
        return ignore("not an ethernet client", None);
    };
    if client.kind == ClientKind::Plain {
        return ignore("not a pxe client", Some(client));
    }
    if cfg.profile_for(&client.mac).is_none() {
        return ignore("unmanaged mac", Some(client));
    }
    let mtype = match msg.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => *t,
        _ => return ignore("no message type", Some(client)),
    };
    let (reply_type, to) = match (port, mtype) {
        (Port::Dhcp, MessageType::Discover) => {
            if !msg.giaddr().is_unspecified() && !cfg.dhcp.relay_allowed(msg.giaddr()) {
                return ignore(super::decide::refused::GIADDR, Some(client));
            }
            let to = if msg.giaddr().is_unspecified() {
                Destination::Broadcast
            } else {
                Destination::Relay(msg.giaddr())
            };
            (MessageType::Offer, to)
        }
        (Port::Proxy, MessageType::Request | MessageType::Inform) => {
            if !plausible_proxy_source(msg, cfg, peer) {
                return ignore(super::decide::refused::PROXY_SOURCE, Some(client));
            }
            (MessageType::Ack, Destination::Peer(peer))
        }
        (Port::Dhcp, _) => {
            return ignore("proxy mode: the address server answers this", Some(client))
        }
        (Port::Proxy, _) => return ignore("not a request", Some(client)),
    };
    let Some(file) = boot_file(cfg, cfg.server.address, &client) else {
        return ignore("no boot file for this architecture", Some(client));
    };
    let mut m = Message::new_with_id(
        msg.xid(),
        msg.ciaddr(),
        Ipv4Addr::UNSPECIFIED,
        cfg.server.address,
        msg.giaddr(),
        msg.chaddr(),
    );
    m.set_opcode(Opcode::BootReply);
    m.set_htype(msg.htype());
    m.set_flags(msg.flags());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(reply_type));
    o.insert(DhcpOption::ServerIdentifier(cfg.server.address));
    // Option 60 is how firmware and iPXE recognise a proxy offer.
    let class: &[u8] = if client.kind == ClientKind::HttpBoot {
        b"HTTPClient"
    } else {
        b"PXEClient"
    };
    o.insert(DhcpOption::ClassIdentifier(class.to_vec()));
    if client.kind != ClientKind::HttpBoot {
        o.insert(DhcpOption::VendorExtensions(PXE_VENDOR_OPTIONS.to_vec()));
    }
    if client.kind == ClientKind::Pxe {
        o.insert(DhcpOption::TFTPServerName(
            cfg.server.address.to_string().into_bytes(),
        ));
    }
    // The PXE spec asks servers to echo the client's UUID (option 97).
    if let Some(DhcpOption::ClientMachineIdentifier(uuid)) =
        msg.opts().get(OptionCode::ClientMachineIdentifier)
    {
        o.insert(DhcpOption::ClientMachineIdentifier(uuid.clone()));
    }
    o.insert(DhcpOption::BootfileName(file.clone().into_bytes()));
    if file.len() < 128 {
        m.set_fname_str(&file);
    }
    Decision::Reply {
        msg: Box::new(m),
        to,
        client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::decide::encode;
    use dhcproto::{Decodable, Decoder};
    use std::path::Path;

    const CONFIG: &str = r#"
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "/srv/pxed/boot"
state_dir = "/var/lib/pxed"
[dhcp]
mode = "proxy"
subnet = "10.123.0.0/24"
[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
[hosts."de:00:00:00:00:de"]
profile = "fedora"
"#;

    /// A request from `mac` (the same header layout as in decide_tests.rs), then `options`.
    fn request(mac: [u8; 6], ciaddr: [u8; 4], options: &[&[u8]]) -> Message {
        let mut p = vec![1, 1, 6, 0, 0xca, 0xfe, 0xba, 0xbe, 0, 0, 0x80, 0]; // op htype hlen hops xid secs flags(broadcast)
        p.extend(ciaddr); // ciaddr
        p.extend([0u8; 12]); // yiaddr siaddr giaddr
        p.extend(mac); // chaddr
        p.extend([0u8; 10 + 64 + 128]); // chaddr padding, sname, file
        p.extend([0x63, 0x82, 0x53, 0x63]); // magic cookie
        for o in options {
            p.extend(*o);
        }
        p.push(255);
        Message::decode(&mut Decoder::new(&p)).unwrap()
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
        crate::config::parse(Path::new("t.toml"), CONFIG).unwrap()
    }

    fn peer() -> SocketAddr {
        "10.123.0.57:68".parse().unwrap()
    }

    fn reply(d: Decision) -> (Message, Destination) {
        match d {
            Decision::Reply { msg, to, .. } => {
                let wire = encode(&msg, 1472).unwrap();
                (Message::decode(&mut Decoder::new(&wire)).unwrap(), to)
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
            Decision::Ignore {
                reason: "not a pxe client",
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
            Decision::Ignore {
                reason: "unmanaged mac",
                ..
            }
        ));
        let req67 = decide_proxy(
            &request(KNOWN, [0; 4], &[REQUEST, OVMF_CLASS]),
            &c,
            Port::Dhcp,
            peer(),
        );
        assert!(matches!(req67, Decision::Ignore { .. }));
    }

    #[test]
    fn port_4011_answers_only_plausible_pxe_sources() {
        let req = |ciaddr| request(KNOWN, ciaddr, &[REQUEST, ARCH_X64, OVMF_CLASS]);
        let ignored = |d: Decision| match d {
            Decision::Ignore { reason, .. } => reason,
            Decision::Reply { .. } => "replied",
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
                crate::dhcp::decide::refused::PROXY_SOURCE,
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

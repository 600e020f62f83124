//! DHCP: the IO shell around [`decide`]. Receives on UDP 67 bound to the served interface,
//! drops anything malformed, and sends each reply where RFC 2131 §4.1 says.

pub mod decide;

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::state::{Seen, Shared};
use decide::{Decision, Destination};

/// Why a datagram was dropped before a decision.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// dhcproto refused it.
    #[error("undecodable dhcp message: {0}")]
    Decode(#[from] dhcproto::error::DecodeError),
    /// dhcproto panicked on it (it does on some bad option lengths in debug builds).
    #[error("dhcp decoder panicked on malformed input")]
    DecoderPanic,
}

/// Decodes a datagram without ever letting a decoder panic take the server down.
pub fn decode(bytes: &[u8]) -> Result<Message, PacketError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        Message::decode(&mut Decoder::new(bytes))
    })) {
        Ok(r) => Ok(r?),
        Err(_) => Err(PacketError::DecoderPanic),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serves DHCP on `socket` until `cancel` fires.
pub async fn serve(
    socket: UdpSocket,
    interface: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "dhcp receive failed");
                    continue;
                }
            },
        };
        let msg = match decode(&buf[..len]) {
            Ok(m) => m,
            Err(e) => {
                warn!(%peer, len, error = %e, "dropping malformed dhcp packet");
                continue;
            }
        };
        let cfg = shared.config();
        let decision = {
            let mut leases = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            decide::decide(&msg, &cfg, &mut leases, unix_now())
        };
        match decision {
            Decision::Ignore { reason, client } => match client {
                Some(c) => {
                    info!(mac = %c.mac, kind = ?c.kind, arch = c.arch, reason, "dhcp request ignored")
                }
                None => debug!(%peer, reason, "dhcp packet ignored"),
            },
            Decision::Reply {
                msg: reply,
                to,
                client,
            } => {
                let arch = decide::client_arch_name(&client);
                shared
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(client.mac, Seen { arch: arch.clone() });
                let bytes = match decide::encode(&reply) {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(mac = %client.mac, error = %e, "cannot encode dhcp reply");
                        continue;
                    }
                };
                let request_type = message_type_name(&msg);
                let reply_type = message_type_name(&reply);
                let file = reply
                    .fname_str()
                    .and_then(|r| r.ok())
                    .unwrap_or("")
                    .trim_end_matches('\0')
                    .to_string();
                let dest = send(&socket, &interface, &bytes, to).await;
                match dest {
                    Ok(addr) => info!(
                        mac = %client.mac, request = request_type, reply = reply_type,
                        ip = %reply.yiaddr(), kind = ?client.kind, arch = %arch,
                        user_class = client.user_class.as_deref().unwrap_or(""),
                        file = %file, to = %addr, "dhcp reply sent"
                    ),
                    Err(e) => {
                        warn!(mac = %client.mac, reply = reply_type, error = %e, "dhcp send failed")
                    }
                }
            }
        }
    }
}

fn message_type_name(m: &Message) -> &'static str {
    use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => match t {
            MessageType::Discover => "discover",
            MessageType::Offer => "offer",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Ack => "ack",
            MessageType::Nak => "nak",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
            _ => "other",
        },
        _ => "none",
    }
}

async fn send(
    socket: &UdpSocket,
    interface: &str,
    bytes: &[u8],
    to: Destination,
) -> std::io::Result<SocketAddr> {
    let addr = match to {
        Destination::Relay(ip) => SocketAddr::from((ip, 67)),
        Destination::Unicast(ip) => SocketAddr::from((ip, 68)),
        Destination::Broadcast => SocketAddr::from((Ipv4Addr::BROADCAST, 68)),
        Destination::Hardware(ip, mac) => {
            match crate::net::inject_arp(socket, interface, ip, mac) {
                Ok(()) => SocketAddr::from((ip, 68)),
                Err(e) => {
                    debug!(%mac, error = %e, "arp injection failed, broadcasting instead");
                    SocketAddr::from((Ipv4Addr::BROADCAST, 68))
                }
            }
        }
    };
    socket.send_to(bytes, addr).await?;
    Ok(addr)
}

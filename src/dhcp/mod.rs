//! DHCP: the IO shell around [`decide`]. Receives on UDP 67 bound to the served interface,
//! drops anything malformed, and sends each reply where RFC 2131 §4.1 says.

pub mod decide;
pub mod proxy;
mod wire;

pub use wire::{decode, PacketError};

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use dhcproto::v4::Message;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::leases::Change;
use crate::state::{unix_now, Seen, Shared};
use crate::store::LeaseStore;
use decide::{Decision, Destination};

/// The socket a reply leaves from: the one its request arrived on.
#[derive(Clone)]
pub struct Outlet {
    /// The DHCP socket, bound to `interface`.
    socket: Arc<UdpSocket>,
    /// Its interface, for ARP entries.
    interface: Arc<str>,
    /// For the counters.
    shared: Arc<Shared>,
}

/// The queue into the lease commit task, shared by every interface's DHCP loop.
#[derive(Clone)]
pub struct CommitQueue(mpsc::UnboundedSender<Pending>);

/// Starts the task that commits lease changes to `store` in batches and then sends the
/// replies that waited for them. It ends once every [`CommitQueue`] clone is dropped.
pub fn start_commits(store: LeaseStore) -> (CommitQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel::<Pending>();
    (CommitQueue(tx), tokio::spawn(commit_loop(rx, store)))
}

/// A reply waiting for its lease changes to be committed.
pub struct Pending {
    /// Where it leaves from.
    outlet: Outlet,
    /// Store writes the reply depends on.
    changes: Vec<Change>,
    /// The encoded reply.
    bytes: Vec<u8>,
    /// Where it goes.
    to: Destination,
    /// For the log line once sent.
    summary: Summary,
}

/// What is logged about a sent reply.
struct Summary {
    mac: String,
    request: &'static str,
    reply: &'static str,
    ip: Ipv4Addr,
    kind: String,
    arch: String,
    user_class: String,
    file: String,
}

/// Most replies one commit carries; bounds the latency a burst can add.
const MAX_BATCH: usize = 4096;

/// Serves DHCP on `socket` (bound to `interface`, whose subnet is `cfg.dhcp.pools[home]`)
/// until `cancel` fires. Replies that depend on lease changes (ACKs, and the releases and
/// declines that produce no reply) go through `commits`, which writes them to the store in
/// batches and only then sends the replies.
pub async fn serve(
    socket: UdpSocket,
    interface: String,
    home: usize,
    shared: Arc<Shared>,
    commits: CommitQueue,
    cancel: CancellationToken,
) {
    let outlet = Outlet {
        socket: Arc::new(socket),
        interface: interface.into(),
        shared: shared.clone(),
    };
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = outlet.socket.recv_from(&mut buf) => match r {
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
                crate::metrics::inc(&shared.counters.dhcp_malformed);
                warn!(%peer, len, error = %e, "dropping malformed dhcp packet");
                continue;
            }
        };
        let cfg = shared.config();
        let (decision, changes) = {
            let mut leases = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            let d = decide::decide_on(&msg, &cfg, home, &mut leases, unix_now());
            (d, leases.take_changes())
        };
        let Some(pending) = to_pending(&shared, &cfg, &msg, peer, decision, changes, &outlet)
        else {
            continue;
        };
        if pending.changes.is_empty() {
            send_logged(pending).await;
        } else if commits.0.send(pending).is_err() {
            warn!("lease commit task is gone; reply withheld");
        }
    }
}

/// Serves proxyDHCP until `cancel` fires: DISCOVERs on `dhcp` (port 67) and REQUESTs on
/// `pxe` (port 4011), answered from the socket they came in on. Nothing is leased, so nothing
/// is written to the store.
pub async fn serve_proxy(
    dhcp: UdpSocket,
    pxe: UdpSocket,
    interface: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let dhcp = Outlet {
        socket: Arc::new(dhcp),
        interface: interface.clone().into(),
        shared: shared.clone(),
    };
    let pxe = Outlet {
        socket: Arc::new(pxe),
        interface: interface.into(),
        shared: shared.clone(),
    };
    let mut buf67 = vec![0u8; 1500];
    let mut buf4011 = vec![0u8; 1500];
    loop {
        let (port, r) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = dhcp.socket.recv_from(&mut buf67) => (proxy::Port::Dhcp, r),
            r = pxe.socket.recv_from(&mut buf4011) => (proxy::Port::Proxy, r),
        };
        let (len, peer) = match r {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "dhcp receive failed");
                continue;
            }
        };
        let (outlet, bytes) = match port {
            proxy::Port::Dhcp => (&dhcp, &buf67[..len]),
            proxy::Port::Proxy => (&pxe, &buf4011[..len]),
        };
        let msg = match decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                crate::metrics::inc(&shared.counters.dhcp_malformed);
                warn!(%peer, len, error = %e, "dropping malformed dhcp packet");
                continue;
            }
        };
        let cfg = shared.config();
        let decision = proxy::decide_proxy(&msg, &cfg, port, peer);
        if let Some(p) = to_pending(&shared, &cfg, &msg, peer, decision, Vec::new(), outlet) {
            send_logged(p).await;
        }
    }
}

/// Logs a decision and turns a reply (or a lease change without one) into a [`Pending`].
fn to_pending(
    shared: &Shared,
    cfg: &crate::config::Config,
    msg: &Message,
    peer: SocketAddr,
    decision: Decision,
    changes: Vec<Change>,
    outlet: &Outlet,
) -> Option<Pending> {
    record_events(shared, msg, &decision);
    let pending = match decision {
        Decision::Ignore { reason, client } => {
            match client {
                Some(c) if reason == "pool exhausted" => {
                    let n = shared
                        .counters
                        .dhcp_pool_exhausted
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    let link = decide::link_address(msg).unwrap_or(cfg.server.address);
                    warn!(mac = %c.mac, %link, total = n, "dhcp pool exhausted, no offer sent");
                }
                Some(c) => {
                    crate::metrics::inc(&shared.counters.dhcp_ignored);
                    info!(mac = %c.mac, kind = ?c.kind, arch = c.arch, reason, "dhcp request ignored")
                }
                None => {
                    crate::metrics::inc(&shared.counters.dhcp_ignored);
                    debug!(%peer, reason, "dhcp packet ignored")
                }
            }
            if changes.is_empty() {
                return None;
            }
            Pending {
                outlet: outlet.clone(),
                changes,
                bytes: Vec::new(),
                to: Destination::Broadcast,
                summary: Summary::none(),
            }
        }
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
            let bytes = match decide::encode(&reply, decide::max_reply_len(msg)) {
                Ok(b) => b,
                Err(e) => {
                    warn!(mac = %client.mac, error = %e, "cannot encode dhcp reply");
                    return None;
                }
            };
            let summary = Summary {
                mac: client.mac.to_string(),
                request: message_type_name(msg),
                reply: message_type_name(&reply),
                ip: reply.yiaddr(),
                kind: format!("{:?}", client.kind),
                arch,
                user_class: client.user_class.clone().unwrap_or_default(),
                file: reply
                    .fname_str()
                    .and_then(|r| r.ok())
                    .unwrap_or("")
                    .trim_end_matches('\0')
                    .to_string(),
            };
            Pending {
                outlet: outlet.clone(),
                changes,
                bytes,
                to,
                summary,
            }
        }
    };
    Some(pending)
}

/// Adds the request, and the reply or the reason for none, to the client's timeline.
fn record_events(shared: &Shared, msg: &Message, decision: &Decision) {
    let client = match decision {
        Decision::Reply { client, .. } => client,
        Decision::Ignore {
            client: Some(c), ..
        } => c,
        Decision::Ignore { client: None, .. } => return,
    };
    let request = match message_type_name(msg) {
        "discover" => "dhcp_discover",
        "request" => "dhcp_request",
        "release" => "dhcp_release",
        "decline" => "dhcp_decline",
        "inform" => "dhcp_inform",
        _ => "dhcp_other",
    };
    shared.events.record(
        client.mac,
        request,
        serde_json::json!({
            "arch": decide::client_arch_name(client),
            "user_class": client.user_class,
            "client_kind": format!("{:?}", client.kind),
        }),
    );
    match decision {
        Decision::Reply { msg: reply, .. } => {
            let kind = match message_type_name(reply) {
                "offer" => "dhcp_offer",
                "ack" => "dhcp_ack",
                "nak" => "dhcp_nak",
                _ => "dhcp_reply",
            };
            let file = reply
                .fname_str()
                .and_then(|r| r.ok())
                .unwrap_or("")
                .trim_end_matches('\0')
                .to_string();
            shared.events.record(
                client.mac,
                kind,
                serde_json::json!({"ip": reply.yiaddr().to_string(), "file": file}),
            );
        }
        Decision::Ignore { reason, .. } => {
            shared.events.record(
                client.mac,
                "dhcp_ignored",
                serde_json::json!({"reason": reason}),
            );
        }
    }
}

impl Summary {
    fn none() -> Summary {
        Summary {
            mac: String::new(),
            request: "",
            reply: "",
            ip: Ipv4Addr::UNSPECIFIED,
            kind: String::new(),
            arch: String::new(),
            user_class: String::new(),
            file: String::new(),
        }
    }
}

/// Commits batches of lease changes, then sends the replies that waited for them.
async fn commit_loop(mut rx: mpsc::UnboundedReceiver<Pending>, store: LeaseStore) {
    let store = Arc::new(std::sync::Mutex::new(store));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let changes: Vec<Change> = batch
            .iter()
            .flat_map(|p| p.changes.iter().cloned())
            .collect();
        let s = store.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let mut store = s.lock().unwrap_or_else(|e| e.into_inner());
            store.commit(&changes)
        })
        .await;
        match committed {
            Ok(Ok(())) => {
                debug!(replies = batch.len(), "lease batch committed");
                for p in batch {
                    if !p.bytes.is_empty() {
                        send_logged(p).await;
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, withheld = batch.len(), "lease commit failed; replies withheld")
            }
            Err(e) => {
                warn!(error = %e, withheld = batch.len(), "lease commit task failed; replies withheld")
            }
        }
    }
}

async fn send_logged(p: Pending) {
    let s = p.summary;
    let arp = p.outlet.shared.can(crate::abilities::ARP_UNICAST);
    match send(&p.outlet.socket, &p.outlet.interface, &p.bytes, p.to, arp).await {
        Ok(addr) => {
            crate::metrics::inc(&p.outlet.shared.counters.dhcp_replies);
            info!(
            mac = %s.mac, request = s.request, reply = s.reply, ip = %s.ip, kind = %s.kind,
            arch = %s.arch, user_class = s.user_class.as_str(), file = %s.file, to = %addr,
            "dhcp reply sent"
            )
        }
        Err(e) => warn!(mac = %s.mac, reply = s.reply, error = %e, "dhcp send failed"),
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
    arp: bool,
) -> std::io::Result<SocketAddr> {
    let addr = match to {
        Destination::Relay(ip) => SocketAddr::from((ip, 67)),
        Destination::Unicast(ip) => SocketAddr::from((ip, 68)),
        Destination::Broadcast => SocketAddr::from((Ipv4Addr::BROADCAST, 68)),
        Destination::Peer(addr) => addr,
        // Without CAP_NET_ADMIN (reported once at start-up) there is no point trying.
        Destination::Hardware(_, _) if !arp => SocketAddr::from((Ipv4Addr::BROADCAST, 68)),
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

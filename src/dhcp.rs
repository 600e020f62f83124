//! DHCP: the IO shell around [`decide`]. Receives on UDP 67 bound to the served interface,
//! drops anything malformed, and sends each reply where RFC 2131 §4.1 says.

pub(crate) mod client;
pub(crate) mod decide;
pub(crate) mod proxy;
pub(crate) mod reply;
mod wire;

pub(crate) use wire::decode;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use dhcproto::v4::Message;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::events::EventKind;
use crate::leases::{Batch, Lease};
use crate::metrics::Refusal;
use crate::state::{unix_now, Shared};
use crate::store::LeaseStore;
use reply::{Decision, Destination, Reason};

/// The socket a reply leaves from: the one its request arrived on.
#[derive(Clone)]
pub(crate) struct Outlet {
    /// The DHCP socket, bound to `interface`.
    socket: Arc<UdpSocket>,
    /// Its interface, for ARP entries.
    interface: Arc<str>,
    /// For the counters.
    shared: Arc<Shared>,
}

/// The queue into the lease commit task, the one writer of the lease store: every DHCP
/// loop's ACKs and the admin API's lease deletions go through it, in order.
#[derive(Clone)]
pub(crate) struct CommitQueue(mpsc::Sender<Pending>);

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitQueue")
            .field("capacity", &self.0.capacity())
            .finish()
    }
}

/// Most commits waiting at once. A flood that fills it gets no replies (its clients retry)
/// rather than unbounded memory.
pub(crate) const COMMIT_QUEUE: usize = 16_384;

/// Starts the task that commits lease changes to `store` in batches and then sends the
/// replies that waited for them. If a commit fails, its changes are rolled back in
/// `shared`'s lease table and its replies withheld. It ends when `cancel` fires, after
/// committing what is already queued.
pub(crate) fn start_commits(
    store: LeaseStore,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> (CommitQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Pending>(COMMIT_QUEUE);
    (
        CommitQueue(tx),
        tokio::spawn(commit_loop(rx, store, shared, cancel)),
    )
}

impl CommitQueue {
    /// Forgets the lease of `mac` in memory and in the store, through the commit queue so
    /// that it lands after any ACK already queued. Returns the lease, `None` if there was
    /// none; on a failed commit the lease is restored in memory.
    pub(crate) async fn forget_mac(
        &self,
        shared: &Shared,
        mac: &crate::mac::Mac,
    ) -> Result<Option<Lease>, String> {
        let (lease, batch) = {
            let mut t = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            let lease = t.forget_mac(mac);
            (lease, t.take_batch())
        };
        let Some(lease) = lease else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pending = Pending {
            reply: None,
            batch,
            done: Some(tx),
        };
        if let Err(e) = self.0.send(pending).await {
            revert(shared, &e.0.batch);
            return Err("the lease commit task is gone".into());
        }
        match rx.await {
            Ok(Ok(())) => Ok(Some(lease)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the lease commit task is gone".into()),
        }
    }
}

/// Lease changes waiting to be committed, and the reply that waits for them.
pub(crate) struct Pending {
    /// The reply to send once committed (none for a RELEASE, a DECLINE or an admin delete).
    reply: Option<Reply>,
    /// Store writes, and what each replaced in memory.
    batch: Batch,
    /// Told the outcome of the commit, for callers that wait for it.
    done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// An encoded reply and where it goes.
struct Reply {
    /// Where it leaves from.
    outlet: Outlet,
    /// The encoded reply.
    bytes: Vec<u8>,
    to: Destination,
    /// For the log line once sent.
    summary: Summary,
}

/// Rolls back a batch that never reached the store.
fn revert(shared: &Shared, batch: &Batch) {
    if !batch.is_empty() {
        shared
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .revert(batch);
    }
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
pub(crate) async fn serve(
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
        let Some(msg) = decode_logged(&shared, &buf[..len], peer) else {
            continue;
        };
        let cfg = shared.config();
        let (decision, batch) = {
            let mut leases = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            let d = decide::decide_on(&msg, &cfg, home, &mut leases, unix_now());
            for _ in 0..leases.take_takeovers() {
                shared.counters.refuse(Refusal::DhcpLeaseCap);
            }
            (d, leases.take_batch())
        };
        account(&shared, &cfg, &msg, peer, &decision);
        let Some(pending) = to_pending(&msg, decision, batch, &outlet) else {
            continue;
        };
        if pending.batch.is_empty() {
            send_logged(pending.reply).await;
            continue;
        }
        match commits.0.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                revert(&shared, &p.batch);
                shared.counters.refuse(Refusal::DhcpQueueFull);
                if let Some(more) = shared.quiet.dhcp_refused.allow() {
                    warn!(
                        queued = COMMIT_QUEUE,
                        suppressed = more,
                        "lease commit queue full; reply withheld"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(p)) => {
                revert(&shared, &p.batch);
                warn!("lease commit task is gone; reply withheld");
            }
        }
    }
}

/// Decodes a datagram; a malformed one is counted and logged (throttled) and dropped.
fn decode_logged(shared: &Shared, bytes: &[u8], peer: SocketAddr) -> Option<Message> {
    match decode(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            crate::metrics::inc(&shared.counters.dhcp_malformed);
            if let Some(more) = shared.quiet.dhcp_malformed.allow() {
                warn!(%peer, len = bytes.len(), error = %e, suppressed = more, "dropping malformed dhcp packet");
            }
            None
        }
    }
}

/// Serves proxyDHCP until `cancel` fires: DISCOVERs on `dhcp` (port 67) and REQUESTs on
/// `pxe` (port 4011), answered from the socket they came in on. Nothing is leased, so nothing
/// is written to the store.
pub(crate) async fn serve_proxy(
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
        let Some(msg) = decode_logged(&shared, bytes, peer) else {
            continue;
        };
        let cfg = shared.config();
        note_proxy_address(&shared, &cfg, &msg, port, peer);
        let decision = proxy::decide_proxy(&msg, &cfg, port, peer);
        account(&shared, &cfg, &msg, peer, &decision);
        if let Some(p) = to_pending(&msg, decision, Batch::default(), outlet) {
            send_logged(p.reply).await;
        }
    }
}

/// In proxy mode, remembers the address a managed client is seen using: the one it REQUESTs
/// from the address server on port 67, or its source on port 4011. That address then owns
/// the client's script and one-shot boot.
fn note_proxy_address(
    shared: &Shared,
    cfg: &crate::config::Config,
    msg: &Message,
    port: proxy::Port,
    peer: SocketAddr,
) {
    use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
    let Some(client) = client::classify(msg) else {
        return;
    };
    if cfg.profile_for(&client.mac).is_none() {
        return;
    }
    let ip = match port {
        proxy::Port::Dhcp => {
            let is_request = decide::message_type(msg) == Some(MessageType::Request);
            let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
                _ => None,
            };
            is_request
                .then(|| requested.unwrap_or(msg.ciaddr()))
                .filter(|ip| !ip.is_unspecified())
        }
        proxy::Port::Proxy => match peer {
            SocketAddr::V4(v4) if proxy::plausible_proxy_source(msg, cfg, peer) => Some(*v4.ip()),
            _ => None,
        },
    };
    if let Some(ip) = ip.filter(|ip| cfg.dhcp.pool_for(*ip).is_some()) {
        shared.note_seen(client.mac, |s| s.proxy_ip = Some(ip));
    }
}

/// Everything a decision leaves behind besides its reply: the machine's timeline events, the
/// count and log line of a request that gets no reply, and, for a reply, the client's arch,
/// which the HTTP step renders iPXE's script for (iPXE's own HTTP request does not carry it).
fn account(
    shared: &Shared,
    cfg: &crate::config::Config,
    msg: &Message,
    peer: SocketAddr,
    decision: &Decision,
) {
    record_events(shared, msg, decision);
    match decision {
        Decision::NoReply { reason, client } => {
            account_no_reply(shared, cfg, msg, peer, *reason, client.as_ref());
        }
        Decision::Reply(r) => {
            let arch = r.client.arch_name();
            shared.note_seen(r.client.mac, |s| s.arch = Some(arch));
        }
    }
}

/// A decision's reply, encoded for `outlet`, with the lease writes to commit before it is
/// sent; `None` when there is nothing to send or commit.
fn to_pending(msg: &Message, decision: Decision, batch: Batch, outlet: &Outlet) -> Option<Pending> {
    let reply = match decision {
        Decision::NoReply { .. } => None,
        Decision::Reply(r) => Some(encode_reply(msg, r, outlet)?),
    };
    (reply.is_some() || !batch.is_empty()).then_some(Pending {
        reply,
        batch,
        done: None,
    })
}

/// Counts and logs a request that gets no reply. Anyone can cause a policy refusal or an
/// unmanaged MAC at any rate, so those log lines are throttled.
fn account_no_reply(
    shared: &Shared,
    cfg: &crate::config::Config,
    msg: &Message,
    peer: SocketAddr,
    reason: Reason,
    client: Option<&client::Client>,
) {
    let c = &shared.counters;
    let Some(client) = client else {
        crate::metrics::inc(&c.dhcp_ignored);
        debug!(%peer, reason = reason.as_str(), "dhcp packet ignored");
        return;
    };
    let (mac, kind, arch) = (client.mac, client.kind, client.arch);
    if reason == Reason::PoolExhausted {
        let n = c.dhcp_pool_exhausted.fetch_add(1, Ordering::Relaxed) + 1;
        let link = decide::link_address(msg).unwrap_or(cfg.server.address);
        warn!(%mac, %link, total = n, "dhcp pool exhausted, no offer sent");
    } else if reason.handled() {
        info!(%mac, ?kind, arch, reason = reason.as_str(), "dhcp lease given back");
    } else if reason.floodable() {
        crate::metrics::inc(&c.dhcp_ignored);
        if let Some(r) = reason.refusal() {
            c.refuse(r);
        }
        if let Some(more) = shared.quiet.dhcp_refused.allow() {
            info!(%mac, ?kind, arch, reason = reason.as_str(), suppressed = more, "dhcp request ignored");
        }
    } else {
        crate::metrics::inc(&c.dhcp_ignored);
        info!(%mac, ?kind, arch, reason = reason.as_str(), "dhcp request ignored");
    }
}

/// Encodes a reply within the client's maximum message size, with its log summary.
fn encode_reply(msg: &Message, r: reply::Reply, outlet: &Outlet) -> Option<Reply> {
    let bytes = match reply::encode(&r.msg, reply::max_reply_len(msg)) {
        Ok(b) => b,
        Err(e) => {
            warn!(mac = %r.client.mac, error = %e, "cannot encode dhcp reply");
            return None;
        }
    };
    let summary = Summary {
        mac: r.client.mac.to_string(),
        request: message_type_name(msg),
        reply: message_type_name(&r.msg),
        ip: r.msg.yiaddr(),
        kind: format!("{:?}", r.client.kind),
        arch: r.client.arch_name(),
        user_class: r.client.user_class.clone().unwrap_or_default(),
        file: file_field(&r.msg),
    };
    Some(Reply {
        outlet: outlet.clone(),
        bytes,
        to: r.to,
        summary,
    })
}

/// The BOOTP file field as text, without its NUL padding.
fn file_field(m: &Message) -> String {
    m.fname_str()
        .and_then(|r| r.ok())
        .unwrap_or("")
        .trim_end_matches('\0')
        .to_string()
}

/// Adds the request, and the reply or the reason for none, to the client's timeline.
fn record_events(shared: &Shared, msg: &Message, decision: &Decision) {
    use dhcproto::v4::MessageType as T;
    let Some(client) = decision.client() else {
        return;
    };
    let request = match decide::message_type(msg) {
        Some(T::Discover) => EventKind::DhcpDiscover,
        Some(T::Request) => EventKind::DhcpRequest,
        Some(T::Release) => EventKind::DhcpRelease,
        Some(T::Decline) => EventKind::DhcpDecline,
        Some(T::Inform) => EventKind::DhcpInform,
        _ => EventKind::DhcpOther,
    };
    let detail = serde_json::json!({
        "arch": client.arch_name(),
        "user_class": client.user_class,
        "client_kind": format!("{:?}", client.kind),
    });
    shared.record_event(client.mac, request, detail);
    let (kind, detail) = match decision {
        Decision::Reply(r) => {
            let kind = match decide::message_type(&r.msg) {
                Some(T::Offer) => EventKind::DhcpOffer,
                Some(T::Nak) => EventKind::DhcpNak,
                _ => EventKind::DhcpAck,
            };
            let ip = r.msg.yiaddr().to_string();
            (
                kind,
                serde_json::json!({"ip": ip, "file": file_field(&r.msg)}),
            )
        }
        Decision::NoReply { reason, .. } => (
            EventKind::DhcpNoReply,
            serde_json::json!({"reason": reason.as_str()}),
        ),
    };
    shared.record_event(client.mac, kind, detail);
}

/// Commits batches of lease changes, then sends the replies that waited for them. A failed
/// commit rolls its changes back in memory and withholds its replies (the clients retry).
async fn commit_loop(
    mut rx: mpsc::Receiver<Pending>,
    store: LeaseStore,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let store = Arc::new(std::sync::Mutex::new(store));
    loop {
        let first = tokio::select! {
            biased;
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
            _ = cancel.cancelled() => match rx.try_recv() {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let depth = batch.len() + rx.len();
        shared
            .counters
            .set_queued(crate::metrics::Queue::DhcpCommit, depth);
        let mut all = Batch::default();
        for p in &mut batch {
            all.extend(std::mem::take(&mut p.batch));
        }
        // Shared with the blocking task rather than copied: a batch can hold thousands.
        let all = Arc::new(all);
        let (s, writes) = (store.clone(), all.clone());
        let committed = tokio::task::spawn_blocking(move || {
            let mut store = s.lock().unwrap_or_else(|e| e.into_inner());
            store.commit(&writes.changes).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match &committed {
            Ok(()) => debug!(replies = batch.len(), "lease batch committed"),
            Err(e) => {
                revert(&shared, &all);
                warn!(error = %e, withheld = batch.len(), "lease commit failed; changes rolled back and replies withheld");
            }
        }
        for p in batch {
            if let Some(done) = p.done {
                let _ = done.send(committed.clone());
            }
            if let (Ok(()), Some(reply)) = (&committed, p.reply) {
                send_logged(reply).await;
            }
        }
        shared
            .counters
            .set_queued(crate::metrics::Queue::DhcpCommit, rx.len());
    }
}

async fn send_logged(p: impl Into<Option<Reply>>) {
    let Some(p) = p.into() else { return };
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
    use dhcproto::v4::MessageType;
    match decide::message_type(m) {
        Some(MessageType::Discover) => "discover",
        Some(MessageType::Offer) => "offer",
        Some(MessageType::Request) => "request",
        Some(MessageType::Decline) => "decline",
        Some(MessageType::Ack) => "ack",
        Some(MessageType::Nak) => "nak",
        Some(MessageType::Release) => "release",
        Some(MessageType::Inform) => "inform",
        Some(_) => "other",
        None => "none",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::State;

    #[tokio::test]
    async fn a_lease_delete_lands_after_the_acks_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}{}[profiles.p]\naction = \"local\"\n",
            crate::testkit::server(std::path::Path::new("/srv"), dir.path()),
            crate::testkit::DHCP
        );
        let cfg = crate::testkit::config(&text);
        let shared = Shared::new(cfg);
        let stop = CancellationToken::new();
        let (queue, task) = start_commits(
            LeaseStore::open(dir.path()).unwrap(),
            shared.clone(),
            stop.clone(),
        );
        let mac: crate::mac::Mac = "de:00:00:00:00:de".parse().unwrap();
        let id = crate::leases::ClientId::from_mac(mac);
        // An ACK's lease, queued but not yet committed, then the admin's delete of it: the
        // store must end without the lease, as memory does.
        let batch = {
            let mut t = shared.leases.lock().unwrap();
            t.bind(
                &id,
                mac,
                "10.123.0.100".parse().unwrap(),
                State::Bound,
                u64::MAX / 2,
            );
            t.take_batch()
        };
        queue
            .0
            .send(Pending {
                reply: None,
                batch,
                done: None,
            })
            .await
            .unwrap();
        let deleted = queue.forget_mac(&shared, &mac).await.unwrap();
        assert!(deleted.is_some());
        assert!(LeaseStore::open(dir.path())
            .unwrap()
            .load()
            .unwrap()
            .is_empty());
        assert!(shared.leases.lock().unwrap().get_by_mac(&mac).is_none());
        stop.cancel();
        task.await.unwrap();
    }
}

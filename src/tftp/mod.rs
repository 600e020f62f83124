//! TFTP: a read-only server over [`session::Session`]. The listener only parses requests;
//! each transfer runs in its own task with its own socket (its TID), so transfers never wait
//! on each other, and opening a file happens inside that task, not under a shared lock. A
//! transfer sends a file under `boot_dir`, or the GRUB config [`crate::plan`] renders for
//! the names GRUB asks for under `grub/`.

pub mod packet;
pub mod session;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::admission::{Refused, Slot, Slots};
use crate::bootfs::{resolve_in, PathError};
use crate::events::EventKind;
use crate::limits::Throttle;
use crate::metrics::Refusal;
use crate::state::Shared;
use packet::{code, Packet};
use session::{Event, Limits, Send, Session, Status};

/// Log throttles: a flood must not turn into a flood of log lines.
struct Quiet {
    /// Refused requests (limits, paths).
    refused: Throttle,
    /// Refused write requests.
    writes: Throttle,
    /// Malformed packets.
    malformed: Throttle,
    /// Sessions whose peer never answered.
    unanswered: Throttle,
}

/// Serves TFTP read requests on `socket` until `cancel` fires; running transfers are
/// cancelled with it. Sessions get [`Slots`] within `[tftp]`'s limits and
/// the descriptor budget.
pub async fn serve(
    socket: UdpSocket,
    interface: String,
    server: Ipv4Addr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    // No grace: a forged flood must not age into the table faster than real clients get
    // in (a flood above max_sessions / grace a second would starve them).
    let slots = Slots::default();
    let quiet = Arc::new(Quiet {
        refused: Throttle::per_second(),
        writes: Throttle::per_second(),
        malformed: Throttle::per_second(),
        unanswered: Throttle::per_second(),
    });
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "tftp receive failed");
                    continue;
                }
            },
        };
        match packet::parse(&buf[..len]) {
            Ok(Packet::Rrq {
                filename,
                mode,
                options,
            }) => {
                let Some((slot, token)) = admit(&slots, &shared, peer, &quiet, &cancel) else {
                    continue;
                };
                let request = Request {
                    peer,
                    filename,
                    mode,
                    options,
                };
                let local = Local {
                    interface: interface.clone(),
                    server,
                };
                let shared = shared.clone();
                let quiet = quiet.clone();
                tracker.spawn(async move {
                    transfer(request, local, shared, slot, token, quiet).await;
                });
            }
            Ok(Packet::Wrq { filename }) => {
                if let Some(more) = quiet.writes.allow() {
                    warn!(%peer, file = %filename, suppressed = more, "tftp write refused");
                }
                let _ = socket
                    .send_to(&packet::error(code::ACCESS, "pxed is read-only"), peer)
                    .await;
            }
            Ok(other) => debug!(%peer, packet = ?other, "tftp packet outside a transfer ignored"),
            Err(e) => {
                if let Some(more) = quiet.malformed.allow() {
                    warn!(%peer, len, error = %e, suppressed = more, "dropping malformed tftp packet");
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// Gives a request from `peer` a slot (evicting the oldest unanswered session if every slot
/// is taken), or refuses it silently: an ERROR would go to a source that may be forged.
fn admit(
    slots: &Slots,
    shared: &Shared,
    peer: SocketAddr,
    quiet: &Quiet,
    stop: &CancellationToken,
) -> Option<(Slot, CancellationToken)> {
    let cfg = shared.config();
    let total = cfg.tftp.max_sessions.min(shared.budget().tftp_sessions);
    let per_client = cfg.tftp.max_sessions_per_client;
    let why = match slots.take(peer.ip(), total, per_client, stop) {
        Ok(g) => {
            if g.evicted {
                shared.counters.refuse(Refusal::TftpEvicted);
            }
            return Some((g.slot, g.token));
        }
        Err(Refused::PerClient) => Refusal::TftpPerClient,
        Err(Refused::Full) => Refusal::TftpFull,
    };
    let running = slots.len();
    shared.counters.refuse(why);
    if let Some(more) = quiet.refused.allow() {
        let (_, reason) = why.labels();
        warn!(%peer, reason, running, max_sessions = total, max_sessions_per_client = per_client, suppressed = more, "tftp request refused by a limit");
    }
    None
}

/// What a transfer sends: a file under `boot_dir`, or a GRUB config pxed rendered.
enum Source {
    /// An open regular file.
    File(std::fs::File),
    /// Bytes rendered for this request.
    Rendered(Vec<u8>),
}

impl Source {
    /// Fills `buf` from `offset`; the session never asks past the size it was given.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Source::File(f) => f.read_exact_at(buf, offset),
            Source::Rendered(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let chunk = b
                    .get(start..start.saturating_add(buf.len()))
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(chunk);
                Ok(())
            }
        }
    }
}

/// Opens what `filename` names for `peer`, which reached pxed at `server`: the GRUB config
/// of a machine (see [`crate::grub`]), with the plan to record once it is delivered, or a
/// regular file inside `boot_dir`. pxed owns the names GRUB asks for under `grub/`: a file
/// of that name in `boot_dir` is not served.
fn open(
    shared: &Shared,
    filename: &str,
    peer: Option<Ipv4Addr>,
    server: Ipv4Addr,
) -> Result<(Source, u64, Option<crate::plan::Plan>), PathError> {
    if let Some(asked) = crate::grub::asked(filename) {
        return match crate::plan::grub_config(shared, asked, peer, server) {
            Some(g) => {
                let size = g.body.len() as u64;
                Ok((Source::Rendered(g.body.into_bytes()), size, g.plan))
            }
            None => Err(PathError::NotFound(filename.into())),
        };
    }
    let path = resolve_in(&shared.config().server.boot_dir, filename)?;
    let (file, size) = std::fs::File::open(&path)
        .and_then(|f| f.metadata().map(|m| (f, m.len())))
        .map_err(|source| PathError::Io {
            path: filename.into(),
            source,
        })?;
    Ok((Source::File(file), size, None))
}

/// Where a transfer's own socket is bound: the listener's interface and pxed's address on it.
struct Local {
    /// The interface the request came in on.
    interface: String,
    /// pxed's address on it (the transfer's source address).
    server: Ipv4Addr,
}

/// A read request, as parsed by the listener.
struct Request {
    /// Who sent it (its TID).
    peer: SocketAddr,
    /// The file asked for, as sent.
    filename: String,
    /// Transfer mode.
    mode: String,
    /// RFC 2347 options, as sent.
    options: Vec<(String, String)>,
}

/// Runs one transfer in its own task: opens its socket (its TID) and the file, then feeds
/// the session's packets out and the peer's ACKs in until it ends, is evicted or cancelled.
async fn transfer(
    req: Request,
    at: Local,
    shared: Arc<Shared>,
    slot: Slot,
    token: CancellationToken,
    quiet: Arc<Quiet>,
) {
    let cfg = shared.config();
    let peer = req.peer;
    let filename = req.filename.as_str();
    let machine = match peer {
        SocketAddr::V4(v4) => shared.mac_of(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    let mac = machine.map(|m| m.to_string()).unwrap_or_default();
    let record = |kind: EventKind, detail: serde_json::Value| {
        if let Some(m) = machine {
            shared.record_event(m, kind, detail);
        }
    };
    let local = SocketAddr::from((at.server, 0));
    let sock = match crate::net::udp_on_interface(&at.interface, local) {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, error = %e, "cannot open tftp transfer socket");
            return;
        }
    };
    if let Err(e) = sock.connect(peer).await {
        warn!(%peer, error = %e, "cannot connect tftp transfer socket");
        return;
    }
    // Client-facing messages are generic: paths and OS errors stay in pxed's own log.
    let refuse = |code: u16, message: &'static str| {
        let sock = &sock;
        async move {
            let _ = sock.send(&packet::error(code, message)).await;
        }
    };
    if req.mode != "octet" && req.mode != "netascii" {
        refuse(code::ILLEGAL, "unsupported mode").await;
        return;
    }
    let peer_ip = match peer {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    let (file, size, grub_plan) = match open(&shared, filename, peer_ip, at.server) {
        Ok(x) => x,
        Err(e) => {
            crate::metrics::inc(&shared.counters.tftp_failed);
            record(
                EventKind::TftpError,
                serde_json::json!({"file": filename, "error": e.to_string()}),
            );
            if let Some(more) = quiet.refused.allow() {
                warn!(%peer, %mac, file = %filename, error = %e, suppressed = more, "tftp request refused");
            }
            match e {
                PathError::NotFound(_) | PathError::NotAFile(_) | PathError::Invalid(_) => {
                    refuse(code::NOT_FOUND, "file not found").await
                }
                _ => refuse(code::ACCESS, "access violation").await,
            }
            return;
        }
    };
    let limits = Limits {
        max_blksize: cfg.tftp.max_blksize,
        max_windowsize: cfg.tftp.max_windowsize,
        max_timeout: cfg.tftp.max_timeout,
        unanswered_timeout: cfg.tftp.unanswered_timeout,
        unanswered_retries: cfg.tftp.unanswered_retries,
        ..Limits::default()
    };
    let params = session::negotiate(&req.options, size, &limits);
    debug!(
        %peer, %mac, file = %filename, size, blksize = params.blksize,
        windowsize = params.windowsize, "tftp session opened"
    );
    let started = Instant::now();
    let mut session = Session::new(size, params, &limits);
    let mut out = vec![0u8; 4 + usize::from(session.params().blksize)];
    let mut inbuf = vec![0u8; 1024];
    let mut step = session.start();
    loop {
        for s in &step.send {
            let sent = match s {
                Send::Oack(o) => sock.send(&packet::oack(o)).await,
                Send::Error { code, message } => sock.send(&packet::error(*code, message)).await,
                Send::Data { block, offset, len } => {
                    packet::data_header(&mut out, *block);
                    // Reads come from the page cache and are short, so they run inline.
                    if let Err(e) = file.read_at(&mut out[4..4 + len], *offset) {
                        warn!(%peer, file = %filename, error = %e, "tftp read failed");
                        refuse(code::UNDEFINED, "read error").await;
                        return;
                    }
                    sock.send(&out[..4 + len]).await
                }
            };
            if let Err(e) = sent {
                warn!(%peer, %mac, file = %filename, error = %e, "tftp send failed");
                return;
            }
        }
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis() as u64;
        match step.status {
            Status::Running => {}
            Status::Done => {
                crate::metrics::inc(&shared.counters.tftp_done);
                if machine.is_some_and(|m| crate::plan::completes_boot(&shared, &cfg, &m, filename))
                {
                    crate::metrics::inc(&shared.counters.boots_completed);
                }
                // Only now, with every block ACKed from the transfer's own port, does the
                // machine have its GRUB config: a forged request never gets here.
                if let Some(plan) = &grub_plan {
                    crate::plan::served(&shared, plan, peer_ip, crate::plan::Loader::Grub);
                }
                crate::metrics::add(&shared.counters.tftp_bytes, size);
                record(
                    EventKind::TftpDone,
                    serde_json::json!({"file": filename, "bytes": size, "duration_ms": ms}),
                );
                let secs = elapsed.as_secs_f64().max(1e-6);
                info!(
                    %peer, %mac, file = %filename, bytes = size, duration_ms = ms,
                    mbytes_per_s = format!("{:.1}", size as f64 / secs / 1e6),
                    "tftp transfer finished"
                );
                return;
            }
            Status::AbortedByClient { code, message } => {
                crate::metrics::inc(&shared.counters.tftp_aborted);
                record(
                    EventKind::TftpAborted,
                    serde_json::json!({"file": filename, "code": code, "message": message, "bytes": session.bytes_acked()}),
                );
                info!(
                    %peer, %mac, file = %filename, code, message = %message,
                    bytes = session.bytes_acked(), "tftp transfer aborted by client"
                );
                return;
            }
            Status::TimedOut => {
                crate::metrics::inc(&shared.counters.tftp_failed);
                record(
                    EventKind::TftpError,
                    serde_json::json!({"file": filename, "error": "timed out", "bytes": session.bytes_acked()}),
                );
                warn!(%peer, %mac, file = %filename, bytes = session.bytes_acked(), "tftp transfer timed out");
                return;
            }
            Status::Unanswered => {
                shared.counters.refuse(Refusal::TftpUnanswered);
                if let Some(more) = quiet.unanswered.allow() {
                    warn!(%peer, file = %filename, suppressed = more, "tftp peer never answered; session closed");
                }
                return;
            }
        }
        let was_answered = session.answered();
        let event = loop {
            let r = tokio::select! {
                biased;
                _ = token.cancelled() => {
                    debug!(%peer, file = %filename, "unanswered tftp session evicted");
                    return;
                }
                r = tokio::time::timeout(session.timeout(), sock.recv(&mut inbuf)) => r,
            };
            match r {
                Err(_) => break Event::Timeout,
                Ok(Err(e)) => {
                    // ICMP port unreachable: the client is gone.
                    info!(%peer, %mac, file = %filename, error = %e, "tftp client went away");
                    return;
                }
                Ok(Ok(n)) => match packet::parse(&inbuf[..n]) {
                    Ok(Packet::Ack(b)) => break Event::Ack(b),
                    Ok(Packet::Error { code, message }) => {
                        // Logged and kept in the timeline: a bounded prefix only.
                        let message = crate::events::cut_str(&message).to_string();
                        break Event::Error { code, message };
                    }
                    Ok(other) => {
                        debug!(%peer, packet = ?other, "unexpected tftp packet in transfer")
                    }
                    Err(e) => {
                        if let Some(more) = quiet.malformed.allow() {
                            warn!(%peer, error = %e, suppressed = more, "dropping malformed tftp packet");
                        }
                    }
                },
            }
        };
        step = session.handle(event);
        if !was_answered && session.answered() {
            if !slot.protect() {
                debug!(%peer, file = %filename, "tftp session evicted as its peer answered");
                return;
            }
            let p = session.params();
            info!(
                %peer, %mac, file = %filename, size, blksize = p.blksize,
                windowsize = p.windowsize, "tftp transfer started"
            );
            record(
                EventKind::TftpStart,
                serde_json::json!({"file": filename, "size": size, "blksize": p.blksize, "windowsize": p.windowsize}),
            );
        }
    }
}

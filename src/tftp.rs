//! TFTP: a read-only server over [`session::Session`]. The listener only parses requests;
//! each transfer runs in its own task with its own socket (its TID), so transfers never wait
//! on each other, and opening a file happens inside that task, not under a shared lock. A
//! transfer sends a file under `boot_dir`, or the GRUB config [`crate::plan`] renders for
//! the names GRUB asks for under `grub/`.

pub(crate) mod packet;
pub(crate) mod session;

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
pub(crate) async fn serve(
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
    let listener = Listener {
        socket,
        at: Local { interface, server },
        shared,
        slots,
        quiet,
        tracker: tracker.clone(),
    };
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "tftp receive failed");
                    continue;
                }
            },
        };
        listener.on_packet(&buf[..len], peer, &cancel).await;
    }
    tracker.close();
    tracker.wait().await;
}

/// The listener's socket and what every transfer it starts shares.
struct Listener {
    socket: UdpSocket,
    at: Local,
    shared: Arc<Shared>,
    slots: Slots,
    quiet: Arc<Quiet>,
    tracker: TaskTracker,
}

impl Listener {
    /// Starts a transfer for a read request that gets a slot, refuses writes, and drops
    /// anything else.
    async fn on_packet(&self, bytes: &[u8], peer: SocketAddr, cancel: &CancellationToken) {
        let quiet = &self.quiet;
        match packet::parse(bytes) {
            Ok(Packet::Rrq {
                filename,
                mode,
                options,
            }) => {
                let Some((slot, token)) = admit(&self.slots, &self.shared, peer, quiet, cancel)
                else {
                    return;
                };
                let request = Request {
                    peer,
                    filename,
                    mode,
                    options,
                };
                let at = Local {
                    interface: self.at.interface.clone(),
                    server: self.at.server,
                };
                let (shared, quiet) = (self.shared.clone(), quiet.clone());
                self.tracker
                    .spawn(transfer(request, at, shared, slot, token, quiet));
            }
            Ok(Packet::Wrq { filename }) => {
                if let Some(more) = quiet.writes.allow() {
                    warn!(%peer, file = %filename, suppressed = more, "tftp write refused");
                }
                let refusal = packet::error(code::ACCESS, "pxed is read-only");
                let _ = self.socket.send_to(&refusal, peer).await;
            }
            Ok(other) => debug!(%peer, packet = ?other, "tftp packet outside a transfer ignored"),
            Err(e) => {
                if let Some(more) = quiet.malformed.allow() {
                    let len = bytes.len();
                    warn!(%peer, len, error = %e, suppressed = more, "dropping malformed tftp packet");
                }
            }
        }
    }
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
fn open_source(
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
    mode: String,
    /// RFC 2347 options, as sent.
    options: Vec<(String, String)>,
}

/// Runs one transfer in its own task: [`Transfer::open`] opens its socket (its TID) and the
/// file; then the session's packets go out ([`Transfer::send`]), its status is logged and
/// counted once it ends ([`Transfer::report`]), and the peer's ACKs come in
/// ([`Transfer::next_event`]) until it ends, is evicted or cancelled.
async fn transfer(
    req: Request,
    at: Local,
    shared: Arc<Shared>,
    slot: Slot,
    token: CancellationToken,
    quiet: Arc<Quiet>,
) {
    let Some((t, mut session)) = Transfer::open(req, at, shared, quiet).await else {
        return;
    };
    let mut out = vec![0u8; 4 + usize::from(session.params().blksize)];
    let mut inbuf = vec![0u8; 1024];
    let mut step = session.start();
    loop {
        if !t.send(&step.send, &mut out).await {
            return;
        }
        if t.report(&step.status, &session) {
            return;
        }
        let was_answered = session.answered();
        let Some(event) = t.next_event(&session, &token, &mut inbuf).await else {
            return;
        };
        step = session.handle(event);
        if !was_answered && session.answered() && !t.answered(&session, &slot) {
            return;
        }
    }
}

/// Who asked for what, and the transfer's own socket (its TID) to answer from: all that a
/// refusal needs, known before pxed knows whether it can serve the file.
struct Requester {
    shared: Arc<Shared>,
    quiet: Arc<Quiet>,
    peer: SocketAddr,
    peer_ip: Option<Ipv4Addr>,
    filename: String,
    /// The machine pxed knows at the peer's address, for timelines and boot counts.
    machine: Option<crate::mac::Mac>,
    /// Its MAC as logged (empty when unknown).
    mac: String,
    sock: UdpSocket,
}

impl Requester {
    /// Counts, records and answers a request for something pxed does not serve.
    async fn refuse(&self, e: PathError) {
        let (peer, mac, file) = (self.peer, &self.mac, &self.filename);
        crate::metrics::inc(&self.shared.counters.tftp_failed);
        let detail = serde_json::json!({"file": file, "error": e.to_string()});
        self.record(EventKind::TftpError, detail);
        if let Some(more) = self.quiet.refused.allow() {
            warn!(%peer, %mac, %file, error = %e, suppressed = more, "tftp request refused");
        }
        let error = match e {
            PathError::NotFound(_) | PathError::NotAFile(_) | PathError::Invalid(_) => {
                packet::error(code::NOT_FOUND, "file not found")
            }
            _ => packet::error(code::ACCESS, "access violation"),
        };
        let _ = self.sock.send(&error).await;
    }

    /// Adds an event to the machine's timeline, when pxed knows the machine.
    fn record(&self, kind: EventKind, detail: serde_json::Value) {
        if let Some(m) = self.machine {
            self.shared.record_event(m, kind, detail);
        }
    }
}

/// One transfer: its requester, and the source it is served from.
struct Transfer {
    who: Requester,
    source: Source,
    size: u64,
    /// The GRUB config's plan, recorded with [`crate::plan::served`] once delivered.
    grub_plan: Option<crate::plan::Plan>,
    /// When the source was open, which a transfer's duration and rate count from.
    started: Instant,
}

impl Transfer {
    /// Opens the transfer's own socket, connected to the peer, and what it asked for; a
    /// request pxed cannot serve gets an ERROR from that socket, and `None`. Client-facing
    /// messages are generic: paths and OS errors stay in pxed's own log.
    async fn open(
        req: Request,
        at: Local,
        shared: Arc<Shared>,
        quiet: Arc<Quiet>,
    ) -> Option<(Transfer, Session)> {
        let peer = req.peer;
        let sock = match connected_socket(&at, peer).await {
            Ok(s) => s,
            Err(e) => {
                warn!(%peer, error = %e, "cannot open tftp transfer socket");
                return None;
            }
        };
        if req.mode != "octet" && req.mode != "netascii" {
            let _ = sock
                .send(&packet::error(code::ILLEGAL, "unsupported mode"))
                .await;
            return None;
        }
        let peer_ip = match peer {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        };
        let machine = peer_ip.and_then(|ip| shared.mac_of(ip));
        let who = Requester {
            mac: machine.map(|m| m.to_string()).unwrap_or_default(),
            machine,
            peer,
            peer_ip,
            filename: req.filename,
            sock,
            shared,
            quiet,
        };
        match open_source(&who.shared, &who.filename, peer_ip, at.server) {
            Ok((source, size, grub_plan)) => {
                let t = Transfer {
                    who,
                    source,
                    size,
                    grub_plan,
                    started: Instant::now(),
                };
                let session = t.negotiate(&req.options);
                Some((t, session))
            }
            Err(e) => {
                who.refuse(e).await;
                None
            }
        }
    }

    /// The session for the options the client sent, within `[tftp]`'s limits.
    fn negotiate(&self, options: &[(String, String)]) -> Session {
        let t = &self.who.shared.config().tftp;
        let limits = Limits {
            max_blksize: t.max_blksize,
            max_windowsize: t.max_windowsize,
            max_timeout: t.max_timeout,
            unanswered_timeout: t.unanswered_timeout,
            unanswered_retries: t.unanswered_retries,
            ..Limits::default()
        };
        let params = session::negotiate(options, self.size, &limits);
        debug!(
            peer = %self.who.peer, mac = %self.who.mac, file = %self.who.filename, size = self.size,
            blksize = params.blksize, windowsize = params.windowsize, "tftp session opened"
        );
        Session::new(self.size, params, &limits)
    }

    /// Sends what the session asked for, reading DATA blocks from the source into `out`;
    /// `false` when the transfer must end (a read or send failed).
    async fn send(&self, sends: &[Send], out: &mut [u8]) -> bool {
        for s in sends {
            let sent = match s {
                Send::Oack(o) => self.who.sock.send(&packet::oack(o)).await,
                Send::Error { code, message } => {
                    self.who.sock.send(&packet::error(*code, message)).await
                }
                Send::Data { block, offset, len } => {
                    packet::data_header(out, *block);
                    // Reads come from the page cache and are short, so they run inline.
                    if let Err(e) = self.source.read_at(&mut out[4..4 + len], *offset) {
                        warn!(peer = %self.who.peer, file = %self.who.filename, error = %e, "tftp read failed");
                        let _ = self
                            .who
                            .sock
                            .send(&packet::error(code::UNDEFINED, "read error"))
                            .await;
                        return false;
                    }
                    self.who.sock.send(&out[..4 + len]).await
                }
            };
            if let Err(e) = sent {
                warn!(peer = %self.who.peer, mac = %self.who.mac, file = %self.who.filename, error = %e, "tftp send failed");
                return false;
            }
        }
        true
    }

    /// Logs, counts and records a session that has ended; `true` if it has.
    fn report(&self, status: &Status, session: &Session) -> bool {
        let (peer, mac, file) = (self.who.peer, &self.who.mac, &self.who.filename);
        let c = &self.who.shared.counters;
        let bytes = session.bytes_acked();
        match status {
            Status::Running => return false,
            Status::Done => self.done(),
            Status::AbortedByClient { code, message } => {
                crate::metrics::inc(&c.tftp_aborted);
                let detail = serde_json::json!({"file": file, "code": code, "message": message, "bytes": bytes});
                self.who.record(EventKind::TftpAborted, detail);
                info!(%peer, %mac, %file, code, message = %message, bytes, "tftp transfer aborted by client");
            }
            Status::TimedOut => {
                crate::metrics::inc(&c.tftp_failed);
                let detail =
                    serde_json::json!({"file": file, "error": "timed out", "bytes": bytes});
                self.who.record(EventKind::TftpError, detail);
                warn!(%peer, %mac, %file, bytes, "tftp transfer timed out");
            }
            Status::Unanswered => {
                c.refuse(Refusal::TftpUnanswered);
                if let Some(more) = self.who.quiet.unanswered.allow() {
                    warn!(%peer, %file, suppressed = more, "tftp peer never answered; session closed");
                }
            }
        }
        true
    }

    /// A completed transfer: every block was ACKed from the transfer's own port.
    fn done(&self) {
        let (shared, file, size) = (&self.who.shared, &self.who.filename, self.size);
        crate::metrics::inc(&shared.counters.tftp_done);
        if self
            .who
            .machine
            .is_some_and(|m| crate::plan::completes_boot(shared, &m, file))
        {
            crate::metrics::inc(&shared.counters.boots_completed);
        }
        // Only now does the machine have its GRUB config: a forged request never gets here.
        if let Some(plan) = &self.grub_plan {
            crate::plan::served(shared, plan, self.who.peer_ip, crate::plan::Loader::Grub);
        }
        crate::metrics::add(&shared.counters.tftp_bytes, size);
        let elapsed = self.started.elapsed();
        let ms = elapsed.as_millis() as u64;
        let detail = serde_json::json!({"file": file, "bytes": size, "duration_ms": ms});
        self.who.record(EventKind::TftpDone, detail);
        let rate = size as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
        info!(
            peer = %self.who.peer, mac = %self.who.mac, %file, bytes = size, duration_ms = ms,
            mbytes_per_s = format!("{rate:.1}"), "tftp transfer finished"
        );
    }

    /// The peer's next ACK or ERROR, or the session's timeout; `None` when the transfer
    /// ends instead (evicted, cancelled, or the client is gone). Stray and malformed packets
    /// are dropped.
    async fn next_event(
        &self,
        session: &Session,
        token: &CancellationToken,
        inbuf: &mut [u8],
    ) -> Option<Event> {
        let (peer, file) = (self.who.peer, &self.who.filename);
        loop {
            let r = tokio::select! {
                biased;
                _ = token.cancelled() => {
                    debug!(%peer, %file, "unanswered tftp session evicted");
                    return None;
                }
                r = tokio::time::timeout(session.timeout(), self.who.sock.recv(inbuf)) => r,
            };
            let n = match r {
                Err(_) => return Some(Event::Timeout),
                Ok(Err(e)) => {
                    // ICMP port unreachable: the client is gone.
                    info!(%peer, mac = %self.who.mac, %file, error = %e, "tftp client went away");
                    return None;
                }
                Ok(Ok(n)) => n,
            };
            match packet::parse(&inbuf[..n]) {
                Ok(Packet::Ack(b)) => return Some(Event::Ack(b)),
                Ok(Packet::Error { code, message }) => {
                    // Logged and kept in the timeline: a bounded prefix only.
                    let message = crate::events::cut_str(&message).to_string();
                    return Some(Event::Error { code, message });
                }
                Ok(other) => debug!(%peer, packet = ?other, "unexpected tftp packet in transfer"),
                Err(e) => {
                    if let Some(more) = self.who.quiet.malformed.allow() {
                        warn!(%peer, error = %e, suppressed = more, "dropping malformed tftp packet");
                    }
                }
            }
        }
    }

    /// The peer answered for the first time: the session now holds a protected slot (it
    /// can no longer be evicted). `false` if it was evicted just before.
    fn answered(&self, session: &Session, slot: &Slot) -> bool {
        let (peer, mac, file) = (self.who.peer, &self.who.mac, &self.who.filename);
        if !slot.protect() {
            debug!(%peer, %file, "tftp session evicted as its peer answered");
            return false;
        }
        let p = session.params();
        let (size, blksize, windowsize) = (self.size, p.blksize, p.windowsize);
        info!(%peer, %mac, %file, size, blksize, windowsize, "tftp transfer started");
        let detail = serde_json::json!({"file": file, "size": size, "blksize": blksize, "windowsize": windowsize});
        self.who.record(EventKind::TftpStart, detail);
        true
    }
}

/// A socket of the transfer's own (its TID) on the listener's interface, connected to the
/// peer so that nothing from anyone else reaches it.
async fn connected_socket(at: &Local, peer: SocketAddr) -> std::io::Result<UdpSocket> {
    let local = SocketAddr::from((at.server, 0));
    let sock = crate::net::udp_on_interface(&at.interface, local).map_err(std::io::Error::other)?;
    sock.connect(peer).await?;
    Ok(sock)
}

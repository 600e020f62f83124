//! Bounded HTTP connections, for the boot HTTP listener and the admin API alike. axum's own
//! `serve` has no timeouts and no connection limit, so a neighbour could hold every socket;
//! this accept loop serves each connection with hyper itself and bounds it:
//!
//! - **count**: per client address and in total ([`crate::admission`]); when full, the
//!   oldest idle or half-sent connection is evicted, and one serving a request never is;
//!   when every slot serves a request, a new connection waits (unread) for a freed slot,
//!   round-robin by client ([`FairQueue`]), as many waiting as there are slots, each for at
//!   most `stall_timeout`;
//! - **time**: a whole request header within `header_timeout` of connecting, the next one
//!   within `idle_timeout` of the last response, and no response may go `stall_timeout`
//!   without the client reading from or writing to the socket.
//!
//! Two engines speak HTTP on the connections ([`Engine`]): hyper for the admin API, and
//! [`http1`] for boot files, which sends them with `sendfile(2)`.

mod http1;
pub(crate) use http1::SendFile;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::admission::{FairQueue, Granted, Refused, Slot, Slots};
use crate::config::ConnLimits;
use crate::limits::Throttle;
use crate::metrics::{Counters, Queue, Refusal};

/// The address a connection came in on, for handlers that check the `Host` header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub SocketAddr);

/// What one listener needs to know about its limits, read at every accept so that a reload
/// takes effect for new connections.
pub(crate) trait Policy: Send + Sync + 'static {
    /// The limits in force now.
    fn limits(&self) -> ConnLimits;
    /// Whether to refuse a connection from `peer` to `local` outright; the policy counts and
    /// logs its own refusals.
    fn refuse(&self, local: SocketAddr, peer: SocketAddr) -> bool;
    /// Where refusals are counted.
    fn counters(&self) -> &Counters;
    /// Which engine speaks HTTP on this listener's connections.
    fn engine(&self) -> Engine {
        Engine::Hyper
    }
    /// Which queue-depth gauge this listener's waiting connections are shown in.
    fn queue(&self) -> Queue;
}

/// What speaks HTTP on a connection, once the accept loop has admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// hyper: whole HTTP/1.1, request bodies included (the admin API).
    Hyper,
    /// [`http1`]: GET and HEAD without bodies, static files by `sendfile` (boot files).
    Boot,
}

/// Serves `router` on `listener` until `cancel` fires, within `policy`'s limits. On the
/// cancel every connection is closed at once, requests in flight included (the daemon's
/// shutdown is bounded to 2 s).
pub(crate) async fn serve<P: Policy>(
    listener: TcpListener,
    router: Router,
    policy: Arc<P>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut gate = Gate {
        slots: Slots::with_grace(crate::limits::HTTP_EVICTION_GRACE),
        waiting: FairQueue::new(0, 0),
        policy,
        router,
        tracker: TaskTracker::new(),
        cancel,
        refused_log: Throttle::per_second(),
    };
    // One ticker for the whole loop: a sleep made anew each pass would never fire while
    // connections keep arriving.
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let queue = gate.policy.queue();
        gate.policy.counters().set_queued(queue, gate.waiting.len());
        let waiting = !gate.waiting.is_empty();
        tokio::select! {
            _ = gate.cancel.cancelled() => break,
            _ = gate.slots.freed(), if waiting => gate.admit_waiting(),
            // Each second, too, since an idle slot becomes evictable only after its grace.
            _ = expiry.tick(), if waiting => {
                gate.admit_waiting();
                gate.expire();
            }
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let Ok(local) = stream.local_addr() else {
                        continue;
                    };
                    if gate.policy.refuse(local, peer) {
                        continue;
                    }
                    gate.arrive(Waiter { stream, peer, local });
                }
                Err(e) => {
                    // EMFILE and friends: pxed's limits should prevent them; back off anyway.
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    gate.tracker.close();
    gate.tracker.wait().await;
    Ok(())
}

/// What the accept loop decides with: who holds a slot, who waits for one, and how to
/// serve an admitted connection.
struct Gate<P> {
    /// The connection slots, shared with the connection tasks.
    slots: Slots,
    /// Connections waiting for a slot.
    waiting: FairQueue<Waiter>,
    /// The listener's limits and counters.
    policy: Arc<P>,
    router: Router,
    /// The connection tasks, waited for at shutdown.
    tracker: TaskTracker,
    /// The listener's stop; each slot's token is its child.
    cancel: CancellationToken,
    /// Throttles the refusal log.
    refused_log: Throttle,
}

impl<P: Policy> Gate<P> {
    /// A new connection: served at once if there is a slot for it, else queued behind those
    /// already waiting (admitted in its turn), else refused.
    fn arrive(&mut self, waiter: Waiter) {
        let limits = self.policy.limits();
        // The queue follows the limits in force: as many waiters as slots.
        self.waiting
            .resize(limits.max_connections, limits.max_per_client);
        let peer = waiter.peer;
        let why = if !self.waiting.is_empty() {
            match self.waiting.push(peer.ip(), Instant::now(), waiter) {
                Ok(()) => {
                    self.admit_waiting();
                    return;
                }
                Err(_) => Refusal::HttpFull,
            }
        } else {
            match self.take(peer.ip(), &limits) {
                Ok(g) => {
                    self.start(waiter, g, limits);
                    return;
                }
                // Every slot is serving a request: wait for one, in turn.
                Err(Refused::Full) => match self.waiting.push(peer.ip(), Instant::now(), waiter) {
                    Ok(()) => return,
                    Err(_) => Refusal::HttpFull,
                },
                Err(Refused::PerClient) => Refusal::HttpPerClient,
            }
        };
        self.policy.counters().refuse(why);
        if let Some(more) = self.refused_log.allow() {
            warn!(%peer, reason = why.labels().1, max_connections = limits.max_connections, max_per_client = limits.max_per_client, queued = self.waiting.len(), suppressed = more, "http connection refused by a limit");
        }
    }

    /// Gives freed slots to waiting connections, one client's turn at a time.
    fn admit_waiting(&mut self) {
        let limits = self.policy.limits();
        // Each waiter is looked at once at most: one whose client is at its share goes back.
        let mut skipped = Vec::new();
        for _ in 0..self.waiting.len() {
            let Some((ip, at, waiter)) = self.waiting.pop() else {
                break;
            };
            match self.take(ip, &limits) {
                Ok(g) => self.start(waiter, g, limits),
                Err(Refused::Full) => {
                    self.waiting.unpop(ip, at, waiter);
                    break;
                }
                Err(Refused::PerClient) => skipped.push((ip, at, waiter)),
            }
        }
        for (ip, at, waiter) in skipped.into_iter().rev() {
            self.waiting.unpop(ip, at, waiter);
        }
    }

    /// Closes the connections that waited longer than `stall_timeout`.
    fn expire(&mut self) {
        let stall = self.policy.limits().stall_timeout;
        let deadline = Instant::now().checked_sub(stall);
        for _ in deadline.map(|d| self.waiting.expire(d)).unwrap_or_default() {
            self.policy.counters().refuse(Refusal::HttpTimeout);
        }
    }

    /// A slot for `ip` within `limits`, evicting the oldest idle one if need be.
    fn take(&self, ip: std::net::IpAddr, limits: &ConnLimits) -> Result<Granted, Refused> {
        self.slots.take(
            ip,
            limits.max_connections,
            limits.max_per_client,
            &self.cancel,
        )
    }

    /// Serves an admitted connection on its own task, counting the idle one it evicted.
    fn start(&self, w: Waiter, granted: Granted, limits: ConnLimits) {
        if granted.evicted {
            self.policy.counters().refuse(Refusal::HttpEvicted);
        }
        let Granted { slot, token, .. } = granted;
        let (router, policy) = (self.router.clone(), self.policy.clone());
        self.tracker.spawn(async move {
            connection(
                w.stream, w.peer, w.local, router, slot, token, limits, policy,
            )
            .await;
        });
    }
}

/// A connection accepted while every slot was serving a request, waiting for one.
struct Waiter {
    /// The socket, not read from until it has a slot.
    stream: TcpStream,
    peer: SocketAddr,
    /// The address it connected to.
    local: SocketAddr,
}

/// What the watchdog of one connection looks at.
struct Activity {
    /// When the connection was accepted.
    origin: Instant,
    /// Milliseconds since `origin` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Milliseconds since `origin` when the last response finished: the idle deadline counts
    /// from here, so trickling the next header does not extend it.
    idle_since_ms: AtomicU64,
    /// Requests being answered (their response bodies not yet finished).
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// The slot, protected while a request is in flight.
    slot: Slot,
}

impl Activity {
    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// A connection accepted now, holding `slot`.
    fn new(slot: Slot) -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            slot,
        })
    }

    fn since(&self, at: &AtomicU64) -> Duration {
        let ms = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(ms.saturating_sub(at.load(Ordering::Relaxed)))
    }

    /// A request starts: its slot is protected until the response is done. None if the slot
    /// was evicted first (the connection is closing): the request must go unanswered, never
    /// half answered, so the client retries it on a new connection.
    fn begin(self: &Arc<Self>) -> Option<InFlight> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let first = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let guard = InFlight(self.clone());
        self.touch();
        if first && !self.slot.protect() {
            return None;
        }
        Some(guard)
    }
}

/// One request in flight; its drop (when the response body is done or abandoned) may make
/// the connection idle again.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        let ms = self.0.origin.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(ms, Ordering::Relaxed);
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.slot.expose();
        }
    }
}

/// Whether the watchdog must close a connection now: a first header not complete within
/// `header_timeout` of the connect, no next request within `idle_timeout` of the last
/// response, or a response with no progress for `stall_timeout`. Trickled bytes extend none
/// of the first two.
fn overdue(a: &Activity, limits: &ConnLimits) -> bool {
    if a.in_flight.load(Ordering::Acquire) > 0 {
        a.since(&a.last_io_ms) > limits.stall_timeout
    } else if a.requests.load(Ordering::Relaxed) == 0 {
        a.origin.elapsed() > limits.header_timeout
    } else {
        a.since(&a.idle_since_ms) > limits.idle_timeout
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection<P: Policy>(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    router: Router,
    slot: Slot,
    token: CancellationToken,
    limits: ConnLimits,
    policy: Arc<P>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new(slot);
    let engine = policy.engine();
    let act = activity.clone();
    let conn = async move {
        match engine {
            Engine::Hyper => with_hyper(stream, peer, local, router, act).await,
            Engine::Boot => http1::serve(stream, peer, local, router, act).await,
        }
    };
    tokio::pin!(conn);
    let tick = limits
        .header_timeout
        .min(limits.idle_timeout)
        .min(limits.stall_timeout)
        .min(Duration::from_secs(1));
    loop {
        tokio::select! {
            // An evicted connection stops before it is polled again.
            biased;
            _ = token.cancelled() => return,
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                if overdue(&activity, &limits) {
                    policy.counters().refuse(Refusal::HttpTimeout);
                    debug!(%peer, "http connection closed by a timeout");
                    return;
                }
            }
        }
    }
}

/// Serves one connection with hyper, noting progress for the watchdog.
async fn with_hyper(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    router: Router,
    activity: Arc<Activity>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let guard = activity.begin();
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(LocalAddr(local));
        let router = router.clone();
        async move {
            // Evicted as the request came in: hyper closes without an answer, and the
            // router (an edit's side effects) never runs.
            let Some(guard) = guard else {
                return Err(std::io::Error::other("connection evicted"));
            };
            let resp: Response = router
                .oneshot(req.map(Body::new))
                .await
                .unwrap_or_else(|e| match e {});
            Ok::<_, std::io::Error>(resp.map(|b| {
                Body::new(Guarded {
                    inner: b,
                    _guard: guard,
                })
            }))
        }
    });
    // The watchdog owns every deadline, the header one included.
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    if let Err(e) = conn.await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

/// A response body that holds its request's [`InFlight`] until it is finished or dropped.
struct Guarded {
    /// The real body.
    inner: Body,
    /// Released with the body.
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that notes every byte moved, for the watchdog.
struct Watched {
    inner: TcpStream,
    /// Where progress is noted.
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 10,
            max_per_client: 10,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
        }
    }

    fn activity(age: Duration, idle: Duration, requests: u64, in_flight: usize) -> Activity {
        let slot = Slots::default()
            .take([127, 0, 0, 1].into(), 1, 1, &CancellationToken::new())
            .unwrap()
            .slot;
        let origin = Instant::now() - age;
        let at = (age - idle).as_millis() as u64;
        Activity {
            origin,
            last_io_ms: AtomicU64::new(at),
            idle_since_ms: AtomicU64::new(at),
            in_flight: AtomicUsize::new(in_flight),
            requests: AtomicU64::new(requests),
            slot,
        }
    }

    #[test]
    fn a_request_on_an_evicted_connection_is_never_started() {
        let slots = Slots::default();
        let stop = CancellationToken::new();
        let idle = slots.take([10, 0, 0, 1].into(), 1, 8, &stop).unwrap();
        let evicted = Activity::new(idle.slot);
        // An arrival evicts the idle connection just as its next request comes in.
        let newcomer = slots.take([10, 0, 0, 2].into(), 1, 8, &stop).unwrap();
        assert!(newcomer.evicted && idle.token.is_cancelled());
        assert!(
            evicted.begin().is_none(),
            "half answering an evicted connection"
        );
        assert_eq!(evicted.in_flight.load(Ordering::Acquire), 0);
        // One that still holds its slot starts its request and cannot be evicted meanwhile.
        let serving = Activity::new(newcomer.slot);
        let guard = serving.begin().expect("the slot is held");
        assert_eq!(
            slots.take([10, 0, 0, 3].into(), 1, 8, &stop).unwrap_err(),
            Refused::Full
        );
        drop(guard);
        assert!(
            slots
                .take([10, 0, 0, 3].into(), 1, 8, &stop)
                .unwrap()
                .evicted
        );
    }

    #[test]
    fn each_state_of_a_connection_has_its_own_deadline() {
        let s = Duration::from_secs;
        let l = limits();
        // Half-sent first request: the header timeout counts from the connect, whatever
        // trickles in (slowloris).
        assert!(!overdue(&activity(s(9), s(0), 0, 0), &l));
        assert!(overdue(&activity(s(11), s(0), 0, 0), &l));
        // Kept alive between requests: the idle timeout, from the last response, however
        // recently the client trickled a byte of its next header.
        assert!(!overdue(&activity(s(100), s(29), 3, 0), &l));
        assert!(overdue(&activity(s(100), s(31), 3, 0), &l));
        let trickling = activity(s(100), s(31), 3, 0);
        trickling.touch();
        assert!(overdue(&trickling, &l));
        // Serving: only a stall ends it, however long the download takes.
        assert!(!overdue(&activity(s(3600), s(59), 1, 1), &l));
        assert!(overdue(&activity(s(3600), s(61), 1, 1), &l));
    }
}

//! Bounded resources: the file-descriptor budget that every connection and transfer limit
//! must fit in, a once-per-interval throttle for refusal logs, and a token bucket.
//!
//! pxed raises its soft `RLIMIT_NOFILE` to the hard limit at start-up, then keeps every
//! limit below it: a neighbour that fills TFTP or HTTP hits pxed's own limit first, never
//! "Too many open files", so the other listeners keep working.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Descriptors kept for everything that is not a client's: listeners, the lease store and
/// its WAL, the config watch, the runtime, standard streams.
pub(crate) const RESERVED_FDS: u64 = 64;

/// Descriptors a TFTP transfer holds: its own socket and the open file.
pub(crate) const FDS_PER_TFTP: u64 = 2;
/// Descriptors a boot HTTP connection holds: its socket and, while serving, a file (open
/// twice for a moment: tower-http's and the one `sendfile` reads), plus the socket of one
/// connection waiting for a slot (`conn`'s queue holds as many as there are slots).
pub(crate) const FDS_PER_HTTP: u64 = 4;
/// Descriptors an admin connection holds, plus one waiting for a slot.
pub(crate) const FDS_PER_ADMIN: u64 = 2;

/// How long an idle HTTP connection (a new one without a whole request yet, or a kept-alive
/// one between requests) keeps its slot against arrivals: long enough for a new client to
/// send its request, and for a client to read the end of a response out of its socket
/// buffer and ask for the next file.
pub(crate) const HTTP_EVICTION_GRACE: Duration = Duration::from_secs(2);

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
pub(crate) fn raise_nofile() -> std::io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    Ok(r.rlim_cur)
}

/// How many of each per-client resource the descriptor limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The descriptor limit it was computed from.
    pub nofile: u64,
    /// TFTP transfers at once, per TFTP listener (one per served interface).
    pub tftp_sessions: usize,
    /// Boot HTTP connections at once.
    pub http_connections: usize,
    /// Admin connections at once, per admin address.
    pub admin_connections: usize,
}

impl Budget {
    /// No cap beyond the configured limits (tests that build state by hand).
    pub(crate) fn unlimited() -> Budget {
        Budget {
            nofile: u64::MAX,
            tftp_sessions: usize::MAX,
            http_connections: usize::MAX,
            admin_connections: usize::MAX,
        }
    }

    /// Fits the configured limits into `nofile` descriptors: `tftp` sessions on each of
    /// `listeners.0` TFTP listeners, `http` boot connections, `admin` connections on each of
    /// `listeners.1` admin addresses. If they need more than there are, each is scaled down
    /// by the same factor (never below 1). Pure.
    pub(crate) fn fit(
        nofile: u64,
        tftp: usize,
        http: usize,
        admin: usize,
        listeners: (usize, usize),
    ) -> Budget {
        let tftp_total = tftp.saturating_mul(listeners.0.max(1));
        let admin_total = admin.saturating_mul(listeners.1.max(1));
        let need = (tftp_total as u64) * FDS_PER_TFTP
            + (http as u64) * FDS_PER_HTTP
            + (admin_total as u64) * FDS_PER_ADMIN;
        let available = nofile.saturating_sub(RESERVED_FDS).max(8);
        if need <= available {
            return Budget {
                nofile,
                tftp_sessions: tftp,
                http_connections: http,
                admin_connections: admin,
            };
        }
        let scale = |n: usize| ((n as u128 * available as u128 / need as u128) as usize).max(1);
        Budget {
            nofile,
            tftp_sessions: scale(tftp),
            http_connections: scale(http),
            admin_connections: scale(admin),
        }
    }

    /// Whether the configured limits had to be lowered.
    pub(crate) fn lowered(&self, tftp: usize, http: usize, admin: usize) -> bool {
        self.tftp_sessions < tftp || self.http_connections < http || self.admin_connections < admin
    }
}

/// Lets one event through per interval: a refusal logged for every packet of a flood would
/// let the flood fill the disk. Lock-free; the count of suppressed events is reported with
/// the next one let through.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// When the last event was let through, in milliseconds since `origin`, plus one (0: never).
    last_ms: AtomicU64,
    /// Events suppressed since then.
    suppressed: AtomicU64,
    /// The clock's zero.
    origin: Instant,
    /// Minimum time between two events let through.
    every: Duration,
}

impl Throttle {
    /// A throttle that lets one event through a second: what every refusal log uses.
    pub(crate) fn per_second() -> Throttle {
        Throttle::new(Duration::from_secs(1))
    }

    /// A throttle that lets one event through per `every`.
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            origin: Instant::now(),
            every,
        }
    }

    /// `Some(suppressed since the last one)` if this event may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`Throttle::allow`] at a given time (tests).
    pub(crate) fn allow_at(&self, now: Instant) -> Option<u64> {
        let now_ms = now.saturating_duration_since(self.origin).as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms >= last + self.every.as_millis() as u64;
        if due
            && self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up. Pure: the caller
/// passes the time.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Tokens available, in thousandths.
    milli_tokens: u64,
    /// When the bucket was last refilled, in milliseconds (the caller's clock).
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(burst: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            milli_tokens: u64::from(burst) * 1000,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one, refilling at `rate` per second up to `burst`.
    pub(crate) fn take(&mut self, rate: u32, burst: u32, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let cap = u64::from(burst) * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(rate)).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_the_descriptor_limit() {
        // Plenty of descriptors: the configured values stand.
        let b = Budget::fit(65536, 512, 512, 64, (1, 2));
        assert_eq!(
            (b.tftp_sessions, b.http_connections, b.admin_connections),
            (512, 512, 64)
        );
        assert!(!b.lowered(512, 512, 64));
        // 512 descriptors: everything together stays below the limit.
        let b = Budget::fit(512, 512, 512, 64, (1, 2));
        let used = b.tftp_sessions as u64 * FDS_PER_TFTP
            + b.http_connections as u64 * FDS_PER_HTTP
            + 2 * b.admin_connections as u64 * FDS_PER_ADMIN
            + RESERVED_FDS;
        assert!(used <= 512, "{b:?} uses {used}");
        assert!(b.tftp_sessions >= 60 && b.http_connections >= 60, "{b:?}");
        assert!(b.lowered(512, 512, 64));
        // Two TFTP listeners share the descriptors too.
        let b = Budget::fit(1024, 512, 512, 64, (2, 1));
        let used = 2 * b.tftp_sessions as u64 * FDS_PER_TFTP
            + b.http_connections as u64 * FDS_PER_HTTP
            + b.admin_connections as u64 * FDS_PER_ADMIN
            + RESERVED_FDS;
        assert!(used <= 1024, "{b:?} uses {used}");
        // Absurdly low: never zero.
        let b = Budget::fit(16, 512, 512, 64, (1, 1));
        assert!(b.tftp_sessions >= 1 && b.http_connections >= 1 && b.admin_connections >= 1);
    }

    #[test]
    fn throttle_lets_one_through_per_interval_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(1));
        let t0 = t.origin;
        assert_eq!(t.allow_at(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(t.allow_at(t0 + Duration::from_millis(500)), None);
        }
        assert_eq!(t.allow_at(t0 + Duration::from_millis(1001)), Some(5));
        assert_eq!(t.allow_at(t0 + Duration::from_millis(1002)), None);
    }

    #[test]
    fn token_bucket_refills_at_its_rate_up_to_its_burst() {
        let mut b = TokenBucket::new(3, 0);
        assert!(b.take(1, 3, 0) && b.take(1, 3, 0) && b.take(1, 3, 0));
        assert!(!b.take(1, 3, 0), "burst spent");
        assert!(!b.take(1, 3, 999));
        assert!(b.take(1, 3, 1000), "one a second");
        assert!(!b.take(1, 3, 1000));
        // A long pause saves up no more than the burst.
        let mut n = 0;
        while b.take(1, 3, 100_000) {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}

//! Who gets a slot: TFTP sessions and HTTP connections. [`Admission`] is the pure
//! bookkeeping; [`Slots`] is what a listener holds: it, under a lock, plus a cancel token per
//! slot, so an evicted transfer or connection ends at once. Each task owns a [`Slot`] that
//! frees itself on drop, however the task ends.
//!
//! Slots are capped per client address and in total. A slot is *exposed* (evictable) while
//! it does nothing useful: a TFTP session whose peer has not answered yet (a forged source
//! never does), an HTTP connection that has not sent a whole request or sits idle between
//! requests. It is *protected* while it does useful work: a transfer the peer acknowledges,
//! a request being answered. When every slot is taken, a new arrival evicts the oldest
//! exposed slot rather than being refused: a real client gets to useful work within
//! milliseconds and so is almost never the oldest exposed one, while a flood of half-open
//! requests can only evict its own. Only when every slot is protected is an arrival refused.
//!
//! An exposed slot is evictable only once it has been exposed for the listener's *grace*:
//! without it, a burst of arrivals into a table of busy slots evicts each other, each one
//! before its task has read a byte (a boot storm did exactly that to 10% of its HTTP
//! connections), and a kept-alive connection whose client is still reading the response
//! out of the socket buffer is cut off. Arrivals within the grace are refused (`Full`) and
//! wait in the listener's queue. TFTP has no grace: a forged flood faster than
//! `max_sessions / grace` a second would take every slot as it aged, and starve real clients.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

mod fair;
pub(crate) use fair::FairQueue;

/// A session's handle.
pub(crate) type SessionId = u64;

/// What to do with a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Start it; first end `evict` if set.
    Accept {
        /// The new slot.
        id: SessionId,
        /// An exposed slot to end to make room.
        evict: Option<SessionId>,
    },
    /// The client already has its share of slots.
    PerClient,
    /// Every slot is protected, or exposed for less than the grace.
    Full,
}

/// One admitted slot.
#[derive(Debug, Clone, Copy)]
struct Entry {
    peer: IpAddr,
    /// Whether it is doing useful work (then it cannot be evicted).
    protected: bool,
}

/// Every slot in use, by client.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Slots in use.
    sessions: HashMap<SessionId, Entry>,
    /// Exposed slots, in the order they became exposed (oldest first).
    exposed: BTreeSet<(u64, SessionId)>,
    /// When each exposed slot became exposed: its key in `exposed`, and the time.
    exposed_at: HashMap<SessionId, (u64, Instant)>,
    /// Slots in use per client address.
    per_client: HashMap<IpAddr, usize>,
    /// A counter ordering exposures.
    clock: u64,
    next: SessionId,
    /// How long a slot must have been exposed before it can be evicted.
    grace: Duration,
}

impl Admission {
    /// Bookkeeping whose exposed slots become evictable after `grace`.
    pub(crate) fn with_grace(grace: Duration) -> Admission {
        Admission {
            grace,
            ..Admission::default()
        }
    }

    /// Decides, at `now`, on a request from `peer` given the limits in force.
    pub(crate) fn admit(
        &mut self,
        peer: IpAddr,
        max_total: usize,
        max_per_client: usize,
        now: Instant,
    ) -> Admit {
        let mine = self.per_client.get(&peer).copied().unwrap_or(0);
        if mine >= max_per_client {
            return Admit::PerClient;
        }
        let mut evict = None;
        if self.sessions.len() >= max_total {
            // The oldest exposed slot has been exposed longest: if it is within the grace,
            // every exposed slot is.
            let oldest = self.exposed.iter().next().map(|(_, id)| *id);
            let aged = oldest.filter(|id| {
                self.exposed_at
                    .get(id)
                    .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= self.grace)
            });
            match aged {
                Some(oldest) => {
                    self.finish(oldest);
                    evict = Some(oldest);
                }
                None => return Admit::Full,
            }
        }
        self.next += 1;
        let id = self.next;
        self.sessions.insert(
            id,
            Entry {
                peer,
                protected: true,
            },
        );
        self.expose(id, now);
        *self.per_client.entry(peer).or_default() += 1;
        Admit::Accept { id, evict }
    }

    /// The slot does useful work (a peer answered, a request is being served): it cannot
    /// be evicted. False if it already was: its task must stop rather than start the work.
    pub(crate) fn protect(&mut self, id: SessionId) -> bool {
        let Some(e) = self.sessions.get_mut(&id) else {
            return false;
        };
        e.protected = true;
        if let Some((at, _)) = self.exposed_at.remove(&id) {
            self.exposed.remove(&(at, id));
        }
        true
    }

    /// The slot went idle at `now`: it may be evicted again once the grace has passed, after
    /// every slot exposed before it.
    pub(crate) fn expose(&mut self, id: SessionId, now: Instant) {
        if let Some(e) = self.sessions.get_mut(&id) {
            if e.protected {
                e.protected = false;
                self.clock += 1;
                self.exposed.insert((self.clock, id));
                self.exposed_at.insert(id, (self.clock, now));
            }
        }
    }

    /// The slot ended (or was evicted); it is free.
    pub(crate) fn finish(&mut self, id: SessionId) {
        let _ = self.protect(id);
        let Some(e) = self.sessions.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_client.get_mut(&e.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&e.peer);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    #[cfg(test)]
    /// Whether none is in use.
    pub(crate) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// A listener's slots, shared with the tasks it spawns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    /// The bookkeeping and each slot's cancel token, under one lock held for a few map
    /// operations.
    inner: Arc<Mutex<Table>>,
    /// Woken when a slot is freed, for a listener with arrivals waiting.
    freed: Arc<tokio::sync::Notify>,
}

/// What [`Slots`] guards.
#[derive(Debug, Default)]
struct Table {
    /// Who holds a slot.
    admission: Admission,
    /// How to end each slot's task early (eviction).
    cancels: HashMap<SessionId, CancellationToken>,
}

/// A slot just taken.
#[derive(Debug)]
pub(crate) struct Granted {
    /// The task's claim on it.
    pub slot: Slot,
    /// Fires when the slot is evicted, or when `parent` (the listener's stop) fires.
    pub token: CancellationToken,
    /// Whether an exposed slot was evicted (and its task cancelled) to make room.
    pub evicted: bool,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client already has its share.
    PerClient,
    /// Every slot is protected.
    Full,
}

impl Slots {
    /// Slots whose exposed ones become evictable after `grace` (see the module docs).
    pub(crate) fn with_grace(grace: Duration) -> Slots {
        Slots {
            inner: Arc::new(Mutex::new(Table {
                admission: Admission::with_grace(grace),
                cancels: HashMap::new(),
            })),
            freed: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for `peer` within the limits, evicting (cancelling) the oldest exposed
    /// one if every slot is taken. The new slot starts exposed.
    pub(crate) fn take(
        &self,
        peer: IpAddr,
        max_total: usize,
        max_per_client: usize,
        parent: &CancellationToken,
    ) -> Result<Granted, Refused> {
        let mut t = self.lock();
        match t
            .admission
            .admit(peer, max_total, max_per_client, Instant::now())
        {
            Admit::Accept { id, evict } => {
                let old = evict.and_then(|e| t.cancels.remove(&e));
                let evicted = old.is_some();
                if let Some(old) = old {
                    old.cancel();
                }
                let token = parent.child_token();
                t.cancels.insert(id, token.clone());
                let slot = Slot {
                    id,
                    slots: self.clone(),
                };
                Ok(Granted {
                    slot,
                    token,
                    evicted,
                })
            }
            Admit::PerClient => Err(Refused::PerClient),
            Admit::Full => Err(Refused::Full),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().admission.len()
    }

    /// Resolves once a slot has been freed or exposed since the last call returned (a permit
    /// is kept if none was waiting).
    pub(crate) async fn freed(&self) {
        self.freed.notified().await;
    }

    #[cfg(test)]
    /// Whether none is in use.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A task's claim on a slot; freed when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    id: SessionId,
    /// The slots it belongs to.
    slots: Slots,
}

impl Slot {
    /// It does useful work now: it cannot be evicted. False if it was evicted already (its
    /// token is cancelled): the task must stop instead.
    pub(crate) fn protect(&self) -> bool {
        self.slots.lock().admission.protect(self.id)
    }

    /// It went idle: it may be evicted again, so an arrival waiting for a slot may take it.
    pub(crate) fn expose(&self) {
        self.slots.lock().admission.expose(self.id, Instant::now());
        self.slots.freed.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut t = self.slots.lock();
            t.admission.finish(self.id);
            t.cancels.remove(&self.id);
        }
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 123, 0, n])
    }

    /// One instant for the tests that do not look at the grace (it is zero for them).
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn id(a: Admit) -> SessionId {
        match a {
            Admit::Accept { id, .. } => id,
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn one_client_gets_its_share_and_no_more() {
        let mut a = Admission::default();
        for _ in 0..3 {
            id(a.admit(ip(9), 100, 3, t0()));
        }
        assert_eq!(a.admit(ip(9), 100, 3, t0()), Admit::PerClient);
        // Another client is unaffected.
        id(a.admit(ip(10), 100, 3, t0()));
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_exposed_slot_never_a_protected_one() {
        let mut a = Admission::default();
        let real = id(a.admit(ip(5), 3, 8, t0()));
        assert!(a.protect(real));
        let forged1 = id(a.admit(ip(100), 3, 8, t0()));
        let forged2 = id(a.admit(ip(101), 3, 8, t0()));
        // Full: the legitimate client's next request evicts the oldest forged one.
        assert_eq!(
            a.admit(ip(6), 3, 8, t0()),
            Admit::Accept {
                id: forged2 + 1,
                evict: Some(forged1)
            }
        );
        a.protect(forged2 + 1);
        a.protect(forged2);
        // Every slot answered: refused.
        assert_eq!(a.admit(ip(7), 3, 8, t0()), Admit::Full);
        a.finish(real);
        id(a.admit(ip(7), 3, 8, t0()));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn a_slot_exposed_again_goes_to_the_back_of_the_eviction_queue() {
        let mut a = Admission::default();
        let first = id(a.admit(ip(1), 2, 8, t0()));
        let second = id(a.admit(ip(2), 2, 8, t0()));
        // The first does some work and goes idle again: now the second is the oldest exposed.
        a.protect(first);
        a.expose(first, t0());
        assert_eq!(
            a.admit(ip(3), 2, 8, t0()),
            Admit::Accept {
                id: second + 1,
                evict: Some(second)
            }
        );
    }

    #[test]
    fn slots_cancel_what_they_evict_and_free_what_is_dropped() {
        let slots = Slots::default();
        let stop = CancellationToken::new();
        let first = slots.take(ip(1), 1, 8, &stop).unwrap();
        assert!(!first.evicted);
        let second = slots.take(ip(2), 1, 8, &stop).unwrap();
        assert!(second.evicted && first.token.is_cancelled());
        assert!(second.slot.protect());
        assert!(!first.slot.protect(), "an evicted slot cannot be protected");
        assert_eq!(slots.take(ip(3), 1, 8, &stop).unwrap_err(), Refused::Full);
        drop(second);
        assert!(slots.take(ip(3), 1, 8, &stop).is_ok());
        drop(first);
        stop.cancel();
        assert!(slots.is_empty());
    }

    #[test]
    fn finishing_frees_the_per_client_count_and_is_idempotent() {
        let mut a = Admission::default();
        let s = id(a.admit(ip(9), 10, 1, t0()));
        assert_eq!(a.admit(ip(9), 10, 1, t0()), Admit::PerClient);
        a.finish(s);
        a.finish(s);
        assert!(a.is_empty());
        id(a.admit(ip(9), 10, 1, t0()));
    }

    #[test]
    fn a_slot_exposed_within_the_grace_is_not_evicted() {
        let grace = Duration::from_secs(2);
        let mut a = Admission::with_grace(grace);
        let now = t0();
        let busy = id(a.admit(ip(1), 2, 8, now));
        a.protect(busy);
        let fresh = id(a.admit(ip(2), 2, 8, now));
        // A burst: the next arrival may not evict the one before it, which has had no time
        // to send anything.
        assert_eq!(a.admit(ip(3), 2, 8, now + grace / 2), Admit::Full);
        assert_eq!(
            a.admit(ip(3), 2, 8, now + grace),
            Admit::Accept {
                id: fresh + 1,
                evict: Some(fresh)
            }
        );
        // Going idle again starts the grace again.
        a.protect(fresh + 1);
        a.expose(busy, now + grace);
        assert_eq!(a.admit(ip(4), 2, 8, now + grace), Admit::Full);
        assert_eq!(
            a.admit(ip(4), 2, 8, now + grace * 2),
            Admit::Accept {
                id: fresh + 2,
                evict: Some(busy)
            }
        );
    }
}

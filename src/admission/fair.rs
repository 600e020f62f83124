//! Arrivals that found every slot protected wait here instead of being turned away, so a
//! storm of machines booting at once is served in turn rather than failing. Turns go
//! round-robin by client address: a client with many waiting connections gets one turn per
//! round, like a client with one. The queue is bounded in total and per client, and the
//! caller expires waiters that waited too long.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

/// Waiting arrivals of type `T`, by client.
#[derive(Debug)]
pub(crate) struct FairQueue<T> {
    /// Each client's waiters, oldest first.
    by_client: HashMap<IpAddr, VecDeque<(Instant, T)>>,
    /// Clients with waiters, in the order of their next turn.
    turns: VecDeque<IpAddr>,
    /// Waiters in all.
    len: usize,
    /// Most waiters in all.
    max_total: usize,
    /// Most waiters of one client.
    max_per_client: usize,
}

impl<T> FairQueue<T> {
    /// An empty queue for at most `max_total` waiters, `max_per_client` of one client.
    pub(crate) fn new(max_total: usize, max_per_client: usize) -> Self {
        FairQueue {
            by_client: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
            max_total,
            max_per_client,
        }
    }

    /// Changes the bounds (a reload); waiters already queued stay.
    pub(crate) fn resize(&mut self, max_total: usize, max_per_client: usize) {
        self.max_total = max_total;
        self.max_per_client = max_per_client;
    }

    /// Queues `item` from `peer`, or hands it back when the queue, or the client's share of
    /// it, is full.
    pub(crate) fn push(&mut self, peer: IpAddr, at: Instant, item: T) -> Result<(), T> {
        let mine = self.by_client.get(&peer).map_or(0, VecDeque::len);
        if self.len >= self.max_total || mine >= self.max_per_client {
            return Err(item);
        }
        let waiters = self.by_client.entry(peer).or_default();
        if waiters.is_empty() {
            self.turns.push_back(peer);
        }
        waiters.push_back((at, item));
        self.len += 1;
        Ok(())
    }

    /// The oldest waiter of the client whose turn it is; that client's next turn comes after
    /// every other waiting client's.
    pub(crate) fn pop(&mut self) -> Option<(IpAddr, Instant, T)> {
        let peer = self.turns.pop_front()?;
        let waiters = self.by_client.get_mut(&peer)?;
        let (at, item) = waiters.pop_front()?;
        if waiters.is_empty() {
            self.by_client.remove(&peer);
        } else {
            self.turns.push_back(peer);
        }
        self.len -= 1;
        Some((peer, at, item))
    }

    /// Puts a waiter just popped back at the head of the queue (it could not be admitted
    /// after all), keeping its place and its client's turn.
    pub(crate) fn unpop(&mut self, peer: IpAddr, at: Instant, item: T) {
        let waiters = self.by_client.entry(peer).or_default();
        if waiters.is_empty() {
            self.turns.push_front(peer);
        } else if let Some(i) = self.turns.iter().position(|p| *p == peer) {
            self.turns.remove(i);
            self.turns.push_front(peer);
        }
        waiters.push_front((at, item));
        self.len += 1;
    }

    /// Removes and returns every waiter that arrived before `deadline`.
    pub(crate) fn expire(&mut self, deadline: Instant) -> Vec<T> {
        let mut gone = Vec::new();
        for waiters in self.by_client.values_mut() {
            while waiters.front().is_some_and(|(at, _)| *at < deadline) {
                if let Some((_, item)) = waiters.pop_front() {
                    gone.push(item);
                }
            }
        }
        self.by_client.retain(|_, w| !w.is_empty());
        let by_client = &self.by_client;
        self.turns.retain(|p| by_client.contains_key(p));
        self.len -= gone.len();
        gone
    }

    /// Waiters in all.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 123, 0, n])
    }

    #[test]
    fn turns_go_round_robin_by_client_not_by_arrival() {
        let now = Instant::now();
        let mut q = FairQueue::new(100, 10);
        // One client queues five connections before two others queue one each.
        for i in 0..5 {
            q.push(ip(1), now, format!("a{i}")).unwrap();
        }
        q.push(ip(2), now, "b0".to_string()).unwrap();
        q.push(ip(3), now, "c0".to_string()).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|(_, _, s)| s)).collect();
        assert_eq!(order, ["a0", "b0", "c0", "a1", "a2", "a3", "a4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn the_queue_and_each_clients_share_are_bounded() {
        let now = Instant::now();
        let mut q = FairQueue::new(3, 2);
        q.push(ip(1), now, 1).unwrap();
        q.push(ip(1), now, 2).unwrap();
        assert_eq!(q.push(ip(1), now, 3), Err(3), "over the client's share");
        q.push(ip(2), now, 4).unwrap();
        assert_eq!(q.push(ip(3), now, 5), Err(5), "over the total");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn an_unpopped_waiter_keeps_its_place_and_its_turn() {
        let now = Instant::now();
        let mut q = FairQueue::new(10, 10);
        q.push(ip(1), now, 1).unwrap();
        q.push(ip(1), now, 2).unwrap();
        q.push(ip(2), now, 3).unwrap();
        let (peer, at, item) = q.pop().unwrap();
        assert_eq!((peer, item), (ip(1), 1));
        q.unpop(peer, at, item);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop().map(|(_, _, n)| n)).collect();
        assert_eq!(order, [1, 3, 2]);
        // A client whose only waiter comes back is first again too.
        q.push(ip(5), now, 7).unwrap();
        q.push(ip(6), now, 8).unwrap();
        let (peer, at, item) = q.pop().unwrap();
        q.unpop(peer, at, item);
        assert_eq!(q.pop().map(|(_, _, n)| n), Some(7));
    }

    #[test]
    fn waiters_past_their_deadline_are_expired_and_the_rest_kept() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut q = FairQueue::new(10, 10);
        q.push(ip(1), t0, "old").unwrap();
        q.push(ip(1), t1, "new").unwrap();
        q.push(ip(2), t0, "old2").unwrap();
        let mut gone = q.expire(t0 + Duration::from_secs(1));
        gone.sort();
        assert_eq!(gone, ["old", "old2"]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().map(|(p, _, s)| (p, s)), Some((ip(1), "new")));
        assert!(q.pop().is_none());
    }
}

//! [`LeaseTable`]: every lease, indexed by client, address and MAC, plus the free list.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use super::{Batch, Change, ClientId, Lease, Refusal, State};
use crate::config::{Config, Pool};
use crate::mac::Mac;

/// All leases, indexed every way the server needs.
#[derive(Debug, Default, Clone)]
pub(crate) struct LeaseTable {
    /// Each client's binding, including expired and released ones (stickiness).
    by_client: HashMap<ClientId, Lease>,
    /// The client bound to each address.
    by_ip: HashMap<Ipv4Addr, ClientId>,
    /// The client last bound under each MAC, so HTTP and TFTP can name machines.
    by_mac: HashMap<Mac, ClientId>,
    /// Pool addresses with no binding, lowest first.
    free: BTreeSet<u32>,
    /// `(expires, ip)` of every binding inside the pool, to take over the oldest expired.
    expiries: BTreeSet<(u64, u32)>,
    /// Addresses a client DECLINEd, with the time they may be handed out again.
    quarantine: HashMap<Ipv4Addr, u64>,
    /// Every pool range, inclusive, as integers.
    ranges: Vec<(u32, u32)>,
    /// Store writes recorded since the last [`LeaseTable::take_batch`].
    changes: Vec<Change>,
    /// For each of `changes`, the lease it replaced (for [`LeaseTable::revert`]).
    undo: Vec<Option<Lease>>,
    /// Every client identifier each MAC holds a binding under, for `[dhcp]
    /// max_leases_per_mac`: a MAC that invents identifiers must not drain the pool.
    per_mac: HashMap<Mac, Vec<ClientId>>,
    /// New leases handed to MACs outside `[hosts]`, rate-limited by `[dhcp]
    /// unknown_client_rate` (matters with `[defaults]`, where any MAC is served).
    unknown: Option<crate::limits::TokenBucket>,
    /// Leases taken over because their MAC reached its cap, since the last count taken.
    cap_takeovers: u64,
}

impl LeaseTable {
    #[cfg(test)]
    /// An empty table for `cfg`'s pool.
    pub(crate) fn new(cfg: &Config) -> Self {
        Self::restore(cfg, Vec::new())
    }

    /// A table holding `leases` (read from the store) for `cfg`'s pool.
    pub(crate) fn restore(cfg: &Config, leases: Vec<Lease>) -> Self {
        let mut t = LeaseTable {
            // No ranges at all in proxy mode, where pxed hands out no addresses.
            ranges: cfg
                .dhcp
                .pools
                .iter()
                .filter_map(|p| p.range)
                .map(|(a, b)| (u32::from(a), u32::from(b)))
                .collect(),
            ..Default::default()
        };
        for l in leases {
            if t.by_ip.contains_key(&l.ip) {
                continue; // the store's unique index makes this impossible; be safe anyway
            }
            t.index(l);
        }
        t.free = t
            .ranges
            .iter()
            .flat_map(|(a, b)| *a..=*b)
            .filter(|n| !t.by_ip.contains_key(&Ipv4Addr::from(*n)))
            .collect();
        t
    }

    /// Re-fits the table to a new config's pool; leases outside it stay until they expire.
    pub(crate) fn reconfigure(&mut self, cfg: &Config) {
        let leases: Vec<Lease> = self.by_client.drain().map(|(_, l)| l).collect();
        let quarantine = std::mem::take(&mut self.quarantine);
        let changes = std::mem::take(&mut self.changes);
        let undo = std::mem::take(&mut self.undo);
        let unknown = self.unknown.take();
        let takeovers = self.cap_takeovers;
        *self = Self::restore(cfg, leases);
        self.quarantine = quarantine;
        self.changes = changes;
        self.undo = undo;
        self.unknown = unknown;
        self.cap_takeovers = takeovers;
    }

    fn index(&mut self, l: Lease) {
        let ids = self.per_mac.entry(l.mac).or_default();
        if !ids.contains(&l.client) {
            ids.push(l.client.clone());
        }
        self.by_ip.insert(l.ip, l.client.clone());
        self.by_mac.insert(l.mac, l.client.clone());
        if self.in_range(l.ip) {
            self.expiries.insert((l.expires, u32::from(l.ip)));
            self.free.remove(&u32::from(l.ip));
        }
        self.by_client.insert(l.client.clone(), l);
    }

    /// Removes a lease from every index; returns its address to the free list.
    fn unindex(&mut self, client: &ClientId) -> Option<Lease> {
        let l = self.by_client.remove(client)?;
        if let Some(ids) = self.per_mac.get_mut(&l.mac) {
            ids.retain(|c| c != client);
            if ids.is_empty() {
                self.per_mac.remove(&l.mac);
            }
        }
        self.by_ip.remove(&l.ip);
        if self.by_mac.get(&l.mac) == Some(client) {
            self.by_mac.remove(&l.mac);
        }
        if self.in_range(l.ip) {
            self.expiries.remove(&(l.expires, u32::from(l.ip)));
            self.free.insert(u32::from(l.ip));
        }
        Some(l)
    }

    fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.ranges
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&u32::from(ip)))
    }

    fn in_pool(pool: &Pool, ip: Ipv4Addr) -> bool {
        pool.range
            .is_some_and(|(a, b)| (u32::from(a)..=u32::from(b)).contains(&u32::from(ip)))
    }

    /// The lease of a client, active or not.
    pub(crate) fn get(&self, client: &ClientId) -> Option<&Lease> {
        self.by_client.get(client)
    }

    /// The lease last bound under a MAC.
    pub(crate) fn get_by_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac).and_then(|c| self.by_client.get(c))
    }

    /// Addresses bound (ACKed, not expired, not released) to any client identifier of `mac`.
    pub(crate) fn bound_ips(&self, mac: &Mac, now: u64) -> Vec<Ipv4Addr> {
        self.per_mac
            .get(mac)
            .map(|ids| {
                ids.iter()
                    .filter_map(|c| self.by_client.get(c))
                    .filter(|l| l.state == State::Bound && l.active(now))
                    .map(|l| l.ip)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The MAC whose bound lease holds `ip` at `now`: the only way an address names a
    /// machine that a neighbour cannot forge or inherit.
    pub(crate) fn bound_mac_of(&self, ip: Ipv4Addr, now: u64) -> Option<Mac> {
        self.by_ip
            .get(&ip)
            .and_then(|c| self.by_client.get(c))
            .filter(|l| l.state == State::Bound && l.active(now))
            .map(|l| l.mac)
    }

    /// The MAC an address is bound to, active or not.
    pub(crate) fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.by_ip
            .get(&ip)
            .and_then(|c| self.by_client.get(c))
            .map(|l| l.mac)
    }

    /// Every lease.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_client.values()
    }

    #[cfg(test)]
    /// Number of pool addresses held by an active lease at `now`.
    pub(crate) fn in_use(&self, now: u64) -> usize {
        self.by_client
            .values()
            .filter(|l| l.active(now) && self.in_range(l.ip))
            .count()
    }

    /// Keeps `mac` below `cap` active leases besides `client`'s own: while it holds `cap` or
    /// more under other identifiers, the one that expires first is taken over (forgotten,
    /// and deleted from the store if it was bound). Returns how many were taken over.
    pub(crate) fn make_room_for(
        &mut self,
        client: &ClientId,
        mac: Mac,
        cap: usize,
        now: u64,
    ) -> usize {
        let mut taken = 0;
        loop {
            let others: Vec<&Lease> = self
                .per_mac
                .get(&mac)
                .map(|ids| {
                    ids.iter()
                        .filter(|c| *c != client)
                        .filter_map(|c| self.by_client.get(c))
                        .filter(|l| l.active(now))
                        .collect()
                })
                .unwrap_or_default();
            // With this client's own lease, at most `cap` in all.
            if others.len() < cap.max(1) {
                break;
            }
            let Some(oldest) = others
                .iter()
                .min_by_key(|l| l.expires)
                .map(|l| l.client.clone())
            else {
                break;
            };
            if let Some(l) = self.unindex(&oldest) {
                if l.state == State::Bound {
                    self.push(Change::Delete(oldest), Some(l));
                }
            }
            taken += 1;
        }
        self.cap_takeovers += taken as u64;
        taken
    }

    /// Whether a new lease may go to a MAC outside `[hosts]` now (a token bucket of `rate`
    /// a second, `burst` saved up). Clients that already have a binding are not counted.
    pub(crate) fn admit_unknown(
        &mut self,
        client: &ClientId,
        rate: u32,
        burst: u32,
        now: u64,
    ) -> bool {
        if self.by_client.contains_key(client) {
            return true;
        }
        let ms = now.saturating_mul(1000);
        let bucket = self
            .unknown
            .get_or_insert_with(|| crate::limits::TokenBucket::new(burst, ms));
        bucket.take(rate, burst, ms)
    }

    /// Leases taken over for the per-MAC cap since the last call (for the metric; a
    /// takeover is no refusal of the request, so its decision does not say).
    pub(crate) fn take_takeovers(&mut self) -> u64 {
        std::mem::take(&mut self.cap_takeovers)
    }

    #[cfg(test)]
    /// The store writes recorded since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        self.take_batch().changes
    }

    /// The store writes recorded since the last call, with what each replaced.
    pub(crate) fn take_batch(&mut self) -> Batch {
        Batch {
            changes: std::mem::take(&mut self.changes),
            undo: std::mem::take(&mut self.undo),
        }
    }

    /// Whether `ip` may be given to `client` (with `mac`) at `now`.
    fn available_to(
        &self,
        cfg: &Config,
        reserved: &HashMap<Ipv4Addr, Mac>,
        ip: Ipv4Addr,
        client: &ClientId,
        mac: Mac,
        now: u64,
    ) -> bool {
        if cfg
            .dhcp
            .pools
            .iter()
            .any(|p| p.server == ip || p.router == Some(ip))
        {
            return false;
        }
        if reserved.get(&ip).is_some_and(|owner| *owner != mac) {
            return false;
        }
        if self.quarantine.get(&ip).is_some_and(|until| *until > now) {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(owner) if owner == client => true,
            Some(owner) => !self.by_client[owner].active(now),
        }
    }

    /// Picks the address in `pool` to offer: the host's pinned address (if it is in this
    /// subnet), else the client's previous one, else the address it asked for, else the
    /// lowest never-used address, else the one that expired longest ago. `None` when the pool
    /// is exhausted.
    pub(crate) fn choose(
        &self,
        cfg: &Config,
        pool: &Pool,
        client: &ClientId,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let reserved = cfg.reserved();
        let ok = |ip: Ipv4Addr| self.available_to(cfg, reserved, ip, client, mac, now);
        if let Some(ip) = Self::pinned(cfg, pool, mac) {
            return ok(ip).then_some(ip);
        }
        let (a, b) = pool.range.map(|(a, b)| (u32::from(a), u32::from(b)))?;
        if let Some(l) = self.by_client.get(client) {
            if Self::in_pool(pool, l.ip) && ok(l.ip) {
                return Some(l.ip);
            }
        }
        if let Some(ip) = requested {
            if Self::in_pool(pool, ip) && ok(ip) {
                return Some(ip);
            }
        }
        // Skipped entries are reserved, quarantined or the server's own: a handful at most.
        let never_used = self
            .free
            .range(a..=b)
            .map(|n| Ipv4Addr::from(*n))
            .find(|ip| ok(*ip));
        if never_used.is_some() {
            return never_used;
        }
        self.expiries
            .iter()
            .take_while(|(exp, _)| *exp <= now)
            .filter(|(_, n)| (a..=b).contains(n))
            .map(|(_, n)| Ipv4Addr::from(*n))
            .find(|ip| ok(*ip))
    }

    /// The address pinned to `mac`, if it lies in `pool`'s subnet.
    fn pinned(cfg: &Config, pool: &Pool, mac: Mac) -> Option<Ipv4Addr> {
        cfg.hosts
            .get(&mac)
            .and_then(|h| h.ip)
            .filter(|ip| pool.subnet.contains(ip))
    }

    /// Whether `client` may be ACKed `ip` in `pool` at `now`.
    pub(crate) fn check(
        &self,
        cfg: &Config,
        pool: &Pool,
        client: &ClientId,
        mac: Mac,
        ip: Ipv4Addr,
        now: u64,
    ) -> Result<(), Refusal> {
        if !pool.subnet.contains(&ip) {
            return Err(Refusal::WrongSubnet(ip));
        }
        match Self::pinned(cfg, pool, mac) {
            Some(p) if p != ip => return Err(Refusal::NotAllowed(ip)),
            Some(_) => {}
            None if !Self::in_pool(pool, ip) => return Err(Refusal::NotAllowed(ip)),
            None => {}
        }
        if !self.available_to(cfg, cfg.reserved(), ip, client, mac, now) {
            return Err(Refusal::Taken(ip));
        }
        Ok(())
    }

    /// Binds `ip` to `client` in `state` until `expires`, dropping any other binding either
    /// had. A `Bound` lease, and the removal of a client it displaced, are recorded as changes.
    pub(crate) fn bind(
        &mut self,
        client: &ClientId,
        mac: Mac,
        ip: Ipv4Addr,
        state: State,
        expires: u64,
    ) -> Lease {
        if let Some(prev) = self.by_ip.get(&ip).cloned() {
            if &prev != client {
                let displaced = self.unindex(&prev);
                self.push(Change::Delete(prev), displaced);
            }
        }
        let before = self.unindex(client);
        let lease = Lease {
            client: client.clone(),
            mac,
            ip,
            state,
            expires,
        };
        self.index(lease.clone());
        if state == State::Bound {
            self.push(Change::Upsert(lease.clone()), before);
        }
        lease
    }

    /// RELEASE: frees the address now, keeping the binding for stickiness.
    pub(crate) fn release(&mut self, client: &ClientId, ip: Ipv4Addr, now: u64) -> bool {
        match self.by_client.get(client) {
            Some(l) if l.ip == ip && l.state != State::Released => {
                let before = l.clone();
                let (mac, expires) = (l.mac, l.expires.min(now));
                self.bind(client, mac, ip, State::Released, expires);
                let released = self.by_client[client].clone();
                self.push(Change::Upsert(released), Some(before));
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the address is in use by something else on the wire. The binding is
    /// forgotten and the address kept out of the pool until `until`.
    pub(crate) fn decline(&mut self, client: &ClientId, ip: Ipv4Addr, until: u64) -> bool {
        match self.by_client.get(client) {
            Some(l) if l.ip == ip => {
                let before = self.unindex(client);
                self.push(Change::Delete(client.clone()), before);
                self.quarantine.insert(ip, until);
                true
            }
            _ => false,
        }
    }

    /// Removes the lease last bound under `mac` (admin `DELETE`), recording its deletion
    /// like any other change, so it reaches the store through the one commit task, in order
    /// with the ACKs queued before it.
    pub(crate) fn forget_mac(&mut self, mac: &Mac) -> Option<Lease> {
        let client = self.by_mac.get(mac)?.clone();
        let lease = self.unindex(&client)?;
        self.push(Change::Delete(client), Some(lease.clone()));
        Some(lease)
    }

    /// Records a store write and the lease it replaced, so that a failed commit can be
    /// rolled back in memory.
    fn push(&mut self, change: Change, before: Option<Lease>) {
        self.changes.push(change);
        self.undo.push(before);
    }

    /// Rolls back the changes of a batch whose commit failed, newest first: each client whose
    /// lease is still what the change made gets the lease it had before (if its address is
    /// still free), so memory holds only what the store holds.
    pub(crate) fn revert(&mut self, batch: &Batch) {
        for (change, before) in batch.changes.iter().zip(&batch.undo).rev() {
            let (client, after) = match change {
                Change::Upsert(l) => (&l.client, Some(l)),
                Change::Delete(c) => (c, None),
            };
            if self.by_client.get(client) != after {
                continue; // changed again since; that change is undone on its own
            }
            self.unindex(client);
            if let Some(b) = before {
                if !self.by_ip.contains_key(&b.ip) {
                    self.index(b.clone());
                }
            }
        }
    }

    /// Forgets an OFFER the client turned down (it REQUESTed another server's address).
    pub(crate) fn drop_offer(&mut self, client: &ClientId) {
        if self
            .by_client
            .get(client)
            .is_some_and(|l| l.state == State::Offered)
        {
            self.unindex(client);
        }
    }

    /// Addresses of `pool`'s range held by an active lease, and those still free to hand out
    /// (neither held nor pinned to a host), at `now`. For `/metrics`.
    pub(crate) fn pool_usage(&self, cfg: &Config, pool: &Pool, now: u64) -> (u64, u64) {
        let Some((a, b)) = pool.range else {
            return (0, 0);
        };
        let span = u32::from(a)..=u32::from(b);
        let size = u64::from(u32::from(b) - u32::from(a) + 1);
        let in_use = self
            .by_client
            .values()
            .filter(|l| l.active(now) && span.contains(&u32::from(l.ip)))
            .count() as u64;
        let pinned = cfg
            .reserved()
            .keys()
            .filter(|ip| span.contains(&u32::from(**ip)))
            .count() as u64;
        (in_use, size.saturating_sub(in_use).saturating_sub(pinned))
    }
}

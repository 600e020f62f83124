//! [`LeaseTable`]: every lease, indexed by client, address and MAC, plus the free list.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use super::{Change, ClientId, Lease, Refusal, State};
use crate::config::{Config, Pool};
use crate::mac::Mac;

/// All leases, indexed every way the server needs.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
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
    /// Store writes recorded since the last [`LeaseTable::take_changes`].
    changes: Vec<Change>,
}

impl LeaseTable {
    /// An empty table for `cfg`'s pool.
    pub fn new(cfg: &Config) -> Self {
        Self::restore(cfg, Vec::new())
    }

    /// A table holding `leases` (read from the store) for `cfg`'s pool.
    pub fn restore(cfg: &Config, leases: Vec<Lease>) -> Self {
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
    pub fn reconfigure(&mut self, cfg: &Config) {
        let leases: Vec<Lease> = self.by_client.drain().map(|(_, l)| l).collect();
        let quarantine = std::mem::take(&mut self.quarantine);
        let changes = std::mem::take(&mut self.changes);
        *self = Self::restore(cfg, leases);
        self.quarantine = quarantine;
        self.changes = changes;
    }

    fn index(&mut self, l: Lease) {
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
    pub fn get(&self, client: &ClientId) -> Option<&Lease> {
        self.by_client.get(client)
    }

    /// The lease last bound under a MAC.
    pub fn get_by_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac).and_then(|c| self.by_client.get(c))
    }

    /// The MAC an address is bound to, active or not.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.by_ip
            .get(&ip)
            .and_then(|c| self.by_client.get(c))
            .map(|l| l.mac)
    }

    /// Every lease.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_client.values()
    }

    /// Number of pool addresses held by an active lease at `now`.
    pub fn in_use(&self, now: u64) -> usize {
        self.by_client
            .values()
            .filter(|l| l.active(now) && self.in_range(l.ip))
            .count()
    }

    /// The store writes recorded since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
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
    pub fn choose(
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
    pub fn check(
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
    pub fn bind(
        &mut self,
        client: &ClientId,
        mac: Mac,
        ip: Ipv4Addr,
        state: State,
        expires: u64,
    ) -> Lease {
        if let Some(prev) = self.by_ip.get(&ip).cloned() {
            if &prev != client {
                self.unindex(&prev);
                self.changes.push(Change::Delete(prev));
            }
        }
        self.unindex(client);
        let lease = Lease {
            client: client.clone(),
            mac,
            ip,
            state,
            expires,
        };
        self.index(lease.clone());
        if state == State::Bound {
            self.changes.push(Change::Upsert(lease.clone()));
        }
        lease
    }

    /// RELEASE: frees the address now, keeping the binding for stickiness.
    pub fn release(&mut self, client: &ClientId, ip: Ipv4Addr, now: u64) -> bool {
        match self.by_client.get(client) {
            Some(l) if l.ip == ip && l.state != State::Released => {
                let (mac, expires) = (l.mac, l.expires.min(now));
                self.bind(client, mac, ip, State::Released, expires);
                let released = self.by_client[client].clone();
                self.changes.push(Change::Upsert(released));
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the address is in use by something else on the wire. The binding is
    /// forgotten and the address kept out of the pool until `until`.
    pub fn decline(&mut self, client: &ClientId, ip: Ipv4Addr, until: u64) -> bool {
        match self.by_client.get(client) {
            Some(l) if l.ip == ip => {
                self.unindex(client);
                self.changes.push(Change::Delete(client.clone()));
                self.quarantine.insert(ip, until);
                true
            }
            _ => false,
        }
    }

    /// Removes the lease last bound under `mac` (admin `DELETE`); the caller writes the
    /// deletion to the store itself, so no change is recorded here.
    pub fn forget_mac(&mut self, mac: &Mac) -> Option<Lease> {
        let client = self.by_mac.get(mac)?.clone();
        self.unindex(&client)
    }

    /// Forgets an OFFER the client turned down (it REQUESTed another server's address).
    pub fn drop_offer(&mut self, client: &ClientId) {
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
    pub fn pool_usage(&self, cfg: &Config, pool: &Pool, now: u64) -> (u64, u64) {
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

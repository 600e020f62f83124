//! The address pool and its leases. Pure: callers pass the time in, nothing here does IO.
//!
//! Stickiness: a MAC keeps its binding after its lease expires or is released, so the same
//! machine gets the same address back for as long as no one else needs it. Free addresses
//! that were never bound are handed out before expired ones are taken over.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::Config;
use crate::mac::Mac;

/// How long an OFFER holds an address for the client that was offered it.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a DECLINEd address stays out of the pool.
pub const DECLINE_QUARANTINE_SECS: u64 = 600;

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Offered, not yet requested; held until `expires`.
    Offered,
    /// ACKed; the client owns it until `expires`.
    Bound,
    /// The client released it; the binding is remembered for stickiness only.
    Released,
}

/// One MAC's binding to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client.
    pub mac: Mac,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Where the lease stands.
    pub state: State,
    /// Unix seconds after which the address may go to someone else.
    pub expires: u64,
}

impl Lease {
    /// Whether the address is still held for this MAC at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.state != State::Released && self.expires > now
    }
}

/// Why a REQUEST cannot be ACKed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is not in the served subnet.
    #[error("{0} is not in the served subnet")]
    WrongSubnet(Ipv4Addr),
    /// Another client holds it, or it is pinned to another host.
    #[error("{0} belongs to another client")]
    Taken(Ipv4Addr),
    /// It is neither in the pool nor pinned to this host.
    #[error("{0} is not an address this client may have")]
    NotAllowed(Ipv4Addr),
}

/// All leases, indexed both ways.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    /// The binding of each MAC, including expired and released ones (stickiness).
    by_mac: HashMap<Mac, Lease>,
    /// The MAC bound to each address.
    by_ip: HashMap<Ipv4Addr, Mac>,
    /// Addresses a client DECLINEd, with the time they may be used again.
    quarantine: HashMap<Ipv4Addr, u64>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease of a MAC, active or not.
    pub fn get(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    /// The MAC an address is bound to, active or not.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.by_ip.get(&ip).copied()
    }

    /// Every lease.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_mac.values()
    }

    /// Whether `ip` may be given to `mac` at `now`.
    fn available_to(
        &self,
        cfg: &Config,
        reserved: &HashMap<Ipv4Addr, Mac>,
        ip: Ipv4Addr,
        mac: Mac,
        now: u64,
    ) -> bool {
        if ip == cfg.server.address || cfg.dhcp.router == Some(ip) {
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
            Some(owner) if *owner == mac => true,
            Some(owner) => !self.by_mac[owner].active(now),
        }
    }

    fn in_pool(cfg: &Config, ip: Ipv4Addr) -> bool {
        let (a, b) = cfg.dhcp.range;
        (u32::from(a)..=u32::from(b)).contains(&u32::from(ip))
    }

    /// Picks the address to offer `mac`: its pinned address, else its previous one, else the
    /// address it asked for, else the first never-used pool address, else the pool address
    /// that expired longest ago. `None` when the pool is exhausted.
    pub fn choose(
        &self,
        cfg: &Config,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let reserved = cfg.reserved();
        if let Some(ip) = cfg.hosts.get(&mac).and_then(|h| h.ip) {
            return self
                .available_to(cfg, &reserved, ip, mac, now)
                .then_some(ip);
        }
        if let Some(l) = self.by_mac.get(&mac) {
            if Self::in_pool(cfg, l.ip) && self.available_to(cfg, &reserved, l.ip, mac, now) {
                return Some(l.ip);
            }
        }
        if let Some(ip) = requested {
            if Self::in_pool(cfg, ip) && self.available_to(cfg, &reserved, ip, mac, now) {
                return Some(ip);
            }
        }
        let (a, b) = cfg.dhcp.range;
        let mut oldest: Option<(u64, Ipv4Addr)> = None;
        for n in u32::from(a)..=u32::from(b) {
            let ip = Ipv4Addr::from(n);
            if !self.available_to(cfg, &reserved, ip, mac, now) {
                continue;
            }
            match self.by_ip.get(&ip) {
                None => return Some(ip),
                Some(owner) => {
                    let exp = self.by_mac[owner].expires;
                    if oldest.is_none_or(|(e, _)| exp < e) {
                        oldest = Some((exp, ip));
                    }
                }
            }
        }
        oldest.map(|(_, ip)| ip)
    }

    /// Whether `mac` may be ACKed `ip` at `now`.
    pub fn check(&self, cfg: &Config, mac: Mac, ip: Ipv4Addr, now: u64) -> Result<(), Refusal> {
        if !cfg.dhcp.subnet.contains(&ip) {
            return Err(Refusal::WrongSubnet(ip));
        }
        let pinned = cfg.hosts.get(&mac).and_then(|h| h.ip);
        if let Some(p) = pinned {
            if p != ip {
                return Err(Refusal::NotAllowed(ip));
            }
        } else if !Self::in_pool(cfg, ip) {
            return Err(Refusal::NotAllowed(ip));
        }
        if !self.available_to(cfg, &cfg.reserved(), ip, mac, now) {
            return Err(Refusal::Taken(ip));
        }
        Ok(())
    }

    /// Binds `ip` to `mac` in `state` until `expires`, dropping any other binding either had.
    pub fn bind(&mut self, mac: Mac, ip: Ipv4Addr, state: State, expires: u64) -> Lease {
        if let Some(old) = self.by_mac.get(&mac) {
            if old.ip != ip {
                self.by_ip.remove(&old.ip);
            }
        }
        if let Some(prev) = self.by_ip.insert(ip, mac) {
            if prev != mac {
                self.by_mac.remove(&prev);
            }
        }
        let lease = Lease {
            mac,
            ip,
            state,
            expires,
        };
        self.by_mac.insert(mac, lease.clone());
        lease
    }

    /// RELEASE: frees the address now, keeping the binding for stickiness.
    pub fn release(&mut self, mac: Mac, ip: Ipv4Addr) -> bool {
        match self.by_mac.get_mut(&mac) {
            Some(l) if l.ip == ip => {
                l.state = State::Released;
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the address is in use by something else on the wire; keep it out of the pool.
    pub fn decline(&mut self, mac: Mac, ip: Ipv4Addr, now: u64) -> bool {
        match self.by_mac.get(&mac) {
            Some(l) if l.ip == ip => {
                self.by_mac.remove(&mac);
                self.by_ip.remove(&ip);
                self.quarantine.insert(ip, now + DECLINE_QUARANTINE_SECS);
                true
            }
            _ => false,
        }
    }

    /// Forgets an OFFER the client turned down (it REQUESTed another server's address).
    pub fn drop_offer(&mut self, mac: Mac) {
        if self
            .by_mac
            .get(&mac)
            .is_some_and(|l| l.state == State::Offered)
        {
            if let Some(l) = self.by_mac.remove(&mac) {
                self.by_ip.remove(&l.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            r#"[server]
interface = "br1"
address = "10.0.0.1"
boot_dir = "/srv"
state_dir = "/var/lib/pxed"
[dhcp]
subnet = "10.0.0.0/24"
range = ["10.0.0.10", "10.0.0.12"]
router = "10.0.0.1"
[profiles.p]
action = "local"
{extra}"#
        );
        crate::config::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn mac(n: u8) -> Mac {
        Mac([0x52, 0x54, 0, 0, 0, n])
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn same_mac_gets_same_address_even_after_expiry() {
        let c = cfg("");
        let mut t = LeaseTable::new();
        let a = t.choose(&c, mac(1), None, 0).unwrap();
        assert_eq!(a, ip(10));
        t.bind(mac(1), a, State::Bound, 100);
        let b = t.choose(&c, mac(2), None, 0).unwrap();
        assert_eq!(b, ip(11));
        t.bind(mac(2), b, State::Bound, 100);
        // Long after expiry, mac 1 still gets its own address back.
        assert_eq!(t.choose(&c, mac(1), None, 10_000), Some(ip(10)));
        // A newcomer gets a never-used address before an expired one.
        assert_eq!(t.choose(&c, mac(3), None, 10_000), Some(ip(12)));
    }

    #[test]
    fn exhausted_pool_offers_nothing_until_a_lease_expires() {
        let c = cfg("");
        let mut t = LeaseTable::new();
        for n in 1..=3 {
            let a = t.choose(&c, mac(n), None, 0).unwrap();
            t.bind(mac(n), a, State::Bound, 100 + u64::from(n));
        }
        assert_eq!(t.choose(&c, mac(9), None, 50), None);
        // After expiry the oldest lease is taken over.
        assert_eq!(t.choose(&c, mac(9), None, 1000), Some(ip(10)));
        t.bind(mac(9), ip(10), State::Bound, 2000);
        assert_eq!(t.get(&mac(1)), None);
        assert_eq!(t.mac_of(ip(10)), Some(mac(9)));
    }

    #[test]
    fn reserved_addresses_never_go_to_others() {
        let c = cfg("[hosts.\"52:54:00:00:00:07\"]\nprofile = \"p\"\nip = \"10.0.0.10\"\n");
        let t = LeaseTable::new();
        assert_eq!(t.choose(&c, mac(1), Some(ip(10)), 0), Some(ip(11)));
        assert_eq!(t.choose(&c, mac(7), None, 0), Some(ip(10)));
        assert_eq!(t.check(&c, mac(1), ip(10), 0), Err(Refusal::Taken(ip(10))));
        assert_eq!(
            t.check(&c, mac(7), ip(11), 0),
            Err(Refusal::NotAllowed(ip(11)))
        );
        assert_eq!(t.check(&c, mac(7), ip(10), 0), Ok(()));
    }

    #[test]
    fn requested_address_is_honoured_when_free() {
        let c = cfg("");
        let t = LeaseTable::new();
        assert_eq!(t.choose(&c, mac(1), Some(ip(12)), 0), Some(ip(12)));
        assert_eq!(t.choose(&c, mac(1), Some(ip(99)), 0), Some(ip(10)));
    }

    #[test]
    fn check_refuses_wrong_subnet_and_taken() {
        let c = cfg("");
        let mut t = LeaseTable::new();
        t.bind(mac(1), ip(10), State::Bound, 100);
        assert_eq!(
            t.check(&c, mac(2), Ipv4Addr::new(192, 168, 1, 5), 0),
            Err(Refusal::WrongSubnet(Ipv4Addr::new(192, 168, 1, 5)))
        );
        assert_eq!(t.check(&c, mac(2), ip(10), 0), Err(Refusal::Taken(ip(10))));
        assert_eq!(t.check(&c, mac(1), ip(10), 0), Ok(()));
        assert_eq!(t.check(&c, mac(2), ip(10), 200), Ok(()));
    }

    #[test]
    fn release_frees_and_decline_quarantines() {
        let c = cfg("");
        let mut t = LeaseTable::new();
        t.bind(mac(1), ip(10), State::Bound, 1000);
        assert!(t.release(mac(1), ip(10)));
        assert_eq!(t.check(&c, mac(2), ip(10), 0), Ok(()));
        t.bind(mac(2), ip(11), State::Bound, 1000);
        assert!(t.decline(mac(2), ip(11), 0));
        assert_eq!(t.choose(&c, mac(2), Some(ip(11)), 10), Some(ip(12)));
        assert_eq!(
            t.choose(&c, mac(3), Some(ip(11)), DECLINE_QUARANTINE_SECS + 1),
            Some(ip(11))
        );
    }
}

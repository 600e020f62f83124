//! State shared by the listeners: the live config, the leases, and what DHCP learned about
//! each client that HTTP needs (its architecture).
//!
//! Locks are `std::sync` and are never held across an `.await`: every critical section is a
//! few map operations, so an async lock would only add overhead.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::abilities::Report;
use crate::config::Config;
use crate::events::{Events, Tier};
use crate::leases::LeaseTable;
use crate::limits::{Budget, Throttle};
use crate::mac::Mac;
use crate::metrics::{Counters, PoolGauge};
use crate::nextboot::NextBoots;

/// Unix time in seconds, the clock leases and expiries are measured by.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What DHCP last saw of a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// Architecture name from option 93, for `{{ arch }}`.
    pub arch: Option<String>,
    /// The address it was seen using in proxy mode (its REQUEST to the address server, or
    /// its own source address on port 4011), for script ownership.
    pub proxy_ip: Option<Ipv4Addr>,
    /// The profile last served to it (script or GRUB config): a one-shot installer's last
    /// initrd completes that boot, not the host's own profile's.
    pub served: Option<String>,
}

/// Clients outside `[hosts]` remembered in [`Shared::seen`]; past this the one first seen
/// longest ago goes. Hosts of the config are kept apart (`seen_hosts`), so a flood of
/// invented MACs never pushes them out.
pub(crate) const SEEN_CLIENTS: usize = 65_536;

/// A map that keeps at most `cap` entries, dropping the one first written longest ago.
#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    map: HashMap<K, V>,
    /// Keys in the order they were first written, oldest first. Keys leave only by eviction,
    /// so it always holds exactly the keys of `map`.
    order: std::collections::VecDeque<K>,
    /// Most entries kept.
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Copy, V> Recent<K, V> {
    /// An empty map of at most `cap` entries.
    pub(crate) fn new(cap: usize) -> Self {
        Recent {
            map: HashMap::new(),
            order: Default::default(),
            cap: cap.max(1),
        }
    }

    /// Changes the entry for `k`, starting from `V::default()` for a new key. A new key is
    /// the newest; when the map is full, the key first written longest ago goes.
    pub(crate) fn update(&mut self, k: K, f: impl FnOnce(&mut V))
    where
        V: Default,
    {
        if let Some(v) = self.map.get_mut(&k) {
            f(v);
            return;
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.map.remove(&oldest);
                }
                None => break,
            }
        }
        let mut v = V::default();
        f(&mut v);
        self.order.push_back(k);
        self.map.insert(k, v);
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// One log line a second at most for each kind of event a neighbour can trigger at will.
#[derive(Debug)]
pub(crate) struct Quiet {
    /// Malformed DHCP datagrams.
    pub dhcp_malformed: Throttle,
    /// DHCP requests refused by a policy, or from unmanaged MACs.
    pub dhcp_refused: Throttle,
    /// HTTP requests refused by a policy (script ownership, bad paths).
    pub http_refused: Throttle,
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet {
            dhcp_malformed: Throttle::per_second(),
            dhcp_refused: Throttle::per_second(),
            http_refused: Throttle::per_second(),
        }
    }
}

/// Everything the listeners share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The live config; replaced whole on reload so readers see one consistent version.
    config: RwLock<Arc<Config>>,
    /// The address pool.
    pub leases: Mutex<LeaseTable>,
    /// Per-client facts learned from DHCP for MACs outside `[hosts]`, bounded to
    /// [`SEEN_CLIENTS`].
    pub seen: Mutex<Recent<Mac, Seen>>,
    /// The same for MACs in `[hosts]`: bounded by the config, and out of a flood's reach.
    pub seen_hosts: Mutex<HashMap<Mac, Seen>>,
    /// Addresses that fetched a MAC's script, so later requests from them (kernel, initrd)
    /// are logged under that MAC even when another DHCP server leased the address.
    pub script_peers: Mutex<HashMap<Ipv4Addr, Mac>>,
    /// Counters for `/metrics`.
    pub counters: Counters,
    /// Serialises admin edits of the config file, so two edits never lose each other.
    pub edit_lock: Mutex<()>,
    /// Hash of the file text pxed itself last wrote, so the watcher does not reload it.
    pub self_written: Mutex<Option<u64>>,
    /// One-shot boots set through the admin API.
    pub next_boots: NextBoots,
    /// Per-machine boot timelines.
    pub events: Events,
    /// What this process may do (capabilities), probed once at start-up by the daemon;
    /// unset in a `Shared` built by hand (router tests), where it withholds nothing.
    pub abilities: OnceLock<Report>,
    /// Log throttles for what anyone on the boot network can trigger at any rate.
    pub quiet: Quiet,
    /// The one writer of the lease store, set by the daemon once it runs; the admin API's
    /// lease deletions go through it.
    pub commits: OnceLock<crate::dhcp::CommitQueue>,
    /// What the descriptor limit allows, set once at start-up by the daemon; unset in a
    /// `Shared` built by hand, where only the configured limits apply.
    pub budget: OnceLock<Budget>,
}

impl Shared {
    #[cfg(test)]
    /// Wraps a validated config with an empty lease table.
    pub(crate) fn new(config: Config) -> Arc<Shared> {
        let leases = LeaseTable::new(&config);
        Self::with_leases(config, leases)
    }

    #[cfg(test)]
    /// Wraps a validated config and the leases restored from the store.
    pub(crate) fn with_leases(config: Config, leases: LeaseTable) -> Arc<Shared> {
        Self::with_state(config, leases, NextBoots::in_memory())
    }

    /// Wraps a validated config with the leases and one-shot boots restored from disk.
    pub(crate) fn with_state(
        config: Config,
        leases: LeaseTable,
        next_boots: NextBoots,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            config: RwLock::new(Arc::new(config)),
            leases: Mutex::new(leases),
            seen: Mutex::new(Recent::new(SEEN_CLIENTS)),
            seen_hosts: Mutex::new(HashMap::new()),
            script_peers: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            edit_lock: Mutex::new(()),
            self_written: Mutex::new(None),
            next_boots,
            events: Events::default(),
            abilities: OnceLock::new(),
            budget: OnceLock::new(),
            quiet: Quiet::default(),
            commits: OnceLock::new(),
        })
    }

    /// The current config.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `config` live: later requests see it whole, and the lease table is fitted to its
    /// pools. Requests and transfers already running keep the config they started with.
    pub(crate) fn replace_config(&self, config: Config) {
        let config = Arc::new(config);
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reconfigure(&config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Leases in use and free per pool, for `/metrics`.
    pub(crate) fn pool_gauges(&self, now: u64) -> Vec<PoolGauge> {
        let cfg = self.config();
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        cfg.dhcp
            .pools
            .iter()
            .filter(|p| p.range.is_some())
            .map(|p| {
                let (in_use, free) = leases.pool_usage(&cfg, p, now);
                PoolGauge {
                    subnet: p.subnet.to_string(),
                    in_use,
                    free,
                }
            })
            .collect()
    }

    /// The MAC behind an address (our lease, else the last script fetched from it), for
    /// logging HTTP and TFTP requests by machine.
    pub(crate) fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        let leased = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mac_of(ip);
        leased.or_else(|| {
            self.script_peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&ip)
                .copied()
        })
    }

    /// The MAC whose bound, active pxed lease holds `ip` (never a script peer or an offer).
    pub(crate) fn bound_mac_of(&self, ip: Ipv4Addr, now: u64) -> Option<Mac> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bound_mac_of(ip, now)
    }

    /// Remembers that `ip` fetched the script of `mac`.
    pub(crate) fn note_script_peer(&self, ip: Ipv4Addr, mac: Mac) {
        let mut peers = self.script_peers.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a stale entry only mislabels a log line, so forgetting all is fine.
        if peers.len() >= 65_536 {
            peers.clear();
        }
        peers.insert(ip, mac);
    }

    /// The address leased to a MAC.
    pub(crate) fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_by_mac(mac)
            .map(|l| l.ip)
    }

    /// Whether this process has the named ability (see [`crate::abilities`]).
    pub(crate) fn can(&self, ability: &str) -> bool {
        self.abilities.get().is_none_or(|r| r.has(ability))
    }

    /// Records an event in a machine's timeline: in the hosts' tier for a MAC in `[hosts]`,
    /// in the defaults' tier for one booting `[defaults]`, and nowhere for an unmanaged MAC.
    pub(crate) fn record_event(
        &self,
        mac: Mac,
        kind: crate::events::EventKind,
        detail: serde_json::Value,
    ) {
        let cfg = self.config();
        let tier = if cfg.hosts.contains_key(&mac) {
            Tier::Host
        } else if cfg.default_profile.is_some() {
            Tier::Default
        } else {
            return;
        };
        self.events.record(tier, mac, kind, detail);
    }

    /// The descriptor budget every per-client limit is capped by.
    pub(crate) fn budget(&self) -> Budget {
        self.budget.get().copied().unwrap_or_else(Budget::unlimited)
    }

    /// What DHCP saw of a MAC.
    pub(crate) fn seen_of(&self, mac: &Mac) -> Option<Seen> {
        let host = self
            .seen_hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mac)
            .cloned();
        host.or_else(|| {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(mac)
                .cloned()
        })
    }

    /// The architecture DHCP last saw for a MAC.
    pub(crate) fn arch_of(&self, mac: &Mac) -> Option<String> {
        self.seen_of(mac).and_then(|s| s.arch)
    }

    /// Remembers what DHCP saw of a client.
    pub(crate) fn note_seen(&self, mac: Mac, f: impl FnOnce(&mut Seen)) {
        if self.config().hosts.contains_key(&mac) {
            f(self
                .seen_hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(mac)
                .or_default());
        } else {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .update(mac, f);
        }
    }

    /// The addresses that own a MAC's script and one-shot: those of its bound, active leases
    /// from pxed (never a mere offer, which anyone can get by sending a DISCOVER), else the
    /// address it was seen using in proxy mode. Empty when pxed knows of none.
    pub(crate) fn owners_of(&self, mac: &Mac, now: u64) -> Vec<Ipv4Addr> {
        let leased = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bound_ips(mac, now);
        if !leased.is_empty() {
            return leased;
        }
        self.seen_of(mac)
            .and_then(|s| s.proxy_ip)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_latest_keys_up_to_its_cap() {
        let mut r: Recent<u32, Seen> = Recent::new(3);
        for k in 0..3 {
            r.update(k, |s| s.arch = Some(format!("a{k}")));
        }
        // Updating 0 keeps its place: it was written first, so it goes first.
        r.update(0, |s| s.proxy_ip = Some(Ipv4Addr::new(10, 0, 0, 1)));
        let zero = r.get(&0).unwrap();
        assert_eq!(
            zero.arch.as_deref(),
            Some("a0"),
            "an update keeps the other fields"
        );
        assert_eq!(zero.proxy_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
        r.update(3, |_| {});
        assert_eq!(r.len(), 3);
        assert!(r.get(&0).is_none());
        assert!(r.get(&1).is_some());
        // A flood of new keys never grows it.
        for k in 100..10_000 {
            r.update(k, |_| {});
        }
        assert_eq!(r.len(), 3);
    }
}

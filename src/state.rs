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
use crate::events::Events;
use crate::leases::LeaseTable;
use crate::mac::Mac;
use crate::metrics::{Counters, PoolGauge};
use crate::nextboot::NextBoots;

/// Unix time in seconds, the clock leases and expiries are measured by.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What DHCP last saw of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Architecture name from option 93, for `{{ arch }}`.
    pub arch: String,
}

/// Everything the listeners share.
#[derive(Debug)]
pub struct Shared {
    /// The live config; replaced whole on reload so readers see one consistent version.
    config: RwLock<Arc<Config>>,
    /// The address pool.
    pub leases: Mutex<LeaseTable>,
    /// Per-client facts learned from DHCP.
    pub seen: Mutex<HashMap<Mac, Seen>>,
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
}

impl Shared {
    /// Wraps a validated config with an empty lease table.
    pub fn new(config: Config) -> Arc<Shared> {
        let leases = LeaseTable::new(&config);
        Self::with_leases(config, leases)
    }

    /// Wraps a validated config and the leases restored from the store.
    pub fn with_leases(config: Config, leases: LeaseTable) -> Arc<Shared> {
        Self::with_state(config, leases, NextBoots::in_memory())
    }

    /// Wraps a validated config with the leases and one-shot boots restored from disk.
    pub fn with_state(config: Config, leases: LeaseTable, next_boots: NextBoots) -> Arc<Shared> {
        Arc::new(Shared {
            config: RwLock::new(Arc::new(config)),
            leases: Mutex::new(leases),
            seen: Mutex::new(HashMap::new()),
            script_peers: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            edit_lock: Mutex::new(()),
            self_written: Mutex::new(None),
            next_boots,
            events: Events::default(),
            abilities: OnceLock::new(),
        })
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `config` live: later requests see it whole, and the lease table is fitted to its
    /// pools. Requests and transfers already running keep the config they started with.
    pub fn replace_config(&self, config: Config) {
        let config = Arc::new(config);
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reconfigure(&config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Leases in use and free per pool, for `/metrics`.
    pub fn pool_gauges(&self, now: u64) -> Vec<PoolGauge> {
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
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
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

    /// Remembers that `ip` fetched the script of `mac`.
    pub fn note_script_peer(&self, ip: Ipv4Addr, mac: Mac) {
        let mut peers = self.script_peers.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a stale entry only mislabels a log line, so forgetting all is fine.
        if peers.len() >= 65_536 {
            peers.clear();
        }
        peers.insert(ip, mac);
    }

    /// The address leased to a MAC.
    pub fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_by_mac(mac)
            .map(|l| l.ip)
    }

    /// Whether this process has the named ability (see [`crate::abilities`]).
    pub fn can(&self, ability: &str) -> bool {
        self.abilities.get().is_none_or(|r| r.has(ability))
    }

    /// The architecture DHCP last saw for a MAC.
    pub fn arch_of(&self, mac: &Mac) -> Option<String> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mac)
            .map(|s| s.arch.clone())
    }
}

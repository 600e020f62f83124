//! The TOML config: what pxed serves. Parsing and validation are pure, so they are tested
//! from strings; [`load`] is the only function here that touches the filesystem, and only to
//! read the file, to refuse a `state_dir` or token file that symlinks put inside `boot_dir`,
//! and to warn about files that are missing under `boot_dir`.
//!
//! Every error names the file, line, column and dotted key at fault.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

mod checks;
mod locate;
mod policy;
mod raw;
mod validate;

pub(crate) use checks::check_profile_name;
use checks::{check_script_templates, missing_files, private_paths};
use locate::{invalid, key_at};
use raw::RawConfig;
use validate::Validator;

use crate::mac::Mac;
use crate::profiles::Profile;

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read config: {source}")]
    Io {
        /// The config file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is refused.
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted path of the key, e.g. `hosts."de:00:00:00:00:de".profile`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Something suspicious that does not stop pxed from serving, such as a missing boot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key the warning is about.
    pub key: String,
    /// 1-based line of that key, when found.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// The validated config that the rest of pxed uses.

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub(crate) source: PathBuf,
    /// Where and as whom pxed serves.
    pub(crate) server: Server,
    /// The DHCP pool and options.
    pub(crate) dhcp: Dhcp,
    /// The boot HTTP listener.
    pub(crate) http: Http,
    /// TFTP limits.
    pub(crate) tftp: Tftp,
    /// The admin API listener.
    pub(crate) admin: Admin,
    /// First-stage boot file per client architecture.
    pub(crate) first_stage: FirstStage,
    /// Boot profiles by name.
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// Managed hosts by MAC.
    pub(crate) hosts: HashMap<Mac, Host>,
    /// Profile for MACs that are not in `hosts`; `None` means unknown MACs are ignored.
    pub(crate) default_profile: Option<String>,
    /// `[defaults] secure_boot`: whether hosts that do not say boot the signed chain.
    pub(crate) default_secure_boot: bool,
    /// Every address pinned to a host, derived from `hosts` once at validation because the
    /// pool consults it on every DHCP request.
    reserved: HashMap<Ipv4Addr, Mac>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    /// Interface DHCP and TFTP are bound to (`SO_BINDTODEVICE`).
    pub(crate) interface: String,
    /// This server's address on that interface: server id, next-server, URL host.
    pub(crate) address: Ipv4Addr,
    /// Root of everything TFTP and HTTP serve.
    pub(crate) boot_dir: PathBuf,
    /// Where pxed keeps state (leases, one-shot boots).
    pub(crate) state_dir: PathBuf,
}

/// `[dhcp]`.
#[derive(Debug, Clone)]
pub(crate) struct Dhcp {
    /// Full DHCP server, or proxyDHCP (boot information only, no addresses).
    pub(crate) mode: DhcpMode,
    /// Option 51; T1 and T2 are 1/2 and 7/8 of it.
    pub(crate) lease_time: Duration,
    /// How long a DECLINEd address stays out of the pool.
    pub(crate) decline_time: Duration,
    /// `[dhcp]`'s own subnet first (the one on `[server] interface`), then each
    /// `[[dhcp.subnets]]` entry (reached through DHCP relays), in file order.
    pub(crate) pools: Vec<Pool>,
    /// Relay agents allowed to set a `giaddr` outside every served subnet (an RFC 3527 relay
    /// that names the client's link with option 82.5 or 118 and is reached on another
    /// network). Replies go to giaddr, so any other such giaddr is refused.
    pub(crate) relay_agents: Vec<Ipv4Net>,
    /// Leases one MAC may hold at once, whatever client identifiers it sends; a new one
    /// beyond this takes over the MAC's oldest.
    pub(crate) max_leases_per_mac: usize,
    /// New leases per second for MACs not in `[hosts]` (matters with `[defaults]`).
    pub(crate) unknown_client_rate: u32,
    /// Burst allowance of that rate.
    pub(crate) unknown_client_burst: u32,
}

impl Dhcp {
    #[cfg(test)]
    /// The subnet of the served interface.
    pub(crate) fn primary(&self) -> &Pool {
        &self.pools[0]
    }

    /// Whether replies may go to `giaddr`: it is in a served subnet or a configured relay.
    pub(crate) fn relay_allowed(&self, giaddr: Ipv4Addr) -> bool {
        self.pool_for(giaddr).is_some() || self.relay_agents.iter().any(|n| n.contains(&giaddr))
    }

    /// The pool whose subnet holds `ip`.
    pub(crate) fn pool_for(&self, ip: Ipv4Addr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.subnet.contains(&ip))
    }
}

/// One subnet pxed serves, with its address range and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pool {
    pub(crate) subnet: Ipv4Net,
    /// The interface pxed serves this subnet on directly; `None` for a subnet reached through
    /// relays.
    pub(crate) interface: Option<String>,
    /// The address this subnet's clients reach pxed at: server id, next-server, URL host.
    pub(crate) server: Ipv4Addr,
    /// First and last pool address, inclusive; `None` in proxy mode.
    pub(crate) range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Option 3.
    pub(crate) router: Option<Ipv4Addr>,
    /// Option 6.
    pub(crate) dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub(crate) domain: Option<String>,
}

/// `[dhcp] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DhcpMode {
    /// pxed hands out addresses and boot information (the default).
    Server,
    /// Another server hands out addresses; pxed answers PXE clients with boot information
    /// only, on port 67 and on port 4011 (the PXE proxyDHCP protocol).
    Proxy,
}

/// `[http]`.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    /// Socket address the boot HTTP listener binds.
    pub(crate) listen: SocketAddr,
    /// How many connections, and for how long, any neighbour on the boot network may hold.
    pub(crate) limits: ConnLimits,
    /// Who may fetch a machine's iPXE script.
    pub(crate) script_access: ScriptAccess,
}

/// Bounds on one HTTP listener's connections, so that no client, or crowd of forged
/// clients, can hold the sockets a legitimate client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    /// Connections open at once, from everyone (further capped by the descriptor budget).
    pub(crate) max_connections: usize,
    /// Connections open at once from one client address.
    pub(crate) max_per_client: usize,
    /// Time from connect to a complete first request header.
    pub(crate) header_timeout: Duration,
    /// Time a kept-alive connection may wait between requests.
    pub(crate) idle_timeout: Duration,
    /// Time a response may go without the client reading any of it.
    pub(crate) stall_timeout: Duration,
}

/// `[http] script_access`: who may read the script at `/ipxe/{mac}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptAccess {
    /// Only the address pxed leased to that MAC (or saw it use in proxy mode), once pxed
    /// knows one; before that, anyone, without spending a one-shot.
    Owner,
    /// Anyone who can reach the listener (pxed then cannot tell machines apart).
    Any,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    /// Where the admin API listens; loopback by default.
    pub(crate) listen: SocketAddr,
    /// File holding the bearer token; `PXED_ADMIN_TOKEN` is used when unset. A token is
    /// required whenever `listen` is not a loopback address.
    pub(crate) token_file: Option<PathBuf>,
    /// Connections open at once on each admin address.
    pub(crate) max_connections: usize,
    /// Host names (besides `localhost` and the listen address) a request's `Host` header may
    /// carry, such as a Service name; anything else is refused, which stops DNS rebinding.
    pub(crate) allowed_hosts: Vec<String>,
}

/// `[tftp]`.
#[derive(Debug, Clone)]
pub(crate) struct Tftp {
    /// Largest block size granted (RFC 2348); keeps blocks inside one Ethernet frame.
    pub(crate) max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub(crate) max_windowsize: u16,
    /// Transfers at once, from everyone (further capped by the descriptor budget).
    pub(crate) max_sessions: usize,
    /// Transfers at once from one client address.
    pub(crate) max_sessions_per_client: usize,
    /// Largest retransmission timeout a client may negotiate (RFC 2349 allows 255 s).
    pub(crate) max_timeout: Duration,
    /// Wait for the first answer of a peer that has not answered yet: a forged source never
    /// answers, so its session must not live long.
    pub(crate) unanswered_timeout: Duration,
    /// Retransmissions to a peer that has never answered.
    pub(crate) unanswered_retries: u32,
}

/// `[first_stage]`: file (relative to `boot_dir`) handed to non-iPXE PXE clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirstStage {
    /// Arch 0, over TFTP.
    pub(crate) bios: String,
    /// Arch 6, over TFTP.
    pub(crate) efi_ia32: String,
    /// Arch 7 and 9, over TFTP.
    pub(crate) efi_x64: String,
    /// Arch 11, over TFTP.
    pub(crate) efi_arm64: String,
    /// Arch 15, as an HTTP URL.
    pub(crate) http_ia32: String,
    /// Arch 16, as an HTTP URL.
    pub(crate) http_x64: String,
    /// Arch 19, as an HTTP URL; empty (the default) offers none, since Debian's arm64 GRUB
    /// cannot go on over HTTP.
    pub(crate) http_arm64: String,
    /// Arch 7 and 9 on a Secure Boot host, over TFTP: the signed shim, which loads
    /// `grubx64.efi` from the same directory.
    pub(crate) secure_boot_x64: String,
}

impl Default for FirstStage {
    fn default() -> Self {
        FirstStage {
            bios: "undionly.kpxe".into(),
            efi_ia32: "ipxe.efi".into(),
            efi_x64: "ipxe.efi".into(),
            efi_arm64: "grubaa64.efi".into(),
            http_ia32: "ipxe.efi".into(),
            http_x64: "ipxe.efi".into(),
            http_arm64: String::new(),
            secure_boot_x64: "shimx64.efi".into(),
        }
    }
}

/// One `[hosts."MAC"]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host {
    /// Name of the profile this host boots.
    pub(crate) profile: String,
    /// A pinned address, inside or outside the pool.
    pub(crate) ip: Option<Ipv4Addr>,
    /// Option 12 and `{{ hostname }}`.
    pub(crate) hostname: Option<String>,
    /// Boots shim → GRUB → kernel on x86-64 UEFI; `None` takes `[defaults] secure_boot`.
    pub(crate) secure_boot: Option<bool>,
}

impl Config {
    /// Base URL of the boot HTTP listener as clients of the served interface reach it.
    pub(crate) fn http_base(&self) -> String {
        self.http_base_at(self.server.address)
    }

    /// Base URL of the boot HTTP listener at one of pxed's addresses.
    pub(crate) fn http_base_at(&self, server: Ipv4Addr) -> String {
        format!("http://{}:{}", server, self.http.listen.port())
    }

    /// The profile name a MAC boots, if pxed manages it.
    pub(crate) fn profile_for(&self, mac: &Mac) -> Option<&str> {
        match self.hosts.get(mac) {
            Some(h) => Some(h.profile.as_str()),
            None => self.default_profile.as_deref(),
        }
    }

    /// Whether `mac` boots the signed chain (shim → GRUB → kernel) on x86-64 UEFI.
    pub(crate) fn secure_boot_for(&self, mac: &Mac) -> bool {
        self.hosts
            .get(mac)
            .and_then(|h| h.secure_boot)
            .unwrap_or(self.default_secure_boot)
    }

    /// Every address pinned to a host, which the pool must never hand to anyone else.
    pub(crate) fn reserved(&self) -> &HashMap<Ipv4Addr, Mac> {
        &self.reserved
    }

    #[cfg(test)]
    /// Number of addresses in the pool.
    pub(crate) fn pool_size(&self) -> u32 {
        self.dhcp
            .pools
            .iter()
            .filter_map(|p| p.range)
            .map(|(a, b)| u32::from(b) - u32::from(a) + 1)
            .sum()
    }
}

/// Reads and validates a config file. Returns the config and warnings about it.
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let config = parse(path, &text)?;
    private_paths(&config, &text)?;
    let mut warnings = missing_files(&config, &text);
    warnings.extend(check_script_templates(&config, &text)?);
    Ok((config, warnings))
}

/// Parses and validates config text. Pure: `file` is only used in messages.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = key_at(text, span.start).unwrap_or_else(|| "(document)".into());
        invalid(file, text, Some(span), key, e.message().trim().to_string())
    })?;
    Validator { file, text }.validate(raw)
}

#[cfg(test)]
mod tests;

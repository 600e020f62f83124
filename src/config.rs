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
mod raw;
mod validate;

pub(crate) use checks::check_profile_name;
pub use checks::check_relative;
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
    pub source: PathBuf,
    /// Where and as whom pxed serves.
    pub server: Server,
    /// The DHCP pool and options.
    pub dhcp: Dhcp,
    /// The boot HTTP listener.
    pub http: Http,
    /// TFTP limits.
    pub tftp: Tftp,
    /// The admin API listener.
    pub admin: Admin,
    /// First-stage boot file per client architecture.
    pub first_stage: FirstStage,
    /// Boot profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Managed hosts by MAC.
    pub hosts: HashMap<Mac, Host>,
    /// Profile for MACs that are not in `hosts`; `None` means unknown MACs are ignored.
    pub default_profile: Option<String>,
    /// Every address pinned to a host, derived from `hosts` once at validation because the
    /// pool consults it on every DHCP request.
    reserved: HashMap<Ipv4Addr, Mac>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Interface DHCP and TFTP are bound to (`SO_BINDTODEVICE`).
    pub interface: String,
    /// This server's address on that interface: server id, next-server, URL host.
    pub address: Ipv4Addr,
    /// Root of everything TFTP and HTTP serve.
    pub boot_dir: PathBuf,
    /// Where pxed keeps state (leases, one-shot boots).
    pub state_dir: PathBuf,
}

/// `[dhcp]`.
#[derive(Debug, Clone)]
pub struct Dhcp {
    /// Full DHCP server, or proxyDHCP (boot information only, no addresses).
    pub mode: DhcpMode,
    /// Option 51; T1 and T2 are 1/2 and 7/8 of it.
    pub lease_time: Duration,
    /// How long a DECLINEd address stays out of the pool.
    pub decline_time: Duration,
    /// `[dhcp]`'s own subnet first (the one on `[server] interface`), then each
    /// `[[dhcp.subnets]]` entry (reached through DHCP relays), in file order.
    pub pools: Vec<Pool>,
}

impl Dhcp {
    /// The subnet of the served interface.
    pub fn primary(&self) -> &Pool {
        &self.pools[0]
    }

    /// The pool whose subnet contains `ip`.
    pub fn pool_for(&self, ip: Ipv4Addr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.subnet.contains(&ip))
    }
}

/// One subnet pxed serves, with its address range and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The interface pxed serves this subnet on directly; `None` for a subnet reached through
    /// relays.
    pub interface: Option<String>,
    /// The address this subnet's clients reach pxed at: server id, next-server, URL host.
    pub server: Ipv4Addr,
    /// First and last pool address, inclusive; `None` in proxy mode.
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
}

/// `[dhcp] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpMode {
    /// pxed hands out addresses and boot information (the default).
    Server,
    /// Another server hands out addresses; pxed answers PXE clients with boot information
    /// only, on port 67 and on port 4011 (the PXE proxyDHCP protocol).
    Proxy,
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct Http {
    /// Socket address the boot HTTP listener binds.
    pub listen: SocketAddr,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Where the admin API listens; loopback by default.
    pub listen: SocketAddr,
    /// File holding the bearer token; `PXED_ADMIN_TOKEN` is used when unset. A token is
    /// required whenever `listen` is not a loopback address.
    pub token_file: Option<PathBuf>,
}

/// `[tftp]`.
#[derive(Debug, Clone)]
pub struct Tftp {
    /// Largest block size granted (RFC 2348); keeps blocks inside one Ethernet frame.
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
}

/// `[first_stage]`: file (relative to `boot_dir`) handed to non-iPXE PXE clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstStage {
    /// Arch 0, over TFTP.
    pub bios: String,
    /// Arch 6, over TFTP.
    pub efi_ia32: String,
    /// Arch 7 and 9, over TFTP.
    pub efi_x64: String,
    /// Arch 11, over TFTP.
    pub efi_arm64: String,
    /// Arch 15, as an HTTP URL.
    pub http_ia32: String,
    /// Arch 16, as an HTTP URL.
    pub http_x64: String,
    /// Arch 19, as an HTTP URL.
    pub http_arm64: String,
}

impl Default for FirstStage {
    fn default() -> Self {
        FirstStage {
            bios: "undionly.kpxe".into(),
            efi_ia32: "ipxe.efi".into(),
            efi_x64: "ipxe.efi".into(),
            efi_arm64: "ipxe-arm64.efi".into(),
            http_ia32: "ipxe.efi".into(),
            http_x64: "ipxe.efi".into(),
            http_arm64: "ipxe-arm64.efi".into(),
        }
    }
}

/// One `[hosts."MAC"]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Name of the profile this host boots.
    pub profile: String,
    /// A pinned address, inside or outside the pool.
    pub ip: Option<Ipv4Addr>,
    /// Option 12 and `{{ hostname }}`.
    pub hostname: Option<String>,
}

impl Config {
    /// Base URL of the boot HTTP listener as clients of the served interface reach it.
    pub fn http_base(&self) -> String {
        self.http_base_at(self.server.address)
    }

    /// Base URL of the boot HTTP listener at one of pxed's addresses.
    pub fn http_base_at(&self, server: Ipv4Addr) -> String {
        format!("http://{}:{}", server, self.http.listen.port())
    }

    /// The profile name a MAC boots, if pxed manages it.
    pub fn profile_for(&self, mac: &Mac) -> Option<&str> {
        match self.hosts.get(mac) {
            Some(h) => Some(h.profile.as_str()),
            None => self.default_profile.as_deref(),
        }
    }

    /// Every address pinned to a host, which the pool must never hand to anyone else.
    pub fn reserved(&self) -> &HashMap<Ipv4Addr, Mac> {
        &self.reserved
    }

    /// Number of addresses in the pool.
    pub fn pool_size(&self) -> u32 {
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
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = key_at(text, span.start).unwrap_or_else(|| "(document)".into());
        invalid(file, text, Some(span), key, e.message().trim().to_string())
    })?;
    Validator { file, text }.validate(raw)
}

#[cfg(test)]
mod tests;

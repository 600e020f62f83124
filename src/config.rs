//! The TOML config: what pxed serves. Parsing and validation are pure, so they are tested
//! from strings; [`load`] is the only function here that touches the filesystem, and only to
//! read the file and to warn about files that are missing under `boot_dir`.
//!
//! Every error names the file, line, column and dotted key at fault.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

mod locate;
mod raw;

use locate::{dotted, invalid, key_at, line_col, span_of};
use raw::*;

use crate::mac::Mac;
use crate::profiles::{self, Profile};

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
    /// First-stage boot file per client architecture.
    pub first_stage: FirstStage,
    /// Boot profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Managed hosts by MAC.
    pub hosts: HashMap<Mac, Host>,
    /// Profile for MACs that are not in `hosts`; `None` means unknown MACs are ignored.
    pub default_profile: Option<String>,
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
    pub fn reserved(&self) -> HashMap<Ipv4Addr, Mac> {
        self.hosts
            .iter()
            .filter_map(|(mac, h)| h.ip.map(|ip| (ip, *mac)))
            .collect()
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

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn err(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        let span = span_of(self.text, path);
        invalid(self.file, self.text, span, dotted(path), message.into())
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let server = self.server(raw.server)?;
        let dhcp = self.dhcp(raw.dhcp, &server.interface, server.address)?;

        if raw.tftp.max_blksize < 512 || raw.tftp.max_blksize > 65464 {
            return Err(self.err(&["tftp", "max_blksize"], "must be between 512 and 65464"));
        }
        if raw.tftp.max_windowsize == 0 {
            return Err(self.err(&["tftp", "max_windowsize"], "must be at least 1"));
        }
        let first_stage = self.first_stage(raw.first_stage)?;

        let mut profiles = BTreeMap::new();
        for (name, p) in raw.profiles {
            profiles.insert(name.clone(), self.profile(&name, p)?);
        }

        let mut hosts: HashMap<Mac, Host> = HashMap::new();
        let mut written: HashMap<Mac, String> = HashMap::new();
        let mut pinned: HashMap<Ipv4Addr, String> = HashMap::new();
        for (key, h) in raw.hosts {
            let mac: Mac = key.parse().map_err(|e: crate::mac::MacParseError| {
                self.err(&["hosts", &key], e.to_string())
            })?;
            if let Some(first) = written.get(&mac) {
                return Err(self.err(
                    &["hosts", &key],
                    format!("duplicate MAC: same host as hosts.\"{first}\""),
                ));
            }
            if !profiles.contains_key(&h.profile) {
                return Err(self.err(
                    &["hosts", &key, "profile"],
                    format!(
                        "no profile named `{}` (define [profiles.{}])",
                        h.profile, h.profile
                    ),
                ));
            }
            if let Some(ip) = h.ip {
                let pool = dhcp.pool_for(ip);
                if pool.is_none_or(|p| ip == p.subnet.network() || ip == p.subnet.broadcast()) {
                    return Err(self.err(
                        &["hosts", &key, "ip"],
                        format!("{ip} is not a usable address in any served subnet"),
                    ));
                }
                if ip == server.address {
                    return Err(self.err(&["hosts", &key, "ip"], "is the server's own address"));
                }
                if let Some(other) = pinned.insert(ip, key.clone()) {
                    return Err(self.err(
                        &["hosts", &key, "ip"],
                        format!("{ip} is already pinned to hosts.\"{other}\""),
                    ));
                }
            }
            if let Some(name) = &h.hostname {
                if !valid_hostname(name) {
                    return Err(self.err(
                        &["hosts", &key, "hostname"],
                        "must be letters, digits, `-` and `.`, at most 253 characters",
                    ));
                }
            }
            written.insert(mac, key.clone());
            hosts.insert(
                mac,
                Host {
                    profile: h.profile,
                    ip: h.ip,
                    hostname: h.hostname,
                },
            );
        }

        if let Some(p) = &raw.defaults.profile {
            if !profiles.contains_key(p) {
                return Err(self.err(&["defaults", "profile"], format!("no profile named `{p}`")));
            }
        }

        Ok(Config {
            source: self.file.to_path_buf(),
            server,
            dhcp,
            http: Http {
                listen: raw.http.listen,
            },
            tftp: Tftp {
                max_blksize: raw.tftp.max_blksize,
                max_windowsize: raw.tftp.max_windowsize,
            },
            first_stage,
            profiles,
            hosts,
            default_profile: raw.defaults.profile,
        })
    }

    fn server(&self, s: RawServer) -> Result<Server, ConfigError> {
        if s.interface.is_empty() || s.interface.len() > 15 || s.interface.contains('/') {
            return Err(self.err(
                &["server", "interface"],
                "must be a Linux interface name (1 to 15 characters)",
            ));
        }
        if !s.boot_dir.is_absolute() {
            return Err(self.err(&["server", "boot_dir"], "must be an absolute path"));
        }
        if !s.state_dir.is_absolute() {
            return Err(self.err(&["server", "state_dir"], "must be an absolute path"));
        }
        Ok(Server {
            interface: s.interface,
            address: s.address,
            boot_dir: s.boot_dir,
            state_dir: s.state_dir,
        })
    }

    fn dhcp(&self, d: RawDhcp, iface: &str, server: Ipv4Addr) -> Result<Dhcp, ConfigError> {
        let mode = match d.mode.as_deref() {
            None | Some("server") => DhcpMode::Server,
            Some("proxy") => DhcpMode::Proxy,
            Some(other) => {
                return Err(self.err(
                    &["dhcp", "mode"],
                    format!("unknown mode `{other}` (\"server\" or \"proxy\")"),
                ))
            }
        };
        let primary = RawSubnet {
            subnet: d.subnet,
            interface: Some(iface.to_string()),
            address: Some(server),
            range: d.range,
            router: d.router,
            dns: d.dns,
            domain: d.domain,
        };
        let mut pools = vec![self.pool(&["dhcp"], primary, mode, server)?];
        for (i, raw) in d.subnets.into_iter().enumerate() {
            let index = i.to_string();
            let pool = self.pool(&["dhcp", "subnets", &index], raw, mode, server)?;
            if let Some(name) = &pool.interface {
                if pools.iter().any(|p| p.interface.as_ref() == Some(name)) {
                    return Err(self.err(
                        &["dhcp", "subnets", &index, "interface"],
                        format!("interface {name} already serves another subnet"),
                    ));
                }
            }
            if let Some(other) = pools.iter().find(|p| {
                p.subnet.contains(&pool.subnet.network())
                    || pool.subnet.contains(&p.subnet.network())
            }) {
                return Err(self.err(
                    &["dhcp", "subnets", &index, "subnet"],
                    format!("{} overlaps {}", pool.subnet, other.subnet),
                ));
            }
            pools.push(pool);
        }
        if !pools[0].subnet.contains(&server) {
            return Err(self.err(
                &["server", "address"],
                format!("{server} is not in [dhcp] subnet {}", pools[0].subnet),
            ));
        }
        let lease_time = humantime::parse_duration(&d.lease_time).map_err(|e| {
            self.err(
                &["dhcp", "lease_time"],
                format!("`{}`: {e} (try \"1h\" or \"30m\")", d.lease_time),
            )
        })?;
        if lease_time < Duration::from_secs(60) || lease_time.as_secs() > u64::from(u32::MAX - 1) {
            return Err(self.err(
                &["dhcp", "lease_time"],
                "must be between 1 minute and 136 years",
            ));
        }
        let decline_time = humantime::parse_duration(&d.decline_time).map_err(|e| {
            self.err(
                &["dhcp", "decline_time"],
                format!("`{}`: {e} (try \"10m\")", d.decline_time),
            )
        })?;
        Ok(Dhcp {
            mode,
            lease_time,
            decline_time,
            pools,
        })
    }

    /// Validates one subnet: `[dhcp]` itself (`at` = `["dhcp"]`) or a `[[dhcp.subnets]]` entry.
    fn pool(
        &self,
        at: &[&str],
        d: RawSubnet,
        mode: DhcpMode,
        default_server: Ipv4Addr,
    ) -> Result<Pool, ConfigError> {
        let key = |k: &'static str| -> Vec<&str> {
            let mut v = at.to_vec();
            v.push(k);
            v
        };
        let subnet: Ipv4Net = d.subnet.parse().map_err(|_| {
            self.err(
                &key("subnet"),
                format!("`{}` is not an IPv4 CIDR like 10.0.0.0/24", d.subnet),
            )
        })?;
        if subnet.network() != subnet.addr() {
            return Err(self.err(
                &key("subnet"),
                format!("host bits are set; did you mean {}?", subnet.trunc()),
            ));
        }
        let range = match (mode, d.range) {
            (DhcpMode::Server, None) => {
                return Err(self.err(
                    at,
                    "missing field `range` (required unless mode = \"proxy\")",
                ))
            }
            (DhcpMode::Proxy, Some(_)) => {
                return Err(self.err(
                    &key("range"),
                    "proxy mode hands out no addresses; remove `range`",
                ))
            }
            (DhcpMode::Proxy, None) => None,
            (DhcpMode::Server, Some([start, end])) => {
                for ip in [start, end] {
                    if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
                        return Err(self.err(
                            &key("range"),
                            format!("{ip} is outside the usable addresses of subnet {subnet}"),
                        ));
                    }
                }
                if u32::from(start) > u32::from(end) {
                    return Err(self.err(&key("range"), "first address is after the last"));
                }
                Some((start, end))
            }
        };
        if let Some(r) = d.router {
            if !subnet.contains(&r) {
                return Err(self.err(&key("router"), format!("{r} is not in subnet {subnet}")));
            }
        }
        let server = match (&d.interface, d.address) {
            (None, None) => default_server,
            (Some(_), None) => {
                return Err(self.err(
                    &key("interface"),
                    "needs `address`, pxed's address on that interface",
                ))
            }
            (None, Some(_)) => {
                return Err(self.err(&key("address"), "only allowed together with `interface`"))
            }
            (Some(name), Some(addr)) => {
                if name.is_empty() || name.len() > 15 || name.contains('/') {
                    return Err(self.err(
                        &key("interface"),
                        "must be a Linux interface name (1 to 15 characters)",
                    ));
                }
                if mode == DhcpMode::Proxy && at.len() > 1 {
                    return Err(self.err(
                        &key("interface"),
                        "proxy mode serves [server] interface only",
                    ));
                }
                if at.len() > 1 && !subnet.contains(&addr) {
                    return Err(
                        self.err(&key("address"), format!("{addr} is not in subnet {subnet}"))
                    );
                }
                addr
            }
        };
        Ok(Pool {
            subnet,
            interface: d.interface,
            server,
            range,
            router: d.router,
            dns: d.dns,
            domain: d.domain,
        })
    }

    fn first_stage(&self, f: RawFirstStage) -> Result<FirstStage, ConfigError> {
        let mut out = FirstStage::default();
        let fields: [(&str, Option<String>, &mut String); 7] = [
            ("bios", f.bios, &mut out.bios),
            ("efi_ia32", f.efi_ia32, &mut out.efi_ia32),
            ("efi_x64", f.efi_x64, &mut out.efi_x64),
            ("efi_arm64", f.efi_arm64, &mut out.efi_arm64),
            ("http_ia32", f.http_ia32, &mut out.http_ia32),
            ("http_x64", f.http_x64, &mut out.http_x64),
            ("http_arm64", f.http_arm64, &mut out.http_arm64),
        ];
        for (key, value, slot) in fields {
            if let Some(v) = value {
                let url_ok = key.starts_with("http_");
                self.boot_path(&["first_stage", key], &v, url_ok)?;
                *slot = v;
            }
        }
        Ok(out)
    }

    fn boot_path(&self, path: &[&str], value: &str, url_ok: bool) -> Result<(), ConfigError> {
        if url_ok && profiles::is_url(value) {
            return Ok(());
        }
        check_relative(value).map_err(|m| self.err(path, m))
    }

    fn profile(&self, name: &str, p: RawProfile) -> Result<Profile, ConfigError> {
        let kinds = [
            p.kernel.is_some(),
            p.script.is_some(),
            p.chain.is_some(),
            p.action.is_some(),
        ];
        let n = kinds.iter().filter(|k| **k).count();
        if n != 1 {
            return Err(self.err(
                &["profiles", name],
                "a profile needs exactly one of `kernel`, `script`, `chain` or `action`",
            ));
        }
        if p.kernel.is_none() && (!p.initrd.is_empty() || p.cmdline.is_some()) {
            let key = if p.cmdline.is_some() {
                "cmdline"
            } else {
                "initrd"
            };
            return Err(self.err(
                &["profiles", name, key],
                "only allowed together with `kernel`",
            ));
        }
        if let Some(kernel) = p.kernel {
            self.boot_path(&["profiles", name, "kernel"], &kernel, true)?;
            for i in &p.initrd {
                self.boot_path(&["profiles", name, "initrd"], i, true)?;
            }
            let cmdline = p.cmdline.unwrap_or_default();
            profiles::check_template(&cmdline)
                .map_err(|e| self.err(&["profiles", name, "cmdline"], e.to_string()))?;
            return Ok(Profile::Kernel {
                kernel,
                initrd: p.initrd,
                cmdline,
            });
        }
        if let Some(script) = p.script {
            self.boot_path(&["profiles", name, "script"], &script, false)?;
            return Ok(Profile::Script { script });
        }
        if let Some(url) = p.chain {
            profiles::check_template(&url)
                .map_err(|e| self.err(&["profiles", name, "chain"], e.to_string()))?;
            return Ok(Profile::Chain { url });
        }
        match p.action.as_deref() {
            Some("local") => Ok(Profile::Local),
            Some(other) => Err(self.err(
                &["profiles", name, "action"],
                format!("unknown action `{other}` (the only action is \"local\")"),
            )),
            None => unreachable!("exactly one kind is set"),
        }
    }
}

/// Refuses absolute paths and any `..`, so a configured file can never leave `boot_dir`.
pub fn check_relative(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if p.contains('\0') {
        return Err("must not contain NUL".into());
    }
    let path = Path::new(p);
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{p}` escapes boot_dir through `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{p}` must be relative to boot_dir"))
            }
        }
    }
    Ok(())
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Warns about boot files named by the config that are not under `boot_dir`.
fn missing_files(c: &Config, text: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut check = |path: Vec<String>, file: &str| {
        if profiles::is_url(file) {
            return;
        }
        let full = c.server.boot_dir.join(file);
        if !full.is_file() {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            out.push(Warning {
                key: dotted(&refs),
                line: span_of(text, &refs).map(|s| line_col(text, s.start).0),
                message: format!("file {} does not exist", full.display()),
            });
        }
    };
    if !c.server.boot_dir.is_dir() {
        return vec![Warning {
            key: "server.boot_dir".into(),
            line: span_of(text, &["server", "boot_dir"]).map(|s| line_col(text, s.start).0),
            message: format!("{} is not a directory", c.server.boot_dir.display()),
        }];
    }
    let fs = &c.first_stage;
    for (k, v) in [("bios", &fs.bios), ("efi_x64", &fs.efi_x64)] {
        check(vec!["first_stage".into(), k.into()], v);
    }
    for (name, p) in &c.profiles {
        match p {
            Profile::Kernel { kernel, initrd, .. } => {
                check(
                    vec!["profiles".into(), name.clone(), "kernel".into()],
                    kernel,
                );
                for i in initrd {
                    check(vec!["profiles".into(), name.clone(), "initrd".into()], i);
                }
            }
            Profile::Script { script } => check(
                vec!["profiles".into(), name.clone(), "script".into()],
                script,
            ),
            Profile::Chain { .. } | Profile::Local => {}
        }
    }
    out
}

/// Refuses script templates (that exist) which use unknown variables.
fn check_script_templates(c: &Config, text: &str) -> Result<Vec<Warning>, ConfigError> {
    for (name, p) in &c.profiles {
        if let Profile::Script { script } = p {
            if let Ok(body) = std::fs::read_to_string(c.server.boot_dir.join(script)) {
                profiles::check_template(&body).map_err(|e| {
                    let path = ["profiles", name.as_str(), "script"];
                    invalid(
                        &c.source,
                        text,
                        span_of(text, &path),
                        dotted(&path),
                        format!("{script}: {e}"),
                    )
                })?;
            }
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests;

//! Validation of the file as written ([`super::raw`]) into a [`Config`]: every rule next to
//! the error it raises, each error naming the key at fault.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;

use super::checks::{
    check_cmdline, check_no_control, check_profile_name, check_relative, check_token,
    served_by_boot_dir, valid_hostname, without_placeholders,
};
use super::locate::{dotted, invalid, span_of};
use super::raw::*;
use super::*;
use crate::mac::Mac;
use crate::profiles::{self, Profile};

pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

/// The key `k` of the table at `at`, for an error's location.
fn under<'a>(at: &[&'a str], k: &'a str) -> Vec<&'a str> {
    let mut v = at.to_vec();
    v.push(k);
    v
}

/// What a host entry is checked against: the validated subnets, server address and
/// profiles.
#[derive(Clone, Copy)]
struct Place<'a> {
    dhcp: &'a Dhcp,
    server: Ipv4Addr,
    profiles: &'a BTreeMap<String, Profile>,
}

impl Validator<'_> {
    pub(super) fn err(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        let span = span_of(self.text, path);
        invalid(self.file, self.text, span, dotted(path), message.into())
    }

    pub(super) fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let server = self.server(raw.server)?;
        if let Some(t) = &raw.admin.token_file {
            if let Some(m) = served_by_boot_dir("admin.token_file", t, &server.boot_dir) {
                return Err(self.err(&["admin", "token_file"], m));
            }
        }
        let dhcp = self.dhcp(raw.dhcp, &server.interface, server.address)?;
        let tftp = self.tftp(raw.tftp)?;
        let http = self.http(raw.http)?;
        let admin = self.admin(raw.admin)?;
        let first_stage = self.first_stage(raw.first_stage)?;

        let profiles = self.profiles(raw.profiles)?;
        let hosts = self.hosts(raw.hosts, &raw.defaults, &dhcp, server.address, &profiles)?;
        self.defaults(&raw.defaults, &profiles)?;
        let reserved = hosts
            .iter()
            .filter_map(|(mac, h)| h.ip.map(|ip| (ip, *mac)))
            .collect();
        Ok(Config {
            source: self.file.to_path_buf(),
            server,
            dhcp,
            http,
            admin,
            tftp,
            first_stage,
            profiles,
            hosts,
            default_profile: raw.defaults.profile,
            default_secure_boot: raw.defaults.secure_boot.unwrap_or(false),
            reserved,
        })
    }

    fn profiles(
        &self,
        raw: BTreeMap<String, RawProfile>,
    ) -> Result<BTreeMap<String, Profile>, ConfigError> {
        let mut profiles = BTreeMap::new();
        for (name, p) in raw {
            check_profile_name(&name).map_err(|m| self.err(&["profiles", &name], m))?;
            profiles.insert(name.clone(), self.profile(&name, p)?);
        }
        Ok(profiles)
    }

    /// `[hosts]`: each MAC once, naming a defined profile, with at most one host pinned to
    /// each usable address.
    fn hosts(
        &self,
        raw: BTreeMap<String, RawHost>,
        defaults: &RawDefaults,
        dhcp: &Dhcp,
        server: Ipv4Addr,
        profiles: &BTreeMap<String, Profile>,
    ) -> Result<HashMap<Mac, Host>, ConfigError> {
        let mut hosts: HashMap<Mac, Host> = HashMap::new();
        let mut written: HashMap<Mac, String> = HashMap::new();
        let mut pinned: HashMap<Ipv4Addr, String> = HashMap::new();
        for (key, h) in raw {
            let mac: Mac = key.parse().map_err(|e: crate::mac::MacParseError| {
                self.err(&["hosts", &key], e.to_string())
            })?;
            if let Some(first) = written.get(&mac) {
                return Err(self.err(
                    &["hosts", &key],
                    format!("duplicate MAC: same host as hosts.\"{first}\""),
                ));
            }
            let at = Place {
                dhcp,
                server,
                profiles,
            };
            let host = self.host(&key, h, defaults, &at, &mut pinned)?;
            written.insert(mac, key);
            hosts.insert(mac, host);
        }
        Ok(hosts)
    }

    /// One `[hosts."mac"]` entry.
    fn host(
        &self,
        key: &str,
        h: RawHost,
        defaults: &RawDefaults,
        at: &Place,
        pinned: &mut HashMap<Ipv4Addr, String>,
    ) -> Result<Host, ConfigError> {
        let Place {
            dhcp,
            server,
            profiles,
        } = *at;
        let Some(profile) = profiles.get(&h.profile) else {
            return Err(self.err(
                &["hosts", key, "profile"],
                format!(
                    "no profile named `{}` (define [profiles.{}])",
                    h.profile, h.profile
                ),
            ));
        };
        if let Some(ip) = h.ip {
            let pool = dhcp.pool_for(ip);
            if pool.is_none_or(|p| ip == p.subnet.network() || ip == p.subnet.broadcast()) {
                return Err(self.err(
                    &["hosts", key, "ip"],
                    format!("{ip} is not a usable address in any served subnet"),
                ));
            }
            if ip == server {
                return Err(self.err(&["hosts", key, "ip"], "is the server's own address"));
            }
            if let Some(other) = pinned.insert(ip, key.to_string()) {
                return Err(self.err(
                    &["hosts", key, "ip"],
                    format!("{ip} is already pinned to hosts.\"{other}\""),
                ));
            }
        }
        if let Some(name) = &h.hostname {
            if !valid_hostname(name) {
                return Err(self.err(
                    &["hosts", key, "hostname"],
                    "must be letters, digits, `-` and `.`, at most 253 characters",
                ));
            }
        }
        let default_sb = defaults.secure_boot.unwrap_or(false);
        if h.secure_boot.unwrap_or(default_sb) {
            let at: &[&str] = match h.secure_boot {
                Some(_) => &["hosts", key, "secure_boot"],
                None => &["hosts", key, "profile"],
            };
            self.secure_boot_profile(at, &h.profile, profile)?;
        }
        Ok(Host {
            profile: h.profile,
            ip: h.ip,
            hostname: h.hostname,
            secure_boot: h.secure_boot,
        })
    }

    /// `[defaults]`: its profile exists, and can boot Secure Boot when that is on.
    fn defaults(
        &self,
        defaults: &RawDefaults,
        profiles: &BTreeMap<String, Profile>,
    ) -> Result<(), ConfigError> {
        if let Some(p) = &defaults.profile {
            let Some(profile) = profiles.get(p) else {
                return Err(self.err(&["defaults", "profile"], format!("no profile named `{p}`")));
            };
            if defaults.secure_boot == Some(true) {
                self.secure_boot_profile(&["defaults", "secure_boot"], p, profile)?;
            }
        }

        Ok(())
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
        if let Some(m) = served_by_boot_dir("server.state_dir", &s.state_dir, &s.boot_dir) {
            return Err(self.err(&["server", "state_dir"], m));
        }
        Ok(Server {
            interface: s.interface,
            address: s.address,
            boot_dir: s.boot_dir,
            state_dir: s.state_dir,
        })
    }

    fn dhcp(&self, d: RawDhcp, iface: &str, server: Ipv4Addr) -> Result<Dhcp, ConfigError> {
        let mode = self.dhcp_mode(d.mode.as_deref())?;
        let primary = RawSubnet {
            subnet: d.subnet,
            interface: Some(iface.to_string()),
            address: Some(server),
            range: d.range,
            router: d.router,
            dns: d.dns,
            domain: d.domain,
        };
        let pools = self.pools(primary, d.subnets, mode, server)?;
        if !pools[0].subnet.contains(&server) {
            return Err(self.err(
                &["server", "address"],
                format!("{server} is not in [dhcp] subnet {}", pools[0].subnet),
            ));
        }
        let (lease_time, decline_time) = self.lease_times(&d.lease_time, &d.decline_time)?;
        let relay_agents = self.relay_agents(&d.relay_agents)?;
        self.client_limits(
            d.max_leases_per_mac,
            d.unknown_client_rate,
            d.unknown_client_burst,
        )?;
        Ok(Dhcp {
            mode,
            lease_time,
            decline_time,
            pools,
            relay_agents,
            max_leases_per_mac: d.max_leases_per_mac as usize,
            unknown_client_rate: d.unknown_client_rate,
            unknown_client_burst: d.unknown_client_burst,
        })
    }

    fn dhcp_mode(&self, mode: Option<&str>) -> Result<DhcpMode, ConfigError> {
        match mode {
            None | Some("server") => Ok(DhcpMode::Server),
            Some("proxy") => Ok(DhcpMode::Proxy),
            Some(other) => Err(self.err(
                &["dhcp", "mode"],
                format!("unknown mode `{other}` (\"server\" or \"proxy\")"),
            )),
        }
    }

    /// `lease_time` (1 minute to 136 years: option 51 is 32 bits, and all ones means
    /// "infinite") and `decline_time`.
    fn lease_times(&self, lease: &str, decline: &str) -> Result<(Duration, Duration), ConfigError> {
        let lease_time = humantime::parse_duration(lease).map_err(|e| {
            self.err(
                &["dhcp", "lease_time"],
                format!("`{lease}`: {e} (try \"1h\" or \"30m\")"),
            )
        })?;
        if lease_time < Duration::from_secs(60) || lease_time.as_secs() > u64::from(u32::MAX - 1) {
            return Err(self.err(
                &["dhcp", "lease_time"],
                "must be between 1 minute and 136 years",
            ));
        }
        let decline_time = humantime::parse_duration(decline).map_err(|e| {
            self.err(
                &["dhcp", "decline_time"],
                format!("`{decline}`: {e} (try \"10m\")"),
            )
        })?;
        Ok((lease_time, decline_time))
    }

    /// What one MAC, and MACs outside `[hosts]`, may take from the pool: at least 1 each.
    fn client_limits(&self, per_mac: u32, rate: u32, burst: u32) -> Result<(), ConfigError> {
        for (key, v) in [
            ("max_leases_per_mac", per_mac),
            ("unknown_client_rate", rate),
            ("unknown_client_burst", burst),
        ] {
            if v == 0 {
                return Err(self.err(&["dhcp", key], "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `[dhcp]`'s own subnet first, then each `[[dhcp.subnets]]`: no two on one interface,
    /// none overlapping another.
    fn pools(
        &self,
        primary: RawSubnet,
        subnets: Vec<RawSubnet>,
        mode: DhcpMode,
        server: Ipv4Addr,
    ) -> Result<Vec<Pool>, ConfigError> {
        let mut pools = vec![self.pool(&["dhcp"], primary, mode, server)?];
        for (i, raw) in subnets.into_iter().enumerate() {
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
        Ok(pools)
    }

    /// `[dhcp] relay_agents`: addresses or CIDRs, as networks.
    fn relay_agents(&self, raw: &[String]) -> Result<Vec<Ipv4Net>, ConfigError> {
        let mut relay_agents = Vec::new();
        for r in raw {
            let net: Ipv4Net = r
                .parse()
                .or_else(|_| r.parse::<Ipv4Addr>().map(Ipv4Net::from))
                .map_err(|_| {
                    self.err(
                        &["dhcp", "relay_agents"],
                        format!("`{r}` is not an IPv4 address or CIDR"),
                    )
                })?;
            relay_agents.push(net.trunc());
        }
        Ok(relay_agents)
    }

    /// Validates one subnet: `[dhcp]` itself (`at` = `["dhcp"]`) or a `[[dhcp.subnets]]` entry.
    fn pool(
        &self,
        at: &[&str],
        d: RawSubnet,
        mode: DhcpMode,
        default_server: Ipv4Addr,
    ) -> Result<Pool, ConfigError> {
        let subnet: Ipv4Net = d.subnet.parse().map_err(|_| {
            self.err(
                &under(at, "subnet"),
                format!("`{}` is not an IPv4 CIDR like 10.0.0.0/24", d.subnet),
            )
        })?;
        if subnet.network() != subnet.addr() {
            return Err(self.err(
                &under(at, "subnet"),
                format!("host bits are set; did you mean {}?", subnet.trunc()),
            ));
        }
        let range = self.range(at, subnet, mode, d.range)?;
        if let Some(r) = d.router {
            if !subnet.contains(&r) {
                return Err(self.err(
                    &under(at, "router"),
                    format!("{r} is not in subnet {subnet}"),
                ));
            }
        }
        let server = self.pool_server(at, &d, subnet, mode, default_server)?;
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

    /// A pool's `range`: required in server mode, refused in proxy mode, inside the
    /// subnet's usable addresses and in order.
    fn range(
        &self,
        at: &[&str],
        subnet: Ipv4Net,
        mode: DhcpMode,
        range: Option<[Ipv4Addr; 2]>,
    ) -> Result<Option<(Ipv4Addr, Ipv4Addr)>, ConfigError> {
        Ok(match (mode, range) {
            (DhcpMode::Server, None) => {
                return Err(self.err(
                    at,
                    "missing field `range` (required unless mode = \"proxy\")",
                ))
            }
            (DhcpMode::Proxy, Some(_)) => {
                return Err(self.err(
                    &under(at, "range"),
                    "proxy mode hands out no addresses; remove `range`",
                ))
            }
            (DhcpMode::Proxy, None) => None,
            (DhcpMode::Server, Some([start, end])) => {
                for ip in [start, end] {
                    if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
                        return Err(self.err(
                            &under(at, "range"),
                            format!("{ip} is outside the usable addresses of subnet {subnet}"),
                        ));
                    }
                }
                if u32::from(start) > u32::from(end) {
                    return Err(self.err(&under(at, "range"), "first address is after the last"));
                }
                Some((start, end))
            }
        })
    }

    /// pxed's address in a pool: `[server] address` unless the pool names an interface and
    /// pxed's address on it.
    fn pool_server(
        &self,
        at: &[&str],
        d: &RawSubnet,
        subnet: Ipv4Net,
        mode: DhcpMode,
        default_server: Ipv4Addr,
    ) -> Result<Ipv4Addr, ConfigError> {
        Ok(match (&d.interface, d.address) {
            (None, None) => default_server,
            (Some(_), None) => {
                return Err(self.err(
                    &under(at, "interface"),
                    "needs `address`, pxed's address on that interface",
                ))
            }
            (None, Some(_)) => {
                return Err(self.err(
                    &under(at, "address"),
                    "only allowed together with `interface`",
                ))
            }
            (Some(name), Some(addr)) => {
                if name.is_empty() || name.len() > 15 || name.contains('/') {
                    return Err(self.err(
                        &under(at, "interface"),
                        "must be a Linux interface name (1 to 15 characters)",
                    ));
                }
                if mode == DhcpMode::Proxy && at.len() > 1 {
                    return Err(self.err(
                        &under(at, "interface"),
                        "proxy mode serves [server] interface only",
                    ));
                }
                if at.len() > 1 && !subnet.contains(&addr) {
                    return Err(self.err(
                        &under(at, "address"),
                        format!("{addr} is not in subnet {subnet}"),
                    ));
                }
                addr
            }
        })
    }

    /// A Secure Boot host boots its profile through shim → GRUB, so the profile must be one
    /// GRUB can run.
    fn secure_boot_profile(
        &self,
        at: &[&str],
        name: &str,
        profile: &Profile,
    ) -> Result<(), ConfigError> {
        crate::grub::supports(profile).map_err(|why| {
            self.err(
                at,
                format!(
                    "a Secure Boot host boots shim → GRUB → kernel, and profile `{name}` ({} profile) cannot: {why}; use a kernel or local profile, or set secure_boot = false",
                    profile.kind()
                ),
            )
        })
    }

    fn first_stage(&self, f: RawFirstStage) -> Result<FirstStage, ConfigError> {
        let mut out = FirstStage::default();
        let fields: [(&str, Option<String>, &mut String); 8] = [
            ("bios", f.bios, &mut out.bios),
            ("efi_ia32", f.efi_ia32, &mut out.efi_ia32),
            ("efi_x64", f.efi_x64, &mut out.efi_x64),
            ("efi_arm64", f.efi_arm64, &mut out.efi_arm64),
            ("http_ia32", f.http_ia32, &mut out.http_ia32),
            ("http_x64", f.http_x64, &mut out.http_x64),
            ("http_arm64", f.http_arm64, &mut out.http_arm64),
            (
                "secure_boot_x64",
                f.secure_boot_x64,
                &mut out.secure_boot_x64,
            ),
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

    /// A file or URL that becomes one word of an iPXE script line (or a DHCP boot file name).
    fn boot_path(&self, path: &[&str], value: &str, url_ok: bool) -> Result<(), ConfigError> {
        check_token(value).map_err(|m| self.err(path, m))?;
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
            return self.kernel_profile(name, kernel, p.initrd, p.cmdline.unwrap_or_default());
        }
        if let Some(script) = p.script {
            self.boot_path(&["profiles", name, "script"], &script, false)?;
            return Ok(Profile::Script { script });
        }
        if let Some(url) = p.chain {
            return self.chain_profile(name, url);
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

    fn kernel_profile(
        &self,
        name: &str,
        kernel: String,
        initrd: Vec<String>,
        cmdline: String,
    ) -> Result<Profile, ConfigError> {
        self.boot_path(&["profiles", name, "kernel"], &kernel, true)?;
        for i in &initrd {
            self.boot_path(&["profiles", name, "initrd"], i, true)?;
        }
        profiles::check_template(&cmdline)
            .map_err(|e| self.err(&["profiles", name, "cmdline"], e.to_string()))?;
        // As written (control characters anywhere), and as rendered with empty values.
        check_cmdline(&cmdline)
            .and_then(|()| check_cmdline(&without_placeholders(&cmdline)))
            .map_err(|m| self.err(&["profiles", name, "cmdline"], m))?;
        Ok(Profile::Kernel {
            kernel,
            initrd,
            cmdline,
        })
    }

    fn chain_profile(&self, name: &str, url: String) -> Result<Profile, ConfigError> {
        profiles::check_template(&url)
            .map_err(|e| self.err(&["profiles", name, "chain"], e.to_string()))?;
        // `{{ mac }}` holds spaces as written but renders to one word, so the word is
        // checked with the placeholders dropped, and control characters as written.
        check_no_control(&url)
            .and_then(|()| check_token(&without_placeholders(&url)))
            .map_err(|m| self.err(&["profiles", name, "chain"], m))?;
        // Placeholders alone may render empty (a host without a hostname): a bare
        // `chain` would then fail in iPXE with nothing after it.
        if without_placeholders(&url).is_empty() {
            return Err(self.err(
                &["profiles", name, "chain"],
                "must name a URL, not only `{{ }}` placeholders",
            ));
        }
        Ok(Profile::Chain { url })
    }
}

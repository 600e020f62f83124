//! Top-level wiring: binds the three listeners, runs them on one runtime, and stops them
//! all within 2 s of a cancel (SIGINT/SIGTERM in `main`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, DhcpMode};
use crate::leases::LeaseTable;
use crate::state::Shared;
use crate::store::LeaseStore;

/// How long running transfers get to finish after a stop before they are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Lets a signal handler reload the config once the daemon is up (SIGHUP).
#[derive(Clone, Default)]
pub struct ReloadHook(Arc<std::sync::OnceLock<Arc<Shared>>>);

impl ReloadHook {
    /// Reloads the config file now; a file that does not validate is refused and logged
    /// with its file, line and key, and the old config stays live.
    pub fn fire(&self, trigger: &'static str) {
        let Some(shared) = self.0.get() else {
            warn!(trigger, "reload requested before startup finished; ignored");
            return;
        };
        match crate::reload::reload(shared) {
            Ok(r) => info!(
                profiles = r.profiles, hosts = r.hosts, needs_restart = ?r.needs_restart, trigger,
                "config reloaded"
            ),
            Err(e) => {
                warn!(error = %e, trigger, "config reload refused; the old config stays live")
            }
        }
    }
}

/// Where and how to run, from the command line or the environment rather than the TOML file
/// (which says what to serve).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides `[admin] listen` with one or more addresses, e.g. the pod IP from the
    /// downward API (Service, probes) and loopback (`kubectl port-forward`), so that the
    /// admin API is reachable by the cluster and never on the boot network.
    pub admin_listen: Vec<SocketAddr>,
}

/// Binds every listener, serves until `cancel` fires, then stops within [`SHUTDOWN_GRACE`].
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    run_with(config, Options::default(), cancel, ReloadHook::default()).await
}

/// [`run`], with run-time options and a hook through which signals can reload the config.
pub async fn run_with(
    config: Config,
    options: Options,
    cancel: CancellationToken,
    hook: ReloadHook,
) -> anyhow::Result<()> {
    let iface = config.server.interface.clone();
    let dhcp_addr = SocketAddr::from(([0, 0, 0, 0], 67));
    let tftp_addr = SocketAddr::from(([0, 0, 0, 0], 69));
    let admin_addrs = if options.admin_listen.is_empty() {
        vec![config.admin.listen]
    } else {
        options.admin_listen.clone()
    };
    let abilities = report_abilities(&config, &admin_addrs);
    let can_bind_low = abilities.has(crate::abilities::LOW_PORTS);
    let low_ports = move |what: &'static str| {
        let hint = if can_bind_low {
            ""
        } else {
            ": binding ports below 1024 needs CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start <= 67"
        };
        format!("{what}{hint}")
    };
    // One DHCP and one TFTP socket per served interface, each bound to it, so every reply
    // leaves through the interface its request came in on.
    let mut sockets = Vec::new();
    for (home, pool) in config.dhcp.pools.iter().enumerate() {
        let Some(name) = &pool.interface else {
            continue;
        };
        let dhcp = crate::net::udp_on_interface(name, dhcp_addr)
            .with_context(|| low_ports("dhcp listener"))?;
        let tftp = crate::net::udp_on_interface(name, tftp_addr)
            .with_context(|| low_ports("tftp listener"))?;
        sockets.push((home, name.clone(), pool.server, dhcp, tftp));
    }
    let http_addr = config.http.listen;
    let http = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("http listener on {http_addr}"))?;
    let admin_token = admin_token(&config, &admin_addrs)?;
    let mut admins = Vec::new();
    for addr in &admin_addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("admin listener on {addr}"))?;
        admins.push((*addr, listener));
    }

    let boot_dir = config.server.boot_dir.display().to_string();
    let mode = config.dhcp.mode;
    let store = LeaseStore::open(&config.server.state_dir).context("lease store")?;
    let restored = store.load().context("loading leases")?;
    info!(store = %store.path().display(), leases = restored.len(), "leases restored");
    let leases = LeaseTable::restore(&config, restored);
    let source = config.source.clone();
    let next_boots =
        crate::nextboot::NextBoots::load(&config.server.state_dir).context("one-shot boots")?;
    let budget = descriptor_budget(&config, (sockets.len(), admin_addrs.len()));
    let shared = Shared::with_state(config, leases, next_boots);
    let _ = shared.abilities.set(abilities);
    let _ = shared.budget.set(budget);
    let _ = hook.0.set(shared.clone());
    let on_change = hook.clone();
    let own = shared.clone();
    crate::watch::spawn(
        source.clone(),
        move || on_change.fire("file"),
        move || *own.self_written.lock().unwrap_or_else(|e| e.into_inner()),
        cancel.clone(),
    )?;
    info!(file = %source.display(), "watching config for changes");
    let mut tasks = JoinSet::new();
    let (commits, committer) = crate::dhcp::start_commits(store, shared.clone(), cancel.clone());
    let _ = shared.commits.set(commits.clone());
    for (home, name, server, dhcp, tftp) in sockets {
        match mode {
            DhcpMode::Server => {
                tasks.spawn(crate::dhcp::serve(
                    dhcp,
                    name.clone(),
                    home,
                    shared.clone(),
                    commits.clone(),
                    cancel.clone(),
                ));
                info!(interface = %name, addr = %dhcp_addr, %server, mode = "server", "dhcp listener ready");
            }
            DhcpMode::Proxy => {
                let pxe_addr = SocketAddr::from(([0, 0, 0, 0], 4011));
                let pxe = crate::net::udp_on_interface(&iface, pxe_addr)
                    .with_context(|| low_ports("proxydhcp listener"))?;
                tasks.spawn(crate::dhcp::serve_proxy(
                    dhcp,
                    pxe,
                    name.clone(),
                    shared.clone(),
                    cancel.clone(),
                ));
                info!(interface = %name, addr = %dhcp_addr, proxy_addr = %pxe_addr, mode = "proxy", "dhcp listener ready");
            }
        }
        tasks.spawn(crate::tftp::serve(
            tftp,
            name.clone(),
            server,
            shared.clone(),
            cancel.clone(),
        ));
        info!(interface = %name, addr = %tftp_addr, %server, %boot_dir, "tftp listener ready");
    }
    // The commit task ends on the cancel, after committing what is queued.
    drop(commits);
    tasks.spawn(async move {
        let _ = committer.await;
    });
    let http_shared = shared.clone();
    let http_cancel = cancel.clone();
    tasks.spawn(async move {
        if let Err(e) = crate::http::serve(http, http_shared, http_cancel).await {
            warn!(error = %e, "http listener failed");
        }
    });
    let token_required = admin_token.is_some();
    for (addr, listener) in admins {
        let admin_shared = shared.clone();
        let admin_cancel = cancel.clone();
        let token = admin_token.clone();
        tasks.spawn(async move {
            if let Err(e) = crate::admin::serve(listener, admin_shared, token, admin_cancel).await {
                warn!(error = %e, %addr, "admin listener failed");
            }
        });
        info!(%addr, token_required, "admin listener ready");
    }
    // Logged last: tests and scripts take it to mean every listener is up.
    info!(addr = %http_addr, %boot_dir, "http listener ready");

    cancel.cancelled().await;
    info!("shutting down");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = tasks.len(),
            "aborting transfers still running at shutdown"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    info!("stopped");
    Ok(())
}

/// Raises the soft descriptor limit to the hard one and fits every per-client limit into it,
/// so that a neighbour exhausts pxed's own limits before it exhausts descriptors.
fn descriptor_budget(config: &Config, listeners: (usize, usize)) -> crate::limits::Budget {
    let nofile = match crate::limits::raise_nofile() {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "cannot read the descriptor limit; assuming 1024");
            1024
        }
    };
    let (tftp, http, admin) = (
        config.tftp.max_sessions,
        config.http.limits.max_connections,
        config.admin.max_connections,
    );
    let b = crate::limits::Budget::fit(nofile, tftp, http, admin, listeners);
    info!(
        nofile,
        tftp_sessions = b.tftp_sessions,
        http_connections = b.http_connections,
        admin_connections = b.admin_connections,
        "limits in force"
    );
    if b.lowered(tftp, http, admin) {
        warn!(
            nofile,
            "limits lowered to fit the file-descriptor limit; raise LimitNOFILE (or the container's nofile ulimit) to allow the configured ones"
        );
    }
    b
}

/// Probes what this process may do and logs one WARN line for each ability it lacks, naming
/// the capability and what pxed does without it.
fn report_abilities(config: &Config, admin: &[SocketAddr]) -> crate::abilities::Report {
    // DHCP's 67 is always among them. Port 0 (any free port, as tests use) binds without
    // privileges.
    let lowest = admin
        .iter()
        .map(SocketAddr::port)
        .chain([config.http.listen.port(), 67])
        .filter(|p| *p != 0)
        .min()
        .unwrap_or(67);
    let report = crate::abilities::assess(&crate::abilities::probe(&config.source, lowest));
    for a in report.missing() {
        warn!(capability = a.needs, consequence = a.without, how = %a.how, "running without an ability");
    }
    if report.missing().next().is_none() {
        info!("every ability available: low ports, interface binding, unicast DHCP replies, config writes");
    }
    report
}

/// Tokens that documentation or examples have shipped; a server started with one of them
/// is open to anyone who read the docs. (Shorter ones are refused by length anyway.)
const PLACEHOLDER_TOKENS: &[&str] = &[
    "replace-with-a-long-random-token",
    "replace-me-with-a-random-token",
    "changeme-changeme-changeme",
];

/// The shortest token pxed accepts.
const MIN_TOKEN_LEN: usize = 16;

/// Why an admin token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Anyone who read the docs knows it.
    #[error("is a documented placeholder; generate one with `openssl rand -hex 32`")]
    Placeholder,
    /// Short enough to guess.
    #[error(
        "is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"
    )]
    TooShort,
}

/// Refuses placeholder and short tokens. Pure.
fn check_token(token: &str) -> Result<(), TokenError> {
    if PLACEHOLDER_TOKENS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(token))
    {
        return Err(TokenError::Placeholder);
    }
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(TokenError::TooShort);
    }
    Ok(())
}

/// Parses `ADDR:PORT`, including an IPv6 address without brackets (`fd00::5:9091`), which is
/// what the Deployment's `$(POD_IP):9091` becomes on an IPv6 cluster.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("`{s}` is not ADDR:PORT");
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::from((ip, port)))
}

/// The admin bearer token: the contents of `[admin] token_file`, else `PXED_ADMIN_TOKEN`.
/// Refuses to start without one when the admin API listens beyond loopback on any of its
/// addresses (one token guards them all), and refuses a placeholder or short token anywhere.
/// The token itself is never logged.
fn admin_token(config: &Config, listen: &[SocketAddr]) -> anyhow::Result<Option<String>> {
    let (token, origin) = match &config.admin.token_file {
        Some(f) => (
            Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading [admin] token_file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            format!("[admin] token_file {}", f.display()),
        ),
        None => (
            std::env::var("PXED_ADMIN_TOKEN")
                .ok()
                .map(|t| t.trim().to_string()),
            "PXED_ADMIN_TOKEN".to_string(),
        ),
    };
    let token = token.filter(|t| !t.is_empty());
    if let Some(open) = listen.iter().find(|a| !a.ip().is_loopback()) {
        if token.is_none() {
            anyhow::bail!(
                "{}: the admin API listens on {open}, which is not a loopback address, so a token is required: set [admin] token_file or PXED_ADMIN_TOKEN",
                config.source.display(),
            );
        }
    }
    if let Some(t) = &token {
        check_token(t).map_err(|why| anyhow::anyhow!("the admin token from {origin} {why}"))?;
    }
    Ok(token)
}

/// A human summary of a config for `pxed check`.
pub fn summary(c: &Config) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "interface {}, address {}, boot_dir {}\n",
        c.server.interface,
        c.server.address,
        c.server.boot_dir.display()
    ));
    for pool in &c.dhcp.pools {
        match pool.range {
            Some((a, b)) => s.push_str(&format!(
                "pool {a}-{b} ({} addresses) in {}, lease {}\n",
                u32::from(b) - u32::from(a) + 1,
                pool.subnet,
                humantime::format_duration(c.dhcp.lease_time)
            )),
            None => s.push_str(&format!(
                "proxyDHCP for {}: boot information only, addresses come from another server\n",
                pool.subnet
            )),
        }
    }
    s.push_str(&format!("http {}\n", c.http_base()));
    s.push_str(&format!("profiles ({}):\n", c.profiles.len()));
    for (name, p) in &c.profiles {
        s.push_str(&format!("  {name} ({})\n", p.kind()));
    }
    let mut hosts: Vec<_> = c.hosts.iter().collect();
    hosts.sort_by_key(|(m, _)| **m);
    s.push_str(&format!("hosts ({}):\n", hosts.len()));
    for (mac, h) in hosts {
        let ip = h.ip.map(|i| format!(" ip {i}")).unwrap_or_default();
        let name = h
            .hostname
            .as_ref()
            .map(|n| format!(" hostname {n}"))
            .unwrap_or_default();
        s.push_str(&format!("  {mac} -> {}{ip}{name}\n", h.profile));
    }
    match &c.default_profile {
        Some(p) => s.push_str(&format!("unknown MACs boot profile {p}\n")),
        None => s.push_str("unknown MACs are ignored (no address, no boot)\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{check_token, parse_listen, TokenError};

    #[test]
    fn placeholder_and_short_tokens_are_refused() {
        assert_eq!(
            check_token("replace-with-a-long-random-token"),
            Err(TokenError::Placeholder)
        );
        assert_eq!(
            check_token("REPLACE-WITH-A-LONG-RANDOM-TOKEN"),
            Err(TokenError::Placeholder)
        );
        assert_eq!(check_token("short-token"), Err(TokenError::TooShort));
        assert!(check_token("0123456789abcdef").is_ok());
        assert!(check_token(&"ab".repeat(32)).is_ok());
        assert!(TokenError::TooShort.to_string().contains("shorter than 16"));
    }

    #[test]
    fn listen_addresses_parse_with_and_without_ipv6_brackets() {
        let ok = |s: &str| parse_listen(s).unwrap().to_string();
        assert_eq!(ok("10.128.0.10:9091"), "10.128.0.10:9091");
        assert_eq!(ok(" 127.0.0.1:9091 "), "127.0.0.1:9091");
        assert_eq!(ok("[fd00::5]:9091"), "[fd00::5]:9091");
        assert_eq!(ok("fd00::5:9091"), "[fd00::5]:9091");
        for bad in ["10.128.0.10", "fd00::5", "host:9091", "1.2.3.4:99999", ""] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}

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
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

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
    /// The UDP ports DHCP, TFTP and proxyDHCP listen on: 67, 69 and 4011, which firmware
    /// expects. In-process tests use 0 (any free port) and read the ports from `Bound`.
    pub ports: Ports,
}

/// UDP ports of the boot listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// DHCP (67).
    pub dhcp: u16,
    /// TFTP (69).
    pub tftp: u16,
    /// proxyDHCP's PXE boot-server port (4011).
    pub proxy: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            dhcp: 67,
            tftp: 69,
            proxy: 4011,
        }
    }
}

/// One served interface's UDP sockets, each bound to it, so every reply leaves through the
/// interface its request came in on.
struct Interface {
    /// The index of its subnet in `config.dhcp.pools`.
    home: usize,
    name: String,
    /// pxed's address on it.
    server: std::net::Ipv4Addr,
    dhcp: tokio::net::UdpSocket,
    tftp: tokio::net::UdpSocket,
    /// Port 4011, in proxy mode.
    pxe: Option<tokio::net::UdpSocket>,
}

/// Every listener bound, nothing served yet: what [`bind`] hands to [`serve`]. Binding
/// first lets start-up fail on a port or a token before any state is opened, and lets tests
/// bind port 0 and read back where pxed listens.
pub(crate) struct Bound {
    config: Config,
    abilities: crate::abilities::Report,
    interfaces: Vec<Interface>,
    http: tokio::net::TcpListener,
    admins: Vec<(SocketAddr, tokio::net::TcpListener)>,
    admin_token: Option<String>,
}

// Where pxed listens, read back by the in-process tests, which bind port 0.
#[cfg(test)]
impl Bound {
    /// Where the boot HTTP listener is.
    pub(crate) fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// Where the admin API listeners are.
    pub(crate) fn admin_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.admins.iter().map(|(_, l)| l.local_addr()).collect()
    }

    /// Where the TFTP listeners are, one per served interface.
    pub(crate) fn tftp_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.interfaces
            .iter()
            .map(|i| i.tftp.local_addr())
            .collect()
    }
}

/// Binds every listener, serves until `cancel` fires, then stops within `SHUTDOWN_GRACE` (1.5 s).
/// `hook` lets signals reload the config once it is up.
pub async fn run(
    config: Config,
    options: Options,
    cancel: CancellationToken,
    hook: ReloadHook,
) -> anyhow::Result<()> {
    serve(bind(config, &options).await?, cancel, hook).await
}

/// Probes and reports what this process may do, reads the admin token, and binds every
/// listener: per served interface DHCP and TFTP (and 4011 in proxy mode), boot HTTP and the
/// admin API on each of its addresses.
pub(crate) async fn bind(config: Config, options: &Options) -> anyhow::Result<Bound> {
    let admin_addrs = if options.admin_listen.is_empty() {
        vec![config.admin.listen]
    } else {
        options.admin_listen.clone()
    };
    let abilities = report_abilities(&config, &admin_addrs);
    let interfaces = bind_interfaces(&config, options.ports, &abilities)?;
    let http_addr = config.http.listen;
    let http = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("http listener on {http_addr}"))?;
    let admin_token = admin_token(&config, &admin_addrs)?;
    let mut admins = Vec::new();
    for addr in admin_addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("admin listener on {addr}"))?;
        admins.push((addr, listener));
    }
    Ok(Bound {
        config,
        abilities,
        interfaces,
        http,
        admins,
        admin_token,
    })
}

/// The UDP sockets of every pool that names an interface.
fn bind_interfaces(
    config: &Config,
    ports: Ports,
    abilities: &crate::abilities::Report,
) -> anyhow::Result<Vec<Interface>> {
    let can_bind_low = abilities.has(crate::abilities::LOW_PORTS);
    let low_ports = move |what: &'static str| {
        let hint = if can_bind_low {
            ""
        } else {
            ": binding ports below 1024 needs CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start <= 67"
        };
        format!("{what}{hint}")
    };
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let mut interfaces = Vec::new();
    for (home, pool) in config.dhcp.pools.iter().enumerate() {
        let Some(name) = &pool.interface else {
            continue;
        };
        let on = |port, what| {
            crate::net::udp_on_interface(name, any(port)).with_context(|| low_ports(what))
        };
        let pxe = match config.dhcp.mode {
            DhcpMode::Server => None,
            DhcpMode::Proxy => Some(on(ports.proxy, "proxydhcp listener")?),
        };
        interfaces.push(Interface {
            home,
            name: name.clone(),
            server: pool.server,
            dhcp: on(ports.dhcp, "dhcp listener")?,
            tftp: on(ports.tftp, "tftp listener")?,
            pxe,
        });
    }
    Ok(interfaces)
}

/// Opens the state (leases, one-shot boots), watches the config file, and serves every
/// bound listener until `cancel` fires; then stops within [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    bound: Bound,
    cancel: CancellationToken,
    hook: ReloadHook,
) -> anyhow::Result<()> {
    let listeners = (bound.interfaces.len(), bound.admins.len());
    let budget = descriptor_budget(&bound.config, listeners);
    let (shared, store) = open_state(bound.config, bound.abilities, budget)?;
    let _ = hook.0.set(shared.clone());
    watch_config(&shared, hook, &cancel)?;
    let mut tasks = JoinSet::new();
    let (commits, committer) = crate::dhcp::start_commits(store, shared.clone(), cancel.clone());
    let _ = shared.commits.set(commits.clone());
    for i in bound.interfaces {
        spawn_interface(&mut tasks, i, &shared, &commits, &cancel);
    }
    // The commit task ends on the cancel, after committing what is queued.
    drop(commits);
    tasks.spawn(async move {
        let _ = committer.await;
    });
    let token_required = bound.admin_token.is_some();
    for (addr, listener) in bound.admins {
        let (admin_shared, admin_cancel) = (shared.clone(), cancel.clone());
        let token = bound.admin_token.clone();
        tasks.spawn(async move {
            if let Err(e) = crate::admin::serve(listener, admin_shared, token, admin_cancel).await {
                warn!(error = %e, %addr, "admin listener failed");
            }
        });
        info!(%addr, token_required, "admin listener ready");
    }
    let http_addr = bound
        .http
        .local_addr()
        .unwrap_or(shared.config().http.listen);
    let (http_shared, http_cancel) = (shared.clone(), cancel.clone());
    tasks.spawn(async move {
        if let Err(e) = crate::http::serve(bound.http, http_shared, http_cancel).await {
            warn!(error = %e, "http listener failed");
        }
    });
    // Logged last: tests and scripts take it to mean every listener is up.
    let boot_dir = shared.config().server.boot_dir.display().to_string();
    info!(addr = %http_addr, %boot_dir, "http listener ready");
    cancel.cancelled().await;
    stop(tasks).await;
    Ok(())
}

/// The leases restored from the store, the one-shot boots, and the state every listener
/// shares; and the store, for the commit task.
fn open_state(
    config: Config,
    abilities: crate::abilities::Report,
    budget: crate::limits::Budget,
) -> anyhow::Result<(Arc<Shared>, LeaseStore)> {
    let store = LeaseStore::open(&config.server.state_dir).context("lease store")?;
    let restored = store.load().context("loading leases")?;
    info!(store = %store.path().display(), leases = restored.len(), "leases restored");
    let leases = LeaseTable::restore(&config, restored);
    let next_boots =
        crate::nextboot::NextBoots::load(&config.server.state_dir).context("one-shot boots")?;
    let shared = Shared::with_state(config, leases, next_boots);
    let _ = shared.abilities.set(abilities);
    let _ = shared.budget.set(budget);
    Ok((shared, store))
}

/// Reloads the config when its file changes, unless pxed itself just wrote it.
fn watch_config(
    shared: &Arc<Shared>,
    hook: ReloadHook,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let source = shared.config().source.clone();
    let own = shared.clone();
    crate::watch::spawn(
        source.clone(),
        move || hook.fire("file"),
        move || *own.self_written.lock().unwrap_or_else(|e| e.into_inner()),
        cancel.clone(),
    )?;
    info!(file = %source.display(), "watching config for changes");
    Ok(())
}

/// Spawns one interface's DHCP (or proxyDHCP) and TFTP listeners.
fn spawn_interface(
    tasks: &mut JoinSet<()>,
    i: Interface,
    shared: &Arc<Shared>,
    commits: &crate::dhcp::CommitQueue,
    cancel: &CancellationToken,
) {
    let (name, server) = (i.name, i.server);
    let dhcp_addr = shown(i.dhcp.local_addr());
    match i.pxe {
        None => {
            let dhcp = crate::dhcp::serve(
                i.dhcp,
                name.clone(),
                i.home,
                shared.clone(),
                commits.clone(),
                cancel.clone(),
            );
            tasks.spawn(dhcp);
            info!(interface = %name, addr = %dhcp_addr, %server, mode = "server", "dhcp listener ready");
        }
        Some(pxe) => {
            let proxy_addr = shown(pxe.local_addr());
            tasks.spawn(crate::dhcp::serve_proxy(
                i.dhcp,
                pxe,
                name.clone(),
                shared.clone(),
                cancel.clone(),
            ));
            info!(interface = %name, addr = %dhcp_addr, %proxy_addr, mode = "proxy", "dhcp listener ready");
        }
    }
    let tftp_addr = shown(i.tftp.local_addr());
    tasks.spawn(crate::tftp::serve(
        i.tftp,
        name.clone(),
        server,
        shared.clone(),
        cancel.clone(),
    ));
    let boot_dir = shared.config().server.boot_dir.display().to_string();
    info!(interface = %name, addr = %tftp_addr, %server, %boot_dir, "tftp listener ready");
}

/// A socket's address for a log line.
fn shown(addr: std::io::Result<SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

/// Waits up to [`SHUTDOWN_GRACE`] for the listeners and their transfers to end, then aborts
/// what is left.
async fn stop(mut tasks: JoinSet<()>) {
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
pub(crate) enum TokenError {
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
    use super::{bind, check_token, parse_listen, serve, Options, Ports, ReloadHook, TokenError};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    /// The whole daemon in this process, on loopback ports the kernel picks: a file comes
    /// back over HTTP and over TFTP, the admin API answers, and a cancel stops it all.
    #[tokio::test]
    async fn the_daemon_binds_free_ports_serves_them_and_stops_on_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz"), b"kernel bytes").unwrap();
        let file = dir.path().join("pxed.toml");
        std::fs::write(
            &file,
            // Not testkit's br1 tables: this daemon really binds, on loopback.
            format!(
                "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nboot_dir = \"{}\"\nstate_dir = \"{}\"\n\
                 [dhcp]\nsubnet = \"127.0.0.0/8\"\nrange = [\"127.0.0.100\", \"127.0.0.200\"]\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
                 [profiles.p]\nkernel = \"vmlinuz\"\n[hosts.\"de:00:00:00:00:de\"]\nprofile = \"p\"\n",
                boot.display(),
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let (config, _) = crate::config::load(&file).unwrap();
        let options = Options {
            ports: Ports {
                dhcp: 0,
                tftp: 0,
                proxy: 0,
            },
            ..Options::default()
        };
        let bound = bind(config, &options)
            .await
            .expect("binding loopback needs SO_BINDTODEVICE on lo (Linux 5.7 or later, or root)");
        let http = bound.http_addr().unwrap();
        let admin = bound.admin_addrs().unwrap()[0];
        let tftp = bound.tftp_addrs().unwrap()[0].port();
        let cancel = CancellationToken::new();
        let daemon = tokio::spawn(serve(bound, cancel.clone(), ReloadHook::default()));

        let get = |addr, path: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            c.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        };
        let file = get(http, "/vmlinuz").await;
        assert!(file.starts_with("HTTP/1.1 200"), "{file}");
        assert!(file.ends_with("kernel bytes"), "{file}");
        let health = get(admin, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");

        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(b"\x00\x01vmlinuz\x00octet\x00", ("127.0.0.1", tftp))
            .await
            .unwrap();
        let mut buf = [0u8; 600];
        let (n, _) =
            tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv_from(&mut buf))
                .await
                .expect("a TFTP DATA packet")
                .unwrap();
        assert_eq!(&buf[..n], b"\x00\x03\x00\x01kernel bytes");

        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(3), daemon)
            .await
            .expect("stopped within 3 s")
            .unwrap()
            .unwrap();
    }

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

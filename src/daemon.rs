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

/// Binds every listener, serves until `cancel` fires, then stops within [`SHUTDOWN_GRACE`].
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let iface = config.server.interface.clone();
    let dhcp_addr = SocketAddr::from(([0, 0, 0, 0], 67));
    let tftp_addr = SocketAddr::from(([0, 0, 0, 0], 69));
    // One DHCP and one TFTP socket per served interface, each bound to it, so every reply
    // leaves through the interface its request came in on.
    let mut sockets = Vec::new();
    for (home, pool) in config.dhcp.pools.iter().enumerate() {
        let Some(name) = &pool.interface else {
            continue;
        };
        let dhcp = crate::net::udp_on_interface(name, dhcp_addr).context("dhcp listener")?;
        let tftp = crate::net::udp_on_interface(name, tftp_addr).context("tftp listener")?;
        sockets.push((home, name.clone(), pool.server, dhcp, tftp));
    }
    let http_addr = config.http.listen;
    let http = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("http listener on {http_addr}"))?;

    let boot_dir = config.server.boot_dir.display().to_string();
    let mode = config.dhcp.mode;
    let store = LeaseStore::open(&config.server.state_dir).context("lease store")?;
    let restored = store.load().context("loading leases")?;
    info!(store = %store.path().display(), leases = restored.len(), "leases restored");
    let leases = LeaseTable::restore(&config, restored);
    let shared = Shared::with_leases(config, leases);
    let mut tasks = JoinSet::new();
    let (commits, committer) = crate::dhcp::start_commits(store);
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
                let pxe =
                    crate::net::udp_on_interface(&iface, pxe_addr).context("proxydhcp listener")?;
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
    // The commit task ends when the DHCP loops (holding the other clones) have stopped.
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

/// Keeps `Arc` in the public signature of [`run`]'s helpers stable for later issues.
pub type SharedState = Arc<Shared>;

//! Reloading the config file: validate the new file completely, then swap it in whole. A file
//! that does not validate is refused and the old config stays live.

use crate::config::{self, Config, ConfigError};
use crate::state::Shared;

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// Profiles in the new config.
    pub profiles: usize,
    /// Hosts in the new config.
    pub hosts: usize,
    /// Settings that changed but only take effect after a restart (listeners are bound once).
    pub needs_restart: Vec<&'static str>,
    /// Warnings about the new file (missing boot files).
    pub warnings: Vec<String>,
}

/// Settings whose change needs a restart, because they decide which sockets are bound.
pub(crate) fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.server.interface != new.server.interface {
        out.push("server.interface");
    }
    if old.server.address != new.server.address {
        out.push("server.address");
    }
    if old.server.state_dir != new.server.state_dir {
        out.push("server.state_dir");
    }
    if old.http.listen != new.http.listen {
        out.push("http.listen");
    }
    if old.admin.listen != new.admin.listen || old.admin.token_file != new.admin.token_file {
        out.push("admin");
    }
    if old.dhcp.mode != new.dhcp.mode {
        out.push("dhcp.mode");
    }
    let ifaces = |c: &Config| -> Vec<(Option<String>, std::net::Ipv4Addr)> {
        c.dhcp
            .pools
            .iter()
            .map(|p| (p.interface.clone(), p.server))
            .collect()
    };
    if ifaces(old) != ifaces(new) {
        out.push("dhcp.subnets interfaces");
    }
    out
}

/// Re-reads the config file the server was started with and makes it live.
pub(crate) fn reload(shared: &Shared) -> Result<Reloaded, ConfigError> {
    let old = shared.config();
    let (new, warnings) = config::load(&old.source)?;
    let summary = Reloaded {
        profiles: new.profiles.len(),
        hosts: new.hosts.len(),
        needs_restart: needs_restart(&old, &new),
        warnings: warnings
            .iter()
            .map(|w| format!("{}: {}", w.key, w.message))
            .collect(),
    };
    shared.replace_config(new);
    Ok(summary)
}

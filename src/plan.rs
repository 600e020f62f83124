//! Which profile a machine boots now, whichever loader asks (iPXE for its script, GRUB for
//! its config), and what serving it records. The rules live here once:
//! - the host's profile, else `[defaults] profile`;
//! - `[http] script_access = "owner"`: only the address pxed leased to the MAC (or saw it
//!   use in proxy mode) may read it, when pxed knows one;
//! - a pending one-shot boot wins, for the machine itself only, and is spent when served.

use std::net::Ipv4Addr;

use tracing::{info, warn};

use crate::config::{Config, ScriptAccess};
use crate::mac::Mac;
use crate::metrics::Refusal;
use crate::profiles::{Profile, Vars};
use crate::state::Shared;

/// Whether the request for a MAC's boot config comes from the address that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// The address pxed leased to the MAC (or saw it use in proxy mode).
    Owner,
    /// pxed knows no address for the MAC yet (a static address, another DHCP server).
    Unknown,
    /// Another address.
    Other,
}

/// Which boot loader asks: what it can run decides which one-shot applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loader {
    /// iPXE, for its script at `/ipxe/{mac}`.
    Ipxe,
    /// GRUB of the signed chains, for `grub/grub.cfg`.
    Grub,
}

impl Loader {
    /// The name in logs and timeline events.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Loader::Ipxe => "ipxe",
            Loader::Grub => "grub",
        }
    }
}

/// Why a machine gets no boot config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Neither a host entry nor `[defaults] profile`.
    NoProfile,
    /// `script_access = "owner"` and the request came from another address.
    NotOwner,
}

/// What a machine boots now.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub mac: Mac,
    pub name: String,
    pub profile: Profile,
    /// Whether it is a pending one-shot boot (spent by [`served`]).
    pub one_shot: bool,
    /// The arch DHCP saw, or `unknown`.
    pub arch: String,
    /// The address the templates see as `{{ ip }}`.
    pub ip: Option<Ipv4Addr>,
}

impl Plan {
    /// Template values for rendering this plan; `http` is the boot HTTP base URL.
    pub(crate) fn vars<'a>(&'a self, cfg: &'a Config, http: &'a str) -> Vars<'a> {
        Vars {
            mac: self.mac,
            ip: self.ip,
            hostname: cfg.hosts.get(&self.mac).and_then(|h| h.hostname.as_deref()),
            server: cfg.server.address,
            http,
            arch: &self.arch,
        }
    }
}

/// Decides what `mac` boots when `peer` asks for it through `loader`.
pub(crate) fn plan(
    shared: &Shared,
    cfg: &Config,
    mac: Mac,
    peer: Option<Ipv4Addr>,
    loader: Loader,
) -> Result<Plan, Denied> {
    let own = cfg.profile_for(&mac).ok_or(Denied::NoProfile)?;
    let owners = shared.owners_of(&mac, crate::state::unix_now());
    let asker = match peer {
        _ if owners.is_empty() => Asker::Unknown,
        Some(ip) if owners.contains(&ip) => Asker::Owner,
        _ => Asker::Other,
    };
    if asker == Asker::Other && cfg.http.script_access == ScriptAccess::Owner {
        shared.counters.refuse(match loader {
            Loader::Ipxe => Refusal::HttpNotOwner,
            Loader::Grub => Refusal::TftpNotOwner,
        });
        return Err(Denied::NotOwner);
    }
    // A pending one-shot wins over the host's own profile, but only for the machine itself:
    // anyone else would spend it (or read it) for that machine. GRUB skips (and keeps) one
    // it cannot run, such as an iPXE script set before the host turned to Secure Boot.
    let one_shot = shared.next_boots.get(&mac).filter(|p| {
        asker == Asker::Owner
            && cfg
                .profiles
                .get(p)
                .is_some_and(|prof| loader == Loader::Ipxe || crate::grub::supports(prof).is_ok())
    });
    let name = one_shot.clone().unwrap_or_else(|| own.to_string());
    let profile = cfg.profiles.get(&name).cloned().ok_or(Denied::NoProfile)?;
    Ok(Plan {
        mac,
        name,
        profile,
        one_shot: one_shot.is_some(),
        arch: shared.arch_of(&mac).unwrap_or_else(|| "unknown".into()),
        ip: shared.ip_of(&mac).or(peer),
    })
}

/// Records that `plan` was served to `peer` by `loader`: counts the boot, spends a one-shot,
/// adds the timeline event and logs it. TFTP calls it only once the transfer completed, so a
/// forged request cannot spend a one-shot.
pub(crate) fn served(shared: &Shared, plan: &Plan, peer: Option<Ipv4Addr>, loader: Loader) {
    let mac = plan.mac;
    let name = plan.name.as_str();
    if let Some(ip) = peer {
        shared.note_script_peer(ip, mac);
    }
    crate::metrics::inc(&shared.counters.boots_started);
    shared.note_seen(mac, |s| s.served = Some(name.to_string()));
    if plan.one_shot {
        // Spent now: the machine has its config. Only if it still names the profile served,
        // so one set meanwhile is kept. A failure to save is logged; the worst case is that
        // the one-shot is offered again after a restart.
        match shared.next_boots.spend(&mac, name) {
            Ok(true) => info!(%mac, profile = name, "one-shot boot spent"),
            Ok(false) => {
                info!(%mac, profile = name, "one-shot boot changed while served; the new one is kept")
            }
            Err(e) => warn!(%mac, error = %e, "cannot record the spent one-shot boot"),
        }
    }
    shared.record_event(
        mac,
        crate::events::EventKind::BootProfile,
        serde_json::json!({"profile": name, "profile_kind": plan.profile.kind(), "one_shot": plan.one_shot, "arch": plan.arch, "loader": loader.name()}),
    );
    let kind = plan.profile.kind();
    match loader {
        Loader::Grub => {
            info!(%mac, profile = name, kind, arch = %plan.arch, one_shot = plan.one_shot, "grub config served")
        }
        Loader::Ipxe => {
            info!(%mac, profile = name, kind, arch = %plan.arch, one_shot = plan.one_shot, "ipxe script served")
        }
    }
}

/// Whether `path` (as served over HTTP or TFTP) is the last initrd of the kernel profile
/// last served to `mac` (a one-shot's, when that was served), the file whose delivery
/// completes a boot. Before any profile was served, the machine's own profile decides.
pub(crate) fn completes_boot(shared: &Shared, mac: &Mac, path: &str) -> bool {
    let cfg = shared.config();
    let served = shared.seen_of(mac).and_then(|s| s.served);
    let name = served.as_deref().or_else(|| cfg.profile_for(mac));
    let last = name
        .and_then(|name| cfg.profiles.get(name))
        .and_then(|p| match p {
            Profile::Kernel { initrd, .. } => initrd.last(),
            _ => None,
        });
    last.is_some_and(|l| l.trim_start_matches('/') == path.trim_start_matches('/'))
}

/// A GRUB config to send, and the plan to record with [`served`] once it has been delivered
/// (`None`: nothing to count, such as the bootstrap or a profile GRUB cannot run).
#[derive(Debug)]
pub(crate) struct GrubConfig {
    /// The config text.
    pub body: String,
    /// What it boots.
    pub plan: Option<Plan>,
}

/// The GRUB config for a request GRUB made (see [`crate::grub`]) from `peer` to pxed's
/// address `server`; `None` means "no such file", which sends GRUB on to its next name.
/// `grub/grub.cfg` names the machine only through a bound, active lease of the requesting
/// address (not a script peer, which a forged request could plant); anything else gets the
/// bootstrap that asks by MAC. Kernel and initrd load over TFTP from `server`.
pub(crate) fn grub_config(
    shared: &Shared,
    asked: crate::grub::Asked,
    peer: Option<Ipv4Addr>,
    server: Ipv4Addr,
) -> Option<GrubConfig> {
    use crate::grub::Asked;
    let cfg = shared.config();
    let bootstrap = || GrubConfig {
        body: crate::grub::unknown_machine(),
        plan: None,
    };
    let now = crate::state::unix_now();
    let mac = match asked {
        Asked::AddressPrefix => return None,
        Asked::Mac(mac) => mac,
        Asked::ByAddress => match peer.and_then(|ip| shared.bound_mac_of(ip, now)) {
            Some(mac) => mac,
            None => return Some(bootstrap()),
        },
    };
    let plan = match plan(shared, &cfg, mac, peer, Loader::Grub) {
        Ok(p) => p,
        Err(Denied::NotOwner) => {
            if let Some(more) = shared.quiet.http_refused.allow() {
                warn!(%mac, peer = ?peer, suppressed = more, "grub config request from an address that is not the machine's refused");
            }
            return None;
        }
        Err(Denied::NoProfile) => {
            info!(%mac, peer = ?peer, "no boot profile for mac");
            return match asked {
                Asked::ByAddress => Some(bootstrap()),
                _ => None,
            };
        }
    };
    let device = format!("(tftp,{server})");
    let http = cfg.http_base_at(server);
    let vars = plan.vars(&cfg, &http);
    let body = match crate::grub::render(&plan.name, &plan.profile, &vars, &device) {
        Ok(b) => b,
        Err(e) => {
            warn!(%mac, profile = %plan.name, error = %e, "cannot render grub config");
            return Some(GrubConfig {
                body: crate::grub::cannot_render(&plan.name),
                plan: None,
            });
        }
    };
    if let Err(why) = crate::grub::supports(&plan.profile) {
        warn!(%mac, profile = %plan.name, kind = plan.profile.kind(), why, "profile cannot boot under grub; the machine boots its local disk");
        return Some(GrubConfig { body, plan: None });
    }
    Some(GrubConfig {
        body,
        plan: Some(plan),
    })
}

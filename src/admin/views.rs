//! What the API answers: one type per JSON shape. Handlers serialize these, and the OpenAPI
//! document describes the same types, so the document cannot drift from the answers. Their
//! doc comments are the document's descriptions, so they are written for API users.

use serde::Serialize;

use crate::config::Host;
use crate::edit::ProfileBody;
use crate::leases::{Lease, State as LeaseState};
use crate::mac::Mac;
use crate::profiles::Profile;

/// The error shape every endpoint uses.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorView {
    pub(super) error: ErrorDetail,
}

/// The `error` of an `ErrorView`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_mac`, `invalid_config`, `in_use`.
    pub(super) code: &'static str,
    /// What is wrong, for people.
    pub(super) message: String,
    /// The field (or config key) at fault, if any.
    pub(super) field: Option<String>,
}

/// A host of `[hosts]`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HostView {
    mac: String,
    profile: String,
    ip: Option<String>,
    hostname: Option<String>,
    /// Boots shim → GRUB → kernel on x86-64 UEFI; `null` takes `[defaults] secure_boot`.
    secure_boot: Option<bool>,
}

impl HostView {
    pub(super) fn new(mac: &Mac, h: &Host) -> Self {
        HostView {
            mac: mac.to_string(),
            profile: h.profile.clone(),
            ip: h.ip.map(|i| i.to_string()),
            hostname: h.hostname.clone(),
            secure_boot: h.secure_boot,
        }
    }
}

/// A profile: `kind` is kernel, script, chain or local, and the keys of that kind follow,
/// spelled as in the TOML file and in `PUT /api/v1/profiles/{name}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ProfileView {
    name: String,
    kind: &'static str,
    #[serde(flatten)]
    keys: ProfileBody,
}

impl ProfileView {
    pub(super) fn new(name: &str, p: &Profile) -> Self {
        let keys = match p {
            Profile::Kernel {
                kernel,
                initrd,
                cmdline,
            } => ProfileBody {
                kernel: Some(kernel.clone()),
                initrd: Some(initrd.clone()),
                cmdline: Some(cmdline.clone()),
                ..ProfileBody::default()
            },
            Profile::Script { script } => ProfileBody {
                script: Some(script.clone()),
                ..ProfileBody::default()
            },
            Profile::Chain { url } => ProfileBody {
                chain: Some(url.clone()),
                ..ProfileBody::default()
            },
            Profile::Local => ProfileBody {
                action: Some("local".to_string()),
                ..ProfileBody::default()
            },
        };
        ProfileView {
            name: name.to_string(),
            kind: p.kind(),
            keys,
        }
    }
}

/// A machine's pending one-shot boot.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NextBootView {
    mac: String,
    /// `null` when none is pending.
    next_boot: Option<NextBoot>,
}

/// The `next_boot` of a `NextBootView`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NextBoot {
    profile: String,
}

impl NextBootView {
    pub(super) fn new(mac: &Mac, profile: Option<String>) -> Self {
        NextBootView {
            mac: mac.to_string(),
            next_boot: profile.map(|profile| NextBoot { profile }),
        }
    }
}

/// A lease of the table (offers, which nothing has acknowledged, are not listed).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LeaseView {
    mac: String,
    /// The lease key in hex: option 61, or `01` and the MAC without it.
    client_id: String,
    pub(super) ip: String,
    /// `bound` or `released`.
    state: &'static str,
    /// Whether the address is still held for this client.
    active: bool,
    /// Unix seconds.
    expires: u64,
}

impl LeaseView {
    pub(super) fn new(l: &Lease, now: u64) -> Self {
        LeaseView {
            mac: l.mac.to_string(),
            client_id: l.client.hex(),
            ip: l.ip.to_string(),
            state: match l.state {
                LeaseState::Bound => "bound",
                LeaseState::Released => "released",
                LeaseState::Offered => "offered",
            },
            active: l.active(now),
            expires: l.expires,
        }
    }
}

//! The config file as written: one struct per table, each refusing unknown keys. Validation
//! into [`super::Config`] happens in the parent module.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

// ---------------------------------------------------------------------------------------
// The file as written. Every table refuses unknown keys.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) dhcp: RawDhcp,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) tftp: RawTftp,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) first_stage: RawFirstStage,
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    pub(super) hosts: BTreeMap<String, RawHost>,
}

/// `[admin]`: the admin API listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    pub(super) listen: SocketAddr,
    pub(super) token_file: Option<PathBuf>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: default_admin_listen(),
            token_file: None,
        }
    }
}

pub(super) fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9091))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) interface: String,
    pub(super) address: Ipv4Addr,
    pub(super) boot_dir: PathBuf,
    pub(super) state_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDhcp {
    pub(super) subnet: String,
    pub(super) mode: Option<String>,
    pub(super) range: Option<[Ipv4Addr; 2]>,
    pub(super) router: Option<Ipv4Addr>,
    #[serde(default = "default_lease_time")]
    pub(super) lease_time: String,
    #[serde(default = "default_decline_time")]
    pub(super) decline_time: String,
    #[serde(default)]
    pub(super) dns: Vec<Ipv4Addr>,
    pub(super) domain: Option<String>,
    #[serde(default)]
    pub(super) subnets: Vec<RawSubnet>,
}

/// A `[[dhcp.subnets]]` entry: a subnet reached through a DHCP relay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubnet {
    pub(super) subnet: String,
    pub(super) interface: Option<String>,
    pub(super) address: Option<Ipv4Addr>,
    pub(super) range: Option<[Ipv4Addr; 2]>,
    pub(super) router: Option<Ipv4Addr>,
    #[serde(default)]
    pub(super) dns: Vec<Ipv4Addr>,
    pub(super) domain: Option<String>,
}

pub(super) fn default_decline_time() -> String {
    "10m".into()
}

pub(super) fn default_lease_time() -> String {
    "1h".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "default_http_listen")]
    pub(super) listen: SocketAddr,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_http_listen(),
        }
    }
}

pub(super) fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTftp {
    #[serde(default = "default_max_blksize")]
    pub(super) max_blksize: u16,
    #[serde(default = "default_max_windowsize")]
    pub(super) max_windowsize: u16,
}

impl Default for RawTftp {
    fn default() -> Self {
        RawTftp {
            max_blksize: default_max_blksize(),
            max_windowsize: default_max_windowsize(),
        }
    }
}

pub(super) fn default_max_blksize() -> u16 {
    1468
}

pub(super) fn default_max_windowsize() -> u16 {
    64
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirstStage {
    pub(super) bios: Option<String>,
    pub(super) efi_ia32: Option<String>,
    pub(super) efi_x64: Option<String>,
    pub(super) efi_arm64: Option<String>,
    pub(super) http_ia32: Option<String>,
    pub(super) http_x64: Option<String>,
    pub(super) http_arm64: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) profile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) kernel: Option<String>,
    #[serde(default)]
    pub(super) initrd: Vec<String>,
    pub(super) cmdline: Option<String>,
    pub(super) script: Option<String>,
    pub(super) chain: Option<String>,
    pub(super) action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub(super) profile: String,
    pub(super) ip: Option<Ipv4Addr>,
    pub(super) hostname: Option<String>,
}

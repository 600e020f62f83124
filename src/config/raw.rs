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
    #[serde(default = "default_admin_connections")]
    pub(super) max_connections: u32,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: default_admin_listen(),
            token_file: None,
            max_connections: default_admin_connections(),
            allowed_hosts: Vec::new(),
        }
    }
}

pub(super) fn default_admin_connections() -> u32 {
    64
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
    #[serde(default)]
    pub(super) relay_agents: Vec<String>,
    #[serde(default = "default_leases_per_mac")]
    pub(super) max_leases_per_mac: u32,
    #[serde(default = "default_unknown_rate")]
    pub(super) unknown_client_rate: u32,
    #[serde(default = "default_unknown_burst")]
    pub(super) unknown_client_burst: u32,
}

pub(super) fn default_leases_per_mac() -> u32 {
    2
}

pub(super) fn default_unknown_rate() -> u32 {
    100
}

pub(super) fn default_unknown_burst() -> u32 {
    500
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
    #[serde(default = "default_http_connections")]
    pub(super) max_connections: u32,
    #[serde(default = "default_http_per_client")]
    pub(super) max_connections_per_client: u32,
    #[serde(default = "default_header_timeout")]
    pub(super) header_timeout: String,
    #[serde(default = "default_idle_timeout")]
    pub(super) idle_timeout: String,
    #[serde(default = "default_stall_timeout")]
    pub(super) stall_timeout: String,
    #[serde(default = "default_script_access")]
    pub(super) script_access: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_http_listen(),
            max_connections: default_http_connections(),
            max_connections_per_client: default_http_per_client(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            stall_timeout: default_stall_timeout(),
            script_access: default_script_access(),
        }
    }
}

pub(super) fn default_http_connections() -> u32 {
    512
}

pub(super) fn default_http_per_client() -> u32 {
    16
}

pub(super) fn default_header_timeout() -> String {
    "10s".into()
}

pub(super) fn default_idle_timeout() -> String {
    "30s".into()
}

pub(super) fn default_stall_timeout() -> String {
    "60s".into()
}

pub(super) fn default_script_access() -> String {
    "owner".into()
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
    #[serde(default = "default_tftp_sessions")]
    pub(super) max_sessions: u32,
    #[serde(default = "default_tftp_per_client")]
    pub(super) max_sessions_per_client: u32,
    #[serde(default = "default_max_timeout")]
    pub(super) max_timeout: u64,
    #[serde(default = "default_unanswered_timeout")]
    pub(super) unanswered_timeout: String,
    #[serde(default = "default_unanswered_retries")]
    pub(super) unanswered_retries: u32,
}

impl Default for RawTftp {
    fn default() -> Self {
        RawTftp {
            max_blksize: default_max_blksize(),
            max_windowsize: default_max_windowsize(),
            max_sessions: default_tftp_sessions(),
            max_sessions_per_client: default_tftp_per_client(),
            max_timeout: default_max_timeout(),
            unanswered_timeout: default_unanswered_timeout(),
            unanswered_retries: default_unanswered_retries(),
        }
    }
}

pub(super) fn default_tftp_sessions() -> u32 {
    512
}

pub(super) fn default_tftp_per_client() -> u32 {
    8
}

pub(super) fn default_max_timeout() -> u64 {
    10
}

pub(super) fn default_unanswered_timeout() -> String {
    "1s".into()
}

pub(super) fn default_unanswered_retries() -> u32 {
    1
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
    pub(super) secure_boot_x64: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) profile: Option<String>,
    pub(super) secure_boot: Option<bool>,
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
    pub(super) secure_boot: Option<bool>,
}

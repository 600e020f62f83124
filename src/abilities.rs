//! What this process may do, and what pxed does without it. A pod that drops every capability,
//! a `docker run` with the default set and a systemd unit with ambient capabilities all start
//! pxed; this module says, once at start-up and at `/api/v1/status`, which behaviour each of
//! them gets. [`assess`] is pure: it turns [`Facts`] read from `/proc` into a [`Report`].

use std::path::Path;

use serde::Serialize;

// Capability numbers from <linux/capability.h>.
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// What the start-up probe read about this process and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The effective capability set (`CapEff` in /proc/self/status).
    pub effective: u64,
    /// `net.ipv4.ip_unprivileged_port_start` in this network namespace (1024 when unknown).
    pub unprivileged_port_start: u16,
    /// Kernel major and minor version.
    pub kernel: (u32, u32),
    /// The lowest port any listener of this config binds.
    pub lowest_port: u16,
    /// Whether pxed can replace its config file (admin edits write it back).
    pub config_writable: bool,
}

/// One thing pxed may or may not be able to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Ability {
    /// Stable name, for the status endpoint and tests.
    pub name: &'static str,
    /// Whether this process has it.
    pub available: bool,
    /// The capability (or other grant) it rests on.
    pub needs: &'static str,
    /// What pxed does without it.
    pub without: &'static str,
    /// Why it is available, or how to grant it.
    pub how: String,
}

/// The abilities of this process, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub(crate) struct Report {
    /// Every ability, available or not.
    pub abilities: Vec<Ability>,
}

impl Report {
    /// Whether the named ability is available; unknown names count as available, so a
    /// report that was never probed (in-process tests) changes nothing.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.abilities
            .iter()
            .find(|a| a.name == name)
            .is_none_or(|a| a.available)
    }

    /// The abilities this process lacks.
    pub(crate) fn missing(&self) -> impl Iterator<Item = &Ability> {
        self.abilities.iter().filter(|a| !a.available)
    }
}

/// Name of the ability to unicast DHCP replies to clients without an address.
pub(crate) const ARP_UNICAST: &str = "dhcp_unicast";
/// Name of the ability to bind ports below 1024.
pub(crate) const LOW_PORTS: &str = "bind_low_ports";

fn has_cap(effective: u64, cap: u32) -> bool {
    effective & (1 << cap) != 0
}

/// Decides what this process can do from what was read. Pure.
pub(crate) fn assess(f: &Facts) -> Report {
    Report {
        abilities: vec![
            low_ports(f),
            bind_to_device(f),
            arp_unicast(f),
            config_writes(f),
        ],
    }
}

fn low_ports(f: &Facts) -> Ability {
    let cap = has_cap(f.effective, CAP_NET_BIND_SERVICE);
    let sysctl = f.unprivileged_port_start <= f.lowest_port;
    Ability {
        name: LOW_PORTS,
        available: cap || sysctl,
        needs: "CAP_NET_BIND_SERVICE",
        without: "pxed cannot bind DHCP (67) and TFTP (69) and will not start",
        how: if cap {
            "CAP_NET_BIND_SERVICE".into()
        } else if sysctl {
            format!(
                "net.ipv4.ip_unprivileged_port_start = {} in this network namespace",
                f.unprivileged_port_start
            )
        } else {
            format!(
                "grant CAP_NET_BIND_SERVICE, or set net.ipv4.ip_unprivileged_port_start <= {} (it is {})",
                f.lowest_port, f.unprivileged_port_start
            )
        },
    }
}

fn bind_to_device(f: &Facts) -> Ability {
    let cap = has_cap(f.effective, CAP_NET_RAW);
    // Linux 5.7 let unprivileged processes set SO_BINDTODEVICE on an unbound socket.
    let new_kernel = f.kernel >= (5, 7);
    Ability {
        name: "bind_to_device",
        available: cap || new_kernel,
        needs: "CAP_NET_RAW",
        without: "pxed cannot bind its sockets to the interface and will not start",
        how: if new_kernel {
            format!(
                "kernel {}.{} allows SO_BINDTODEVICE without privileges",
                f.kernel.0, f.kernel.1
            )
        } else if cap {
            "CAP_NET_RAW".into()
        } else {
            "grant CAP_NET_RAW (kernels before 5.7 need it for SO_BINDTODEVICE)".into()
        },
    }
}

fn arp_unicast(f: &Facts) -> Ability {
    let cap = has_cap(f.effective, CAP_NET_ADMIN);
    Ability {
        name: ARP_UNICAST,
        available: cap,
        needs: "CAP_NET_ADMIN",
        without: "DHCP replies to clients without an address are broadcast",
        how: if cap {
            "CAP_NET_ADMIN: replies are unicast after an ARP entry (RFC 2131 4.1)".into()
        } else {
            "grant CAP_NET_ADMIN for unicast replies; every PXE ROM accepts broadcast ones".into()
        },
    }
}

fn config_writes(f: &Facts) -> Ability {
    Ability {
        name: "config_writes",
        available: f.config_writable,
        needs: "a writable config file and directory",
        without: "admin API edits of hosts and profiles answer write_failed; next-boot, lease deletion and reload still work",
        how: if f.config_writable {
            "the config file and its directory are writable".into()
        } else {
            "the config is read-only (a ConfigMap mount, say): edit it at its source".into()
        },
    }
}

/// Reads `CapEff` from the text of /proc/self/status.
pub(crate) fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Reads "major.minor" from a kernel release such as `6.1.0-26-amd64`.
pub(crate) fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The kernel release from uname(2); /proc/sys may be hidden (systemd's `ProcSubset=pid`).
fn kernel_release() -> Option<String> {
    // SAFETY: utsname is plain old data; uname fills it and has no other preconditions.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname for the duration of the call.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

/// Whether pxed can replace `file` the way admin edits do (a new file renamed over it).
fn writable(file: &Path) -> bool {
    let ok = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            // SAFETY: access() reads a NUL-terminated path and has no other preconditions.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
            .unwrap_or(false)
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    ok(file) && ok(dir)
}

/// Reads the facts for a config whose listeners bind `lowest_port` and up. Anything that
/// cannot be read counts as absent, so the report errs towards "missing".
pub(crate) fn probe(config_file: &Path, lowest_port: u16) -> Facts {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Facts {
        effective: parse_cap_eff(&read("/proc/self/status")).unwrap_or(0),
        unprivileged_port_start: read("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .trim()
            .parse()
            .unwrap_or(1024),
        kernel: kernel_release()
            .and_then(|r| parse_kernel(&r))
            .unwrap_or((0, 0)),
        lowest_port,
        config_writable: writable(config_file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(effective: u64) -> Facts {
        Facts {
            effective,
            unprivileged_port_start: 1024,
            kernel: (6, 1),
            lowest_port: 67,
            config_writable: true,
        }
    }

    fn available(r: &Report) -> Vec<(&str, bool)> {
        r.abilities.iter().map(|a| (a.name, a.available)).collect()
    }

    #[test]
    fn root_has_everything() {
        let r = assess(&facts(u64::MAX));
        assert_eq!(r.missing().count(), 0, "{r:?}");
    }

    #[test]
    fn a_pod_with_no_capabilities_binds_through_the_sysctl_and_broadcasts() {
        let f = Facts {
            unprivileged_port_start: 0,
            config_writable: false,
            ..facts(0)
        };
        let r = assess(&f);
        assert_eq!(
            available(&r),
            vec![
                ("bind_low_ports", true),
                ("bind_to_device", true),
                ("dhcp_unicast", false),
                ("config_writes", false)
            ]
        );
        assert!(!r.has(ARP_UNICAST));
        let arp = r.missing().next().unwrap();
        assert_eq!(arp.needs, "CAP_NET_ADMIN");
        assert_eq!(
            arp.without,
            "DHCP replies to clients without an address are broadcast"
        );
        assert!(r.abilities[0]
            .how
            .contains("ip_unprivileged_port_start = 0"));
    }

    #[test]
    fn docker_default_set_binds_but_cannot_add_arp_entries() {
        // Docker's default: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
        // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
        let docker: u64 = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
            .iter()
            .map(|b| 1u64 << b)
            .sum();
        let r = assess(&facts(docker));
        assert_eq!(
            r.missing().map(|a| a.name).collect::<Vec<_>>(),
            vec![ARP_UNICAST]
        );
    }

    #[test]
    fn without_bind_service_and_the_sysctl_low_ports_are_missing() {
        let r = assess(&facts(0));
        assert!(!r.has(LOW_PORTS));
        assert!(r.abilities[0]
            .how
            .contains("set net.ipv4.ip_unprivileged_port_start <= 67 (it is 1024)"));
        // A sysctl above the lowest port is not enough either.
        let f = Facts {
            unprivileged_port_start: 68,
            ..facts(0)
        };
        assert!(!assess(&f).has(LOW_PORTS));
    }

    #[test]
    fn old_kernels_need_net_raw_to_bind_to_the_interface() {
        let f = Facts {
            kernel: (5, 4),
            ..facts(1 << CAP_NET_BIND_SERVICE)
        };
        assert!(!assess(&f).has("bind_to_device"));
        let f = Facts {
            kernel: (5, 4),
            ..facts(1 << CAP_NET_RAW)
        };
        assert!(assess(&f).has("bind_to_device"));
    }

    #[test]
    fn parses_proc_status_and_kernel_releases() {
        let status = "Name:\tpxed\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003400\nCapEff:\t0000000000003400\n";
        assert_eq!(parse_cap_eff(status), Some(0x3400));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert_eq!(parse_kernel("6.1.0-26-amd64\n"), Some((6, 1)));
        assert_eq!(parse_kernel("5.7"), Some((5, 7)));
        assert_eq!(parse_kernel("garbage"), None);
    }

    #[test]
    fn an_unprobed_report_withholds_nothing() {
        assert!(Report::default().has(ARP_UNICAST));
    }
}

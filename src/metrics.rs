//! Counters the listeners bump, and their Prometheus text rendering. Counters are plain
//! atomics: every increment is one relaxed add on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every counter pxed exports.
#[derive(Debug, Default)]
pub struct Counters {
    /// DHCP replies sent.
    pub dhcp_replies: AtomicU64,
    /// DHCP requests answered with nothing (unmanaged, another server's, and so on).
    pub dhcp_ignored: AtomicU64,
    /// DHCP datagrams dropped as malformed.
    pub dhcp_malformed: AtomicU64,
    /// DISCOVERs that got no OFFER because the pool was exhausted.
    pub dhcp_pool_exhausted: AtomicU64,
    /// TFTP transfers completed.
    pub tftp_done: AtomicU64,
    /// TFTP transfers the client ended with an ERROR.
    pub tftp_aborted: AtomicU64,
    /// TFTP requests refused or transfers that timed out or failed.
    pub tftp_failed: AtomicU64,
    /// Bytes of completed TFTP transfers.
    pub tftp_bytes: AtomicU64,
    /// HTTP responses by class: 2xx/3xx, 4xx, 5xx.
    pub http_ok: AtomicU64,
    /// HTTP 4xx responses.
    pub http_client_error: AtomicU64,
    /// HTTP 5xx responses.
    pub http_server_error: AtomicU64,
    /// Bytes of HTTP response bodies (as announced).
    pub http_bytes: AtomicU64,
    /// iPXE scripts served: a network boot started.
    pub boots_started: AtomicU64,
    /// Last initrd of a kernel profile served: a network boot handed over to its kernel.
    pub boots_completed: AtomicU64,
    /// Requests refused by a limit or a policy, indexed by [`Refusal`].
    pub refusals: [AtomicU64; Refusal::ALL.len()],
    /// Requests waiting for their turn now, indexed by [`Queue`].
    pub queued: [AtomicU64; Queue::ALL.len()],
}

/// Where requests wait for their turn in a storm, exported as `pxed_queue_depth{queue}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Boot HTTP connections waiting for a connection slot.
    Http,
    /// Admin API connections waiting for a connection slot.
    Admin,
    /// DHCP replies waiting for their lease changes to be written.
    DhcpCommit,
}

impl Queue {
    /// Every queue, in index order.
    pub const ALL: [Queue; 3] = [Queue::Http, Queue::Admin, Queue::DhcpCommit];

    /// The `queue` label.
    pub fn label(self) -> &'static str {
        match self {
            Queue::Http => "http_connections",
            Queue::Admin => "admin_connections",
            Queue::DhcpCommit => "dhcp_lease_commits",
        }
    }
}

/// Why pxed refused to serve something: every limit and policy that protects it on a hostile
/// boot network has one, exported as `pxed_refusals_total{protocol, reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A TFTP request beyond `[tftp] max_sessions_per_client`.
    TftpPerClient,
    /// A TFTP request while every session slot held a transfer in progress.
    TftpFull,
    /// A TFTP session that had never been answered, closed to make room for a new request.
    TftpEvicted,
    /// A TFTP session whose peer never answered (a forged source, or a client gone).
    TftpUnanswered,
    /// An HTTP connection beyond `max_connections_per_client`.
    HttpPerClient,
    /// An HTTP connection while every slot held a request in progress.
    HttpFull,
    /// An idle or half-sent HTTP connection closed to make room for a new one.
    HttpEvicted,
    /// An HTTP connection closed by the header, idle or stall timeout.
    HttpTimeout,
    /// A script request from an address that is not the machine's.
    HttpNotOwner,
    /// A GRUB config request (TFTP) by MAC from an address that is not the machine's.
    TftpNotOwner,
    /// An admin request whose `Host` is not pxed's (DNS rebinding).
    AdminHost,
    /// An admin request from a foreign `Origin`, or a CORS preflight.
    AdminOrigin,
    /// An admin write without `Content-Type: application/json`.
    AdminContentType,
    /// An admin connection from a boot subnet to an address outside it.
    AdminBootNetwork,
    /// A DHCP lease beyond `[dhcp] max_leases_per_mac` (the MAC's oldest was taken over).
    DhcpLeaseCap,
    /// A new unknown client beyond `[dhcp] unknown_client_rate`.
    DhcpRateLimited,
    /// A DHCP request whose `giaddr` or `ciaddr` lies outside every served subnet.
    DhcpBadAddress,
    /// A proxyDHCP request on port 4011 from an implausible source.
    DhcpProxyImplausible,
    /// A DHCP reply dropped because the lease commit queue was full.
    DhcpQueueFull,
}

impl Refusal {
    /// Every refusal, in export order.
    pub const ALL: [Refusal; 19] = [
        Refusal::TftpPerClient,
        Refusal::TftpFull,
        Refusal::TftpEvicted,
        Refusal::TftpUnanswered,
        Refusal::HttpPerClient,
        Refusal::HttpFull,
        Refusal::HttpEvicted,
        Refusal::HttpTimeout,
        Refusal::HttpNotOwner,
        Refusal::TftpNotOwner,
        Refusal::AdminHost,
        Refusal::AdminOrigin,
        Refusal::AdminContentType,
        Refusal::AdminBootNetwork,
        Refusal::DhcpLeaseCap,
        Refusal::DhcpRateLimited,
        Refusal::DhcpBadAddress,
        Refusal::DhcpProxyImplausible,
        Refusal::DhcpQueueFull,
    ];

    /// `(protocol, reason)` labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Refusal::TftpPerClient => ("tftp", "per_client_limit"),
            Refusal::TftpFull => ("tftp", "session_limit"),
            Refusal::TftpEvicted => ("tftp", "evicted_unanswered"),
            Refusal::TftpUnanswered => ("tftp", "never_answered"),
            Refusal::HttpPerClient => ("http", "per_client_limit"),
            Refusal::HttpFull => ("http", "connection_limit"),
            Refusal::HttpEvicted => ("http", "evicted_idle"),
            Refusal::HttpTimeout => ("http", "timeout"),
            Refusal::HttpNotOwner => ("http", "script_not_owner"),
            Refusal::TftpNotOwner => ("tftp", "grub_config_not_owner"),
            Refusal::AdminHost => ("admin", "host"),
            Refusal::AdminOrigin => ("admin", "origin"),
            Refusal::AdminContentType => ("admin", "content_type"),
            Refusal::AdminBootNetwork => ("admin", "boot_network"),
            Refusal::DhcpLeaseCap => ("dhcp", "lease_cap"),
            Refusal::DhcpRateLimited => ("dhcp", "unknown_client_rate"),
            Refusal::DhcpBadAddress => ("dhcp", "address_outside_subnets"),
            Refusal::DhcpProxyImplausible => ("dhcp", "proxy_implausible_source"),
            Refusal::DhcpQueueFull => ("dhcp", "commit_queue_full"),
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl Counters {
    /// Counts one refusal.
    pub fn refuse(&self, why: Refusal) {
        inc(&self.refusals[why.index()]);
    }

    /// Refusals counted so far for one reason.
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refusals[why.index()].load(Ordering::Relaxed)
    }

    /// Sets how many requests wait in `queue` now.
    pub fn set_queued(&self, queue: Queue, depth: usize) {
        self.queued[queue as usize].store(depth as u64, Ordering::Relaxed);
    }
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n`.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Leases in use and free for one subnet, measured when rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGauge {
    /// The subnet, as CIDR text.
    pub subnet: String,
    /// Addresses held by an active lease.
    pub in_use: u64,
    /// Addresses that could still be handed out.
    pub free: u64,
}

/// Renders the Prometheus text exposition format.
pub fn render(c: &Counters, pools: &[PoolGauge]) -> String {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    family(
        "pxed_requests_total",
        "counter",
        "Requests by protocol and outcome.",
        &[
            (
                "{protocol=\"dhcp\",outcome=\"replied\"}",
                get(&c.dhcp_replies),
            ),
            (
                "{protocol=\"dhcp\",outcome=\"ignored\"}",
                get(&c.dhcp_ignored),
            ),
            (
                "{protocol=\"dhcp\",outcome=\"malformed\"}",
                get(&c.dhcp_malformed),
            ),
            (
                "{protocol=\"dhcp\",outcome=\"pool_exhausted\"}",
                get(&c.dhcp_pool_exhausted),
            ),
            ("{protocol=\"tftp\",outcome=\"done\"}", get(&c.tftp_done)),
            (
                "{protocol=\"tftp\",outcome=\"aborted_by_client\"}",
                get(&c.tftp_aborted),
            ),
            (
                "{protocol=\"tftp\",outcome=\"failed\"}",
                get(&c.tftp_failed),
            ),
            ("{protocol=\"http\",outcome=\"ok\"}", get(&c.http_ok)),
            (
                "{protocol=\"http\",outcome=\"client_error\"}",
                get(&c.http_client_error),
            ),
            (
                "{protocol=\"http\",outcome=\"server_error\"}",
                get(&c.http_server_error),
            ),
        ],
    );
    family(
        "pxed_bytes_served_total",
        "counter",
        "Bytes served by protocol.",
        &[
            ("{protocol=\"tftp\"}", get(&c.tftp_bytes)),
            ("{protocol=\"http\"}", get(&c.http_bytes)),
        ],
    );
    family(
        "pxed_boots_total",
        "counter",
        "Network boots started (script served) and completed (last initrd served).",
        &[
            ("{stage=\"started\"}", get(&c.boots_started)),
            ("{stage=\"completed\"}", get(&c.boots_completed)),
        ],
    );
    let queued: Vec<(String, u64)> = Queue::ALL
        .iter()
        .map(|q| {
            (
                format!("{{queue=\"{}\"}}", q.label()),
                get(&c.queued[*q as usize]),
            )
        })
        .collect();
    let queued_refs: Vec<(&str, u64)> = queued.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    family(
        "pxed_queue_depth",
        "gauge",
        "Requests waiting for their turn now.",
        &queued_refs,
    );
    family(
        "pxed_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the log writer fell behind.",
        &[("", crate::logfmt::dropped_lines())],
    );
    let refusals: Vec<(String, u64)> = Refusal::ALL
        .iter()
        .map(|r| {
            let (protocol, reason) = r.labels();
            (
                format!("{{protocol=\"{protocol}\",reason=\"{reason}\"}}"),
                c.refused(*r),
            )
        })
        .collect();
    let refusal_refs: Vec<(&str, u64)> = refusals.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    family(
        "pxed_refusals_total",
        "counter",
        "Requests refused by a limit or policy (see docs/SECURITY.md).",
        &refusal_refs,
    );
    let in_use: Vec<(String, u64)> = pools
        .iter()
        .map(|p| (format!("{{subnet=\"{}\"}}", p.subnet), p.in_use))
        .collect();
    let free: Vec<(String, u64)> = pools
        .iter()
        .map(|p| (format!("{{subnet=\"{}\"}}", p.subnet), p.free))
        .collect();
    let in_use_refs: Vec<(&str, u64)> = in_use.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    let free_refs: Vec<(&str, u64)> = free.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    family(
        "pxed_leases_in_use",
        "gauge",
        "Pool addresses held by an active lease.",
        &in_use_refs,
    );
    family(
        "pxed_leases_free",
        "gauge",
        "Pool addresses that can still be handed out.",
        &free_refs,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let c = Counters::default();
        inc(&c.dhcp_replies);
        add(&c.tftp_bytes, 1234);
        let text = render(
            &c,
            &[PoolGauge {
                subnet: "10.0.0.0/24".into(),
                in_use: 3,
                free: 97,
            }],
        );
        assert!(text.contains("# TYPE pxed_requests_total counter\n"));
        assert!(text.contains("pxed_requests_total{protocol=\"dhcp\",outcome=\"replied\"} 1\n"));
        assert!(text.contains("pxed_bytes_served_total{protocol=\"tftp\"} 1234\n"));
        assert!(text.contains("pxed_leases_in_use{subnet=\"10.0.0.0/24\"} 3\n"));
        assert!(text.contains("pxed_leases_free{subnet=\"10.0.0.0/24\"} 97\n"));
        assert!(text.contains("pxed_boots_total{stage=\"completed\"} 0\n"));
        c.refuse(Refusal::TftpFull);
        let text = render(&c, &[]);
        assert!(
            text.contains("pxed_refusals_total{protocol=\"tftp\",reason=\"session_limit\"} 1\n")
        );
        assert!(text.contains("pxed_refusals_total{protocol=\"admin\",reason=\"host\"} 0\n"));
    }
}

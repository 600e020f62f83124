//! Counters the listeners bump, and their Prometheus text rendering. Counters are plain
//! atomics: every increment is one relaxed add on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every counter pxed exports.
#[derive(Debug, Default)]
pub(crate) struct Counters {
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
    /// HTTP responses below 400 (2xx and 3xx, 304 included).
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
pub(crate) enum Queue {
    /// Boot HTTP connections waiting for a connection slot.
    Http,
    /// Admin API connections waiting for a connection slot.
    Admin,
    /// DHCP replies waiting for their lease changes to be written.
    DhcpCommit,
}

impl Queue {
    /// Every queue, in index order.
    pub(crate) const ALL: [Queue; 3] = [Queue::Http, Queue::Admin, Queue::DhcpCommit];

    /// The `queue` label.
    pub(crate) fn label(self) -> &'static str {
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
pub(crate) enum Refusal {
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
    pub(crate) const ALL: [Refusal; 19] = [
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
    pub(crate) fn labels(self) -> (&'static str, &'static str) {
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
    pub(crate) fn refuse(&self, why: Refusal) {
        inc(&self.refusals[why.index()]);
    }

    /// Refusals counted so far for one reason.
    pub(crate) fn refused(&self, why: Refusal) -> u64 {
        self.refusals[why.index()].load(Ordering::Relaxed)
    }

    /// Sets how many requests wait in `queue` now.
    pub(crate) fn set_queued(&self, queue: Queue, depth: usize) {
        self.queued[queue as usize].store(depth as u64, Ordering::Relaxed);
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Leases in use and free for one subnet, measured when rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolGauge {
    /// The subnet, as CIDR text.
    pub subnet: String,
    /// Addresses held by an active lease.
    pub in_use: u64,
    /// Addresses that could still be handed out.
    pub free: u64,
}

/// Renders the Prometheus text exposition format.
pub(crate) fn render(c: &Counters, pools: &[PoolGauge]) -> String {
    let mut s = String::new();
    traffic(&mut s, c);
    pressure(&mut s, c);
    pool_gauges(&mut s, pools);
    s
}

/// What was served: requests by outcome, bytes, and boots.
fn traffic(s: &mut String, c: &Counters) {
    family(
        s,
        "pxed_requests_total",
        "counter",
        "Requests by protocol and outcome.",
        requests(c),
    );
    let bytes = [("tftp", &c.tftp_bytes), ("http", &c.http_bytes)]
        .map(|(p, a)| (format!("{{protocol=\"{p}\"}}"), get(a)));
    family(
        s,
        "pxed_bytes_served_total",
        "counter",
        "Bytes served by protocol.",
        bytes,
    );
    let boots = [
        ("started", &c.boots_started),
        ("completed", &c.boots_completed),
    ]
    .map(|(stage, a)| (format!("{{stage=\"{stage}\"}}"), get(a)));
    let help = "Network boots started (script served) and completed (last initrd served).";
    family(s, "pxed_boots_total", "counter", help, boots);
}

/// What held pxed back: queued requests, dropped log lines, refusals.
fn pressure(s: &mut String, c: &Counters) {
    let queued = Queue::ALL.iter().map(|q| {
        (
            format!("{{queue=\"{}\"}}", q.label()),
            get(&c.queued[*q as usize]),
        )
    });
    family(
        s,
        "pxed_queue_depth",
        "gauge",
        "Requests waiting for their turn now.",
        queued,
    );
    let help = "Log lines dropped because the log writer fell behind.";
    let dropped = [(String::new(), crate::logfmt::dropped_lines())];
    family(s, "pxed_log_lines_dropped_total", "counter", help, dropped);
    let refusals = Refusal::ALL.iter().map(|r| {
        let (protocol, reason) = r.labels();
        (
            format!("{{protocol=\"{protocol}\",reason=\"{reason}\"}}"),
            c.refused(*r),
        )
    });
    let help = "Requests refused by a limit or policy (see docs/SECURITY.md).";
    family(s, "pxed_refusals_total", "counter", help, refusals);
}

/// Each pool's addresses in use and free.
fn pool_gauges(s: &mut String, pools: &[PoolGauge]) {
    let by_subnet = |f: fn(&PoolGauge) -> u64| {
        pools
            .iter()
            .map(move |p| (format!("{{subnet=\"{}\"}}", p.subnet), f(p)))
    };
    let help = "Pool addresses held by an active lease.";
    family(
        s,
        "pxed_leases_in_use",
        "gauge",
        help,
        by_subnet(|p| p.in_use),
    );
    let help = "Pool addresses that can still be handed out.";
    family(s, "pxed_leases_free", "gauge", help, by_subnet(|p| p.free));
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// `pxed_requests_total`'s samples.
fn requests(c: &Counters) -> impl Iterator<Item = (String, u64)> + '_ {
    [
        ("dhcp", "replied", &c.dhcp_replies),
        ("dhcp", "ignored", &c.dhcp_ignored),
        ("dhcp", "malformed", &c.dhcp_malformed),
        ("dhcp", "pool_exhausted", &c.dhcp_pool_exhausted),
        ("tftp", "done", &c.tftp_done),
        ("tftp", "aborted_by_client", &c.tftp_aborted),
        ("tftp", "failed", &c.tftp_failed),
        ("http", "ok", &c.http_ok),
        ("http", "client_error", &c.http_client_error),
        ("http", "server_error", &c.http_server_error),
    ]
    .into_iter()
    .map(|(p, o, a)| (format!("{{protocol=\"{p}\",outcome=\"{o}\"}}"), get(a)))
}

/// Writes one metric family: its HELP and TYPE lines, then a line per labelled sample.
fn family(
    s: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(s, "{name}{labels} {v}");
    }
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

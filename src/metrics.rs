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
    }
}

//! Boot timelines: what each machine did, in order, for `GET /api/v1/machines/{mac}/events`.
//!
//! Memory is bounded in count and in bytes: per machine (oldest events dropped), per event
//! (long strings cut), and per tier (the machine heard from longest ago is dropped). Hosts
//! listed in `[hosts]` and clients booting the `[defaults]` profile are kept in separate
//! tiers, so a neighbour inventing MACs can only push out its own inventions; unmanaged MACs
//! get no timeline at all (the caller checks).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::mac::Mac;

/// Events kept per machine.
pub(crate) const PER_MACHINE: usize = 256;
/// Machines kept per tier.
pub(crate) const MACHINES: usize = 4096;
/// Longest string kept in an event's details, in bytes; longer ones are cut.
pub(crate) const MAX_STRING: usize = 256;
/// Bytes of event details kept per tier (about; see [`Event::weight`]).
pub(crate) const TIER_BYTES: usize = 16 << 20;

/// Which set of timelines a machine's belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// A MAC in `[hosts]`.
    Host,
    /// A MAC booting the `[defaults]` profile.
    Default,
}

/// What a timeline event records; the name is the event's `kind` in the JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A DHCP DISCOVER arrived.
    DhcpDiscover,
    /// A DHCP REQUEST arrived.
    DhcpRequest,
    /// A DHCP RELEASE arrived.
    DhcpRelease,
    /// A DHCP DECLINE arrived.
    DhcpDecline,
    /// A DHCP INFORM arrived.
    DhcpInform,
    /// Another DHCP message type arrived.
    DhcpOther,
    /// pxed decided to OFFER.
    DhcpOffer,
    /// pxed decided to ACK.
    DhcpAck,
    /// pxed decided to NAK.
    DhcpNak,
    /// pxed decided to send no reply (with the reason).
    DhcpNoReply,
    /// A TFTP transfer's peer answered: the transfer is under way.
    TftpStart,
    /// A TFTP transfer completed.
    TftpDone,
    /// The client aborted a TFTP transfer (as firmware does after a `tsize` probe).
    TftpAborted,
    /// A TFTP request was refused or a transfer failed.
    TftpError,
    /// The iPXE script was served.
    HttpScript,
    /// A boot file was served over HTTP.
    HttpFile,
    /// An HTTP request got a 4xx or 5xx.
    HttpError,
    /// A profile was served to a loader (counted as a boot started).
    BootProfile,
}

impl EventKind {
    /// The name in the JSON API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::DhcpDiscover => "dhcp_discover",
            EventKind::DhcpRequest => "dhcp_request",
            EventKind::DhcpRelease => "dhcp_release",
            EventKind::DhcpDecline => "dhcp_decline",
            EventKind::DhcpInform => "dhcp_inform",
            EventKind::DhcpOther => "dhcp_other",
            EventKind::DhcpOffer => "dhcp_offer",
            EventKind::DhcpAck => "dhcp_ack",
            EventKind::DhcpNak => "dhcp_nak",
            EventKind::DhcpNoReply => "dhcp_ignored",
            EventKind::TftpStart => "tftp_start",
            EventKind::TftpDone => "tftp_done",
            EventKind::TftpAborted => "tftp_aborted",
            EventKind::TftpError => "tftp_error",
            EventKind::HttpScript => "http_script",
            EventKind::HttpFile => "http_file",
            EventKind::HttpError => "http_error",
            EventKind::BootProfile => "boot_profile",
        }
    }
}

/// One thing a machine did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub kind: EventKind,
    /// Details (file, bytes, duration, arch, ...).
    pub detail: Map<String, Value>,
}

impl Event {
    /// As JSON: `{"at_ms": ..., "kind": ..., ...detail}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = self.detail.clone();
        m.insert("at_ms".into(), Value::from(self.at_ms));
        m.insert("kind".into(), Value::from(self.kind.as_str()));
        Value::Object(m)
    }

    /// Approximate bytes held: a fixed overhead plus every key and string.
    fn weight(&self) -> usize {
        64 + self
            .detail
            .iter()
            .map(|(k, v)| {
                32 + k.len()
                    + match v {
                        Value::String(s) => s.len(),
                        _ => 8,
                    }
            })
            .sum::<usize>()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most [`MAX_STRING`] bytes of `s`, cut on a character boundary.
pub(crate) fn cut_str(s: &str) -> &str {
    prefix(s, MAX_STRING)
}

/// Cuts a string to at most [`MAX_STRING`] bytes, on a character boundary, marking the cut.
fn cut(s: &mut String) {
    if s.len() > MAX_STRING {
        let end = prefix(s, MAX_STRING - 3).len();
        s.truncate(end);
        s.push_str("...");
    }
}

/// One machine's timeline.
#[derive(Debug, Default)]
struct Timeline {
    /// Events, oldest first.
    events: VecDeque<Event>,
    /// Sequence number of the last event, for evicting the quietest machine.
    last: u64,
    /// Sum of its events' weights.
    bytes: usize,
}

/// One tier's timelines.
#[derive(Debug, Default)]
struct TierTimelines {
    machines: HashMap<Mac, Timeline>,
    /// The same machines by their last event's sequence number, quietest first: at the
    /// limit, a storm of new machines evicts in O(log n) per event, not a scan of them all.
    by_last: BTreeMap<u64, Mac>,
    /// Sum of their bytes.
    bytes: usize,
}

impl TierTimelines {
    /// Drops the machine heard from longest ago, other than `keep`.
    fn drop_quietest(&mut self, keep: Mac) {
        let quietest = self
            .by_last
            .iter()
            .find(|(_, m)| **m != keep)
            .map(|(seq, m)| (*seq, *m));
        if let Some((seq, m)) = quietest {
            self.by_last.remove(&seq);
            if let Some(t) = self.machines.remove(&m) {
                self.bytes -= t.bytes;
            }
        }
    }
}

/// Every machine's timeline.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// Both tiers and a sequence counter, under one lock held for a few operations.
    inner: Mutex<(TierTimelines, TierTimelines, u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Events {
    /// Records an event for `mac` now.
    pub(crate) fn record(&self, tier: Tier, mac: Mac, kind: EventKind, detail: Value) {
        self.record_at(tier, mac, kind, detail, now_ms());
    }

    /// Records an event at `at_ms` (Unix milliseconds).
    pub(crate) fn record_at(
        &self,
        tier: Tier,
        mac: Mac,
        kind: EventKind,
        detail: Value,
        at_ms: u64,
    ) {
        let mut detail = match detail {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for v in detail.values_mut() {
            if let Value::String(s) = v {
                cut(s);
            }
        }
        let event = Event {
            at_ms,
            kind,
            detail,
        };
        let weight = event.weight();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (hosts, defaults, seq) = &mut *guard;
        *seq += 1;
        let tl = match tier {
            Tier::Host => hosts,
            Tier::Default => defaults,
        };
        if !tl.machines.contains_key(&mac) && tl.machines.len() >= MACHINES {
            tl.drop_quietest(mac);
        }
        while tl.bytes + weight > TIER_BYTES && tl.machines.len() > 1 {
            tl.drop_quietest(mac);
        }
        let t = tl.machines.entry(mac).or_default();
        tl.by_last.remove(&t.last);
        t.last = *seq;
        tl.by_last.insert(*seq, mac);
        while t.events.len() >= PER_MACHINE
            || (t.bytes + weight > TIER_BYTES && !t.events.is_empty())
        {
            if let Some(old) = t.events.pop_front() {
                let w = old.weight();
                t.bytes -= w;
                tl.bytes -= w;
            }
        }
        t.bytes += weight;
        tl.bytes += weight;
        t.events.push_back(event);
    }

    /// A machine's timeline, oldest first.
    pub(crate) fn get(&self, mac: &Mac) -> Vec<Event> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (hosts, defaults, _) = &*guard;
        hosts
            .machines
            .get(mac)
            .or_else(|| defaults.machines.get(mac))
            .map(|t| t.events.iter().cloned().collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    /// Number of machines with a timeline.
    pub(crate) fn machines(&self) -> usize {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.machines.len() + guard.1.machines.len()
    }

    #[cfg(test)]
    /// Bytes held by the timelines, both tiers.
    pub(crate) fn bytes(&self) -> usize {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.bytes + guard.1.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mac(n: u32) -> Mac {
        Mac([2, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8, 1])
    }

    #[test]
    fn timelines_are_ordered_and_bounded() {
        let e = Events::default();
        for i in 0..(PER_MACHINE as u64 + 10) {
            e.record_at(Tier::Host, mac(1), EventKind::HttpFile, json!({"n": i}), i);
        }
        let t = e.get(&mac(1));
        assert_eq!(t.len(), PER_MACHINE);
        assert_eq!(t[0].detail["n"], json!(10), "oldest dropped first");
        assert_eq!(t.last().unwrap().to_json()["kind"], json!("http_file"));
        // The total is bounded too: the quietest machine goes.
        for n in 2..(MACHINES as u32 + 2) {
            e.record_at(Tier::Host, mac(n), EventKind::DhcpOffer, json!({}), 0);
        }
        assert_eq!(e.machines(), MACHINES);
        assert!(e.get(&mac(1)).is_empty(), "the quietest machine was kept");
        assert_eq!(e.get(&mac(MACHINES as u32 + 1)).len(), 1);
        // A machine heard from again moves to the back of the eviction order.
        e.record_at(Tier::Host, mac(2), EventKind::DhcpOffer, json!({}), 0);
        e.record_at(
            Tier::Host,
            mac(MACHINES as u32 + 2),
            EventKind::DhcpOffer,
            json!({}),
            0,
        );
        assert_eq!(
            e.get(&mac(2)).len(),
            2,
            "a machine just heard from was dropped"
        );
        assert!(e.get(&mac(3)).is_empty(), "the quietest machine was kept");
        let guard = e.inner.lock().unwrap();
        assert_eq!(guard.0.by_last.len(), guard.0.machines.len());
    }

    #[test]
    fn long_strings_are_cut_and_bytes_are_bounded() {
        let e = Events::default();
        let long = "/".repeat(60_000);
        e.record_at(
            Tier::Host,
            mac(1),
            EventKind::HttpError,
            json!({"path": long}),
            0,
        );
        let path = e.get(&mac(1))[0].detail["path"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            path.len() <= MAX_STRING && path.ends_with("..."),
            "{}",
            path.len()
        );
        // 100 requests with 60 KB paths now hold a few tens of KB, not 6 MB.
        for i in 0..100 {
            e.record_at(
                Tier::Host,
                mac(2),
                EventKind::HttpError,
                json!({"path": long, "n": i}),
                i,
            );
        }
        assert!(e.bytes() < 100 * 512, "{} bytes", e.bytes());
        // A tier's byte budget holds whatever the number of machines.
        for n in 0..20_000u32 {
            e.record_at(
                Tier::Default,
                mac(100 + n),
                EventKind::DhcpOffer,
                json!({"file": long}),
                0,
            );
        }
        assert!(e.bytes() <= 2 * TIER_BYTES);
    }

    #[test]
    fn invented_macs_cannot_push_out_hosts() {
        let e = Events::default();
        e.record_at(Tier::Host, mac(1), EventKind::DhcpOffer, json!({}), 0);
        for n in 0..(MACHINES as u32 + 10) {
            e.record_at(
                Tier::Default,
                mac(1000 + n),
                EventKind::DhcpOffer,
                json!({}),
                0,
            );
        }
        assert_eq!(e.get(&mac(1)).len(), 1, "a host's timeline was pushed out");
    }
}

//! Boot timelines: what each machine did, in order, for `GET /api/v1/machines/{mac}/events`.
//! Memory is bounded per machine (oldest events dropped) and in total (the machine heard
//! from longest ago is dropped).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::mac::Mac;

/// Events kept per machine.
pub const PER_MACHINE: usize = 256;
/// Machines kept.
pub const MACHINES: usize = 4096;

/// One thing a machine did.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// What happened: `dhcp_offer`, `tftp_done`, `http_script`, ...
    pub kind: &'static str,
    /// Details (file, bytes, duration, arch, ...).
    pub detail: Map<String, Value>,
}

impl Event {
    /// As JSON: `{"at_ms": ..., "kind": ..., ...detail}`.
    pub fn to_json(&self) -> Value {
        let mut m = self.detail.clone();
        m.insert("at_ms".into(), Value::from(self.at_ms));
        m.insert("kind".into(), Value::from(self.kind));
        Value::Object(m)
    }
}

/// One machine's timeline.
#[derive(Debug, Default)]
struct Timeline {
    /// Events, oldest first.
    events: VecDeque<Event>,
    /// Sequence number of the last event, for evicting the quietest machine.
    last: u64,
}

/// Every machine's timeline.
#[derive(Debug, Default)]
pub struct Events {
    /// Timelines and a sequence counter, under one lock held for a few operations.
    inner: Mutex<(HashMap<Mac, Timeline>, u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Events {
    /// Records an event for `mac` now.
    pub fn record(&self, mac: Mac, kind: &'static str, detail: Value) {
        self.record_at(mac, kind, detail, now_ms());
    }

    /// Records an event at a given time (tests).
    pub fn record_at(&self, mac: Mac, kind: &'static str, detail: Value, at_ms: u64) {
        let detail = match detail {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (machines, seq) = &mut *guard;
        *seq += 1;
        if !machines.contains_key(&mac) && machines.len() >= MACHINES {
            // O(machines), but only when a new machine arrives at the limit.
            if let Some(quietest) = machines.iter().min_by_key(|(_, t)| t.last).map(|(m, _)| *m) {
                machines.remove(&quietest);
            }
        }
        let t = machines.entry(mac).or_default();
        t.last = *seq;
        if t.events.len() >= PER_MACHINE {
            t.events.pop_front();
        }
        t.events.push_back(Event {
            at_ms,
            kind,
            detail,
        });
    }

    /// A machine's timeline, oldest first.
    pub fn get(&self, mac: &Mac) -> Vec<Event> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .0
            .get(mac)
            .map(|t| t.events.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of machines with a timeline.
    pub fn machines(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.len()
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
            e.record_at(mac(1), "http_file", json!({"n": i}), i);
        }
        let t = e.get(&mac(1));
        assert_eq!(t.len(), PER_MACHINE);
        assert_eq!(t[0].detail["n"], json!(10), "oldest dropped first");
        assert_eq!(t.last().unwrap().to_json()["kind"], json!("http_file"));
        // The total is bounded too: the quietest machine goes.
        for n in 2..(MACHINES as u32 + 2) {
            e.record_at(mac(n), "dhcp_offer", json!({}), 0);
        }
        assert_eq!(e.machines(), MACHINES);
        assert!(e.get(&mac(1)).is_empty(), "the quietest machine was kept");
        assert_eq!(e.get(&mac(MACHINES as u32 + 1)).len(), 1);
    }
}

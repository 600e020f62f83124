//! The address pool and its leases. Pure: callers pass the time in and persist the
//! [`Change`]s this table records; nothing here does IO.
//!
//! Leases are keyed by client identifier (option 61 when the client sends one, else its MAC),
//! as RFC 2131 §4.2 asks. Stickiness: a client keeps its binding after its lease expires or is
//! released, so it gets the same address back for as long as no one else needs it. Free
//! addresses that were never bound go out before expired ones are taken over, the one that
//! expired longest ago first. Both lookups are ordered sets, so the cost of an allocation does
//! not grow with the number of leases.

mod table;

pub(crate) use table::LeaseTable;

use std::net::Ipv4Addr;

use crate::mac::Mac;

/// How long an OFFER holds an address for the client that was offered it.
pub(crate) const OFFER_HOLD_SECS: u64 = 60;

/// The key a lease is stored under: option 61 as sent, or `01` + MAC without it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub Vec<u8>);

impl ClientId {
    /// The identifier RFC 2132 suggests for Ethernet: hardware type 1, then the MAC.
    pub(crate) fn from_mac(mac: Mac) -> ClientId {
        let mut v = vec![1];
        v.extend(mac.0);
        ClientId(v)
    }

    /// Lowercase hex, for logs and the lease store.
    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Offered, not yet requested; held until `expires`.
    Offered,
    /// ACKed; the client owns it until `expires`.
    Bound,
    /// The client released it; the binding is remembered for stickiness only.
    Released,
}

impl State {
    /// Stable number for the lease store.
    pub(crate) fn code(self) -> i64 {
        match self {
            State::Offered => 0,
            State::Bound => 1,
            State::Released => 2,
        }
    }

    /// Inverse of [`State::code`].
    pub(crate) fn from_code(c: i64) -> Option<State> {
        match c {
            0 => Some(State::Offered),
            1 => Some(State::Bound),
            2 => Some(State::Released),
            _ => None,
        }
    }
}

/// One client's binding to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The lease key.
    pub client: ClientId,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub state: State,
    /// Unix seconds after which the address may go to someone else.
    pub expires: u64,
}

impl Lease {
    /// Whether the address is still held for this client at `now`.
    pub(crate) fn active(&self, now: u64) -> bool {
        self.state != State::Released && self.expires > now
    }
}

/// What must be written to the lease store before the reply that caused it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Insert or replace this lease.
    Upsert(Lease),
    /// Forget this client's lease (its address went to someone else, or it DECLINEd).
    Delete(ClientId),
}

/// The store writes one decision (or one commit) carries, and for each the lease it replaced,
/// so that memory can be rolled back if the store refuses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    /// What to write.
    pub changes: Vec<Change>,
    /// For each change, the lease it replaced in memory.
    pub undo: Vec<Option<Lease>>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Appends another batch.
    pub(crate) fn extend(&mut self, other: Batch) {
        self.changes.extend(other.changes);
        self.undo.extend(other.undo);
    }
}

/// Why a REQUEST cannot be ACKed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The address is not in the served subnet.
    #[error("{0} is not in the served subnet")]
    WrongSubnet(Ipv4Addr),
    /// Another client holds it, or it is pinned to another host.
    #[error("{0} belongs to another client")]
    Taken(Ipv4Addr),
    /// It is neither in the pool nor pinned to this host.
    #[error("{0} is not an address this client may have")]
    NotAllowed(Ipv4Addr),
}

#[cfg(test)]
mod tests;

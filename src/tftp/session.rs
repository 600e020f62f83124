//! One read transfer as a state machine. Pure: events (an ACK, an ERROR, a timeout) go in,
//! packets to send come out, and the shell does the IO. Retries are state; timeouts are
//! inputs.
//!
//! Blocks are counted from 1 as `u64` inside the session and wrap to 0 after 65535 on the
//! wire, so files larger than 65535 blocks transfer (as curl, atftp and iPXE expect).

use std::time::Duration;

use super::packet::code;

/// Server-side limits on what a client may negotiate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest block size granted.
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Timeout used when the client asks for none.
    pub default_timeout: Duration,
    /// Retransmissions of one window before giving up.
    pub max_retries: u32,
    /// Largest `timeout` option granted; a larger one is left out of the OACK.
    pub max_timeout: Duration,
    /// Wait for a peer that has not answered yet (forged sources never do).
    pub unanswered_timeout: Duration,
    /// Retransmissions to a peer that has never answered.
    pub unanswered_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            default_timeout: Duration::from_secs(1),
            max_retries: 5,
            max_timeout: Duration::from_secs(10),
            unanswered_timeout: Duration::from_secs(1),
            unanswered_retries: 1,
        }
    }
}

/// What was agreed for one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK.
    pub windowsize: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// The OACK to send, if the client asked for any option pxed grants.
    pub oack: Option<Vec<(String, String)>>,
}

/// Applies RFC 2347/2348/2349/7440 to the client's options. Unknown or out-of-range options
/// are left out of the OACK (the client then uses the default), as RFC 2347 allows. An
/// option sent twice counts once, by its first occurrence, so a request cannot make the
/// OACK larger than one copy of each granted option.
pub(crate) fn negotiate(
    options: &[(String, String)],
    file_size: u64,
    limits: &Limits,
) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        windowsize: 1,
        timeout: limits.default_timeout,
        oack: None,
    };
    let mut oack = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in options {
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        match name.as_str() {
            "blksize" => {
                if let Ok(v) = value.parse::<u32>() {
                    if v >= 8 {
                        n.blksize = v.min(u32::from(limits.max_blksize)).min(65464) as u16;
                        oack.push((name.clone(), n.blksize.to_string()));
                    }
                }
            }
            "windowsize" => {
                if let Ok(v) = value.parse::<u32>() {
                    if v >= 1 {
                        n.windowsize = v.min(u32::from(limits.max_windowsize)).min(65535) as u16;
                        oack.push((name.clone(), n.windowsize.to_string()));
                    }
                }
            }
            "timeout" => {
                if let Ok(v) = value.parse::<u64>() {
                    if (1..=limits.max_timeout.as_secs().min(255)).contains(&v) {
                        n.timeout = Duration::from_secs(v);
                        oack.push((name.clone(), v.to_string()));
                    }
                }
            }
            "tsize" => oack.push((name.clone(), file_size.to_string())),
            _ => {}
        }
    }
    if !oack.is_empty() {
        n.oack = Some(oack);
    }
    n
}

/// Something that happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The client acknowledged a block (wire number); 0 acknowledges the OACK.
    Ack(u16),
    /// The client sent an ERROR: the transfer ends at once.
    Error { code: u16, message: String },
    /// No ACK came within the timeout.
    Timeout,
}

/// A packet the shell must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Send {
    /// The option acknowledgement.
    Oack(Vec<(String, String)>),
    /// A DATA block: `len` bytes of the file from `offset`, as wire block `block`.
    Data {
        /// Wire block number.
        block: u16,
        /// File offset.
        offset: u64,
        /// Payload length (0 for the final empty block).
        len: usize,
    },
    /// An ERROR to the client.
    Error { code: u16, message: String },
}

/// Where a transfer stands after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for the next ACK.
    Running,
    /// The last block was acknowledged.
    Done,
    /// The client ended it with an ERROR.
    AbortedByClient { code: u16, message: String },
    /// The client stopped answering.
    TimedOut,
    /// The peer never answered at all: a forged source, or a client that went away at once.
    /// Nothing more is sent to it, not even an ERROR.
    Unanswered,
}

/// The result of feeding one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Packets to send, in order.
    pub send: Vec<Send>,
    /// The transfer's status afterwards.
    pub status: Status,
}

/// One read transfer.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// File size in bytes.
    size: u64,
    /// What was negotiated.
    params: Negotiated,
    /// Number of the last block (the first one shorter than blksize, possibly empty).
    last_block: u64,
    /// Highest block acknowledged so far (0: none, or only the OACK).
    acked: u64,
    /// Highest block sent so far.
    sent: u64,
    /// Whether the OACK is still unacknowledged.
    awaiting_oack_ack: bool,
    /// Consecutive timeouts without progress.
    retries: u32,
    /// Allowed consecutive timeouts.
    max_retries: u32,
    /// Whether the peer has sent anything (an ACK or an ERROR) in this transfer.
    answered: bool,
    /// Wait before the peer's first answer.
    unanswered_timeout: Duration,
    /// Allowed timeouts before the peer's first answer.
    unanswered_retries: u32,
    /// Final status once reached; later events change nothing.
    finished: Option<Status>,
}

impl Session {
    /// A transfer of `size` bytes with the negotiated parameters, retrying within `limits`.
    pub(crate) fn new(size: u64, params: Negotiated, limits: &Limits) -> Session {
        let bs = u64::from(params.blksize);
        Session {
            size,
            last_block: size / bs + 1,
            acked: 0,
            sent: 0,
            awaiting_oack_ack: params.oack.is_some(),
            retries: 0,
            max_retries: limits.max_retries,
            answered: false,
            unanswered_timeout: limits.unanswered_timeout,
            unanswered_retries: limits.unanswered_retries,
            finished: None,
            params,
        }
    }

    /// How long to wait for the next packet: short until the peer first answers.
    pub(crate) fn timeout(&self) -> Duration {
        if self.answered {
            self.params.timeout
        } else {
            self.params.timeout.min(self.unanswered_timeout)
        }
    }

    /// Whether the peer has answered: only then is it known to be a real client.
    pub(crate) fn answered(&self) -> bool {
        self.answered
    }

    pub(crate) fn params(&self) -> &Negotiated {
        &self.params
    }

    /// Bytes acknowledged by the client so far.
    pub(crate) fn bytes_acked(&self) -> u64 {
        (self.acked * u64::from(self.params.blksize)).min(self.size)
    }

    /// The first packets: the OACK, or the first window.
    pub(crate) fn start(&mut self) -> Step {
        match &self.params.oack {
            Some(o) => self.step(vec![Send::Oack(o.clone())]),
            None => {
                let w = self.window();
                self.step(w)
            }
        }
    }

    /// Feeds one event.
    pub(crate) fn handle(&mut self, event: Event) -> Step {
        if let Some(s) = &self.finished {
            return Step {
                send: Vec::new(),
                status: s.clone(),
            };
        }
        if !matches!(event, Event::Timeout) {
            self.answered = true;
        }
        match event {
            Event::Error { code, message } => {
                self.finish(Status::AbortedByClient { code, message })
            }
            Event::Timeout if !self.answered => {
                self.retries += 1;
                if self.retries > self.unanswered_retries {
                    return self.finish(Status::Unanswered);
                }
                self.sent = self.acked;
                let resend = match &self.params.oack {
                    Some(o) => vec![Send::Oack(o.clone())],
                    None => self.window(),
                };
                self.step(resend)
            }
            Event::Timeout => {
                self.retries += 1;
                if self.retries > self.max_retries {
                    return self.finish(Status::TimedOut);
                }
                if self.awaiting_oack_ack {
                    let o = self.params.oack.clone().unwrap_or_default();
                    return self.step(vec![Send::Oack(o)]);
                }
                // Go back to the first unacknowledged block and resend the window.
                self.sent = self.acked;
                let w = self.window();
                self.step(w)
            }
            Event::Ack(wire) => self.on_ack(wire),
        }
    }

    /// An ACK: of the OACK (block 0), or of blocks sent; the next window follows.
    fn on_ack(&mut self, wire: u16) -> Step {
        if self.awaiting_oack_ack {
            if wire != 0 {
                return self.step(Vec::new());
            }
            self.awaiting_oack_ack = false;
            self.retries = 0;
            let w = self.window();
            return self.step(w);
        }
        let Some(block) = self.unwrap_block(wire) else {
            // A stale or duplicate ACK: ignoring it avoids the Sorcerer's Apprentice bug.
            return self.step(Vec::new());
        };
        self.acked = block;
        self.retries = 0;
        if self.acked == self.last_block {
            return self.finish(Status::Done);
        }
        if self.acked < self.sent {
            // RFC 7440: the client lost part of the window; resend from after its ACK.
            self.sent = self.acked;
        }
        let w = self.window();
        self.step(w)
    }

    /// Maps a wire block number to the block it acknowledges among those sent and not yet
    /// acknowledged.
    fn unwrap_block(&self, wire: u16) -> Option<u64> {
        (self.acked + 1..=self.sent)
            .rev()
            .find(|b| (*b & 0xffff) as u16 == wire)
    }

    /// The next window of DATA blocks after the last one sent.
    fn window(&mut self) -> Vec<Send> {
        let bs = u64::from(self.params.blksize);
        let end = (self.acked + u64::from(self.params.windowsize)).min(self.last_block);
        let mut out = Vec::new();
        while self.sent < end {
            self.sent += 1;
            let offset = (self.sent - 1) * bs;
            let len = self.size.saturating_sub(offset).min(bs) as usize;
            out.push(Send::Data {
                block: (self.sent & 0xffff) as u16,
                offset,
                len,
            });
        }
        out
    }

    fn step(&self, send: Vec<Send>) -> Step {
        Step {
            send,
            status: Status::Running,
        }
    }

    fn finish(&mut self, status: Status) -> Step {
        self.finished = Some(status.clone());
        let send = match status {
            Status::TimedOut => vec![Send::Error {
                code: code::UNDEFINED,
                message: "timed out waiting for ack".into(),
            }],
            _ => Vec::new(),
        };
        Step { send, status }
    }
}

#[cfg(test)]
mod tests;

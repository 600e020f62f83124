//! Any datagram through TFTP parse; a read request through option negotiation and a whole
//! transfer driven by fuzz-chosen ACKs, timeouts and ERRORs. Any panic is a finding, and so
//! is a broken invariant: a DATA block outside the file or longer than the block size, a
//! packet sent after the transfer ended, an OACK naming an option twice.
//!
//! Input layout: `[size: 4][limits: 4][len: 2][datagram: len][events...]`. The whole input
//! also goes through `parse` as one datagram, so plain datagrams are covered too.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pxed::tftp::packet::{self, Packet};
use pxed::tftp::session::{negotiate, Event, Limits, Send, Session, Status};

/// Largest file a transfer is run over (a few MB: enough for block-number rollover at
/// small block sizes, small enough that a run stays fast).
const MAX_SIZE: u64 = 4 << 20;
/// Events fed to one session.
const MAX_EVENTS: usize = 200;

/// Checks encoders on a parsed packet: what pxed sends round-trips through its own parser.
fn encoders(p: &Packet) {
    match p {
        Packet::Rrq {
            filename, options, ..
        } => {
            let o = packet::oack(options);
            assert_eq!(packet::parse(&o), Ok(Packet::Oack(options.clone())));
            let e = packet::error(packet::code::NOT_FOUND, filename);
            assert_eq!(
                packet::parse(&e),
                Ok(Packet::Error {
                    code: packet::code::NOT_FOUND,
                    message: filename.clone()
                })
            );
        }
        Packet::Wrq { filename } => {
            let _ = packet::error(packet::code::ACCESS, filename);
        }
        Packet::Error { code, message } => {
            let e = packet::error(*code, message);
            // The message was cut at its first NUL, so it round-trips.
            assert_eq!(
                packet::parse(&e),
                Ok(Packet::Error {
                    code: *code,
                    message: message.clone()
                })
            );
        }
        Packet::Oack(o) => {
            let _ = packet::oack(o);
        }
        Packet::Data { .. } | Packet::Ack(_) => {}
    }
}

/// Limits as a config could set them (see `[tftp]` validation): max_blksize 512..=65464,
/// max_windowsize >= 1 (kept <= 1024 here so a run stays fast), max_timeout 1..=255 s,
/// unanswered_retries <= 10. Selector 0 is `Limits::default()`.
fn limits(b: [u8; 4]) -> Limits {
    if b[0] & 1 == 0 {
        return Limits::default();
    }
    let raw_blk = u16::from_be_bytes([b[1], b[2]]);
    Limits {
        max_blksize: 512 + raw_blk % (65464 - 512 + 1),
        max_windowsize: 1 + u16::from(b[3]) * 4,
        max_timeout: Duration::from_secs(1 + u64::from(b[0] >> 1)),
        unanswered_retries: u32::from(b[3] % 11),
        max_retries: 1 + u32::from(b[2] % 8),
        ..Limits::default()
    }
}

/// Checks one step's packets, and tracks the highest wire block sent.
fn check_step(
    sends: &[Send],
    size: u64,
    blksize: u16,
    oack: &Option<Vec<(String, String)>>,
    status: &Status,
    last_wire: &mut u16,
) {
    let bs = u64::from(blksize);
    for s in sends {
        match s {
            Send::Data { block, offset, len } => {
                assert!(
                    *len <= usize::from(blksize),
                    "DATA len {len} > blksize {blksize}"
                );
                assert!(
                    offset + *len as u64 <= size,
                    "DATA {offset}+{len} past size {size}"
                );
                assert_eq!(
                    offset % bs,
                    0,
                    "DATA offset {offset} not on a block boundary"
                );
                assert_eq!(
                    *block,
                    ((offset / bs + 1) & 0xffff) as u16,
                    "wire block of {offset}"
                );
                // Every block but the last is full; the last is the first short one.
                assert_eq!(*len as u64, (size - offset).min(bs));
                *last_wire = *block;
            }
            Send::Oack(o) => {
                assert_eq!(
                    Some(o),
                    oack.as_ref(),
                    "OACK differs from the negotiated one"
                );
            }
            Send::Error { .. } => {
                assert_eq!(*status, Status::TimedOut, "ERROR sent outside a timeout");
            }
        }
    }
}

fn run_session(options: &[(String, String)], size: u64, limits: &Limits, events: &[u8]) {
    let params = negotiate(options, size, limits);
    assert!(params.blksize >= 8 && params.blksize <= limits.max_blksize.max(512));
    assert!(params.windowsize >= 1 && params.windowsize <= limits.max_windowsize.max(1));
    assert!(params.timeout >= Duration::from_secs(1) && params.timeout <= Duration::from_secs(255));
    if let Some(o) = &params.oack {
        assert!(!o.is_empty());
        for (i, (k, _)) in o.iter().enumerate() {
            assert!(
                !o[..i].iter().any(|(k2, _)| k2 == k),
                "OACK names `{k}` twice: {o:?}"
            );
            assert!(matches!(
                k.as_str(),
                "blksize" | "windowsize" | "timeout" | "tsize"
            ));
        }
        // The OACK pxed encodes parses back to itself.
        assert_eq!(packet::parse(&packet::oack(o)), Ok(Packet::Oack(o.clone())));
    }
    let blksize = params.blksize;
    let oack = params.oack.clone();
    let mut session = Session::new(size, params, limits);
    let mut last_wire = 0u16;

    let first = session.start();
    assert_eq!(first.status, Status::Running);
    assert!(!first.send.is_empty(), "start sends nothing");
    check_step(
        &first.send,
        size,
        blksize,
        &oack,
        &first.status,
        &mut last_wire,
    );

    let mut finished: Option<Status> = None;
    // Whether DATA has gone out: then `last_wire` is the highest block sent and unacked.
    let mut data_sent = first.send.iter().any(|s| matches!(s, Send::Data { .. }));
    let mut awaiting_oack = oack.is_some();
    let mut acked = session.bytes_acked();
    let mut it = events.iter().copied();
    let mut n = 0;
    while n < MAX_EVENTS {
        let Some(b) = it.next() else { break };
        n += 1;
        let event = match b >> 5 {
            // Mostly ACKs near the last block sent, so transfers make progress.
            0..=3 => Event::Ack(last_wire.wrapping_sub(u16::from(b & 0x0f))),
            4 => Event::Ack(0),
            5 => {
                let hi = it.next().unwrap_or(0);
                let lo = it.next().unwrap_or(0);
                Event::Ack(u16::from_be_bytes([hi, lo]))
            }
            6 => Event::Timeout,
            _ if b & 0x1f == 0 => Event::Error {
                code: u16::from(it.next().unwrap_or(0)),
                message: "fuzz".into(),
            },
            _ => Event::Timeout,
        };
        let is_ack = matches!(event, Event::Ack(_));
        let top = last_wire;
        let acks_top = data_sent && event == Event::Ack(top);
        let acks_oack = awaiting_oack && event == Event::Ack(0);
        let is_error = matches!(event, Event::Error { .. });
        let step = session.handle(event);
        if let Some(done) = &finished {
            assert!(step.send.is_empty(), "sent {:?} after {done:?}", step.send);
            assert_eq!(
                &step.status, done,
                "status changed after the transfer ended"
            );
            continue;
        }
        check_step(
            &step.send,
            size,
            blksize,
            &oack,
            &step.status,
            &mut last_wire,
        );
        let sent_data = step.send.iter().any(|s| matches!(s, Send::Data { .. }));
        // Liveness: acknowledging the OACK, or the highest block sent, moves the transfer on.
        if acks_oack {
            assert!(sent_data, "ACK 0 of the OACK sent no DATA: {:?}", step.send);
            awaiting_oack = false;
        }
        if acks_top {
            assert!(
                step.status == Status::Done || sent_data,
                "ACK of the last block sent ({top}) neither ended nor continued: {step:?}"
            );
        }
        data_sent |= sent_data;
        match &step.status {
            Status::Running => {}
            Status::Done => {
                assert!(is_ack, "Done without an ACK");
                assert!(step.send.is_empty());
                assert_eq!(
                    session.bytes_acked(),
                    size,
                    "Done before every byte was acked"
                );
            }
            Status::AbortedByClient { .. } => assert!(is_error),
            Status::TimedOut | Status::Unanswered => assert!(!is_ack && !is_error),
        }
        if is_ack || is_error {
            assert!(session.answered());
        }
        let now = session.bytes_acked();
        assert!(
            now >= acked && now <= size,
            "bytes_acked went {acked} -> {now} (size {size})"
        );
        acked = now;
        if step.status != Status::Running {
            finished = Some(step.status);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes as one datagram.
    if let Ok(p) = packet::parse(data) {
        encoders(&p);
    }
    if data.len() < 10 {
        return;
    }
    let size = u64::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])) % (MAX_SIZE + 1);
    let limits = limits([data[4], data[5], data[6], data[7]]);
    let len = usize::from(u16::from_be_bytes([data[8], data[9]]));
    let rest = &data[10..];
    let (dgram, events) = rest.split_at(len.min(rest.len()));
    let Ok(p) = packet::parse(dgram) else { return };
    encoders(&p);
    if let Packet::Rrq { options, .. } = p {
        run_session(&options, size, &limits, events);
    }
});

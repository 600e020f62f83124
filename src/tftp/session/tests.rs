use super::*;

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn data(block: u16, offset: u64, len: usize) -> Send {
    Send::Data { block, offset, len }
}

fn blocks(step: &Step) -> Vec<u16> {
    step.send
        .iter()
        .map(|s| match s {
            Send::Data { block, .. } => *block,
            other => panic!("expected data, got {other:?}"),
        })
        .collect()
}

#[test]
fn negotiates_within_limits() {
    let limits = Limits::default();
    let n = negotiate(
        &opts(&[
            ("tsize", "0"),
            ("blksize", "65464"),
            ("timeout", "3"),
            ("windowsize", "500"),
            ("x-vendor", "1"),
        ]),
        1234,
        &limits,
    );
    assert_eq!(n.blksize, 1468);
    assert_eq!(n.windowsize, 64);
    assert_eq!(n.timeout, Duration::from_secs(3));
    assert_eq!(
        n.oack,
        Some(opts(&[
            ("tsize", "1234"),
            ("blksize", "1468"),
            ("timeout", "3"),
            ("windowsize", "64")
        ]))
    );
    // Out-of-range values are left out, and no options means no OACK.
    let n = negotiate(
        &opts(&[("blksize", "4"), ("timeout", "0"), ("windowsize", "0")]),
        1,
        &limits,
    );
    assert_eq!((n.blksize, n.windowsize, n.oack), (512, 1, None));
}

#[test]
fn plain_rfc1350_transfer_one_block_per_ack() {
    let n = negotiate(&[], 1200, &Limits::default());
    let mut s = Session::new(1200, n, &retrying(5));
    assert_eq!(s.start().send, vec![data(1, 0, 512)]);
    assert_eq!(s.handle(Event::Ack(1)).send, vec![data(2, 512, 512)]);
    assert_eq!(s.handle(Event::Ack(2)).send, vec![data(3, 1024, 176)]);
    let end = s.handle(Event::Ack(3));
    assert_eq!((end.send, end.status), (vec![], Status::Done));
    assert_eq!(s.bytes_acked(), 1200);
}

#[test]
fn exact_multiple_of_blksize_ends_with_an_empty_block() {
    let mut s = Session::new(1024, negotiate(&[], 1024, &Limits::default()), &retrying(5));
    s.start();
    s.handle(Event::Ack(1));
    assert_eq!(s.handle(Event::Ack(2)).send, vec![data(3, 1024, 0)]);
    assert_eq!(s.handle(Event::Ack(3)).status, Status::Done);
}

#[test]
fn oack_then_windows() {
    let n = negotiate(
        &opts(&[("blksize", "1000"), ("windowsize", "4"), ("tsize", "0")]),
        9500,
        &Limits::default(),
    );
    let mut s = Session::new(9500, n, &retrying(5));
    assert_eq!(
        s.start().send,
        vec![Send::Oack(opts(&[
            ("blksize", "1000"),
            ("windowsize", "4"),
            ("tsize", "9500")
        ]))]
    );
    let w1 = s.handle(Event::Ack(0));
    assert_eq!(
        w1.send,
        vec![
            data(1, 0, 1000),
            data(2, 1000, 1000),
            data(3, 2000, 1000),
            data(4, 3000, 1000)
        ]
    );
    assert_eq!(blocks(&s.handle(Event::Ack(4))), vec![5, 6, 7, 8]);
    // Last window is short: blocks 9 and 10 (500 bytes).
    let w3 = s.handle(Event::Ack(8));
    assert_eq!(w3.send, vec![data(9, 8000, 1000), data(10, 9000, 500)]);
    assert_eq!(s.handle(Event::Ack(10)).status, Status::Done);
}

#[test]
fn partial_window_ack_resends_from_the_gap() {
    let n = negotiate(&opts(&[("windowsize", "4")]), 512 * 20, &Limits::default());
    let mut s = Session::new(512 * 20, n, &retrying(5));
    s.start();
    assert_eq!(blocks(&s.handle(Event::Ack(0))), vec![1, 2, 3, 4]);
    // Block 3 was lost: the client ACKs 2 and the server restarts the window at 3.
    assert_eq!(blocks(&s.handle(Event::Ack(2))), vec![3, 4, 5, 6]);
    assert_eq!(blocks(&s.handle(Event::Ack(6))), vec![7, 8, 9, 10]);
}

#[test]
fn timeout_resends_the_unacknowledged_window_then_gives_up() {
    let n = negotiate(&opts(&[("windowsize", "3")]), 512 * 10, &Limits::default());
    let mut s = Session::new(512 * 10, n, &retrying(2));
    s.start();
    s.handle(Event::Ack(0));
    s.handle(Event::Ack(3));
    assert_eq!(blocks(&s.handle(Event::Timeout)), vec![4, 5, 6]);
    assert_eq!(blocks(&s.handle(Event::Timeout)), vec![4, 5, 6]);
    let last = s.handle(Event::Timeout);
    assert_eq!(last.status, Status::TimedOut);
    assert!(matches!(last.send[..], [Send::Error { .. }]));
    assert_eq!(
        s.handle(Event::Ack(6)).send,
        vec![],
        "nothing after the end"
    );
}

#[test]
fn lost_oack_is_resent_on_timeout() {
    let n = negotiate(&opts(&[("tsize", "0")]), 10, &Limits::default());
    let mut s = Session::new(10, n, &retrying(5));
    let first = s.start().send;
    assert_eq!(s.handle(Event::Timeout).send, first);
}

#[test]
fn client_error_ends_the_transfer_at_once() {
    // OVMF's size probe: RRQ with tsize, OACK, then ERROR 8 instead of ACK 0.
    let n = negotiate(
        &opts(&[("tsize", "0"), ("blksize", "1468")]),
        1_000_000,
        &Limits::default(),
    );
    let mut s = Session::new(1_000_000, n, &retrying(5));
    s.start();
    let step = s.handle(Event::Error {
        code: 8,
        message: String::new(),
    });
    assert_eq!(step.send, vec![]);
    assert_eq!(
        step.status,
        Status::AbortedByClient {
            code: 8,
            message: String::new()
        }
    );
    // Nothing is ever sent again, not on a timeout and not on a late ACK.
    assert_eq!(s.handle(Event::Timeout).send, vec![]);
    assert_eq!(s.handle(Event::Ack(0)).send, vec![]);

    // Mid-transfer too.
    let mut s = Session::new(
        512 * 10,
        negotiate(&[], 512 * 10, &Limits::default()),
        &retrying(5),
    );
    s.start();
    s.handle(Event::Ack(1));
    let step = s.handle(Event::Error {
        code: 0,
        message: "cancelled".into(),
    });
    assert_eq!(step.send, vec![]);
    assert_eq!(s.handle(Event::Timeout).send, vec![]);
}

#[test]
fn duplicate_and_stale_acks_are_ignored() {
    let mut s = Session::new(
        512 * 10,
        negotiate(&[], 512 * 10, &Limits::default()),
        &retrying(5),
    );
    s.start();
    assert_eq!(blocks(&s.handle(Event::Ack(1))), vec![2]);
    // A duplicate ACK 1 must not trigger a second copy of block 2 (Sorcerer's Apprentice).
    assert_eq!(s.handle(Event::Ack(1)).send, vec![]);
    assert_eq!(
        s.handle(Event::Ack(7)).send,
        vec![],
        "ack for a block never sent"
    );
    assert_eq!(blocks(&s.handle(Event::Ack(2))), vec![3]);
}

#[test]
fn block_numbers_wrap_to_zero_after_65535() {
    let size = 512 * 70_000;
    let n = negotiate(&opts(&[("windowsize", "8")]), size, &Limits::default());
    let mut s = Session::new(size, n, &retrying(5));
    s.start();
    let mut step = s.handle(Event::Ack(0));
    let mut seen_wrap = false;
    loop {
        let last = match step.send.last() {
            Some(Send::Data { block, offset, .. }) => {
                if *block == 0 {
                    assert_eq!(*offset, 65536 * 512 - 512, "block 65536 is wire block 0");
                    seen_wrap = true;
                }
                *block
            }
            None => break,
            other => panic!("{other:?}"),
        };
        step = s.handle(Event::Ack(last));
        if step.status == Status::Done {
            break;
        }
    }
    assert!(seen_wrap);
    assert_eq!(step.status, Status::Done);
    assert_eq!(s.bytes_acked(), size);
}

fn retrying(max_retries: u32) -> Limits {
    Limits {
        max_retries,
        ..Limits::default()
    }
}

#[test]
fn a_peer_that_never_answers_gets_one_short_retransmit_and_no_error() {
    // A forged source: RRQ with timeout=255 (the most RFC 2349 allows) and nothing after.
    let limits = Limits::default();
    let n = negotiate(
        &opts(&[("timeout", "255"), ("tsize", "0")]),
        10_000,
        &limits,
    );
    assert_eq!(
        n.timeout, limits.default_timeout,
        "255 s is above max_timeout"
    );
    assert_eq!(n.oack, Some(vec![("tsize".into(), "10000".into())]));
    let mut s = Session::new(10_000, n, &limits);
    let first = s.start().send;
    assert_eq!(s.timeout(), limits.unanswered_timeout);
    assert_eq!(s.handle(Event::Timeout).send, first, "one retransmit");
    let last = s.handle(Event::Timeout);
    assert_eq!(last.status, Status::Unanswered);
    assert_eq!(last.send, vec![], "no ERROR to a peer that never spoke");
    assert!(!s.answered());
}

#[test]
fn an_answered_session_keeps_the_negotiated_timeout_and_its_retries() {
    let limits = Limits::default();
    let n = negotiate(&opts(&[("timeout", "5")]), 512 * 4, &limits);
    assert_eq!(n.timeout, Duration::from_secs(5));
    let mut s = Session::new(512 * 4, n, &limits);
    s.start();
    assert_eq!(s.timeout(), limits.unanswered_timeout);
    s.handle(Event::Ack(0));
    assert!(s.answered());
    assert_eq!(s.timeout(), Duration::from_secs(5));
    for _ in 0..limits.max_retries {
        assert_eq!(s.handle(Event::Timeout).status, Status::Running);
    }
    assert_eq!(s.handle(Event::Timeout).status, Status::TimedOut);
}

#[test]
fn duplicated_options_are_granted_once() {
    let n = negotiate(
        &opts(&[
            ("blksize", "1024"),
            ("tsize", "0"),
            ("blksize", "8"),
            ("tsize", "0"),
            ("tsize", "0"),
        ]),
        5000,
        &Limits::default(),
    );
    assert_eq!(n.blksize, 1024, "the first occurrence counts");
    assert_eq!(
        n.oack,
        Some(vec![
            ("blksize".into(), "1024".into()),
            ("tsize".into(), "5000".into())
        ])
    );
}

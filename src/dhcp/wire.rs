//! Turning a datagram into a [`Message`] without ever panicking, whatever the build.

use std::panic::AssertUnwindSafe;

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

/// Why a datagram was dropped before a decision.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PacketError {
    /// dhcproto refused it.
    #[error("undecodable dhcp message: {0}")]
    Decode(#[from] dhcproto::error::DecodeError),
    /// dhcproto panicked on it (it does on some bad option lengths in debug builds).
    #[error("dhcp decoder panicked on malformed input")]
    DecoderPanic,
    /// An option whose length its type cannot have.
    #[error("option {code} has length {len}, which it cannot have")]
    BadOptionLength {
        code: u8,
        /// Its length byte.
        len: u8,
    },
}

/// Options whose length dhcproto 0.15 only `debug_assert!`s (options.rs, `decode_inner`),
/// with the length each must have (or at least have, for 81): checked first, so a bad one is
/// a clean error in every build.
const FIXED_LENGTHS: [(u8, u8, bool); 7] = [
    (80, 0, true),  // rapid commit: empty
    (81, 3, false), // client FQDN: flags, rcode1, rcode2, then the name
    (94, 3, true),  // client network interface identifier
    (152, 4, true), // bulk lease query base time
    (153, 4, true), // start time of state
    (154, 4, true), // query start time
    (155, 4, true), // query end time
];

/// Walks the options after the magic cookie and refuses lengths dhcproto would assert on.
/// Consecutive options with the same code count as one (RFC 3396 concatenation), as dhcproto
/// decodes them.
fn check_option_lengths(bytes: &[u8]) -> Result<(), PacketError> {
    let check = |code: u8, total: usize| match FIXED_LENGTHS.iter().find(|(c, _, _)| *c == code) {
        Some(&(_, want, exact))
            if (exact && total != usize::from(want)) || (!exact && total < usize::from(want)) =>
        {
            Err(PacketError::BadOptionLength {
                code,
                len: total.min(255) as u8,
            })
        }
        _ => Ok(()),
    };
    let mut run: Option<(u8, usize)> = None;
    let mut i = 240; // 236-byte BOOTP header + 4-byte magic cookie
    while i < bytes.len() {
        let code = bytes[i];
        if code == 0 || code == 255 {
            if let Some((c, total)) = run.take() {
                check(c, total)?;
            }
            if code == 255 {
                return Ok(());
            }
            i += 1;
            continue;
        }
        let Some(&len) = bytes.get(i + 1) else { break };
        run = match run {
            Some((c, total)) if c == code => Some((c, total + usize::from(len))),
            Some((c, total)) => {
                check(c, total)?;
                Some((code, usize::from(len)))
            }
            None => Some((code, usize::from(len))),
        };
        i += 2 + usize::from(len);
    }
    match run {
        Some((c, total)) => check(c, total),
        None => Ok(()),
    }
}

/// Decodes a datagram without ever letting a decoder panic take the server down: option
/// lengths dhcproto only asserts are checked first, and any other decoder panic is caught.
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, PacketError> {
    check_option_lengths(bytes)?;
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        Message::decode(&mut Decoder::new(bytes))
    })) {
        Ok(r) => Ok(r?),
        Err(_) => Err(PacketError::DecoderPanic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(options: &[u8]) -> Vec<u8> {
        let mut p = vec![1, 1, 6, 0]; // op, htype, hlen, hops
        p.resize(236, 0); // rest of the BOOTP header
        p.extend([0x63, 0x82, 0x53, 0x63]); // magic cookie
        p.extend(options);
        p
    }

    #[test]
    fn bad_lengths_that_dhcproto_asserts_on_are_errors_in_every_build() {
        for (opts, code) in [
            (&[53, 1, 1, 94, 2, 1, 2, 255][..], 94), // option 94 with 2 bytes (the known case)
            (&[80, 1, 0, 255][..], 80),
            (&[81, 0, 255][..], 81),
            (&[152, 2, 0, 0, 255][..], 152),
        ] {
            match decode(&packet(opts)) {
                Err(PacketError::BadOptionLength { code: c, .. }) => assert_eq!(c, code),
                other => panic!("{opts:?}: {other:?}"),
            }
        }
        assert!(decode(&packet(&[53, 1, 1, 0, 94, 3, 1, 2, 0, 255])).is_ok());
        // RFC 3396: two consecutive option 154s of 4 bytes are one option of 8.
        assert!(matches!(
            decode(&packet(&[
                53, 1, 1, 154, 4, 0, 0, 0, 0, 154, 4, 0, 0, 0, 0, 255
            ])),
            Err(PacketError::BadOptionLength { code: 154, len: 8 })
        ));
        assert!(decode(&[1, 2, 3]).is_err());
    }
}

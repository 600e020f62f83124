//! TFTP packets (RFC 1350, options per RFC 2347). Pure.

// Opcodes (RFC 1350 §5).
/// Read request.
pub(crate) const RRQ: u16 = 1;
/// Write request.
pub(crate) const WRQ: u16 = 2;
/// Data.
pub(crate) const DATA: u16 = 3;
/// Acknowledgement.
pub(crate) const ACK: u16 = 4;
/// Error.
pub(crate) const ERROR: u16 = 5;
/// Option acknowledgement (RFC 2347).
pub(crate) const OACK: u16 = 6;

/// Error codes (RFC 1350 §5, RFC 2347).
pub(crate) mod code {
    /// Not defined, see message.
    pub(crate) const UNDEFINED: u16 = 0;
    /// File not found.
    pub(crate) const NOT_FOUND: u16 = 1;
    /// Access violation.
    pub(crate) const ACCESS: u16 = 2;
    /// Illegal TFTP operation.
    pub(crate) const ILLEGAL: u16 = 4;
}

/// A parsed TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    /// Read request.
    Rrq {
        filename: String,
        /// `octet` or `netascii`, lowercased.
        mode: String,
        /// Options in the order sent, names lowercased.
        options: Vec<(String, String)>,
    },
    /// Write request (always refused).
    Wrq { filename: String },
    /// Data block.
    Data {
        block: u16,
        /// Payload length.
        len: usize,
    },
    /// Acknowledgement of a block.
    Ack(u16),
    /// Error; ends a transfer.
    Error { code: u16, message: String },
    /// Option acknowledgement.
    Oack(Vec<(String, String)>),
}

/// A datagram that is not TFTP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Shorter than an opcode, or truncated.
    #[error("truncated tftp packet")]
    Truncated,
    /// Unknown opcode.
    #[error("unknown tftp opcode {0}")]
    Opcode(u16),
    /// A string field is not NUL-terminated UTF-8.
    #[error("malformed string field")]
    BadString,
}

fn strings(body: &[u8]) -> Result<Vec<String>, ParseError> {
    if body.last() != Some(&0) {
        return Err(ParseError::BadString);
    }
    body[..body.len() - 1]
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).map_err(|_| ParseError::BadString))
        .collect()
}

/// Parses one datagram.
pub(crate) fn parse(buf: &[u8]) -> Result<Packet, ParseError> {
    if buf.len() < 2 {
        return Err(ParseError::Truncated);
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    let body = &buf[2..];
    let u16_at = |i: usize| -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes([
            *body.get(i).ok_or(ParseError::Truncated)?,
            *body.get(i + 1).ok_or(ParseError::Truncated)?,
        ]))
    };
    match op {
        RRQ | WRQ => request(op, body),
        DATA => Ok(Packet::Data {
            block: u16_at(0)?,
            len: body.len().saturating_sub(2),
        }),
        ACK => Ok(Packet::Ack(u16_at(0)?)),
        ERROR => {
            let code = u16_at(0)?;
            let message = match body.get(2..) {
                Some(rest) if !rest.is_empty() => {
                    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    String::from_utf8_lossy(&rest[..end]).into_owned()
                }
                _ => String::new(),
            };
            Ok(Packet::Error { code, message })
        }
        OACK => {
            let s = if body.is_empty() {
                Vec::new()
            } else {
                strings(body)?
            };
            Ok(Packet::Oack(
                s.chunks(2)
                    .filter(|kv| kv.len() == 2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect(),
            ))
        }
        other => Err(ParseError::Opcode(other)),
    }
}

/// An RRQ or WRQ: file name, mode, then RFC 2347 option pairs (names lowercased).
fn request(op: u16, body: &[u8]) -> Result<Packet, ParseError> {
    let mut s = strings(body)?;
    if s.len() < 2 || s.len() % 2 != 0 {
        return Err(ParseError::BadString);
    }
    let filename = s.remove(0);
    let mode = s.remove(0).to_ascii_lowercase();
    if op == WRQ {
        return Ok(Packet::Wrq { filename });
    }
    let options = s
        .chunks(2)
        .map(|kv| (kv[0].to_ascii_lowercase(), kv[1].clone()))
        .collect();
    Ok(Packet::Rrq {
        filename,
        mode,
        options,
    })
}

/// An ERROR packet.
pub(crate) fn error(code: u16, message: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + message.len());
    v.extend(ERROR.to_be_bytes());
    v.extend(code.to_be_bytes());
    v.extend(message.as_bytes());
    v.push(0);
    v
}

/// An OACK packet.
pub(crate) fn oack(options: &[(String, String)]) -> Vec<u8> {
    let mut v = OACK.to_be_bytes().to_vec();
    for (k, val) in options {
        v.extend(k.as_bytes());
        v.push(0);
        v.extend(val.as_bytes());
        v.push(0);
    }
    v
}

/// Writes a DATA header for `block` into the first four bytes of `buf`.
pub(crate) fn data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

/// An ACK packet, as clients send it.
#[cfg(test)]
pub(crate) fn ack(block: u16) -> Vec<u8> {
    let mut v = ACK.to_be_bytes().to_vec();
    v.extend(block.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rrq_with_options() {
        let bytes = b"\x00\x01ipxe.efi\x00octet\x00tsize\x000\x00BLKSIZE\x001468\x00";
        assert_eq!(
            parse(bytes).unwrap(),
            Packet::Rrq {
                filename: "ipxe.efi".into(),
                mode: "octet".into(),
                options: vec![
                    ("tsize".into(), "0".into()),
                    ("blksize".into(), "1468".into())
                ],
            }
        );
    }

    #[test]
    fn parses_ack_and_error() {
        assert_eq!(parse(&[0, 4, 0x12, 0x34]).unwrap(), Packet::Ack(0x1234));
        assert_eq!(
            parse(b"\x00\x05\x00\x08User aborted the transfer\x00").unwrap(),
            Packet::Error {
                code: 8,
                message: "User aborted the transfer".into()
            }
        );
        // OVMF-style error with no message at all.
        assert_eq!(
            parse(&[0, 5, 0, 8]).unwrap(),
            Packet::Error {
                code: 8,
                message: String::new()
            }
        );
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse(&[0]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0, 4, 1]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0, 9, 0, 0]), Err(ParseError::Opcode(9)));
        assert_eq!(parse(b"\x00\x01file"), Err(ParseError::BadString));
        assert_eq!(
            parse(b"\x00\x01file\x00octet\x00blksize\x00"),
            Err(ParseError::BadString)
        );
        assert_eq!(
            parse(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(ParseError::BadString)
        );
    }

    #[test]
    fn encodes() {
        assert_eq!(error(1, "no"), b"\x00\x05\x00\x01no\x00");
        assert_eq!(
            oack(&[("tsize".into(), "42".into())]),
            b"\x00\x06tsize\x0042\x00"
        );
        let mut b = [0u8; 4];
        data_header(&mut b, 258);
        assert_eq!(b, [0, 3, 1, 2]);
        assert_eq!(ack(7), [0, 4, 0, 7]);
    }
}

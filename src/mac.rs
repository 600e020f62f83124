//! Ethernet MAC addresses as operators write them and as firmware sends them.
//!
//! Config keys and URLs accept `de:00:00:00:00:de`, `DE-00-00-00-00-DE` and any mix of case,
//! so one canonical form (lowercase, `:`-separated) is used everywhere inside pxed.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Mac(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a MAC address (expected six hex pairs separated by `:` or `-`)")]
pub(crate) struct MacParseError(pub String);

impl Mac {
    /// Takes the first six bytes of a DHCP `chaddr`; `None` if it is shorter.
    pub(crate) fn from_chaddr(chaddr: &[u8]) -> Option<Mac> {
        let bytes: [u8; 6] = chaddr.get(..6)?.try_into().ok()?;
        Some(Mac(bytes))
    }
}

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            // Two hex digits exactly: from_str_radix alone would take "+e".
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_colons_hyphens_and_any_case() {
        let want = Mac([0xde, 0, 0, 0, 0, 0xde]);
        assert_eq!("de:00:00:00:00:de".parse::<Mac>().unwrap(), want);
        assert_eq!("DE-00-00-00-00-DE".parse::<Mac>().unwrap(), want);
        assert_eq!("De:00:00:00:00:dE".parse::<Mac>().unwrap(), want);
        assert_eq!(want.to_string(), "de:00:00:00:00:de");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "de:00:00:00:00",
            "de:00:00:00:00:de:01",
            "dg:00:00:00:00:de",
            "de:0:00:00:00:de",
            "de:00-00:00:00:de",
            "+e:00:00:00:00:de",
            "de-00-00-00-00-+1",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad} parsed");
        }
    }
}

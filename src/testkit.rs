//! What unit tests share: the base config tables ([`SERVER`], [`server`], [`DHCP`]), and
//! DHCP requests built byte by byte as firmware sends them. (The config module's own tests
//! start from issue #2's config, word for word, instead: its keys are a contract. The
//! in-process daemon test spells its own loopback tables, because it really binds them.)

use std::path::Path;

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

use crate::config::Config;

/// The `[server]` table every test config starts with; nothing in it is read from disk.
pub(crate) const SERVER: &str = r#"
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "/srv/pxed/boot"
state_dir = "/var/lib/pxed"
"#;

/// [`SERVER`] serving `boot_dir` and keeping state in `state_dir`, for tests that read
/// files or write state in a temporary directory.
pub(crate) fn server(boot_dir: &Path, state_dir: &Path) -> String {
    SERVER
        .replace("/srv/pxed/boot", &boot_dir.display().to_string())
        .replace("/var/lib/pxed", &state_dir.display().to_string())
}

/// The `[dhcp]` table for br1's subnet: 10.123.0.0/24, handing out .100 to .200.
pub(crate) const DHCP: &str = r#"
[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
"#;

/// Parses `text` as `t.toml`, panicking with the error a bad test config gets.
pub(crate) fn config(text: &str) -> Config {
    crate::config::parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// A BOOTREQUEST as bytes: the fixed 236-byte header, the magic cookie, then `options`
/// (each already in code, length, value form) and the end option.
pub(crate) fn dhcp_request(
    chaddr: [u8; 6],
    flags: u16,
    ciaddr: [u8; 4],
    giaddr: [u8; 4],
    options: &[&[u8]],
) -> Vec<u8> {
    let mut p = vec![
        0x01, // op: BOOTREQUEST
        0x01, // htype: Ethernet
        0x06, // hlen: 6
        0x00, // hops
        0x12, 0x34, 0x56, 0x78, // xid
        0x00, 0x04, // secs: 4
    ];
    p.extend(flags.to_be_bytes()); // flags: 0x8000 = broadcast
    p.extend(ciaddr); // ciaddr
    p.extend([0, 0, 0, 0]); // yiaddr
    p.extend([0, 0, 0, 0]); // siaddr
    p.extend(giaddr); // giaddr
    p.extend(chaddr); // chaddr
    p.extend([0u8; 10]); // chaddr padding
    p.extend([0u8; 64]); // sname
    p.extend([0u8; 128]); // file
    p.extend([0x63, 0x82, 0x53, 0x63]); // magic cookie
    for o in options {
        p.extend(*o);
    }
    p.push(0xff); // end
    p
}

/// Decodes DHCP bytes that a test built or pxed encoded.
pub(crate) fn decode_dhcp(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).unwrap()
}

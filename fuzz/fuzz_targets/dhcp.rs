//! Any datagram through DHCP decode, the server decision, the proxy decision and encode.
//! Any panic is a finding, including one inside dhcproto: `pxed::dhcp::decode` checks the
//! option lengths dhcproto only asserts, so none should reach it.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pxed::config::Config;
use pxed::dhcp::decide::{decide, encode, max_reply_len, Decision};
use pxed::dhcp::proxy::{decide_proxy, Port};
use pxed::leases::LeaseTable;

const CONFIG: &str = r#"
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "/srv/pxed/boot"
state_dir = "/var/lib/pxed"
[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.110"]
router = "10.123.0.1"
dns = ["10.123.0.1"]
domain = "lab.example"
[profiles.p]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
[defaults]
profile = "p"
[hosts."de:00:00:00:00:de"]
profile = "p"
ip = "10.123.0.7"
hostname = "pinned"
"#;

fn configs() -> &'static (Config, Config) {
    static C: OnceLock<(Config, Config)> = OnceLock::new();
    C.get_or_init(|| {
        let server = pxed::config::parse(Path::new("fuzz.toml"), CONFIG).unwrap();
        let proxy_text = CONFIG.replace("range = [\"10.123.0.100\", \"10.123.0.110\"]", "mode = \"proxy\"");
        let proxy = pxed::config::parse(Path::new("fuzz.toml"), &proxy_text).unwrap();
        (server, proxy)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = pxed::dhcp::decode(data) else { return };
    let (server, proxy) = configs();
    let mut leases = LeaseTable::new(server);
    // Twice, so the second decision sees the state the first one left.
    for now in [1_000, 100_000] {
        if let Decision::Reply { msg: reply, .. } = decide(&msg, server, &mut leases, now) {
            let bytes = encode(&reply, max_reply_len(&msg)).expect("our replies always encode");
            assert!(bytes.len() >= 300);
        }
        leases.take_changes();
    }
    for port in [Port::Dhcp, Port::Proxy] {
        if let Decision::Reply { msg: reply, .. } = decide_proxy(&msg, proxy, port, "10.123.0.9:68".parse().unwrap()) {
            encode(&reply, max_reply_len(&msg)).expect("proxy replies always encode");
        }
    }
});

//! Crash safety: perfdhcp drives pxed at a high rate, pxed is killed with SIGKILL in the
//! middle, and every ACK captured on the wire before the kill must be honoured after the
//! restart: the same MAC gets the same address, and no address belongs to two MACs.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder};

/// DHCP replies (source port 67) in a pcap file, as (message type, chaddr, yiaddr).
fn replies_in_pcap(path: &Path) -> Vec<(MessageType, String, String)> {
    let data = std::fs::read(path).unwrap();
    assert!(data.len() >= 24, "pcap too short");
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "not a little-endian pcap"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &data[at + 16..(at + 16 + caplen).min(data.len())];
        at += 16 + caplen;
        // Ethernet (14) + IPv4 (IHL) + UDP (8).
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 17 {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let udp = &frame[14 + ihl..];
        if u16::from_be_bytes([udp[0], udp[1]]) != 67 || udp.len() < 8 {
            continue;
        }
        // pxed's own replies, so dhcproto's decoder is safe on them.
        let Ok(msg) = Message::decode(&mut Decoder::new(&udp[8..])) else {
            continue;
        };
        if msg.opcode() != dhcproto::v4::Opcode::BootReply {
            continue;
        }
        let Some(DhcpOption::MessageType(t)) = msg.opts().get(OptionCode::MessageType) else {
            continue;
        };
        let mac = msg.chaddr()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        out.push((*t, mac, msg.yiaddr().to_string()));
    }
    out
}

#[test]
fn every_ack_seen_on_the_wire_survives_kill_9() {
    require(&["ip", "perfdhcp", "tcpdump", "python3"]);
    let srv = Netns::new();
    let cli = Netns::new();
    srv.ip(&[
        "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns", &cli.name,
    ]);
    srv.ip(&["addr", "add", "10.124.0.1/16", "dev", "veth-s"]);
    srv.ip(&["link", "set", "veth-s", "up"]);
    cli.ip(&["addr", "add", "10.124.0.2/16", "dev", "veth-c"]);
    cli.ip(&["link", "set", "veth-c", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let cfg_path = dir.path().join("pxed.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"[server]
interface = "veth-s"
address = "10.124.0.1"
boot_dir = "{}"
state_dir = "{}"
[dhcp]
subnet = "10.124.0.0/16"
range = ["10.124.1.0", "10.124.255.254"]
# perfdhcp's clients are all unknown MACs: no rate limit for this load.
unknown_client_rate = 1000000
unknown_client_burst = 1000000
[http]
listen = "10.124.0.1:8080"
[profiles.disk]
action = "local"
[defaults]
profile = "disk"
"#,
            boot.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let start = |n: usize| {
        let log = dir.path().join(format!("pxed-{n}.log"));
        let mut child = srv
            .cmd(pxed_bin())
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("http listener ready")
            {
                return (child, log);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "pxed did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };

    let pcap = dir.path().join("wire.pcap");
    let mut tcpdump = srv
        .cmd("tcpdump")
        .args(["-i", "veth-s", "-U", "-n", "-s", "600", "-w"])
        .arg(&pcap)
        .args(["udp", "port", "67"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // tcpdump has no readiness signal
    let (mut pxed, _log) = start(0);
    let mut perf = cli
        .cmd("perfdhcp")
        .args([
            "-4",
            "-r",
            "3000",
            "-R",
            "20000",
            "-p",
            "6",
            "-W",
            "1000000",
            "10.124.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-KILL", &pxed.id().to_string()])
        .status();
    let _ = pxed.wait();
    let _ = perf.wait();
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();

    let replies = replies_in_pcap(&pcap);
    let mut acked: HashMap<String, String> = HashMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for (t, mac, ip) in &replies {
        if *t == MessageType::Ack {
            if let Some(other) = owner.insert(ip.clone(), mac.clone()) {
                assert_eq!(&other, mac, "{ip} was ACKed to two MACs before the crash");
            }
            acked.insert(mac.clone(), ip.clone());
        }
    }
    assert!(
        acked.len() > 1000,
        "only {} ACKs captured before the kill",
        acked.len()
    );

    let (mut pxed, log) = start(1);
    let list = dir.path().join("acked.txt");
    std::fs::write(
        &list,
        acked
            .iter()
            .map(|(m, i)| format!("{m} {i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let probe = tool("probe.py");
    let (ok, out, err) = run_limited(
        cli.cmd("python3")
            .arg(&probe)
            .args(["dhcp-verify", "10.124.0.1", "10.124.0.2"])
            .arg(&list),
        Duration::from_secs(120),
    );
    let _ = pxed.kill();
    let _ = pxed.wait();
    assert!(ok, "{err}");
    let offers: HashMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    let honoured = acked
        .iter()
        .filter(|(m, i)| offers.get(m.as_str()) == Some(&i.as_str()))
        .count();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut duplicates = 0;
    for (m, i) in &offers {
        if seen.insert(i, m).is_some() {
            duplicates += 1;
        }
    }
    let restored = std::fs::read_to_string(&log).unwrap();
    println!(
        "kill -9 under load: {} ACKs captured, {} honoured after restart, {} offers, {} duplicates; {}",
        acked.len(),
        honoured,
        offers.len(),
        duplicates,
        restored.lines().find(|l| l.contains("leases restored")).unwrap_or("")
    );
    assert_eq!(duplicates, 0);
    assert_eq!(
        honoured,
        acked.len(),
        "some ACKed leases were lost or moved"
    );
}

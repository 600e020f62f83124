//! The DHCP decision for each kind of client, from request bytes as firmware sends them to
//! reply bytes as they go on the wire.

use super::*;
use crate::dhcp::client::ClientKind;
use crate::dhcp::reply::{encode, max_reply_len, Reply, MIN_REPLY_LEN};
use crate::mac::Mac;
use crate::testkit::{decode_dhcp as decode, dhcp_request as request};

const CONFIG: &str = r#"

[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
router = "10.123.0.1"
lease_time = "1h"
dns = ["10.123.0.53"]

[http]
listen = "0.0.0.0:8080"

[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0"

[hosts."de:00:00:00:00:de"]
profile = "fedora"
hostname = "vm-de"

[hosts."52:54:00:00:00:07"]
profile = "fedora"
ip = "10.123.0.7"
"#;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 123, 0, 1);
const KNOWN: [u8; 6] = [0xde, 0x00, 0x00, 0x00, 0x00, 0xde];
const PINNED: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x07];
const UNKNOWN: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn config(extra: &str) -> Config {
    with_server(&format!("{CONFIG}{extra}"))
}

/// `text` after the test kit's `[server]` table.
fn with_server(text: &str) -> Config {
    crate::testkit::config(&format!("{}{text}", crate::testkit::SERVER))
}

const DISCOVER: &[u8] = &[53, 1, 1]; // option 53 message type: DISCOVER
const REQUEST: &[u8] = &[53, 1, 3]; // option 53 message type: REQUEST
const RELEASE: &[u8] = &[53, 1, 7]; // option 53 message type: RELEASE
const INFORM: &[u8] = &[53, 1, 8]; // option 53 message type: INFORM
const ARCH_BIOS: &[u8] = &[93, 2, 0, 0]; // option 93 client arch: 0 (x86 BIOS)
const ARCH_EFI_X64: &[u8] = &[93, 2, 0, 7]; // option 93 client arch: 7 (x64 UEFI)
const ARCH_EFI_ARM64: &[u8] = &[93, 2, 0, 11]; // option 93 client arch: 11 (arm64 UEFI)
const ARCH_HTTP_X64: &[u8] = &[93, 2, 0, 16]; // option 93 client arch: 16 (x64 UEFI HTTP)
const IPXE_USER_CLASS: &[u8] = &[77, 4, b'i', b'P', b'X', b'E']; // option 77 user class "iPXE"
const IPXE_FEATURES: &[u8] = &[175, 3, 0xb1, 0x01, 0x01]; // option 175 (iPXE encapsulated): HTTP=1
const SERVER_ID: &[u8] = &[54, 4, 10, 123, 0, 1]; // option 54 server identifier: 10.123.0.1
const OTHER_SERVER_ID: &[u8] = &[54, 4, 10, 123, 0, 2]; // option 54: another server

/// Option 60 vendor class as PXE firmware sends it.
fn vendor(class: &str) -> Vec<u8> {
    let mut v = vec![60, class.len() as u8]; // option 60, length
    v.extend(class.as_bytes());
    v
}

/// Option 50 requested address.
fn requested(ip: [u8; 4]) -> Vec<u8> {
    let mut v = vec![50, 4]; // option 50, length 4
    v.extend(ip);
    v
}

/// Decides, then puts the reply through the encoder and decoder as the wire would.
fn run(
    cfg: &Config,
    leases: &mut LeaseTable,
    bytes: &[u8],
) -> (Option<(Message, Destination, usize)>, Decision) {
    let d = decide(&decode(bytes), cfg, leases, 1_000);
    let out = match &d {
        Decision::Reply(Reply { msg, to, .. }) => {
            let wire = encode(msg, 1500).unwrap();
            Some((decode(&wire), *to, wire.len()))
        }
        Decision::NoReply { .. } => None,
    };
    (out, d)
}

/// DISCOVER then REQUEST (selecting) for `mac`; returns the ACK.
fn dora(cfg: &Config, leases: &mut LeaseTable, mac: [u8; 6]) -> (Message, Destination) {
    let discover = request(mac, 0, [0; 4], [0; 4], &[DISCOVER]);
    let (offer, _, _) = run(cfg, leases, &discover).0.expect("offer");
    let req = requested(offer.yiaddr().octets());
    let bytes = request(mac, 0, [0; 4], [0; 4], &[REQUEST, SERVER_ID, &req]);
    let (ack, to, _) = run(cfg, leases, &bytes).0.expect("ack");
    assert_eq!(ack.yiaddr(), offer.yiaddr());
    (ack, to)
}

fn opt(m: &Message, code: u8) -> Option<&DhcpOption> {
    m.opts().get(OptionCode::from(code))
}

fn mtype(m: &Message) -> MessageType {
    match opt(m, 53) {
        Some(DhcpOption::MessageType(t)) => *t,
        other => panic!("no message type: {other:?}"),
    }
}

fn bootfile(m: &Message) -> Option<String> {
    match opt(m, 67) {
        Some(DhcpOption::BootfileName(b)) => Some(String::from_utf8(b.clone()).unwrap()),
        _ => None,
    }
}

fn assert_standard_options(m: &Message) {
    assert_eq!(opt(m, 54), Some(&DhcpOption::ServerIdentifier(SERVER)));
    assert_eq!(
        opt(m, 1),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(opt(m, 3), Some(&DhcpOption::Router(vec![SERVER])));
    assert_eq!(
        opt(m, 6),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 123, 0, 53
        )]))
    );
    assert_eq!(opt(m, 51), Some(&DhcpOption::AddressLeaseTime(3600)));
    assert_eq!(opt(m, 58), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(opt(m, 59), Some(&DhcpOption::Rebinding(3150)));
}

#[test]
fn ipxe_rom_gets_its_own_script_url() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let bytes = request(
        KNOWN,
        0,
        [0; 4],
        [0; 4],
        &[DISCOVER, ARCH_BIOS, IPXE_USER_CLASS, IPXE_FEATURES],
    );
    let (reply, d) = run(&cfg, &mut leases, &bytes);
    let (m, to, len) = reply.unwrap();
    assert!(len >= MIN_REPLY_LEN);
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), 0x12345678);
    assert_eq!(mtype(&m), MessageType::Offer);
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 123, 0, 100));
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(m.chaddr()[..6], KNOWN);
    assert_standard_options(&m);
    assert_eq!(opt(&m, 12), Some(&DhcpOption::Hostname("vm-de".into())));
    let url = "http://10.123.0.1:8080/ipxe/de:00:00:00:00:de";
    assert_eq!(bootfile(&m).as_deref(), Some(url));
    assert_eq!(m.fname_str().unwrap().unwrap().trim_end_matches('\0'), url);
    // Not a PXEClient request, so no option 60 or 43 in the reply.
    assert_eq!(opt(&m, 60), None);
    assert_eq!(opt(&m, 43), None);
    assert_eq!(
        to,
        Destination::Hardware(Ipv4Addr::new(10, 123, 0, 100), Mac(KNOWN))
    );
    match d {
        Decision::Reply(Reply { client, .. }) => assert_eq!(client.kind, ClientKind::Ipxe),
        _ => unreachable!(),
    }
}

#[test]
fn option_175_alone_marks_ipxe() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, IPXE_FEATURES]);
    let (reply, _) = run(&cfg, &mut leases, &bytes);
    assert!(bootfile(&reply.unwrap().0)
        .unwrap()
        .ends_with("/ipxe/de:00:00:00:00:de"));
}

#[test]
fn ovmf_uefi_pxe_gets_ipxe_efi_over_tftp() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let class = vendor("PXEClient:Arch:00007:UNDI:003016");
    let bytes = request(
        KNOWN,
        0x8000,
        [0; 4],
        [0; 4],
        &[DISCOVER, ARCH_EFI_X64, &class],
    );
    let (reply, _) = run(&cfg, &mut leases, &bytes);
    let (m, to, _) = reply.unwrap();
    assert_eq!(mtype(&m), MessageType::Offer);
    assert_eq!(bootfile(&m).as_deref(), Some("ipxe.efi"));
    assert_eq!(
        m.fname_str().unwrap().unwrap().trim_end_matches('\0'),
        "ipxe.efi"
    );
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(
        opt(&m, 60),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert_eq!(
        opt(&m, 66),
        Some(&DhcpOption::TFTPServerName(b"10.123.0.1".to_vec()))
    );
    // Option 43, sub-option 6 PXE_DISCOVERY_CONTROL = 8: no boot server discovery.
    assert_eq!(
        opt(&m, 43),
        Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
    );
    assert_standard_options(&m);
    assert_eq!(to, Destination::Broadcast, "broadcast bit set");
}

#[test]
fn legacy_bios_pxe_gets_undionly() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let class = vendor("PXEClient:Arch:00000:UNDI:002001");
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, ARCH_BIOS, &class]);
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(bootfile(&m).as_deref(), Some("undionly.kpxe"));
    // Very old ROMs omit option 93: they are BIOS.
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &class]);
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(bootfile(&m).as_deref(), Some("undionly.kpxe"));
}

#[test]
fn arm64_and_http_boot_arches() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let class = vendor("PXEClient:Arch:00011:UNDI:003000");
    let bytes = request(
        KNOWN,
        0,
        [0; 4],
        [0; 4],
        &[DISCOVER, ARCH_EFI_ARM64, &class],
    );
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    // Debian has no arm64 iPXE: arm64 boots the signed GRUB, which loads its config.
    assert_eq!(bootfile(&m).as_deref(), Some("grubaa64.efi"));

    let class = vendor("HTTPClient:Arch:00016:UNDI:003000");
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, ARCH_HTTP_X64, &class]);
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(
        bootfile(&m).as_deref(),
        Some("http://10.123.0.1:8080/ipxe.efi")
    );
    assert_eq!(
        opt(&m, 60),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    // arm64 HTTP Boot: no first stage by default, one when http_arm64 names it.
    let class = vendor("HTTPClient:Arch:00019:UNDI:003001");
    let arm_http: &[u8] = &[93, 2, 0, 19];
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, arm_http, &class]);
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(bootfile(&m), None);
    assert_eq!(opt(&m, 60), None);
    let cfg = config("[first_stage]\nhttp_arm64 = \"arm64/ipxe.efi\"\n");
    let mut leases = LeaseTable::new(&cfg);
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(
        bootfile(&m).as_deref(),
        Some("http://10.123.0.1:8080/arm64/ipxe.efi")
    );
}

#[test]
fn secure_boot_hosts_get_the_signed_shim_over_tftp_and_no_http_boot() {
    const SB: [u8; 6] = [0xde, 0x00, 0x00, 0x00, 0x00, 0x5b];
    let cfg = config("[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"fedora\"\nsecure_boot = true\n");
    let mut leases = LeaseTable::new(&cfg);
    let pxe = vendor("PXEClient:Arch:00007:UNDI:003016");
    let http = vendor("HTTPClient:Arch:00016:UNDI:003001");
    let boot = |leases: &mut LeaseTable, mac, arch: &[u8], class: &[u8]| {
        let bytes = request(mac, 0, [0; 4], [0; 4], &[DISCOVER, arch, class]);
        let (m, _, _) = run(&cfg, leases, &bytes).0.unwrap();
        (bootfile(&m), opt(&m, 60).cloned())
    };
    assert_eq!(
        boot(&mut leases, SB, ARCH_EFI_X64, &pxe),
        (
            Some("shimx64.efi".into()),
            Some(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        )
    );
    // Its HTTP Boot gets an address and no boot file: the signed GRUB cannot go on over
    // HTTP, so the firmware moves on to its PXE boot option.
    assert_eq!(boot(&mut leases, SB, ARCH_HTTP_X64, &http), (None, None));
    // The same firmware on a host without secure_boot gets iPXE; BIOS never gets shim.
    assert_eq!(
        boot(&mut leases, KNOWN, ARCH_EFI_X64, &pxe).0.as_deref(),
        Some("ipxe.efi")
    );
    let bios = vendor("PXEClient:Arch:00000:UNDI:002001");
    assert_eq!(
        boot(&mut leases, SB, ARCH_BIOS, &bios).0.as_deref(),
        Some("undionly.kpxe")
    );
    // [defaults] secure_boot covers hosts that do not say, and a host can opt out.
    let cfg = with_server(&format!("[defaults]\nsecure_boot = true\n{CONFIG}[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"fedora\"\nsecure_boot = false\n"));
    assert!(cfg.secure_boot_for(&Mac::from_chaddr(&KNOWN).unwrap()));
    assert!(!cfg.secure_boot_for(&Mac::from_chaddr(&SB).unwrap()));
}

#[test]
fn first_stage_table_can_be_overridden() {
    let cfg = config("[first_stage]\nefi_x64 = \"snponly.efi\"\nbios = \"ipxe/undionly.kpxe\"\n");
    let mut leases = LeaseTable::new(&cfg);
    let class = vendor("PXEClient:Arch:00007:UNDI:003016");
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, ARCH_EFI_X64, &class]),
    )
    .0
    .unwrap();
    assert_eq!(bootfile(&m).as_deref(), Some("snponly.efi"));
    let class = vendor("PXEClient:Arch:00000:UNDI:002001");
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, ARCH_BIOS, &class]),
    )
    .0
    .unwrap();
    assert_eq!(bootfile(&m).as_deref(), Some("ipxe/undionly.kpxe"));
}

#[test]
fn plain_client_gets_an_address_and_no_boot_file() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]),
    )
    .0
    .unwrap();
    assert_eq!(mtype(&m), MessageType::Offer);
    assert_eq!(bootfile(&m), None);
    assert!(m.fname().is_none_or(|f| f.iter().all(|b| *b == 0)));
}

#[test]
fn unknown_mac_gets_nothing_unless_there_is_a_default() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let bytes = request(
        UNKNOWN,
        0,
        [0; 4],
        [0; 4],
        &[DISCOVER, ARCH_BIOS, IPXE_USER_CLASS],
    );
    let (reply, d) = run(&cfg, &mut leases, &bytes);
    assert!(reply.is_none());
    assert!(matches!(
        d,
        Decision::NoReply {
            reason: Reason::UnmanagedMac,
            ..
        }
    ));
    assert_eq!(leases.iter().count(), 0, "no address was held for it");

    let cfg = config("[defaults]\nprofile = \"fedora\"\n");
    let (m, _, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(
        bootfile(&m).as_deref(),
        Some("http://10.123.0.1:8080/ipxe/52:54:00:12:34:56")
    );
}

#[test]
fn full_dora_then_same_mac_same_address() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let (ack, to) = dora(&cfg, &mut leases, KNOWN);
    let ip = ack.yiaddr();
    assert_eq!(mtype(&ack), MessageType::Ack);
    assert_eq!(ip, Ipv4Addr::new(10, 123, 0, 100));
    assert_standard_options(&ack);
    assert_eq!(to, Destination::Hardware(ip, Mac(KNOWN)));

    // Another machine gets another address; the first one gets its own again.
    let cfg = config("[defaults]\nprofile = \"fedora\"\n");
    let (other, _) = dora(&cfg, &mut leases, [0xde, 0, 0, 0, 0, 0xdf]);
    assert_ne!(other.yiaddr(), ip);
    let (again, _) = dora(&cfg, &mut leases, KNOWN);
    assert_eq!(again.yiaddr(), ip);
}

#[test]
fn request_for_a_taken_or_foreign_address_is_naked() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    run(
        &cfg,
        &mut leases,
        &request(PINNED, 0, [0; 4], [0; 4], &[DISCOVER]),
    );
    // INIT-REBOOT for an address of another subnet.
    let req = requested([192, 168, 1, 50]);
    let (nak, to, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, &req]),
    )
    .0
    .unwrap();
    assert_eq!(mtype(&nak), MessageType::Nak);
    assert_eq!(nak.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(opt(&nak, 54), Some(&DhcpOption::ServerIdentifier(SERVER)));
    assert_eq!(to, Destination::Broadcast);
    // SELECTING an address pinned to another host.
    let req = requested([10, 123, 0, 7]);
    let (nak, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, SERVER_ID, &req]),
    )
    .0
    .unwrap();
    assert_eq!(mtype(&nak), MessageType::Nak);
}

#[test]
fn pinned_host_gets_its_address() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(PINNED, 0, [0; 4], [0; 4], &[DISCOVER]),
    )
    .0
    .unwrap();
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 123, 0, 7));
}

#[test]
fn request_to_another_server_drops_our_offer() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let (offer, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]),
    )
    .0
    .unwrap();
    let req = requested([10, 123, 0, 150]);
    let (reply, d) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, OTHER_SERVER_ID, &req]),
    );
    assert!(reply.is_none());
    assert!(matches!(
        d,
        Decision::NoReply {
            reason: Reason::OtherServer,
            ..
        }
    ));
    assert!(leases.mac_of(offer.yiaddr()).is_none());
}

#[test]
fn renew_is_unicast_to_ciaddr() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    let renew = request(KNOWN, 0, ip.octets(), [0; 4], &[REQUEST]);
    let (ack, to, _) = run(&cfg, &mut leases, &renew).0.unwrap();
    assert_eq!(mtype(&ack), MessageType::Ack);
    assert_eq!(ack.ciaddr(), ip);
    assert_eq!(to, Destination::Unicast(ip));
}

#[test]
fn relayed_requests_go_back_to_the_relay() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let bytes = request(KNOWN, 0, [0; 4], [10, 123, 0, 254], &[DISCOVER]);
    let (m, to, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(to, Destination::Relay(Ipv4Addr::new(10, 123, 0, 254)));
    assert_eq!(m.giaddr(), Ipv4Addr::new(10, 123, 0, 254));
    // A relay on a subnet pxed doesn't serve gets nothing.
    let bytes = request(KNOWN, 0, [0; 4], [192, 168, 9, 1], &[DISCOVER]);
    assert!(run(&cfg, &mut leases, &bytes).0.is_none());
}

#[test]
fn release_frees_and_inform_gets_options_without_a_lease() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    assert!(leases.get_by_mac(&Mac(KNOWN)).unwrap().active(1_000));
    let release = request(KNOWN, 0, ip.octets(), [0; 4], &[RELEASE, SERVER_ID]);
    assert!(run(&cfg, &mut leases, &release).0.is_none());
    assert!(!leases.get_by_mac(&Mac(KNOWN)).unwrap().active(1_000));

    let inform = request(KNOWN, 0, ip.octets(), [0; 4], &[INFORM]);
    let (m, to, _) = run(&cfg, &mut leases, &inform).0.unwrap();
    assert_eq!(mtype(&m), MessageType::Ack);
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(opt(&m, 51), None);
    assert_eq!(to, Destination::Unicast(ip));
}

#[test]
fn garbage_is_not_a_client() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    // A BOOTREPLY (another server's offer) seen on the wire.
    let mut bytes = request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]);
    bytes[0] = 0x02; // op: BOOTREPLY
    assert!(run(&cfg, &mut leases, &bytes).0.is_none());
    // No message type.
    let bytes = request(KNOWN, 0, [0; 4], [0; 4], &[]);
    assert!(run(&cfg, &mut leases, &bytes).0.is_none());
}

/// Option 61 client identifier.
fn client_id(id: &[u8]) -> Vec<u8> {
    let mut v = vec![61, id.len() as u8]; // option 61, length
    v.extend(id);
    v
}

#[test]
fn init_reboot_confirms_a_known_lease_naks_a_wrong_one_and_ignores_strangers() {
    let cfg = config("[defaults]\nprofile = \"fedora\"\n");
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    // INIT-REBOOT: no server id, no ciaddr, option 50 = the address it had.
    let req = requested(ip.octets());
    let (ack, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, &req]),
    )
    .0
    .unwrap();
    assert_eq!((mtype(&ack), ack.yiaddr()), (MessageType::Ack, ip));
    let wrong = requested([10, 123, 0, 150]);
    let (nak, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, &wrong]),
    )
    .0
    .unwrap();
    assert_eq!(mtype(&nak), MessageType::Nak);
    // A client pxed has no record of: silent (RFC 2131 §4.3.2).
    let (reply, d) = run(
        &cfg,
        &mut leases,
        &request(UNKNOWN, 0, [0; 4], [0; 4], &[REQUEST, &wrong]),
    );
    assert!(reply.is_none(), "{d:?}");
}

#[test]
fn client_identifier_keys_the_lease() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let a = client_id(b"\x00installer");
    let b = client_id(b"\x00installed-os");
    let (oa, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &a]),
    )
    .0
    .unwrap();
    let req = requested(oa.yiaddr().octets());
    run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, SERVER_ID, &req, &a]),
    );
    let (ob, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &b]),
    )
    .0
    .unwrap();
    assert_ne!(
        oa.yiaddr(),
        ob.yiaddr(),
        "one MAC, two client ids, two leases"
    );
    let (again, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &a]),
    )
    .0
    .unwrap();
    assert_eq!(again.yiaddr(), oa.yiaddr());
}

#[test]
fn parameter_request_list_is_respected() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let prl: &[u8] = &[55, 2, 1, 3]; // option 55: mask, router
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, prl]),
    )
    .0
    .unwrap();
    assert_eq!(opt(&m, 6), None, "DNS was not requested");
    assert_eq!(opt(&m, 12), None, "hostname was not requested");
    assert_eq!(opt(&m, 3), Some(&DhcpOption::Router(vec![SERVER])));
    assert!(
        opt(&m, 51).is_some() && opt(&m, 54).is_some(),
        "lease time and server id always"
    );
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]),
    )
    .0
    .unwrap();
    assert!(opt(&m, 6).is_some(), "no list: everything configured");
}

#[test]
fn replies_fit_the_clients_maximum_message_size() {
    let dns: Vec<String> = (1..=40).map(|n| format!("\"10.123.0.{n}\"")).collect();
    let text = CONFIG.replace(
        "dns = [\"10.123.0.53\"]",
        &format!(
            "dns = [{}]\ndomain = \"{}\"",
            dns.join(", "),
            "d".repeat(200)
        ),
    );
    let cfg = with_server(&text);
    let mut leases = LeaseTable::new(&cfg);
    let msg = decode(&request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]));
    let Decision::Reply(Reply { msg: reply, .. }) = decide(&msg, &cfg, &mut leases, 0) else {
        panic!()
    };
    let full = encode(&reply, 1472).unwrap();
    assert!(full.len() > 548, "fixture too small: {}", full.len());
    // No option 57: the RFC default of 576 bytes less IP and UDP headers.
    let small = encode(&reply, max_reply_len(&msg)).unwrap();
    assert!(small.len() <= 548, "{}", small.len());
    let m = decode(&small);
    assert!(
        opt(&m, 54).is_some() && opt(&m, 51).is_some(),
        "essential options kept"
    );
    // Option 57 = 1500: everything fits.
    let big = decode(&request(
        KNOWN,
        0,
        [0; 4],
        [0; 4],
        &[DISCOVER, &[57, 2, 0x05, 0xdc]],
    ));
    assert_eq!(max_reply_len(&big), 1472);
}

#[test]
fn decline_keeps_the_address_out_for_the_configured_time() {
    let cfg = config("[defaults]\nprofile = \"fedora\"\n").clone();
    let mut cfg = cfg;
    cfg.dhcp.decline_time = std::time::Duration::from_secs(300);
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    let req = requested(ip.octets());
    let decline = request(KNOWN, 0, [0; 4], [0; 4], &[&[53, 1, 4], SERVER_ID, &req]); // DECLINE
    assert!(run(&cfg, &mut leases, &decline).0.is_none());
    // Within 300 s nobody gets it, not even the decliner.
    let m = decide(
        &decode(&request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &req])),
        &cfg,
        &mut leases,
        1_200,
    );
    let Decision::Reply(Reply { msg, .. }) = m else {
        panic!()
    };
    assert_ne!(msg.yiaddr(), ip);
    let m = decide(
        &decode(&request(UNKNOWN, 0, [0; 4], [0; 4], &[DISCOVER, &req])),
        &cfg,
        &mut leases,
        1_000 + 301,
    );
    let Decision::Reply(Reply { msg, .. }) = m else {
        panic!()
    };
    assert_eq!(msg.yiaddr(), ip, "back in the pool after the quarantine");
}

#[test]
fn exhausted_pool_gets_no_offer_but_leaseholders_keep_renewing() {
    let text = CONFIG.replace(
        "\"10.123.0.100\", \"10.123.0.200\"",
        "\"10.123.0.100\", \"10.123.0.100\"",
    );
    let cfg = with_server(&format!("{text}[defaults]\nprofile = \"fedora\"\n"));
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    let (r, d) = run(
        &cfg,
        &mut leases,
        &request(UNKNOWN, 0, [0; 4], [0; 4], &[DISCOVER]),
    );
    assert!(r.is_none());
    assert!(matches!(
        d,
        Decision::NoReply {
            reason: Reason::PoolExhausted,
            ..
        }
    ));
    let (ack, _, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, ip.octets(), [0; 4], &[REQUEST]),
    )
    .0
    .unwrap();
    assert_eq!(mtype(&ack), MessageType::Ack);
}

#[test]
fn acks_record_a_store_write_and_offers_do_not() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER]),
    );
    assert!(leases.take_changes().is_empty(), "an OFFER is not written");
    let req = requested([10, 123, 0, 100]);
    run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[REQUEST, SERVER_ID, &req]),
    );
    let changes = leases.take_changes();
    assert!(
        matches!(&changes[..], [crate::leases::Change::Upsert(l)] if l.ip == Ipv4Addr::new(10, 123, 0, 100))
    );
}

#[test]
fn relay_agent_information_is_echoed_and_link_selection_picks_the_subnet() {
    // Option 82: circuit-id (1) "port7", link-selection (5) 10.123.0.0.
    let o82: &[u8] = &[
        82, 13, 1, 5, b'p', b'o', b'r', b't', b'7', 5, 4, 10, 123, 0, 0,
    ];
    let bytes = request(KNOWN, 0, [0; 4], [192, 168, 50, 1], &[DISCOVER, o82]);
    // The relay sits on a network pxed does not serve: without `relay_agents` it is refused,
    // since the reply would go to whatever giaddr a request names.
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    assert!(run(&cfg, &mut leases, &bytes).0.is_none());
    let cfg = with_server(&CONFIG.replace(
        "dns = [\"10.123.0.53\"]",
        "dns = [\"10.123.0.53\"]\nrelay_agents = [\"192.168.50.0/24\"]",
    ));
    let mut leases = LeaseTable::new(&cfg);
    let (m, to, _) = run(&cfg, &mut leases, &bytes)
        .0
        .expect("link selection names our subnet");
    assert_eq!(to, Destination::Relay(Ipv4Addr::new(192, 168, 50, 1)));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 123, 0, 100));
    let echoed = match opt(&m, 82) {
        Some(DhcpOption::RelayAgentInformation(info)) => info.clone(),
        other => panic!("option 82 not echoed: {other:?}"),
    };
    let sent = match opt(&decode(&bytes), 82) {
        Some(DhcpOption::RelayAgentInformation(info)) => info.clone(),
        _ => unreachable!(),
    };
    assert_eq!(echoed, sent);
    // Link selection for another subnet wins over a giaddr inside ours.
    let other: &[u8] = &[82, 6, 5, 4, 172, 16, 0, 0];
    let bytes = request(KNOWN, 0, [0; 4], [10, 123, 0, 254], &[DISCOVER, other]);
    assert!(run(&cfg, &mut leases, &bytes).0.is_none());
    // Option 118 subnet selection works the same way.
    let sel: &[u8] = &[118, 4, 10, 123, 0, 0];
    let bytes = request(KNOWN, 0, [0; 4], [192, 168, 50, 1], &[DISCOVER, sel]);
    assert!(run(&cfg, &mut leases, &bytes).0.is_some());
}

#[test]
fn relayed_clients_get_addresses_and_options_of_their_own_subnet() {
    let text = CONFIG.replace(
        "dns = [\"10.123.0.53\"]\n",
        "dns = [\"10.123.0.53\"]\n[[dhcp.subnets]]\nsubnet = \"10.50.0.0/24\"\nrange = [\"10.50.0.100\", \"10.50.0.150\"]\nrouter = \"10.50.0.1\"\n",
    );
    let cfg = with_server(&text);
    let mut leases = LeaseTable::new(&cfg);
    // The pinned host (10.123.0.7) boots behind the relay: it gets an address there.
    let bytes = request(PINNED, 0, [0; 4], [10, 50, 0, 1], &[DISCOVER]);
    let (m, to, _) = run(&cfg, &mut leases, &bytes).0.unwrap();
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 50, 0, 100));
    assert_eq!(to, Destination::Relay(Ipv4Addr::new(10, 50, 0, 1)));
    assert_eq!(
        opt(&m, 3),
        Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 50, 0, 1)]))
    );
    assert_eq!(opt(&m, 6), None, "the relayed subnet has no DNS configured");
    assert_eq!(m.siaddr(), SERVER, "boot files still come from pxed");
    let req = requested([10, 50, 0, 100]);
    let ack = request(
        PINNED,
        0,
        [0; 4],
        [10, 50, 0, 1],
        &[REQUEST, SERVER_ID, &req],
    );
    assert_eq!(
        mtype(&run(&cfg, &mut leases, &ack).0.unwrap().0),
        MessageType::Ack
    );
    // Directly attached, the same host gets its pinned address.
    let (m, _, _) = run(
        &cfg,
        &mut leases,
        &request(PINNED, 0, [0; 4], [0; 4], &[DISCOVER]),
    )
    .0
    .unwrap();
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 123, 0, 7));
}

#[test]
fn rebind_from_a_client_with_an_address_is_acked_or_naked() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let ip = dora(&cfg, &mut leases, KNOWN).0.yiaddr();
    // REBINDING: broadcast, ciaddr set, no server id.
    let rebind = request(KNOWN, 0x8000, ip.octets(), [0; 4], &[REQUEST]);
    let (ack, to, _) = run(&cfg, &mut leases, &rebind).0.unwrap();
    assert_eq!((mtype(&ack), ack.yiaddr()), (MessageType::Ack, ip));
    assert_eq!(to, Destination::Unicast(ip));
    // Another client rebinding onto that address is refused.
    let other = request(
        [0xde, 0, 0, 0, 0, 0x01],
        0x8000,
        ip.octets(),
        [0; 4],
        &[REQUEST],
    );
    let cfg2 = config("[defaults]\nprofile = \"fedora\"\n");
    let (nak, _, _) = run(&cfg2, &mut leases, &other).0.unwrap();
    assert_eq!(mtype(&nak), MessageType::Nak);
}

/// The reason a request got no reply.
fn ignored(d: &Decision) -> &'static str {
    match d {
        Decision::NoReply { reason, .. } => reason.as_str(),
        Decision::Reply(Reply { msg, .. }) => panic!("replied: {msg:?}"),
    }
}

#[test]
fn replies_never_go_to_a_giaddr_or_ciaddr_outside_the_boot_network() {
    let cfg = config("");
    let mut leases = LeaseTable::new(&cfg);
    let victim = [192, 0, 2, 7];
    // A DISCOVER "relayed" by a victim address: the OFFER would go to it.
    let (_, d) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], victim, &[DISCOVER]),
    );
    assert_eq!(ignored(&d), Reason::GiaddrOutside.as_str());
    // INFORM, RENEW and even DISCOVER with a victim's ciaddr: replies would be unicast to it.
    for opts in [&[INFORM][..], &[REQUEST][..], &[DISCOVER][..]] {
        let (_, d) = run(&cfg, &mut leases, &request(KNOWN, 0, victim, [0; 4], opts));
        assert_eq!(ignored(&d), Reason::CiaddrOutside.as_str(), "{opts:?}");
    }
    // An INFORM with no ciaddr has nowhere to go.
    let (_, d) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[INFORM]),
    );
    assert_eq!(ignored(&d), "inform without ciaddr");
    // Inside the subnet, both work as before.
    let (r, _) = run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [10, 123, 0, 150], [0; 4], &[INFORM]),
    );
    assert_eq!(
        r.unwrap().1,
        Destination::Unicast(Ipv4Addr::new(10, 123, 0, 150))
    );
}

#[test]
fn new_unknown_clients_are_rate_limited_and_hosts_never_are() {
    let cfg = with_server(
        &format!("{CONFIG}[defaults]\nprofile = \"fedora\"\n").replace(
            "dns = [\"10.123.0.53\"]",
            "dns = [\"10.123.0.53\"]\nunknown_client_rate = 1\nunknown_client_burst = 2",
        ),
    );
    let mut leases = LeaseTable::new(&cfg);
    let stranger = |n: u8| [0x02, 0, 0, 0, 0, n];
    assert!(run(
        &cfg,
        &mut leases,
        &request(stranger(1), 0, [0; 4], [0; 4], &[DISCOVER])
    )
    .0
    .is_some());
    assert!(run(
        &cfg,
        &mut leases,
        &request(stranger(2), 0, [0; 4], [0; 4], &[DISCOVER])
    )
    .0
    .is_some());
    let (_, d) = run(
        &cfg,
        &mut leases,
        &request(stranger(3), 0, [0; 4], [0; 4], &[DISCOVER]),
    );
    assert_eq!(ignored(&d), Reason::RateLimited.as_str());
    // A host of the config is never counted, and a known stranger asking again is not new.
    assert!(run(
        &cfg,
        &mut leases,
        &request(KNOWN, 0, [0; 4], [0; 4], &[DISCOVER])
    )
    .0
    .is_some());
    assert!(run(
        &cfg,
        &mut leases,
        &request(stranger(1), 0, [0; 4], [0; 4], &[DISCOVER])
    )
    .0
    .is_some());
}

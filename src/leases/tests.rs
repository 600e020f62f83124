use super::*;
use crate::config::Config;

/// A pool of three addresses, .10 to .12, so tests can fill it.
fn cfg(extra: &str) -> Config {
    crate::testkit::config(&format!(
        r#"{}
[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.10", "10.123.0.12"]
router = "10.123.0.1"
[profiles.p]
action = "local"
{extra}"#,
        crate::testkit::SERVER
    ))
}

fn mac(n: u8) -> Mac {
    Mac([0x52, 0x54, 0, 0, 0, n])
}

fn id(n: u8) -> ClientId {
    ClientId::from_mac(mac(n))
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 123, 0, n)
}

fn bind(t: &mut LeaseTable, n: u8, addr: Ipv4Addr, expires: u64) {
    t.bind(&id(n), mac(n), addr, State::Bound, expires);
}

#[test]
fn same_client_gets_same_address_even_after_expiry() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(1), mac(1), None, 0),
        Some(ip(10))
    );
    bind(&mut t, 1, ip(10), 100);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(2), mac(2), None, 0),
        Some(ip(11))
    );
    bind(&mut t, 2, ip(11), 100);
    // Long after expiry, client 1 still gets its own address back.
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(1), mac(1), None, 10_000),
        Some(ip(10))
    );
    // A newcomer gets a never-used address before an expired one.
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(3), mac(3), None, 10_000),
        Some(ip(12))
    );
}

#[test]
fn exhausted_pool_offers_nothing_until_a_lease_expires() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    for n in 1..=3 {
        let a = t
            .choose(&c, c.dhcp.primary(), &id(n), mac(n), None, 0)
            .unwrap();
        bind(&mut t, n, a, 100 + u64::from(n));
    }
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(9), mac(9), None, 50),
        None
    );
    assert_eq!(t.pool_usage(&c, c.dhcp.primary(), 50), (3, 0));
    // After expiry, the lease that expired first is taken over.
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(9), mac(9), None, 1000),
        Some(ip(10))
    );
    t.take_changes();
    bind(&mut t, 9, ip(10), 2000);
    assert_eq!(t.get(&id(1)), None);
    assert_eq!(t.mac_of(ip(10)), Some(mac(9)));
    // The displaced client's lease is deleted from the store in the same commit.
    let changes = t.take_changes();
    assert_eq!(changes[0], Change::Delete(id(1)));
    assert!(matches!(&changes[1], Change::Upsert(l) if l.ip == ip(10) && l.mac == mac(9)));
}

#[test]
fn option_61_identifies_the_client_not_the_mac() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    let a = ClientId(b"\x00vm-a".to_vec());
    let b = ClientId(b"\x00vm-b".to_vec());
    // Two identifiers behind one MAC (two OSes on one NIC) hold two addresses.
    t.bind(&a, mac(1), ip(10), State::Bound, 100);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &b, mac(1), None, 0),
        Some(ip(11))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &b, mac(1), ip(10), 0),
        Err(Refusal::Taken(ip(10)))
    );
    assert_eq!(t.get_by_mac(&mac(1)).unwrap().ip, ip(10));
}

#[test]
fn reserved_addresses_never_go_to_others() {
    let c = cfg("[hosts.\"52:54:00:00:00:07\"]\nprofile = \"p\"\nip = \"10.123.0.10\"\n");
    let t = LeaseTable::new(&c);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(1), mac(1), Some(ip(10)), 0),
        Some(ip(11))
    );
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(7), mac(7), None, 0),
        Some(ip(10))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(1), mac(1), ip(10), 0),
        Err(Refusal::Taken(ip(10)))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(7), mac(7), ip(11), 0),
        Err(Refusal::NotAllowed(ip(11)))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(7), mac(7), ip(10), 0),
        Ok(())
    );
}

#[test]
fn requested_address_is_honoured_when_free() {
    let c = cfg("");
    let t = LeaseTable::new(&c);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(1), mac(1), Some(ip(12)), 0),
        Some(ip(12))
    );
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(1), mac(1), Some(ip(99)), 0),
        Some(ip(10))
    );
}

#[test]
fn check_refuses_wrong_subnet_and_taken() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    bind(&mut t, 1, ip(10), 100);
    let foreign = Ipv4Addr::new(192, 168, 1, 5);
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(2), mac(2), foreign, 0),
        Err(Refusal::WrongSubnet(foreign))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(2), mac(2), ip(10), 0),
        Err(Refusal::Taken(ip(10)))
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(1), mac(1), ip(10), 0),
        Ok(())
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(2), mac(2), ip(10), 200),
        Ok(())
    );
}

#[test]
fn release_frees_and_decline_quarantines() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    bind(&mut t, 1, ip(10), 1000);
    t.take_changes();
    assert!(t.release(&id(1), ip(10), 5));
    assert!(
        matches!(&t.take_changes()[..], [Change::Upsert(l)] if l.state == State::Released && l.expires == 5)
    );
    assert_eq!(
        t.check(&c, c.dhcp.primary(), &id(2), mac(2), ip(10), 6),
        Ok(())
    );
    bind(&mut t, 2, ip(11), 1000);
    t.take_changes();
    assert!(t.decline(&id(2), ip(11), 600));
    assert_eq!(t.take_changes(), vec![Change::Delete(id(2))]);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(2), mac(2), Some(ip(11)), 10),
        Some(ip(12))
    );
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(3), mac(3), Some(ip(11)), 601),
        Some(ip(11))
    );
}

#[test]
fn offers_are_not_written_and_a_turned_down_offer_is_freed() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    t.bind(&id(1), mac(1), ip(10), State::Offered, 60);
    assert!(t.take_changes().is_empty());
    t.drop_offer(&id(1));
    assert_eq!(t.get(&id(1)), None);
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(2), mac(2), None, 0),
        Some(ip(10))
    );
}

#[test]
fn restore_rebuilds_every_index() {
    let c = cfg("");
    let leases = vec![
        Lease {
            client: id(1),
            mac: mac(1),
            ip: ip(11),
            state: State::Bound,
            expires: 500,
        },
        Lease {
            client: id(2),
            mac: mac(2),
            ip: ip(10),
            state: State::Released,
            expires: 5,
        },
    ];
    let t = LeaseTable::restore(&c, leases);
    assert_eq!(t.mac_of(ip(11)), Some(mac(1)));
    assert_eq!(t.get_by_mac(&mac(2)).unwrap().ip, ip(10));
    // Only 10.123.0.12 was never used; after it, released 10.123.0.10 is taken over.
    assert_eq!(
        t.choose(&c, c.dhcp.primary(), &id(3), mac(3), None, 10),
        Some(ip(12))
    );
    assert_eq!(t.in_use(10), 1);
}

#[test]
fn allocation_cost_does_not_grow_with_the_number_of_leases() {
    // A /16 pool filled with 60,000 leases: each allocation must stay cheap.
    let c = crate::testkit::config(&format!(
        "{}[dhcp]\nsubnet = \"10.123.0.0/16\"\nrange = [\"10.123.0.10\", \"10.123.255.250\"]\n[profiles.p]\naction = \"local\"\n",
        crate::testkit::SERVER
    ));
    let mut t = LeaseTable::new(&c);
    for n in 0..60_000u32 {
        let client = ClientId(n.to_be_bytes().to_vec());
        let m = Mac([2, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        let a = t
            .choose(&c, c.dhcp.primary(), &client, m, None, 0)
            .expect("pool has room");
        t.bind(&client, m, a, State::Bound, 3600);
    }
    assert_eq!(t.iter().count(), 60_000);
    assert_eq!(
        t.mac_of(Ipv4Addr::new(10, 123, 0, 10)),
        Some(Mac([2, 0, 0, 0, 0, 0]))
    );
}

/// A client identifier of MAC `n` that is not derived from it (what a neighbour invents).
fn invented(n: u8, k: u8) -> ClientId {
    ClientId(vec![0xff, k, n])
}

#[test]
fn one_mac_holds_at_most_its_cap_whatever_identifiers_it_invents() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    let pool = c.dhcp.primary();
    let mut offered = Vec::new();
    for k in 0..5 {
        let cid = invented(1, k);
        t.make_room_for(&cid, mac(1), 2, 0);
        let a = t
            .choose(&c, pool, &cid, mac(1), None, 0)
            .expect("an address");
        t.bind(&cid, mac(1), a, State::Offered, 60);
        offered.push(a);
    }
    let held: Vec<_> = t
        .iter()
        .filter(|l| l.mac == mac(1) && l.active(0))
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(t.take_takeovers(), 3);
    // The 3-address pool still has room for another machine.
    assert!(t.choose(&c, pool, &id(2), mac(2), None, 0).is_some());
    // A bound lease taken over is deleted from the store too.
    let mut t = LeaseTable::new(&c);
    t.bind(&invented(1, 0), mac(1), ip(10), State::Bound, 100);
    t.bind(&invented(1, 1), mac(1), ip(11), State::Bound, 200);
    t.take_changes();
    assert_eq!(t.make_room_for(&invented(1, 2), mac(1), 2, 0), 1);
    assert_eq!(t.take_changes(), vec![Change::Delete(invented(1, 0))]);
}

#[test]
fn new_unknown_clients_are_rate_limited_and_known_ones_are_not_counted() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    // A burst of 3, then one a second.
    assert!((0..3).all(|n| t.admit_unknown(&id(n), 1, 3, 100)));
    assert!(!t.admit_unknown(&id(9), 1, 3, 100));
    assert!(t.admit_unknown(&id(9), 1, 3, 101));
    // A client that already has a binding is not a new one.
    bind(&mut t, 7, ip(10), 1000);
    assert!(t.admit_unknown(&id(7), 1, 3, 101));
    assert_eq!(t.take_takeovers(), 0);
}

#[test]
fn a_failed_commit_is_rolled_back_in_memory() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    // Committed earlier: client 1 holds .10.
    bind(&mut t, 1, ip(10), 100);
    t.take_batch();
    let before: Vec<Lease> = t.iter().cloned().collect();
    // A batch that fails: client 2 is ACKed .11 (after an OFFER), client 1 releases .10.
    t.bind(&id(2), mac(2), ip(11), State::Offered, 60);
    t.bind(&id(2), mac(2), ip(11), State::Bound, 3600);
    t.release(&id(1), ip(10), 50);
    let batch = t.take_batch();
    assert_eq!(batch.changes.len(), batch.undo.len());
    t.revert(&batch);
    let mut now: Vec<Lease> = t.iter().cloned().collect();
    now.sort_by_key(|l| l.ip);
    // Client 1 is bound again; client 2 is back to its OFFER, never bound.
    assert_eq!(now[0], before[0]);
    assert_eq!(now[1].state, State::Offered);
    assert_eq!(t.get_by_mac(&mac(2)).unwrap().state, State::Offered);
    // An admin delete that fails comes back too.
    let lease = t.forget_mac(&mac(1)).unwrap();
    let batch = t.take_batch();
    assert_eq!(batch.changes, vec![Change::Delete(lease.client.clone())]);
    t.revert(&batch);
    assert_eq!(t.get_by_mac(&mac(1)), Some(&lease));
}

#[test]
fn only_bound_leases_name_the_addresses_a_mac_owns() {
    let c = cfg("");
    let mut t = LeaseTable::new(&c);
    // An offer anyone can get by sending a DISCOVER with the MAC does not count.
    t.bind(&invented(1, 0), mac(1), ip(10), State::Offered, 60);
    assert!(t.bound_ips(&mac(1), 0).is_empty());
    t.bind(&invented(1, 1), mac(1), ip(11), State::Bound, 100);
    assert_eq!(t.bound_ips(&mac(1), 0), vec![ip(11)]);
    assert!(t.bound_ips(&mac(1), 100).is_empty(), "expired");
}

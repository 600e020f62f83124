#!/usr/bin/env python3
"""A hostile neighbour on br1, for tests/hostile.rs. Every subcommand runs inside a test
namespace, sends only to the addresses it is given, and is bounded in count and time.

  hostile.py tftp-flood SERVER FILE RATE SECS SKIP...   RRQs from forged sources in
                                                        10.123.0.0/24 (not SKIP), never ACKed
  hostile.py tftp-forged SERVER FILE SRC SPORT [dup]    one RRQ from a forged source; `dup`
                                                        repeats every option 20 times
  hostile.py tftp-raw SERVER NAME [ABORT]               RRQ from our own address, then print
                                                        the first reply, and send ERROR ABORT
  hostile.py count PORT SECS                            count datagrams arriving on PORT
  hostile.py slowloris HOST PORT N SECS SRC...          N half-sent requests, round-robin over
                                                        the SRC addresses; report when each
                                                        one was closed by the server
  hostile.py dhcp MAC N [ids|macs]                      N DISCOVERs broadcast from port 68:
                                                        `ids` = one MAC, N client identifiers;
                                                        `macs` = N random MACs; print OFFERs
  hostile.py dhcp-to SERVER TYPE MAC GIADDR CIADDR [LINK]
                                                        one DHCP message sent to SERVER:67;
                                                        LINK adds option 118
  hostile.py proxy-forged SERVER SRC SPORT MAC          a PXE REQUEST to SERVER:4011 from a
                                                        forged source
"""
import os
import random
import socket
import struct
import sys
import time

RNG = random.Random(0x5EED)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def forged_udp(src, sport, dst, dport, payload):
    """An IPv4+UDP datagram from any source: what a hostile VM can put on the bridge."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), RNG.randrange(65536), 0, 64, 17, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


def raw_socket():
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


def rrq(name, options=b""):
    return b"\x00\x01" + name.encode() + b"\x00octet\x00" + options


def tftp_flood(server, name, rate, secs, skip):
    s = raw_socket()
    rate, secs = min(int(rate), 5000), min(float(secs), 60.0)
    sources = [f"10.123.0.{n}" for n in range(2, 255) if f"10.123.0.{n}" not in skip]
    sent = 0
    start = time.time()
    while time.time() - start < secs and sent < 100_000:
        due = int((time.time() - start) * rate) + 1
        while sent < due:
            src = RNG.choice(sources)
            pkt = forged_udp(src, RNG.randrange(1024, 65535), server, 69, rrq(name))
            s.sendto(pkt, (server, 0))
            sent += 1
        time.sleep(0.002)
    print(f"sent={sent} secs={time.time() - start:.1f}", flush=True)


def tftp_forged(server, name, src, sport, dup):
    opts = b"tsize\x000\x00blksize\x001468\x00" * (20 if dup else 0)
    req = rrq(name, opts)
    raw_socket().sendto(forged_udp(src, int(sport), server, 69, req), (server, 0))
    print(f"request_bytes={len(req)}")


def tftp_raw(server, name, abort):
    """A real client that takes the first reply and aborts with ERROR 8 `abort`, printing
    the reply. `\\n` in NAME or ABORT stands for a newline."""
    name, abort = name.replace("\\n", "\n"), abort.replace("\\n", "\n")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(rrq(name), (server, 69))
    data, peer = s.recvfrom(70000)
    s.sendto(b"\x00\x05\x00\x08" + abort.encode() + b"\x00", peer)
    op = struct.unpack("!H", data[:2])[0]
    if op == 5:
        print(f"error code={struct.unpack('!H', data[2:4])[0]} message={data[4:-1].decode(errors='replace')!r}")
    else:
        print(f"opcode={op} len={len(data)}")


def count(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    print("listening", flush=True)
    n = nbytes = 0
    kinds = []
    first = b""
    end = time.time() + min(float(secs), 120.0)
    while True:
        left = end - time.time()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(70000)
        except socket.timeout:
            break
        n += 1
        nbytes += len(data)
        kinds.append(data[:2].hex())
        first = first or data
    print(f"datagrams={n} bytes={nbytes} kinds={','.join(kinds)} first={first[:200]!r}", flush=True)


def slowloris(host, port, n, secs, sources):
    n, secs = min(int(n), 1000), min(float(secs), 120.0)
    socks = []
    for i in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.bind((sources[i % len(sources)], 0))
        c.settimeout(3)
        try:
            c.connect((host, int(port)))
            c.sendall(b"GET /vmlinuz HTTP/1.1\r\nHost: pxed\r\nX-Slow: ")
        except OSError as e:
            print(f"connect {i} failed: {e}", flush=True)
            c.close()
            continue
        c.setblocking(False)
        socks.append(c)
    start = time.time()
    print(f"open={len(socks)}", flush=True)
    closed = {}
    while time.time() - start < secs and len(closed) < len(socks):
        for i, c in enumerate(socks):
            if i in closed:
                continue
            try:
                data = c.recv(4096)
                if not data:
                    closed[i] = time.time() - start
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.time() - start
        time.sleep(0.2)
    last = max(closed.values()) if closed else -1
    print(f"open={len(socks)} closed={len(closed)} last_close_s={last:.1f}", flush=True)


def dhcp_message(mtype, mac, xid, client_id=None, giaddr="0.0.0.0", ciaddr="0.0.0.0", extra=b""):
    p = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    p += socket.inet_aton(ciaddr) + bytes(8) + socket.inet_aton(giaddr)
    p += mac + bytes(10) + bytes(64 + 128) + b"\x63\x82\x53\x63"
    p += bytes([53, 1, mtype])
    if client_id is not None:
        p += bytes([61, len(client_id)]) + client_id
    p += extra + b"\xff"
    return p


def parse_mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def dhcp(mac, n, mode):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"vc")
    s.bind(("0.0.0.0", 68))
    n = min(int(n), 5000)
    base = parse_mac(mac)
    xids = {}
    started = time.time()
    for i in range(n):
        xid = 0x10000000 + i
        if mode == "ids":
            m, cid = base, b"\xff" + struct.pack("!I", i) + base
        else:
            m, cid = bytes([0x02] + [RNG.randrange(256) for _ in range(5)]), None
        xids[xid] = m
        s.sendto(dhcp_message(1, m, xid, cid), ("255.255.255.255", 67))
        time.sleep(0.001)
    send_s = time.time() - started
    ips = set()
    offers = 0
    end = time.time() + 3
    while time.time() < end:
        s.settimeout(max(end - time.time(), 0.01))
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            break
        xid = struct.unpack("!I", data[4:8])[0]
        if data[0] == 2 and xid in xids:
            offers += 1
            ips.add(socket.inet_ntoa(data[16:20]))
    print(f"sent={n} send_s={send_s:.2f} offers={offers} distinct_ips={len(ips)}", flush=True)


def dhcp_to(server, mtype, mac, giaddr, ciaddr, link=None):
    """`link`: option 118 (subnet selection) naming a served subnet, as an RFC 3527 relay
    would, so the request is accepted and only giaddr decides where the reply goes."""
    types = {"discover": 1, "request": 3, "inform": 8}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    extra = bytes([118, 4]) + socket.inet_aton(link) if link else b""
    msg = dhcp_message(types[mtype], parse_mac(mac), RNG.randrange(1 << 31), None, giaddr, ciaddr, extra)
    s.sendto(msg, (server, 67))
    print("sent")


def proxy_forged(server, src, sport, mac):
    # A PXE client's REQUEST to the boot server: vendor class PXEClient, arch 7.
    extra = bytes([60, 9]) + b"PXEClient" + bytes([93, 2, 0, 7])
    msg = dhcp_message(3, parse_mac(mac), RNG.randrange(1 << 31), extra=extra)
    raw_socket().sendto(forged_udp(src, int(sport), server, 4011, msg), (server, 0))
    print("sent")


def main():
    a = sys.argv[1:]
    cmd = a[0] if a else ""
    if cmd == "tftp-flood":
        tftp_flood(a[1], a[2], a[3], a[4], set(a[5:]))
    elif cmd == "tftp-forged":
        tftp_forged(a[1], a[2], a[3], a[4], len(a) > 5 and a[5] == "dup")
    elif cmd == "tftp-raw":
        tftp_raw(a[1], a[2], a[3] if len(a) > 3 else "done")
    elif cmd == "count":
        count(a[1], a[2])
    elif cmd == "slowloris":
        slowloris(a[1], a[2], a[3], a[4], a[5:])
    elif cmd == "dhcp":
        dhcp(a[1], a[2], a[3])
    elif cmd == "dhcp-to":
        dhcp_to(*a[1:7])
    elif cmd == "proxy-forged":
        proxy_forged(*a[1:5])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()

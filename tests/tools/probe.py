#!/usr/bin/env python3
"""Raw UDP and TCP probes for pxed's integration tests. They run inside a test namespace and print
what came back on the wire, so the tests can assert it.

  probe.py tftp-abort SERVER FILE [oack|data]  RRQ, then ERROR 8 (after the OACK or after
                                               DATA 1); prints how many packets followed.
  probe.py tftp-stall SERVER FILE SECS         RRQ, ACK the first block, then go quiet.
  probe.py dhcp-garbage SERVER                 malformed DHCP datagrams to port 67.
  probe.py http-slow URL OUT SECS              download URL to OUT, spread over about SECS s.
  probe.py dhcp-verify SERVER GIADDR FILE      for each "mac ip" line of FILE, DISCOVER as a
                                               relay would; print each OFFER as "mac ip".
  probe.py http-raw SERVER PORT REQUEST OUT    send REQUEST (Python escapes, e.g. \\r\\n) on one
                                               TCP connection, write every byte that comes back
                                               to OUT until the server closes (10 s at most);
                                               prints "closed" or "open".
"""
import socket
import sys
import time


def count_after(sock, secs):
    n = 0
    end = time.time() + secs
    while True:
        left = end - time.time()
        if left <= 0:
            return n
        sock.settimeout(left)
        try:
            sock.recvfrom(70000)
            n += 1
        except socket.timeout:
            return n


def tftp_abort(server, name, phase):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    opts = b"tsize\x000\x00blksize\x001468\x00" if phase == "oack" else b""
    s.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00" + opts, (server, 69))
    first, peer = s.recvfrom(70000)
    want = b"\x00\x06" if phase == "oack" else b"\x00\x03\x00\x01"
    if not first.startswith(want):
        print(f"unexpected first packet {first[:16]!r}")
        sys.exit(1)
    oack = ""
    if phase == "oack":
        fields = first[2:].split(b"\x00")[:-1]
        oack = ",".join(f"{k.decode()}={v.decode()}" for k, v in zip(fields[::2], fields[1::2]))
    s.sendto(b"\x00\x05\x00\x08User aborted the transfer\x00", peer)
    # The server's default retransmit timeout is 1 s: 3.5 s would show 3 resends.
    print(f"first={first[:2].hex()} oack={oack} from_port={peer[1]} after_error={count_after(s, 3.5)}")


def tftp_stall(server, name, secs):
    """A real client that stops answering mid-transfer: it ACKs the first block, then goes
    quiet, so pxed holds an answered transfer open until its retries run out."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00", (server, 69))
    first, peer = s.recvfrom(70000)
    s.sendto(b"\x00\x04" + first[2:4], peer)
    print(f"stalling after {first[:4].hex()}", flush=True)
    time.sleep(float(secs))
    print("stall over")


def dhcp_garbage(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    header = bytes([1, 1, 6, 0]) + b"\x12\x34\x56\x78" + bytes(20) + bytes.fromhex("de00000000de") + bytes(10 + 64 + 128)
    cookie = bytes([0x63, 0x82, 0x53, 0x63])
    packets = [
        b"\x01",                                                    # one byte
        bytes(100),                                                 # shorter than BOOTP
        header,                                                     # no magic cookie
        header + cookie + bytes([53, 1, 1, 94, 2, 1, 2, 255]),      # option 94 with 2 bytes
        header + cookie + bytes([53, 1, 1, 93, 1, 0, 255]),         # option 93 with 1 byte
        header + cookie + bytes([53, 1, 1, 50, 200, 1, 2]),         # option longer than packet
        header + cookie + bytes([53, 5]),                           # truncated option
    ]
    for p in packets:
        s.sendto(p, (server, 67))
    print(f"sent {len(packets)} malformed packets")


def dhcp_verify(server, giaddr, path):
    pairs = [line.split() for line in open(path) if line.strip()]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((giaddr, 67))
    gi = socket.inet_aton(giaddr)
    offers = {}

    def discover(i):
        hw = bytes.fromhex(pairs[i][0].replace(":", ""))
        p = bytes([1, 1, 6, 1]) + i.to_bytes(4, "big") + bytes(4)  # op, htype, hlen, hops, xid, secs+flags
        p += bytes(12) + gi + hw + bytes(10 + 64 + 128)            # ciaddr yiaddr siaddr, giaddr, chaddr
        p += bytes([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255])         # cookie, DISCOVER, end
        s.sendto(p, (server, 67))

    # Windows of 100 outstanding DISCOVERs; unanswered ones are asked again, up to 3 times.
    todo = list(range(len(pairs)))
    for _ in range(3):
        for start in range(0, len(todo), 100):
            window = todo[start:start + 100]
            for i in window:
                discover(i)
            collect(s, pairs, offers, window, 2.0)
        todo = [i for i in todo if i not in offers]
        if not todo:
            break
    for mac, ip in offers.values():
        print(mac, ip)


def collect(s, pairs, offers, window, secs):
    end = time.time() + secs
    while any(i not in offers for i in window):
        left = end - time.time()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            return
        xid = int.from_bytes(data[4:8], "big")
        if data[0] == 2 and xid < len(pairs):
            offers[xid] = (pairs[xid][0], socket.inet_ntoa(data[16:20]))


def http_slow(url, out, secs):
    import urllib.request
    with urllib.request.urlopen(url) as r, open(out, "wb") as f:
        total = int(r.headers["Content-Length"])
        chunk = max(1, total // 40)
        print("started", flush=True)
        while True:
            data = r.read(chunk)
            if not data:
                break
            f.write(data)
            time.sleep(float(secs) / 40)
    print("done")


def http_raw(server, port, request, out):
    data = request.encode().decode("unicode_escape").encode("latin-1")
    s = socket.create_connection((server, int(port)), timeout=10)
    s.sendall(data)
    got = b""
    end = time.time() + 10
    state = "open"
    while time.time() < end:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            state = "reset"
            break
        if not chunk:
            state = "closed"
            break
        got += chunk
    with open(out, "wb") as f:
        f.write(got)
    print(state)


def http_many(server, port, path, count):
    """`count` HEAD requests for `path` on one kept-alive connection, pipelined 100 at a
    time; prints how many got a 200."""
    count = int(count)
    s = socket.create_connection((server, int(port)), timeout=10)
    req = f"HEAD {path} HTTP/1.1\r\nHost: {server}\r\n\r\n".encode()
    ok = 0
    buf = b""
    sent = 0
    while sent < count:
        batch = min(100, count - sent)
        s.sendall(req * batch)
        sent += batch
        heads = 0
        while heads < batch:
            chunk = s.recv(1 << 16)
            if not chunk:
                print(ok)
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                head, _, buf = buf.partition(b"\r\n\r\n")
                heads += 1
                ok += head.startswith(b"HTTP/1.1 200")
    print(ok)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "tftp-abort":
        tftp_abort(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "oack")
    elif cmd == "tftp-stall":
        tftp_stall(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "http-slow":
        http_slow(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "dhcp-verify":
        dhcp_verify(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "http-raw":
        http_raw(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "http-many":
        http_many(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "dhcp-garbage":
        dhcp_garbage(sys.argv[2])
    else:
        sys.exit(f"unknown probe {cmd}")

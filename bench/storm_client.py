#!/usr/bin/env python3
"""Boot-storm client for bench/storm: N simulated machines, each doing what a BIOS or UEFI
machine and then its iPXE do, against whatever server answers on the interface.

  storm_client.py IFACE SERVER N RAMP_S UEFI_SHARE MAC_PREFIX EXPECT_SHA256 OUT_JSON

Per machine (MAC = MAC_PREFIX:xx:yy, machine i):
  1. DHCP as PXE firmware: DISCOVER/OFFER/REQUEST/ACK with options 60, 93, 94, 97 (arch 0,
     or 7 for the UEFI share), broadcast flag, retransmitting after 4, 8, 16 and 32 s, and
     starting over after a NAK.
  2. TFTP of the boot file the ACK names, by curl (blksize 1468) from the leased address.
  3. DHCP again as iPXE (option 77 "iPXE", option 175) for the script URL.
  4. HTTP GET of the script, then of the kernel and initrd it names, on one kept-alive
     connection from the leased address, as iPXE does; every byte goes through sha256 and
     is compared with EXPECT_SHA256 (sha256 of kernel || initrd).

The leased addresses are local to the client namespace through a `local` route, so each
machine speaks from its own address, as real machines do. TFTP is curl, an ordinary client.
DHCP is Python because no stock client runs a thousand DHCP clients on one interface, and
HTTP is Python because a thousand curl | sha256sum pipelines on the one client CPU starve
each other past any server's timeouts (a real machine has a CPU of its own), where one
event loop hashing 40 GB with hashlib (1.8 GB/s here) keeps every connection read.

Writes OUT_JSON: {"machines": [{"mac", "ok", "stage", "error", "boot_s", "stage_s"}...],
"wall_s"}, where stage_s has the seconds each stage took.
"""
import asyncio
import hashlib
import json
import os
import socket
import struct
import sys
import time
import urllib.parse

# One DHCP codec for the Python tools: the option encoder and reply parser of the tests'.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
from firmware_dhcp import opt, parse as parse_reply  # noqa: E402


def parse(data):
    """(xid, yiaddr, siaddr, file, options) of a DHCP reply, or None."""
    m = parse_reply(data)
    if m is None:
        return None
    xid, yiaddr, fname, opts = m
    return xid, yiaddr, socket.inet_ntoa(data[20:24]), fname, opts

# PXE firmware retransmits a DISCOVER after 4, 8, 16 and 32 s (PXE 2.1, §2.2.1).
RETRANSMIT_S = (4, 8, 16, 32)
# NAKs come at once, so starting over costs little; real firmware gives up after a few.
NAK_RESTARTS = 10
STAGE_TIMEOUT_S = 600


def message(mac, xid, msg_type, arch, ipxe, extra=b""):
    head = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    head += b"\0" * 16
    head += mac + b"\0" * 10 + b"\0" * 192
    vendor = b"PXEClient:Arch:%05d:UNDI:002001" % arch
    opts = opt(53, bytes([msg_type]))
    opts += opt(57, struct.pack("!H", 1472))
    opts += opt(55, bytes([1, 3, 6, 12, 15, 28, 43, 60, 66, 67, 93, 94, 97, 175]))
    opts += opt(93, struct.pack("!H", arch))
    opts += opt(94, bytes([1, 2, 1]))
    opts += opt(97, b"\0" + mac + bytes(10))
    opts += opt(60, vendor)
    if ipxe:
        opts += opt(77, b"iPXE")
        opts += opt(175, bytes([19, 1, 1]))  # iPXE's "http" feature
    opts += extra
    return head + b"\x63\x82\x53\x63" + opts + b"\xff"


class HttpError(Exception):
    pass


class Http:
    """What iPXE does over HTTP: GETs one after another on one kept-alive connection from the
    machine's own address, opening a new one when the server closed the old between
    requests. Bodies are received into one reusable buffer and go into a sha256 from
    there, never into memory whole: one copy out of the kernel per byte, so that the one
    client CPU spends its time on the check, not on copying (asyncio's streams copy twice)."""

    def __init__(self, ip):
        self.ip = ip
        self.sock = None
        self.at = None
        self.buf = bytearray(1 << 18)
        self.view = memoryview(self.buf)
        self.held = b""  # bytes received past the last response's end

    async def _open(self, host, port):
        self.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # iPXE's receive window is 256 KiB (TCP_MAX_WINDOW_SIZE in src/include/ipxe/tcp.h).
        # Left to Linux's autotuning (up to tcp_rmem's 32 MiB here), a thousand machines
        # sharing the one client kernel would buffer gigabytes and put all of its TCP under
        # memory pressure (tcp_mem), where a real machine's memory is its own.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
        s.setblocking(False)
        s.bind((self.ip, 0))
        try:
            await asyncio.get_running_loop().sock_connect(s, (host, port))
        except OSError:
            s.close()
            raise
        self.sock, self.at, self.held = s, (host, port), b""

    async def _recv(self):
        """The next bytes from the connection (held ones first), b"" once it is closed."""
        if self.held:
            data, self.held = self.held, b""
            return memoryview(data)
        n = await asyncio.get_running_loop().sock_recv_into(self.sock, self.buf)
        return self.view[:n]

    async def _head(self):
        """The response head, or None if the connection closed before a byte of it."""
        head = b""
        while b"\r\n\r\n" not in head:
            if len(head) > 65536:
                raise HttpError("response head over 64 KiB")
            data = await self._recv()
            if not data:
                if head:
                    raise HttpError("connection closed inside a response head")
                return None
            head += bytes(data)
        head, _, rest = head.partition(b"\r\n\r\n")
        self.held = rest
        return head

    async def get(self, url, digest=None):
        u = urllib.parse.urlsplit(url)
        host, port = u.hostname, u.port or 80
        fresh = self.sock is None or self.at != (host, port)
        if fresh:
            await self._open(host, port)
        request = f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: storm\r\n\r\n".encode()
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(self.sock, request)
            head = await self._head()
        except (ConnectionResetError, BrokenPipeError) as e:
            if fresh:
                raise HttpError(f"{u.path}, on a new connection: {e}") from e
            head = None
        if head is None:
            if fresh:
                raise HttpError(f"connection closed before a response to {u.path}")
            # A kept-alive connection the server closed meanwhile (its FIN, or the RST that
            # answers a request sent after it): once more on a new one, as HTTP clients do
            # (RFC 9112 §9.3.1).
            try:
                await self._open(host, port)
                await loop.sock_sendall(self.sock, request)
                head = await self._head()
            except OSError as e:
                raise HttpError(f"{u.path}, retried on a new connection: {e}") from e
            if head is None:
                raise HttpError(f"connection closed before a response to {u.path} (retried)")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise HttpError(f"{u.path}: {lines[0]}")
        headers = dict(l.split(": ", 1) for l in lines[1:] if ": " in l)
        headers = {k.lower(): v for k, v in headers.items()}
        left = int(headers.get("content-length", "-1"))
        if left < 0:
            raise HttpError(f"{u.path}: no content-length")
        body = [] if digest is None else None
        while left > 0:
            try:
                data = await self._recv()
            except OSError as e:
                raise HttpError(f"{u.path}: {e} with {left} bytes to go") from e
            if not data:
                raise HttpError(f"{u.path}: closed with {left} bytes to go")
            if len(data) > left:  # a pipelined byte past this body: keep it for the next
                self.held = bytes(data[left:])
                data = data[:left]
            left -= len(data)
            if digest is None:
                body.append(bytes(data))
            else:
                digest.update(data)
            # sock_recv_into returns at once while bytes are waiting, so without this one
            # connection that a fast server keeps full would hold the loop for its whole file
            # while the others go unread for tens of seconds (into the servers' stall and
            # idle timeouts). Each machine has a CPU of its own: every connection gets a turn.
            await asyncio.sleep(0)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return b"".join(body) if body is not None else b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Dhcp:
    """One socket on port 68 for every machine; replies are matched by xid. Each wake-up
    reads every datagram waiting (asyncio's datagram transport reads one per turn of the
    loop, which with a thousand busy HTTP connections starves DHCP for seconds), and a
    reply that comes after a retransmission still counts, as it does for firmware."""

    def __init__(self, sock):
        self.sock = sock
        self.waiting = {}
        asyncio.get_running_loop().add_reader(sock, self._drain)

    def _drain(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            m = parse(data)
            if m is None:
                continue
            kind = m[4].get(53, b"\0")[0]
            fut = self.waiting.get((m[0], kind))
            if fut is not None and not fut.done():
                fut.set_result(m)

    def sendto(self, packet, addr):
        try:
            self.sock.sendto(packet, addr)
        except (BlockingIOError, InterruptedError):
            pass  # lost, as on a wire; the retransmission covers it

    async def exchange(self, transport, packet, xid, kinds):
        """Sends `packet` until a reply of one of `kinds` (message types) comes back."""
        fut = asyncio.get_running_loop().create_future()
        for kind in kinds:
            self.waiting[(xid, kind)] = fut
        try:
            for wait in RETRANSMIT_S:
                transport.sendto(packet, ("255.255.255.255", 67))
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                except asyncio.TimeoutError:
                    continue
            return None
        finally:
            for kind in kinds:
                self.waiting.pop((xid, kind), None)


async def dora(proto, transport, mac, xid, arch, ipxe):
    """DISCOVER, OFFER, REQUEST, ACK; a NAK starts over with a new DISCOVER, as firmware
    does (RFC 2131 §4.4.1), up to NAK_RESTARTS times."""
    for attempt in range(NAK_RESTARTS + 1):
        x = (xid + attempt) & 0xFFFFFFFF
        offer = await proto.exchange(transport, message(mac, x, 1, arch, ipxe), x, (2,))
        if offer is None:
            return None, "no OFFER"
        server = offer[4].get(54, b"\0\0\0\0")
        req = opt(50, socket.inet_aton(offer[1])) + opt(54, server)
        reply = await proto.exchange(transport, message(mac, x, 3, arch, ipxe, req), x, (5, 6))
        if reply is None:
            return None, "no ACK"
        if reply[4].get(53) == bytes([5]):
            return reply, None
        why = reply[4].get(56, b"").decode(errors="replace")
    return None, f"NAK after every OFFER ({why})"


def text_of(field):
    """A boot file name from option 67 or the file field: up to the first NUL."""
    return field.split(b"\0")[0].decode(errors="replace")


async def run(cmd, timeout):
    p = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(p.communicate(), timeout)
    except asyncio.TimeoutError:
        p.kill()
        await p.wait()
        return 124, b"", b"timed out"
    return p.returncode, out, err


async def machine(i, args, proto, transport, sem_start, results):
    iface, server, n, ramp, uefi_share, prefix, expect = args
    await asyncio.sleep(ramp * i / max(1, n))
    mac = bytes.fromhex(prefix.replace(":", "")) + struct.pack("!H", i)
    mac_text = ":".join(f"{b:02x}" for b in mac)
    arch = 7 if (i % 100) < uefi_share * 100 else 0
    rec = {"mac": mac_text, "arch": arch, "ok": False, "stage": None, "error": None}
    t0 = time.monotonic()
    rec["stage_s"] = {}
    last = [t0]

    def lap(stage):
        now = time.monotonic()
        rec["stage_s"][stage] = now - last[0]
        last[0] = now

    xid = struct.unpack("!I", os.urandom(4))[0]
    try:
        ack, err = await dora(proto, transport, mac, xid, arch, False)
        lap("dhcp-pxe")
        if ack is None:
            rec.update(stage="dhcp-pxe", error=err)
            return
        ip = ack[1]
        fname = text_of(ack[4].get(67, ack[3]))
        tftp_server = ack[2] if ack[2] != "0.0.0.0" else server
        code, out, err = await run(
            ["curl", "-sS", "--fail", "--interface", ip, "--tftp-blksize", "1468",
             "--max-time", "300", "-o", "/dev/null", "-w", "%{size_download}",
             f"tftp://{tftp_server}/{fname}"],
            STAGE_TIMEOUT_S,
        )
        if code != 0 or int(out or b"0") == 0:
            rec.update(stage="tftp", error=f"curl {code}: {err.decode(errors='replace').strip()[:200]}")
            return
        rec["first_stage_bytes"] = int(out)
        lap("tftp")
        ack, err = await dora(proto, transport, mac, xid ^ 0x5A5A5A5A, arch, True)
        lap("dhcp-ipxe")
        if ack is None:
            rec.update(stage="dhcp-ipxe", error=err)
            return
        ip = ack[1]
        url = text_of(ack[4].get(67, ack[3]))
        conn = Http(ip)
        try:
            rec["stage"] = "http-script"
            script = await asyncio.wait_for(conn.get(url), 120)
            if not script.startswith(b"#!ipxe"):
                rec.update(error=f"not an iPXE script: {script[:40]!r}")
                return
            urls = []
            for line in script.decode(errors="replace").splitlines():
                words = line.split()
                if words and words[0] in ("kernel", "initrd"):
                    target = next((w for w in words[1:] if not w.startswith("--")), "")
                    urls.append(urllib.parse.urljoin(url, target))
            if len(urls) != 2:
                rec.update(error=f"script names {len(urls)} files")
                return
            lap("http-script")
            rec["stage"] = "http-files"
            digest = hashlib.sha256()
            for u in urls:
                await asyncio.wait_for(conn.get(u, digest), STAGE_TIMEOUT_S)
            if digest.hexdigest() != expect:
                rec.update(error=f"sha256 {digest.hexdigest()[:16]} is not the files'")
                return
            lap("http-files")
            rec["stage"] = None
        except (OSError, asyncio.TimeoutError, HttpError) as e:
            rec.update(error=f"{type(e).__name__}: {e}")
            return
        finally:
            conn.close()
        rec["ok"] = True
    except Exception as e:  # a client bug is reported as one, never as a server's failure
        rec.update(stage=rec["stage"] or "client", error=f"client error: {e!r}")
    finally:
        rec["boot_s"] = time.monotonic() - t0
        rec["done_at"] = time.monotonic()
        results.append(rec)


async def main():
    iface, server, n, ramp, uefi_share, prefix, expect, out = sys.argv[1:9]
    n, ramp, uefi_share = int(n), float(ramp), float(uefi_share)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", 68))
    s.setblocking(False)
    proto = Dhcp(s)
    transport = proto
    results = []
    args = (iface, server, n, ramp, uefi_share, prefix, expect)
    t0 = time.monotonic()
    await asyncio.gather(*(machine(i, args, proto, transport, None, results) for i in range(n)))
    wall = max((r["done_at"] for r in results if r["ok"]), default=time.monotonic()) - t0
    for r in results:
        r.pop("done_at", None)
    with open(out, "w") as f:
        json.dump({"machines": results, "wall_s": wall}, f)


if __name__ == "__main__":
    asyncio.run(main())

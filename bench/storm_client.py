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

Writes OUT_JSON: {"machines": [{"mac", "ok", "stage", "error", "boot_s"}...], "wall_s"}.
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
    requests. Bodies go into a sha256 as they arrive, never into memory whole."""

    def __init__(self, ip):
        self.ip = ip
        self.conn = None
        self.at = None

    async def _open(self, host, port):
        self.close()
        self.conn = await asyncio.open_connection(host, port, local_addr=(self.ip, 0))
        self.at = (host, port)

    async def get(self, url, digest=None):
        u = urllib.parse.urlsplit(url)
        host, port = u.hostname, u.port or 80
        fresh = self.conn is None or self.at != (host, port)
        if fresh:
            await self._open(host, port)
        request = f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: storm\r\n\r\n"
        reader, writer = self.conn
        writer.write(request.encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if fresh or e.partial:
                raise HttpError(f"connection closed before a response to {u.path}")
            # A kept-alive connection the server closed meanwhile: once more on a new one.
            await self._open(host, port)
            reader, writer = self.conn
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
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
            chunk = await reader.read(min(left, 1 << 18))
            if not chunk:
                raise HttpError(f"{u.path}: closed with {left} bytes to go")
            left -= len(chunk)
            if digest is None:
                body.append(chunk)
            else:
                digest.update(chunk)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return b"".join(body) if body is not None else b""

    def close(self):
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


class Dhcp(asyncio.DatagramProtocol):
    """One socket on port 68 for every machine; replies are matched by xid."""

    def __init__(self):
        self.waiting = {}

    def datagram_received(self, data, addr):
        m = parse(data)
        if m is None:
            return
        kind = m[4].get(53, b"\0")[0]
        fut = self.waiting.get((m[0], kind))
        if fut is not None and not fut.done():
            fut.set_result(m)

    async def exchange(self, transport, packet, xid, kinds):
        """Sends `packet` until a reply of one of `kinds` (message types) comes back."""
        loop = asyncio.get_running_loop()
        for wait in RETRANSMIT_S:
            fut = loop.create_future()
            for kind in kinds:
                self.waiting[(xid, kind)] = fut
            transport.sendto(packet, ("255.255.255.255", 67))
            try:
                return await asyncio.wait_for(fut, wait)
            except asyncio.TimeoutError:
                continue
            finally:
                for kind in kinds:
                    self.waiting.pop((xid, kind), None)
        return None


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
    xid = struct.unpack("!I", os.urandom(4))[0]
    try:
        ack, err = await dora(proto, transport, mac, xid, arch, False)
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
        ack, err = await dora(proto, transport, mac, xid ^ 0x5A5A5A5A, arch, True)
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
            rec["stage"] = "http-files"
            digest = hashlib.sha256()
            for u in urls:
                await asyncio.wait_for(conn.get(u, digest), STAGE_TIMEOUT_S)
            if digest.hexdigest() != expect:
                rec.update(error=f"sha256 {digest.hexdigest()[:16]} is not the files'")
                return
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
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", 68))
    transport, proto = await loop.create_datagram_endpoint(Dhcp, sock=s)
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

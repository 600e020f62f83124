#!/usr/bin/env python3
"""A DHCPv4 client that sends what UEFI firmware sends, for the tests of the boot chains that
no QEMU firmware here can run (UEFI HTTP Boot) and for leases that TFTP tests need.

  firmware_dhcp.py IFACE MAC KIND

KIND is one of
  http-x64    UEFI HTTP Boot, x64 (arch 16), as EDK2's HttpBootDxe sends it (UEFI 2.x §24.7):
              vendor class "HTTPClient:Arch:00016:UNDI:003001", options 93, 94 and 97
  http-arm64  the same for arm64 (arch 19)
  pxe-x64     UEFI PXE, x64 (arch 7), as OVMF's PXE base code sends it
  pxe-arm64   UEFI PXE, arm64 (arch 11)

It runs DISCOVER, OFFER, REQUEST, ACK on IFACE (which has no address yet) with the broadcast
flag, and prints one line:
  ACK ip=YIADDR server=SERVER_ID vendor=OPTION_60 file=OPTION_67_OR_FILE
It exits 1 when no ACK comes within 10 s.
"""
import os
import socket
import struct
import sys
import time

KINDS = {
    "http-x64": (16, b"HTTPClient:Arch:00016:UNDI:003001"),
    "http-arm64": (19, b"HTTPClient:Arch:00019:UNDI:003001"),
    "pxe-x64": (7, b"PXEClient:Arch:00007:UNDI:003016"),
    "pxe-arm64": (11, b"PXEClient:Arch:00011:UNDI:003000"),
}


def opt(code, value):
    return bytes([code, len(value)]) + value


def message(mac, xid, msg_type, arch, vendor, extra=b""):
    head = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    head += b"\0" * 16  # ciaddr, yiaddr, siaddr, giaddr
    head += mac + b"\0" * 10 + b"\0" * 192
    uuid = bytes(range(16))
    opts = opt(53, bytes([msg_type]))
    opts += opt(57, struct.pack("!H", 1472))
    opts += opt(55, bytes([1, 3, 6, 12, 15, 28, 43, 60, 66, 67, 93, 94, 97]))
    opts += opt(93, struct.pack("!H", arch))
    opts += opt(94, bytes([1, 3, 1]))  # UNDI 3.1
    opts += opt(97, b"\0" + uuid)
    opts += opt(60, vendor)
    opts += extra
    return head + b"\x63\x82\x53\x63" + opts + b"\xff"


def parse(data):
    if len(data) < 240 or data[236:240] != b"\x63\x82\x53\x63":
        return None
    xid = struct.unpack("!I", data[4:8])[0]
    yiaddr = socket.inet_ntoa(data[16:20])
    fname = data[108:236].split(b"\0")[0]
    opts = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, length = data[i], data[i + 1]
        opts[code] = data[i + 2 : i + 2 + length]
        i += 2 + length
    return xid, yiaddr, fname, opts


def wait_for(sock, xid, msg_type, deadline):
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            break
        m = parse(data)
        if m and m[0] == xid and m[3].get(53) == bytes([msg_type]):
            return m
    return None


def main():
    iface, mac_text, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    mac = bytes(int(b, 16) for b in mac_text.split(":"))
    arch, vendor = KINDS[kind]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.bind(("0.0.0.0", 68))
    xid = struct.unpack("!I", os.urandom(4))[0]
    deadline = time.time() + 10
    offer = None
    while offer is None and time.time() < deadline:
        s.sendto(message(mac, xid, 1, arch, vendor), ("255.255.255.255", 67))
        offer = wait_for(s, xid, 2, min(deadline, time.time() + 2))
    if offer is None:
        print("no OFFER")
        sys.exit(1)
    server = offer[3].get(54, b"\0\0\0\0")
    request = opt(50, socket.inet_aton(offer[1])) + opt(54, server)
    ack = None
    while ack is None and time.time() < deadline:
        s.sendto(message(mac, xid, 3, arch, vendor, request), ("255.255.255.255", 67))
        ack = wait_for(s, xid, 5, min(deadline, time.time() + 2))
    if ack is None:
        print("no ACK")
        sys.exit(1)
    _, yiaddr, fname, opts = ack
    file = opts.get(67, fname).decode(errors="replace")
    vendor_reply = opts.get(60, b"").decode(errors="replace")
    print(f"ACK ip={yiaddr} server={socket.inet_ntoa(server)} vendor={vendor_reply} file={file}")


if __name__ == "__main__":
    main()

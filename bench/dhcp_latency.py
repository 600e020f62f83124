#!/usr/bin/env python3
"""Server-side DHCP latency from a pcap taken on the server's interface: the time from a
DISCOVER (REQUEST) arriving to its OFFER (ACK) leaving, matched by xid and client MAC.
Prints "p50_do p99_do p50_ra p99_ra" in milliseconds, or "- - - -" if nothing matched.

Usage: dhcp_latency.py FILE.pcap
"""
import struct
import sys


def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        dhcp = udp[8:]
        if len(dhcp) < 244:
            continue
        mtype = None
        i = 240
        while i + 1 < len(dhcp):
            code = dhcp[i]
            if code == 255:
                break
            if code == 0:
                i += 1
                continue
            length = dhcp[i + 1]
            if code == 53 and length == 1:
                mtype = dhcp[i + 2]
                break
            i += 2 + length
        t = sec + frac / (1e9 if nano else 1e6)
        yield t, mtype, bytes(dhcp[4:8]) + bytes(dhcp[28:34])


def pct(values, p):
    if not values:
        return "-"
    values.sort()
    return "%.3f" % (1000 * values[min(len(values) - 1, int(len(values) * p))])


def main():
    asked = {}
    do, ra = [], []
    for t, mtype, key in packets(sys.argv[1]):
        if mtype in (1, 3):  # DISCOVER, REQUEST: keep the first copy
            asked.setdefault((mtype, key), t)
        elif mtype in (2, 5):  # OFFER, ACK
            start = asked.pop((mtype - 1 if mtype == 2 else 3, key), None)
            if start is not None:
                (do if mtype == 2 else ra).append(t - start)
    print(pct(do, 0.50), pct(do, 0.99), pct(ra, 0.50), pct(ra, 0.99))


if __name__ == "__main__":
    main()

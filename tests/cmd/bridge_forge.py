#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Hand-made mcl datagrams (docs/wire-format.md, version 1) for tests/cmd/test_bridge.sh.

Run only inside scripts/netns.sh: it sends to multicast groups on lo with TTL 0.

  bridge_forge.py forge  --real G:P --forged G:P --id HEX [-n N] [--quiet SEC]
      The attack on a bridge joining island REAL (where the publisher HEX lives) and island
      FORGED: first one datagram carrying the publisher's id (seq 0, topic "forged") on
      FORGED, then, once the bridge has carried that forgery to REAL (this program sees it
      there, which also shows that a bridge forwards what anyone injects) and SEC seconds
      (default 2.5) have passed, the publisher's genuine messages seq 1..N-1 (topic "real")
      on REAL, one every millisecond, from another socket (another sender address).
      The pause is part of the scenario: listeners bind a publisher id to the address it was
      first heard from (the bridge's, for the forgery's copy) and follow it elsewhere only
      once that address has been quiet for 2 s (lib/raw/rx.c, docs/security.md).
      Exit 0; 3 when the forgery never reached REAL within 5 s.
  bridge_forge.py flood  --group G:P --base HEX [-n N]
      N datagrams on G, each from a different publisher id (BASE, BASE+1, ...), seq 0, topic
      "flood", in bursts of 250 a few milliseconds apart (bounded: N at most 100000).
"""
import argparse
import select
import socket
import struct
import sys
import time

LO = "127.0.0.1"


def datagram(publisher, seq, topic, payload):
    t = topic.encode()
    head = b"MCL" + bytes([1, 0, 0]) + struct.pack(">HQ", 1, publisher)
    return head + struct.pack(">QHI", seq, len(t), len(payload)) + t + payload


def parse_group(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def sender():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO))
    return s


def receiver(group):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group[0], group[1]))
    mreq = socket.inet_aton(group[0]) + socket.inet_aton(LO)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


def header_of(d):
    """(publisher, first seq) of a well-formed unfragmented datagram, else None."""
    if len(d) < 30 or d[:4] != b"MCL\x01" or d[4] != 0:
        return None
    (publisher,) = struct.unpack(">Q", d[8:16])
    (seq,) = struct.unpack(">Q", d[16:24])
    return publisher, seq


def forge(a):
    real, forged = parse_group(a.real), parse_group(a.forged)
    pid = int(a.id, 16)
    rx = receiver(real)
    tx = sender()
    tx.sendto(datagram(pid, 0, "forged", b"not from the publisher"), forged)
    deadline = time.monotonic() + 5
    crossed = False
    while not crossed and time.monotonic() < deadline:
        r, _, _ = select.select([rx], [], [], 0.1)
        if r:
            crossed = header_of(rx.recv(70000)) == (pid, 0)
    if not crossed:
        print("bridge_forge: the forgery never reached the real island", file=sys.stderr)
        return 3
    time.sleep(a.quiet)
    genuine = sender()
    for seq in range(1, a.n):
        genuine.sendto(datagram(pid, seq, "real", b"genuine %d" % seq), real)
        time.sleep(0.001)
    return 0


def flood(a):
    group = parse_group(a.group)
    base = int(a.base, 16)
    n = min(a.n, 100000)
    tx = sender()
    for i in range(n):
        tx.sendto(datagram((base + i) & (2**64 - 1), 0, "flood", b"x"), group)
        if i % 250 == 249:
            time.sleep(0.003)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forge")
    f.add_argument("--real", required=True)
    f.add_argument("--forged", required=True)
    f.add_argument("--id", required=True)
    f.add_argument("-n", type=int, default=500)
    f.add_argument("--quiet", type=float, default=2.5)
    g = sub.add_parser("flood")
    g.add_argument("--group", required=True)
    g.add_argument("--base", required=True)
    g.add_argument("-n", type=int, default=12000)
    a = p.parse_args()
    return forge(a) if a.cmd == "forge" else flood(a)


if __name__ == "__main__":
    sys.exit(main())

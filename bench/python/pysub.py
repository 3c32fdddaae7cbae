# SPDX-License-Identifier: BSD-3-Clause
"""The Python subscriber rows of scripts/bench.sh (ONLY=python), one case per run:

  pysub.py mcl    SENDER URL COUNT SIZE  a Python mcl.RawListener (callback) on a Python MCL
                                         compatibility connection: payloads msgpack-decoded
  pysub.py pure   SENDER URL COUNT SIZE  the pure-Python alternative: socket.recvfrom() and
                                         msgpack.unpackb() in a loop (Debian python3-msgpack),
                                         the socket's receive buffer as large as mcl's
  pysub.py queued SENDER URL COUNT SIZE  a Python mcl.QueuedListener, default settings, whose
                                         callback stalls 20 ms every 1,000 messages

SENDER is bench/pysend.c's binary; it sends COUNT payloads of SIZE bytes at full rate from core 1
(this process runs on core 0). Prints one line:
  BENCH case=py-sub impl=.. count=N received=R lost=L seconds=S msg_per_s=..
(lost: what the listener counted, "-" for the pure loop, which cannot tell).
"""
import os
import socket
import struct
import subprocess
import sys
import time


def main():
    mode, sender, url, count, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    if mode == 'pure':
        received, lost, secs = pure(sender, url, count, size)
    else:
        received, lost, secs = with_mcl(mode, sender, url, count, size)
    print('BENCH case=py-sub impl=%s count=%d received=%d lost=%s seconds=%.3f msg_per_s=%.0f'
          % (mode, count, received, lost, secs, received / secs if secs > 0 else 0))


def send(sender, kind, url, count, size):
    return subprocess.Popen([sender, kind, url, str(count), str(size)], stdout=subprocess.DEVNULL)


def pure(sender, url, count, size):
    import msgpack
    import mcl
    conn = mcl.Connection(url)
    group, port, rcvbuf = conn.group, conn.port, conn.rcvbuf
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root, in the netns)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((group, port))
    mreq = struct.pack('4s4s', socket.inet_aton(group), socket.inet_aton('127.0.0.1'))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(1.0)
    p = send(sender, 'raw', url, count, size)
    n = 0
    first = last = None
    unpackb = msgpack.unpackb
    recvfrom = s.recvfrom
    try:
        while n < count:
            data, _ = recvfrom(65536)
            unpackb(data)
            last = time.monotonic()
            if first is None:
                first = last
            n += 1
    except socket.timeout:
        pass
    p.wait(60)
    s.close()
    return n, '-', (last - first) if n > 1 else 0.0


def with_mcl(mode, sender, url, count, size):
    import mcl
    from mcl.network.udp import Connection
    conn = Connection(url)
    box = {'n': 0, 'first': None, 'last': None}

    def on_msg(d):
        box['n'] += 1
        box['last'] = time.monotonic()
        if box['first'] is None:
            box['first'] = box['last']
        if mode == 'queued' and box['n'] % 1000 == 0:
            time.sleep(0.02)

    listener = mcl.QueuedListener(conn) if mode == 'queued' else mcl.RawListener(conn)
    listener.subscribe(on_msg)
    p = send(sender, 'mcl', url, count, size)
    p.wait(60)
    # Done when every message is accounted for, or after 2 s without progress.
    seen, since, deadline = -1, time.monotonic(), time.monotonic() + 120
    while time.monotonic() < deadline:
        n = box['n']
        if n + listener.lost >= count:
            break
        if n != seen:
            seen, since = n, time.monotonic()
        elif time.monotonic() - since > 2.0:
            break
        time.sleep(0.05)
    lost = listener.lost
    listener.close()
    n = box['n']
    return n, lost, (box['last'] - box['first']) if n > 1 else 0.0


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/ (valid packets and streams): run from the repository root
after a format change. The files are committed; nothing runs this in the tests."""
import os
import struct


def native(kind, status=0, channel=0, tag=0, rtype=0, flags=0, msg=b"", payload=b""):
    return struct.pack(">BBHIIIIHH", 1, kind, status, channel, tag, rtype, flags, len(msg), 0) + msg + payload


def bsuint(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def cs(tag, is_request, channel=0, rtype=None, flags=0, payload=b""):
    f = flags << 2 | (2 if is_request else 0) | (1 if channel else 0)
    b = bsuint(tag) + bsuint(f)
    if channel:
        b += bsuint(channel)
    if is_request:
        b += bsuint(rtype)
    return b + payload


def frame_native(p):
    return struct.pack(">I", len(p)) + p


def frame_cs(p):
    return bsuint(len(p)) + p


REQ, RSP, CAN, ERQ, EOF, PING, PONG = range(1, 8)
natives = {
    "request": native(REQ, tag=2, rtype=1, flags=7, payload=b"hi"),
    "request_big": native(REQ, channel=5, tag=0xFFFFFFFF, rtype=3, payload=bytes(range(256)) * 4),
    "response": native(RSP, channel=3, tag=9, flags=1, payload=b"ok"),
    "refusal": native(RSP, status=12, tag=2, msg=b"no request handler"),
    "status_and_payload": native(RSP, status=22, channel=1, tag=5, msg=b"EOF", payload=b"\x01\x02"),
    "cancel": native(CAN, channel=3, tag=9),
    "erq": native(ERQ),
    "eof": native(EOF),
    "ping": native(PING, tag=1, payload=struct.pack(">Q", 1337)),
    "pong": native(PONG, tag=1),
}
css = {
    "cs_request": cs(2, True, rtype=1),
    "cs_request_flags": cs(3, True, rtype=2, flags=1, payload=b"\x7f"),
    "cs_request_channel": cs(300, True, channel=4, rtype=9, flags=0x80, payload=b"a" * 127),
    "cs_response": cs(2, False, flags=(6 << 1) | 1, payload=b"hello"),
    "cs_rejection": cs(17, False, payload=b"exception during handler"),
    "cs_eof": cs(0, True, rtype=0),
    "cs_erq": cs(1, True, rtype=0),
}


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


for name, p in natives.items():
    write("fuzz/corpus/pwire", name, b"\x00" + p)
for name, p in css.items():
    write("fuzz/corpus/pwire", name, b"\x01" + p)

# Streams: what a peer might say to a stream with (mode bit 1) or without requests in flight.
# The stream's own first requests use tags 1.. on channel 0 (native) and 2.. (cs).
answers = b"".join(frame_native(native(RSP, tag=t, payload=b"r")) for t in range(1, 9))
reqs = b"".join(frame_native(native(REQ, channel=c, tag=t, rtype=t % 3)) for c in (0, 7) for t in range(1, 6))
write("fuzz/corpus/pstream", "native_requests", b"\x00" + reqs + frame_native(natives["erq"]) + frame_native(natives["eof"]))
write("fuzz/corpus/pstream", "native_answers", b"\x02" + answers + frame_native(natives["eof"]))
write("fuzz/corpus/pstream", "native_mixed", b"\x02" + frame_native(natives["ping"]) + reqs[:200] +
      frame_native(native(CAN, channel=0, tag=2)) + answers[:64] + frame_native(natives["refusal"]))
write("fuzz/corpus/pstream", "native_tag_in_use", b"\x00" + frame_native(native(REQ, tag=4, rtype=2)) * 3)
cs_answers = b"".join(frame_cs(cs(t, False, flags=1, payload=b"r")) for t in range(2, 10))
cs_reqs = b"".join(frame_cs(cs(t, True, rtype=1 + t % 3)) for t in range(2, 8))
write("fuzz/corpus/pstream", "cs_requests", b"\x01" + cs_reqs + frame_cs(css["cs_erq"]) + frame_cs(css["cs_eof"]))
write("fuzz/corpus/pstream", "cs_answers", b"\x03" + cs_answers + frame_cs(css["cs_rejection"]) + frame_cs(css["cs_eof"]))
write("fuzz/corpus/pstream", "cs_channel", b"\x01" + frame_cs(css["cs_request_channel"]))

#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpora of fuzz/ (packets, streams, RPC calls and descriptions, msgpack
objects, datagrams, JSON texts and URLs): run from the repository root after a format change.
The files are committed; nothing runs this in the tests."""
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


# RPC (fuzz_rpc.c): the first byte is the mode. A small msgpack encoder (the shortest forms,
# as msgpack-c writes them); str is text, bytes is binary.
def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        for lo, hi, tag, fmt in ((0, 0xFF, 0xCC, ">B"), (0, 0xFFFF, 0xCD, ">H"), (0, 0xFFFFFFFF, 0xCE, ">I"),
                                 (0, 2**64 - 1, 0xCF, ">Q"), (-128, -1, 0xD0, ">b"), (-32768, -1, 0xD1, ">h"),
                                 (-2**31, -1, 0xD2, ">i"), (-2**63, -1, 0xD3, ">q")):
            if lo <= v <= hi:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        return (bytes([0xA0 | n]) if n < 32 else b"\xd9" + bytes([n]) if n < 256 else b"\xda" + struct.pack(">H", n)) + b
    if isinstance(v, bytes):
        n = len(v)
        return (b"\xc4" + bytes([n]) if n < 256 else b"\xc5" + struct.pack(">H", n)) + v
    if isinstance(v, list):
        n = len(v)
        return (bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        return (bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)) + b"".join(
            mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


NO_BUDGET = 0xFFFFFFFF


def env(budget, args, version=1):
    return struct.pack(">BBHI", version, 0, 0, budget) + mp(args)


def nested(depth):  # depth containers in all, innermost empty
    v = []
    for i in range(depth - 1):
        v = {"k": v} if i % 2 else [v]
    return v


def field(name, ftype, optional=False, default=None, doc=None):
    f = {"name": name, "type": ftype}
    if optional:
        f["optional"] = True
    if default is not None:
        f["default"] = default
    if doc:
        f["doc"] = doc
    return f


def method(mid, name, doc=None, flags=0, args=(), result=()):
    m = {"id": mid, "name": name}
    if doc:
        m["doc"] = doc
    if flags:
        m["flags"] = flags
    m["args"] = list(args)
    m["result"] = list(result)
    return m


# A description as a service makes it (make_description in lib/rpc/service.c).
description = mp({
    "protocol": 1, "service": "fuzz", "doc": "a service for strangers", "max_args": 1 << 20,
    "methods": [
        method(1, "calc.add", "a + b, scaled",
               args=[field("a", "float", doc="first"), field("b", "float", doc="second"),
                     field("scale", "float", True, 1, "multiplies the sum")],
               result=[field("sum", "float")]),
        method(2, "util.echo", "returns its arguments", flags=3),
        method(3, "wait", "deferred", flags=2, args=[field("tag", "int", True, 1)]),
        method(5, "kinds", "every kind of field",
               args=[field("a", "float"), field("n", "int", True, 7), field("s", "str", True),
                     field("b", "bin", True), field("l", "array", True, [1, "x", b"\x00\x01"]),
                     field("m", "map", True), field("ok", "bool", True, False), field("z", "nil", True),
                     field("x", "any", True)],
               result=[field("fields", "int")]),
        method(0xFFFFFF01, "rpc.describe", "the service's methods, with ids, schemas and docs",
               result=[field("protocol", "int", doc="1"), field("service", "str"), field("doc", "str", True),
                       field("max_args", "int"), field("methods", "array")]),
        method(0xFFFFFF02, "rpc.stats", "per-method counters",
               args=[field("method", "str", True, doc="only this method")],
               result=[field("methods", "array"), field("unknown", "int"), field("malformed", "int")]),
    ]})
small_description = mp({"protocol": 1, "service": "s", "max_args": 16,
                        "methods": [method(9, "only", args=[field("v", "int")])]})

R = "fuzz/corpus/rpc"
# mode 0: envelopes, argument maps of every kind, descriptions.
write(R, "env_add", b"\x00" + env(1000, {"a": 1.5, "n": 3}))
write(R, "env_kinds", b"\x00" + env(NO_BUDGET, {
    "a": 2, "s": "text", "b": b"\x00\x01", "l": [1, -2, 3.25, None, True, 2**64 - 1, -2**63],
    "m": {"k": {"deep": [[]]}}, "ok": False, "z": None, "x": -70000}))
write(R, "env_missing", b"\x00" + env(5, {"n": 1}))
write(R, "env_wrong_kind", b"\x00" + env(5, {"a": "one", "n": 1.5}))
write(R, "env_undeclared", b"\x00" + env(5, {"a": 1, "extra": [1]}))
write(R, "env_empty", b"\x00" + env(0, {}))
write(R, "env_not_map", b"\x00" + struct.pack(">BBHI", 1, 0, 0, 9) + mp([1, 2]))
write(R, "env_bad_version", b"\x00" + env(5, {"a": 1}, version=2))
write(R, "env_reserved", b"\x00" + b"\x01\x00\x01\x00\x00\x00\x00\x05\x80")
write(R, "env_nested", b"\x00" + env(7, {"a": 1, "x": nested(31)}))
write(R, "env_too_deep", b"\x00" + env(7, {"a": 1, "x": nested(32)}))
write(R, "env_dup_keys", b"\x00" + struct.pack(">BBHI", 1, 0, 0, 9) + b"\x82\xa1a\x01\xa1a\x02")
write(R, "env_loose_ints", b"\x00" + struct.pack(">BBHI", 1, 0, 0, 9) + b"\x82\xa1a\xca\x3f\xc0\x00\x00\xa1n\xd3" +
      struct.pack(">q", 5))  # a float32, a positive int64: said again shorter
write(R, "desc_service", b"\x00" + description)
write(R, "desc_small", b"\x00" + small_description)
write(R, "desc_dup_id", b"\x00" + mp({"protocol": 1, "service": "d", "max_args": 1,
                                       "methods": [method(4, "a"), method(4, "b")]}))
write(R, "desc_bad_field", b"\x00" + mp({"protocol": 1, "service": "d", "max_args": 1, "methods": [
    method(4, "a", args=[field("x", "float", False, "not a float"), field("x", "int")])]}))
write(R, "details", b"\x00" + mp({"field": "a"}))

# mode 1: requests [sel][ctl][len][payload] to a service. sel: 0 calc.add, 1 util.echo, 2 wait,
# 3 bad.result, 4 kinds, 5 no.reply, 6 rpc.describe, 7 rpc.stats, 8.. unknown ids. ctl bits 0-1:
# the header (0 none, 1 no budget, 2 budget 0, 3 40 ms), 2-3 the deadline, 4 cancel, 5 channel 1.


def req(sel, ctl, payload=b""):
    assert len(payload) < 255
    return bytes([sel, ctl, len(payload)]) + payload


def req_rest(sel, ctl, payload):
    return bytes([sel, ctl, 255]) + payload


write(R, "svc_add", b"\x01" + req(0, 1, mp({"a": 1, "b": 2})) + req(0, 3, mp({"a": 1.5, "b": 2, "scale": 3})) +
      req(0, 1, mp({"a": "x", "b": 2})) + req(0, 1, mp({"b": 1})) + req(0, 1, mp({"a": 1, "b": 2, "c": 3})))
write(R, "svc_wait", b"\x01" + b"".join(req(2, 1, mp({"tag": t})) for t in range(6)) +
      req(2, 0x11, mp({"tag": 2})) + req(2, (1 << 2) | 1, mp({"tag": 2})))
write(R, "svc_wait_default", b"\x01" + req(2, 1) + req(2, 3, mp({"tag": -1})) + req(2, 0xD, mp({"tag": 2})))
write(R, "svc_builtins", b"\x01" + req(6, 1) + req(7, 1) + req(7, 1, mp({"method": "calc.add"})) +
      req(7, 1, mp({"method": "nope"})) + req(6, 1, mp({"x": 1})) + req(7, 1, mp({"method": 1})))
write(R, "svc_refusals", b"\x01" + req(9, 1) + req(8, 1) + req(10, 1) + req(11, 1) + req(0, 0, b"junk") +
      req(0, 2, mp({"a": 1, "b": 2})) + req(0, 0x21, mp({"a": 1, "b": 2})) +
      req_rest(0, 1, mp({"a": 1, "b": 2, "pad": "x" * 230})))
write(R, "svc_kinds", b"\x01" + req(4, 1, mp({"a": 1, "s": "t", "b": b"\x01", "m": {}, "x": [None]})) +
      req(4, 1, mp({"a": 1, "z": 0})) + req(1, 1, mp({"x": {"y": [1, 2.5, "z", b"w"]}})) +
      req(1, 1, mp({"x": nested(31)})) + req(3, 1) + req(5, 1) + req(1, 0, b"\x01\x00\x00\x00\x00\x00\x00\x07\xc1"))

# mode 2: [describe status][length, 2 bytes][description][call status][sel][reply].


def cli(desc, reply=b"", dst=0, rst=0, sel=0):
    return b"\x02" + bytes([dst]) + struct.pack(">H", len(desc)) + desc + bytes([rst, sel]) + reply


write(R, "cli_ok", cli(description, mp({"sum": 3.0})))
write(R, "cli_ok_kinds", cli(description, mp({"fields": 9}), sel=3))
write(R, "cli_refusal", cli(description, mp({"field": "a"}), rst=3, sel=1))
write(R, "cli_unreadable_reply", cli(description, b"\xc1", sel=2))
write(R, "cli_cancel", cli(description, mp({"sum": 1}), sel=0x80))
write(R, "cli_free_in_flight", cli(small_description, mp({}), sel=0x40))
write(R, "cli_small", cli(small_description, mp({"x": 1}), rst=5))
write(R, "cli_unimplemented", cli(b"", dst=12))
write(R, "cli_deadline", cli(b"", dst=4))
write(R, "cli_no_more_requests", cli(b"", dst=21))
write(R, "cli_malformed", cli(mp({"protocol": 2, "service": "x"})))
# A field name that is not UTF-8, and one that the refusal's message cuts inside a character:
# both are refused INVALID_ARGUMENT with a message made valid UTF-8 (the stream sends no other).
write(R, "svc_field_not_utf8", b"\x01" + req(0, 1, b"\x83\xa1a\x01\xa1b\x02\xa4ab\xff\xfe\x03"))
write(R, "svc_field_cut", b"\x01" + req_rest(0, 1, mp({"a" + "\u00e9" * 96: 1})))
# Descriptions that break one rule each.
for name, methods in {
        "desc_dup_name": [method(4, "a"), method(5, "a")],
        "desc_dup_field": [method(4, "a", args=[field("x", "int"), field("x", "int", True)])],
        "desc_empty_field": [method(4, "a", result=[field("", "int")])],
        "desc_empty_segment": [method(4, "a..b")],
        "desc_bad_kind": [method(4, "a", args=[field("x", "integer")])],
        "desc_id_zero": [method(0, "a")],
        "desc_id_too_big": [method(2**32, "a")]}.items():
    write(R, name, b"\x00" + mp({"protocol": 1, "service": "d", "max_args": 1, "methods": methods}))

def ndarray(dtype, shape, data=b"", reserved=b"\x00" * 5):
    """A typed array as msgpack ext 110 (docs/wire-format.md), in the shortest ext form."""
    body = bytes([1, dtype, len(shape)]) + reserved + b"".join(struct.pack("<Q", d) for d in shape) + data
    n = len(body)
    fix = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
    if n in fix:
        head = bytes([fix[n]])
    elif n <= 0xff:
        head = bytes([0xc7, n])
    elif n <= 0xffff:
        head = b"\xc8" + struct.pack(">H", n)
    else:
        head = b"\xc9" + struct.pack(">I", n)
    return head + b"\x6e" + body


def mp_map_raw(entries):
    """A fixmap whose values are given already encoded."""
    return bytes([0x80 | len(entries)]) + b"".join(bytes([0xa0 | len(k)]) + k.encode() + v for k, v in entries.items())


# The msgpack decoder against msgpack-c (fuzz_msgpack.c): one object per file.
M = "fuzz/corpus/msgpack"
for name, data in {
        "map": mp({"name": "Imu", "timestamp": 1764630000.5, "q": [0.0, 0.25, -1, 2**40], "ok": True}),
        "scalars": mp([None, False, True, 0, 127, -32, -33, 255, 65535, 2**32, 2**64 - 1, -2**63, 1.5, "", b""]),
        "float32": b"\x92\xca\x3f\xc0\x00\x00\xca\x7f\xc0\x00\x01",
        "signed_positive": b"\x94\xd0\x05\xd1\x00\x05\xd2\x00\x00\x00\x05\xd3\x00\x00\x00\x00\x00\x00\x00\x05",
        "str8_bin_key": b"\x82\xd9\x03abc\x01\xc4\x02xy\x02",
        "nested_32": mp(nested(32)),
        "nested_33": mp(nested(33)),
        "dup_key": b"\x82\xa1k\x01\xa1k\x02",
        "nul_key": b"\x81\xa2a\x00\x01",
        "int_key": b"\x81\x01\x02",
        "ext": b"\xd4\x01\x02",
        "huge_count": b"\xdf\xff\xff\xff\xff",
        "trailing": b"\x80\x80",
        "truncated": b"\x92\x01",
        "big_map": mp({"field%02d" % i: i for i in range(40)}),
        # Typed arrays (docs/wire-format.md): ext 110, the wire's test vectors and near misses.
        "nd_f32": b"\x81\xa1v" + ndarray(9, [2], struct.pack("<2f", 1.0, -2.5)),
        "nd_i8_2x3": b"\x81\xa1m" + ndarray(1, [2, 3], bytes([1, 2, 3, 0xff, 0xfe, 0xfd])),
        "nd_empty": b"\x81\xa1e" + ndarray(5, [0]),
        "nd_bool_0d": b"\x81\xa1b" + ndarray(11, [], b"\x01"),
        "nd_max_ndim": mp_map_raw({"x": ndarray(10, [1, 2, 1, 1, 2, 1, 1, 1], struct.pack("<4d", 0.5, -0.0, 1e300, 5e-324)),
                                    "n": b"\x01"}),
        "nd_every_dtype": b"\x9b" + b"".join(ndarray(d, [2], bytes(range(2 * s)))
                                             for d, s in enumerate([1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 1], 1)),
        "nd_ext32": b"\xc9\x00\x00\x00\x18\x6e" + ndarray(9, [2], bytes(8))[3:],
        "nd_wrapping_dims": ndarray(9, [2**63 + 1, 2], bytes(8)),
        "nd_bad_dtype": ndarray(12, [1], b"\x00"),
        "nd_ndim_9": ndarray(5, [1] * 9, b"\x00"),
        "nd_short": ndarray(9, [3], bytes(8)),
        "nd_reserved": ndarray(5, [1], b"\x00", reserved=b"\x00\x00\x00\x00\x01"),
        "nd_other_ext": b"\xc7\x09\x05" + ndarray(5, [], b"\x07")[3:],
}.items():
    write(M, name, data)

# The datagram decoder and receive engine (fuzz_raw_wire.c): a configuration byte (bits 0-1
# the topic filter: all, "imu", "a*" and "b", "*"; 2-3 maxmsg/partmem: 1M/1M, 16/4096, 4096/512,
# 64k/64k; 4 gaps uncounted; 5-7 ms between datagrams, partials expire after 3 ms), then
# datagrams, each with a 2-byte length. The encoders are those of lib/raw/wire.c.
WIRE_MAGIC, WIRE_FRAG, WIRE_AUTH = 0x4D434C01, 0x01, 0x02


def wire_hdr(publisher, count=1, flags=0, reserved=0):
    return struct.pack(">IBBHQ", WIRE_MAGIC, flags, reserved, count, publisher)


def wire_rec(seq, topic=b"", payload=b""):
    return struct.pack(">QHI", seq, len(topic), len(payload)) + topic + payload


def wire_frag(seq, total, offset, index, count, topic=b"", payload=b""):
    return struct.pack(">QHIIIII", seq, len(topic), len(payload), total, offset, index, count) + topic + payload


def wire_dgram(publisher, *recs):
    return wire_hdr(publisher, count=len(recs)) + b"".join(wire_rec(*r) for r in recs)


def wire_pieces(publisher, seq, msg, fsize, topic=b""):  # a message cut as the broadcaster does
    count = (len(msg) + fsize - 1) // fsize
    return [wire_hdr(publisher, flags=WIRE_FRAG) +
            wire_frag(seq, len(msg), i * fsize, i, count, topic, msg[i * fsize:(i + 1) * fsize])
            for i in range(count)]


def rx_input(cfg, *dgrams):
    return bytes([cfg]) + b"".join(struct.pack(">H", len(d)) + d for d in dgrams)


def cfg(filt=0, limits=0, uncounted=False, step_ms=0):
    return filt | limits << 2 | (0x10 if uncounted else 0) | step_ms << 5


# The test vectors of docs/wire-format.md.
vec1 = wire_dgram(0x0102030405060708, (5, b"imu", b"hi"))
vec2 = wire_hdr(0x1122334455667788, flags=WIRE_FRAG) + wire_frag(0x100000001, 10, 8, 2, 3, b"", b"ij")
vec3 = wire_dgram(1, (7, b"a", b"x"), (8, b"b", b""))
assert len(vec1) == 35 and len(vec2) == 48 and len(vec3) == 47
msg10 = b"abcdefghij"
frags10 = wire_pieces(0x1122334455667788, 0x100000001, msg10, 4)
assert frags10[2] == vec2
big = bytes(range(256)) * 2 + b"tail"
W = "fuzz/corpus/raw_wire"
for name, data in {
        "vec1": rx_input(cfg(), vec1),
        "vec2_alone": rx_input(cfg(), vec2),
        "vec3": rx_input(cfg(), vec3),
        "vec1_filter_imu": rx_input(cfg(filt=1), vec1, wire_dgram(0x0102030405060708, (6, b"gps", b"no"))),
        "vec3_filter_ab": rx_input(cfg(filt=2), vec3, wire_dgram(1, (9, b"ab", b"y"), (10, b"c", b"z"))),
        "frags_in_order": rx_input(cfg(), *frags10),
        "frags_reversed": rx_input(cfg(), *reversed(frags10)),
        "frags_dup_and_interleaved": rx_input(cfg(), frags10[0], *wire_pieces(2, 0, b"other message", 5, b"t"),
                                              frags10[0], frags10[2], frags10[1], frags10[1]),
        "frags_expire": rx_input(cfg(step_ms=2), frags10[0], frags10[1], vec1, frags10[2]),
        "frags_contradict": rx_input(cfg(), frags10[0], wire_hdr(0x1122334455667788, flags=WIRE_FRAG) +
                                     wire_frag(0x100000001, 12, 4, 1, 3, b"", b"efgh"), frags10[1], frags10[2]),
        "frags_topic_filtered": rx_input(cfg(filt=1), *wire_pieces(3, 1, big, 100, b"cam"),
                                         *wire_pieces(3, 2, big, 300, b"imu")),
        "frags_exact_multiple": rx_input(cfg(), *wire_pieces(4, 0, b"12345678", 4, b"a")),
        "oversize": rx_input(cfg(limits=1), wire_dgram(5, (0, b"", b"0123456789abcdefXYZ")),
                             *wire_pieces(5, 1, big[:40], 16), wire_dgram(5, (2, b"", b"small"))),
        "partmem_evicts": rx_input(cfg(limits=2), *(wire_pieces(6, s, big[:300], 100)[0] for s in range(4)),
                                   *wire_pieces(6, 0, big[:300], 100)[1:], *wire_pieces(6, 3, big[:300], 100)[1:]),
        "sequence": rx_input(cfg(), *(wire_dgram(7, (s, b"imu", bytes([s]))) for s in (0, 1, 3, 2, 2, 6, 5, 0))),
        "sequence_uncounted": rx_input(cfg(uncounted=True), *(wire_dgram(7, (s, b"imu", b"")) for s in (4, 9, 2, 9, 5))),
        "sequence_window": rx_input(cfg(), wire_dgram(8, (10, b"", b"a")), wire_dgram(8, (3000, b"", b"b")),
                                    wire_dgram(8, (11, b"", b"c")), wire_dgram(8, (2990, b"", b"d"))),
        "sequence_restart": rx_input(cfg(), wire_dgram(9, (5, b"", b"a")), wire_dgram(9, (5 + 2**33, b"", b"b")),
                                     wire_dgram(9, (6, b"", b"c")), wire_dgram(9, (2**64 - 1, b"", b"d"))),
        "batch": rx_input(cfg(), wire_dgram(10, *((s, b"imu", b"p" * s) for s in range(12)))),
        "publishers": rx_input(cfg(), *(wire_dgram(p, (0, b"t", b"x")) for p in range(1, 7))),
        "malformed": rx_input(cfg(), wire_hdr(11, flags=WIRE_AUTH) + wire_rec(0, b"a", b"x"),
                              b"XCL\x01" + vec1[4:], vec1[:-1], vec1 + b"\x00", wire_hdr(11, count=0),
                              wire_hdr(11, reserved=1) + wire_rec(0), wire_hdr(11, flags=0x04) + wire_rec(0),
                              wire_hdr(11) + wire_rec(0, b"a\x00b"), wire_hdr(11, count=2) + wire_rec(0), vec1),
        "bad_geometry": rx_input(cfg(), *(wire_hdr(12, flags=WIRE_FRAG) + wire_frag(1, t, o, i, c, b"t", b"z" * n)
                                          for n, t, o, i, c in ((4, 10, 0, 0, 1), (4, 10, 0, 3, 3), (4, 10, 1, 0, 3),
                                                                (2, 10, 7, 2, 3), (4, 20, 0, 0, 3), (4, 8, 0, 0, 3)))),
        "empty_and_short": rx_input(cfg(), b"", b"MCL", wire_hdr(13), vec3),
}.items():
    write(W, name, data)

# JSON into values and messages (fuzz_json.c): the text, examples of docs/json.md.
J = "fuzz/corpus/json"
for name, text in {
        "message": '{"name": "Imu", "timestamp": 1764630000.5, "q": [0.0, 0.25, -1, 1099511627776], "ok": true}',
        "uint": '{"big": {"$uint": "18446744073709551615"}, "zero": {"$uint": "0"}, "max": 9223372036854775807}',
        "floats": '{"f": [{"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"}, -0.0, 1e300, 5e-324, 0.1]}',
        "str_nul": '{"s": "a\\u0000b", "u": "\\u00e9\\ud83d\\ude00", "e": "\\"\\\\\\/\\b\\f\\n\\r\\t"}',
        "str_not_utf8": '{"raw": {"$str": "/w=="}, "ok": {"$str": "aGk="}}',
        "bin": '{"b": {"$bin": "AAE="}, "empty": {"$bin": ""}, "three": {"$bin": "AQID"}}',
        "map_wrapped": '{"m": {"$map": {"$bin": "not a tag"}}, "n": {"$map": {"$map": {}}}}',
        "tag_with_more_keys": '{"$bin": "AA==", "x": 1}',
        "array": '[1, "two", {"three": null}, {"$bin": "AA=="}]',
        "ndarray_lists": '{"f": {"$ndarray": {"dtype": "float32", "shape": [2, 3], "data": [[0.1, 1.0, -2.5], ["inf", -0.0, 3e38]]}}, '
                         '"u": {"$ndarray": {"dtype": "uint64", "shape": [2], "data": ["18446744073709551615", 7]}}, '
                         '"b": {"$ndarray": {"dtype": "bool", "shape": [], "data": true}}, '
                         '"e": {"$ndarray": {"dtype": "int16", "shape": [2, 0], "data": [[], []]}}}',
        "ndarray_base64": '{"f": {"$ndarray": {"dtype": "float32", "shape": [2, 3], "base64": "zczMPQAAgD8AACDAAACAfwAAAIDmsWF/"}}, '
                          '"i": {"$ndarray": {"dtype": "int8", "shape": [1, 1, 1, 1, 1, 1, 1, 2], "base64": "Af8="}}}',
        "ndarray_bad": '[{"$ndarray": {"dtype": "int8", "shape": [2], "data": [1]}}, '
                       '{"$ndarray": {"dtype": "uint8", "shape": [4294967296, 4294967296], "data": []}}]',
        "ndarray_map_wrapped": '{"m": {"$map": {"$ndarray": 1}}}',
        "scalar_int": "42",
        "scalar_str": '"text"',
        "scalar_null": "null",
        "top_tag": '{"$bin": "AA=="}',
        "indented": '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {\n    "c": true\n  }\n}\n',
        "empty": "{}",
        "empty_key": '{"": [], "k": {}}',
        "nested_31": "[" * 31 + "]" * 31,
        "nested_32": '{"k": ' * 32 + "0" + "}" * 32,
        "nested_33": "[" * 33 + "]" * 33,
        "bad_float_tag": '{"x": {"$float": "huge"}}',
        "bad_uint_tag": '{"x": {"$uint": "-1"}}',
        "uint_overflow": '{"x": {"$uint": "18446744073709551616"}}',
        "bad_base64": '{"x": {"$bin": "A"}}',
        "int_too_big": '{"n": 9223372036854775808}',
        "dup_keys": '{"a": 1, "a": 2}',
        "truncated": '{"a": [1, 2',
        "not_json": "{a: 1}",
}.items():
    write(J, name, text.encode())

# Connection URLs (fuzz_url.c): those of README.md, docs/transports.md, docs/zmq.md and
# include/mcl/connection.h, and a few that break one rule each.
U = "fuzz/corpus/url"
for name, url in {
        "udp_default": "udp://239.255.26.1:26000?iface=lo&ttl=0",
        "udp_group": "udp://239.255.26.1",
        "udp_port": "udp://239.255.26.1:26000",
        "udp_iface": "udp://239.255.26.1:26000?iface=eth0&ttl=1",
        "udp_v6": "udp://[ff15::1]:26000?iface=eth0",
        "udp_v6_zone": "udp://[ff02::1%lo]:0",
        "udp_options": "udp://239.1.2.3:65535?loop=0&rcvbuf=4M&sndbuf=1m&maxmsg=1G&dgram=9000&expire=500&partmem=1G",
        "udp_slash": "udp://239.1.2.3:1/?loop=true&batch=100",
        "udp_iface_addr": "udp://239.1.2.3:1?iface=127.0.0.1&rcvbuf=0",
        "udp_mdns": "udp://224.0.0.251:5353?ttl=255",
        "udp_not_multicast": "udp://10.0.0.1:26000",
        "udp_bad_port": "udp://239.255.0.1:12ab",
        "udp_dgram_v4_limit": "udp://239.255.0.1:1?dgram=65520",
        "udp_misplaced": "udp://239.1.1.1:1?mode=bind",
        "tcp_bind": "zmq+tcp://*:5601",
        "tcp_connect": "zmq+tcp://robot1:5601?curve_server=server.pub",
        "tcp_curve": "zmq+tcp://*:5601?curve=server.key&curve_clients=clients",
        "tcp_curve_client": "zmq+tcp://host:5601?curve_server=server.pub&curve=alice.key",
        "tcp_v6": "zmq+tcp://[::1]:5600?mode=connect&hwm=10&timeout=250&linger=0",
        "tcp_any_port": "zmq+tcp://127.0.0.1:*/?drop=1&maxmsg=1k&batch=5",
        "ipc": "zmq+ipc:///run/mcl/bus?hwm=10000&drop=1",
        "zmq_inproc": "zmq+inproc://bus?timeout=inf",
        "epgm": "zmq+epgm://eth0;239.1.1.1:5555",
        "inproc": "inproc://bus",
        "inproc_faults": "inproc://bus?drop=0.1&dup=0.1&reorder=0.1&seed=42",
        "inproc_all": "inproc://a/b-c.d_e?seed=5&reorder=0.10&dup=0.05&drop=0.1&depth=8&queue=1M&dgram=1200&",
        "inproc_pipe": "inproc://p?pipeq=64k&stall=3&cut=100",
        "inproc_bad": "inproc://x?drop=0.1234567",
        "unknown_scheme": "http://239.1.1.1:80",
        "dup_option": "inproc://x?drop=0.1&drop=0.2",
}.items():
    write(U, name, url.encode())
# Found with fuzz_raw_wire: seq 100 arrives as a fragment, then unfragmented (delivered), then
# seq 2100 moves the window past it, then its last fragment completes the reassembly, which was
# delivered as a late message a second time (lib/raw/rx.c now drops the reassembly when the
# same number arrives unfragmented).
dup_frags = wire_pieces(0x77, 100, b"0123456789", 5, b"x")
write(W, "regress_dup_after_window", rx_input(cfg(), dup_frags[0], wire_dgram(0x77, (100, b"x", b"unfragmented")),
                                              wire_dgram(0x77, (2100, b"x", b"later")), dup_frags[1]))

# The log reader (fuzz_logread.c): whole files. A valid mcl log is built here byte by byte
# (docs/log-format.md): the file header, then records behind "MREC" markers with CRC32C.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def log_record(t, pub, seq, topic, payload):
    body = struct.pack(">QQQHHI", t, pub, seq, len(topic), 0, len(payload)) + topic + payload
    return b"MREC" + struct.pack(">II", len(body), crc32c(body)) + body


def log_header(meta=b"host=fuzz\npart=0\n", created=1764630000000000000):
    h = 28 + len(meta)
    head = b"MCLLOG\r\n" + struct.pack(">HHIQ", 1, h, 0, created) + meta
    return head + struct.pack(">I", crc32c(head))


L = "fuzz/corpus/logread"
recs = [log_record(1764630000000000000 + i * 1000000, 7, i, b"imu", bytes(range(i % 50))) for i in range(20)]
good = log_header() + b"".join(recs)
for name, data in {
        "good": good,
        "empty_body": log_header(b""),
        "torn_tail": good[:-7],
        "flipped_crc": good[:200] + bytes([good[200] ^ 0x40]) + good[201:],
        "bad_length": good[:len(log_header()) + 4] + b"\xff\xff\xff\x00" + good[len(log_header()) + 8:],
        "backwards_time": log_header() + b"".join(reversed(recs)),
        "fake_markers": log_header() + recs[0] + b"".join(
            b"MREC" + struct.pack(">II", 4096 - 48 * i - 12, 0) +
            struct.pack(">QQQHHI", 0, 1, i, 0, 0, 4096 - 48 * i - 44) + b"\0" * 4 for i in range(85)),
        "not_a_log": b"hello, this is not a log\n",
        "bad_header_crc": good[:20] + b"X" + good[21:],
        "python_text": open("tests/data/mcl/UnitTestMessageA.log", "rb").read()[:4000],
}.items():
    write(L, name, data)

# The stream layer's messages (fuzz_swire.c): the packet-stream type (0x81: an OPEN answer; 2:
# a LIST answer), a byte whose low bit says a push carries entities, then the message, as
# lib/stream/swire.c writes it: sid and ctx, then the type's fields, big-endian.
SM_OPEN, SM_LIST, SM_OPEN_ANSWER = 1, 2, 0x81
(SM_READ, SM_WRITE, SM_LIMIT, SM_WLIMIT, SM_PUSH, SM_WPUSH, SM_POS, SM_CTXERR, SM_TRUNC, SM_CLOSE,
 SM_CLOSED, SM_FAIL, SM_SFAIL) = range(10, 23)
SW_EOS = 1


def sw(sm_type, body, entities=False):
    return bytes([sm_type, 1 if entities else 0]) + body


def sw_hdr(sid, ctx):
    return struct.pack(">II", sid, ctx)


def sw_push(sid, ctx, units, data, flags=0, pushno=0, offset=0):
    return sw_hdr(sid, ctx) + struct.pack(">B3xIQQ", flags, units, pushno, offset) + data


def sw_elems(*elems):
    return b"".join(struct.pack(">I", len(e)) + e for e in elems)


def sw_text(sid, ctx, code, text):
    t = text.encode()
    return sw_hdr(sid, ctx) + struct.pack(">HH", code, len(t)) + t


def sw_open(sid, mode, window, pushes, push, name, params=b""):
    return (struct.pack(">IHHQII", sid, mode, 0, window, pushes, push) + struct.pack(">H", len(name)) + name +
            struct.pack(">H", len(params)) + params)


def sw_answer(sid, kind, mode, window, pushes, push, start, end, info=b""):
    return struct.pack(">IBBHQIIQQ", sid, kind, 0, mode, window, pushes, push, start, end) + struct.pack(">H", len(info)) + info


def sw_list(*entries):
    return b"".join(struct.pack(">H", len(n)) + n + struct.pack(">H", len(i)) + i for n, i in entries)


S = "fuzz/corpus/swire"
for name, data in {
        "read": sw(SM_READ, sw_hdr(1, 2) + struct.pack(">BBHqQQ", 1, 1, 0, 5, 100, 3)),
        "read_at_time": sw(SM_READ, sw_hdr(1, 3) + struct.pack(">BBHqQQ", 5, 0, 0, 1764630000000000000, 2**32, 16)),
        "write_from_end": sw(SM_WRITE, sw_hdr(7, 3) + struct.pack(">BBHq", 3, 0, 0, -1)),
        "limit": sw(SM_LIMIT, sw_hdr(1, 2) + struct.pack(">IQQ", 9, 4096, 16)),
        "wlimit": sw(SM_WLIMIT, sw_hdr(1, 2) + struct.pack(">IQQQ", 10, 4096, 16, 2048)),
        "push_bytes": sw(SM_PUSH, sw_push(1, 2, 3, b"abc", pushno=7, offset=16)),
        "push_bytes_eos": sw(SM_PUSH, sw_push(1, 2, 0, b"", flags=SW_EOS, pushno=8, offset=19)),
        "push_entities": sw(SM_PUSH, sw_push(1, 2, 3, sw_elems(b"a", b"bc", b"\x93\x01\x02\x03"), flags=SW_EOS),
                            entities=True),
        "push_entities_eos": sw(SM_PUSH, sw_push(1, 2, 0, b"", flags=SW_EOS, pushno=1, offset=2), entities=True),
        "wpush_bytes": sw(SM_WPUSH, sw_push(1, 3, 2, b"hi")),
        "wpush_entities": sw(SM_WPUSH, sw_push(1, 3, 1, sw_elems(b"\x01\x02\x03"), pushno=5, offset=9), entities=True),
        "push_entities_cut": sw(SM_PUSH, sw_push(1, 2, 2, sw_elems(b"a") + b"\x00\x00\x00"), entities=True),
        "pos": sw(SM_POS, sw_hdr(1, 2) + struct.pack(">QQQ", 5, 0, 10)),
        "pos_unbounded": sw(SM_POS, sw_hdr(1, 2) + struct.pack(">QQQ", 3, 3, 2**64 - 1)),
        "ctxerr": sw(SM_CTXERR, sw_text(1, 2, 2, "bad pos")),
        "trunc": sw(SM_TRUNC, sw_hdr(1, 4) + struct.pack(">Q", 32)),
        "close": sw(SM_CLOSE, sw_hdr(1, 0)),
        "closed": sw(SM_CLOSED, sw_hdr(9, 0)),
        "fail": sw(SM_FAIL, sw_text(1, 5, 0, "gone \u00e9")),
        "sfail": sw(SM_SFAIL, sw_text(3, 0, 0, "error")),
        "open": sw(SM_OPEN, sw_open(1, 1, 65536, 4, 32768, b"log", b"a=1")),
        "open_utf8": sw(SM_OPEN, sw_open(2**32 - 1, 0, 2**64 - 1, 2**32 - 1, 1, "ca\u00e9".encode())),
        "open_answer": sw(SM_OPEN_ANSWER, sw_answer(1, 2, 0x35, 32768, 4, 4096, 0, 2**64 - 1, b"{}")),
        "open_answer_bytes": sw(SM_OPEN_ANSWER, sw_answer(2, 1, 2, 1, 1, 64, 7, 7)),
        "list": sw(SM_LIST, sw_list((b"log", b'{"b": 1}\n'), (b"b", b""), ("\u00e9".encode(), b"x"))),
        "list_empty": sw(SM_LIST, b""),
}.items():
    write(S, name, data)

# The log stream (fuzz_logelem.c): the first byte says what follows. 0: an element, the msgpack
# array [time_ns, topic (str), publisher, seq, payload (bin)] of lib/log/logstream.c; 1: params
# text for the log server; 2: a log file for the log source (its last byte also sets the push
# size). Built with mp() and the log records above.
E = "fuzz/corpus/logelem"


def log_elem(t, topic, pub, seq, payload):
    return mp([t, topic, pub, seq, payload])


good_elem = log_elem(1764630000123456789, "imu/raw", 0xABC, 7, b"\x81\xa1a\x01")
dup_recs = [log_record(1764630000000000000 + (i // 3) * 1000, 1, i, b"t%d" % (i % 2), b"x" * i) for i in range(60)]
for name, data in {
        "elem": b"\x00" + good_elem,
        "elem_empty": b"\x00" + log_elem(0, "", 0, 0, b""),
        "elem_negative_time": b"\x00" + log_elem(-5, "t", 2**64 - 1, 2**32, bytes(300)),
        "elem_min_time": b"\x00" + log_elem(-2**63, "a" * 40, 255, 65536, bytes(range(256))),
        "elem_long_forms": b"\x00" + b"\xdd\x00\x00\x00\x05\xd3\xff\xff\xff\xff\xff\xff\xff\xfe\xdb\x00\x00\x00\x01t"
                           b"\xcf\x00\x00\x00\x00\x00\x00\x00\x07\xd2\x00\x00\x00\x09\xc5\x00\x01z",
        "elem_topic_max": b"\x00" + log_elem(1, "a" * 1024, 2, 3, b""),
        "elem_topic_too_long": b"\x00" + log_elem(1, "a" * 1025, 2, 3, b""),
        "elem_truncated": b"\x00" + good_elem[:-2],
        "elem_extra_byte": b"\x00" + good_elem + b"\xc0",
        "elem_topic_nul": b"\x00" + b"\x95\x01\xa3t\x00x\x02\x03\xc4\x00",
        "elem_payload_str": b"\x00" + b"\x95\x01\xa1t\x02\x03\xa2hi",
        "elem_negative_seq": b"\x00" + b"\x95\x01\xa1t\x02\xd0\x80\xc4\x00",
        "elem_four": b"\x00" + mp([1, "t", 2, 3]),
        "elem_huge_bin": b"\x00" + b"\x95\x01\xa1t\x02\x03\xc6\xff\xff\xff\xffhi",
        "params": b"\x01topic=imu/*&topic=gps&start=1764630000000000000&end=1764630060000000000",
        "params_escapes": b"\x01topic=a%20b%26c%3D%25%C3%A9&topic=",
        "params_empty": b"\x01",
        "params_bad_escape": b"\x01topic=%zz",
        "params_nul_escape": b"\x01topic=a%00",
        "params_twice": b"\x01start=1&start=2",
        "params_overflow": b"\x01end=9223372036854775808",
        "params_backwards": b"\x01start=10&end=9",
        "params_trailing": b"\x01topic=a&",
        "params_unknown": b"\x01rm=-rf",
        "params_many": b"\x01" + b"&".join([b"topic=x"] * 257),
        "log_good": b"\x02" + good,
        "log_torn": b"\x02" + good[:-7],
        "log_backwards": b"\x02" + log_header() + b"".join(reversed(recs)),
        "log_dup_times": b"\x02" + log_header() + b"".join(dup_recs),
        "log_flipped_crc": b"\x02" + good[:200] + bytes([good[200] ^ 0x40]) + good[201:],
        "log_header_only": b"\x02" + log_header(),
        "log_partial_header": b"\x02" + log_header()[:20],
        "log_python_text": b"\x02" + open("tests/data/mcl/UnitTestMessageA.log", "rb").read()[:3000],
}.items():
    write(E, name, data)
# 3: a log file written in pieces (the first byte sets their size: 1 + 4 * it), refreshed.
for name, data in {
        "grow_good": b"\x03\x07" + good,
        "grow_bytewise": b"\x03\x00" + good[:600],
        "grow_torn": b"\x03\x20" + good[:-7],
        "grow_python_text": b"\x03\x05" + open("tests/data/mcl/UnitTestMessageA.log", "rb").read()[:2000],
}.items():
    write(E, name, data)

# The broker's data plane (fuzz_bwire.c): the packet-stream type, then the message
# (lib/broker/bwire.c: u32 id, then the type's fields, big-endian).
B = "fuzz/corpus/bwire"
for name, data in {
        "put": bytes([1]) + struct.pack(">I", 7) + b"frame data",
        "put_empty": bytes([1]) + struct.pack(">I", 7),
        "deliver": bytes([2]) + struct.pack(">IQ", 3, 42) + b"payload",
        "ack": bytes([3]) + struct.pack(">IQ", 3, 40),
        "active": bytes([4]) + struct.pack(">IB", 9, 1),
        "credit": bytes([5]) + struct.pack(">IQ", 9, 512),
        "ended": bytes([6]) + struct.pack(">IB", 3, 1) + b"the channel was deleted",
        "bad_active": bytes([4]) + struct.pack(">IB", 9, 2),
        "end": bytes([7]) + struct.pack(">I", 7),
        "mark": bytes([8]) + struct.pack(">IQ", 3, 30),
}.items():
    write(B, name, data)

#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/ (packets, streams, RPC calls and descriptions): run from the
repository root after a format change. The files are committed; nothing runs this in the tests."""
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
}.items():
    write(M, name, data)

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Authenticated multicast with the tools (docs/security.md): mcl-keygen --group, a keyed
# mcl-dump that delivers only what a key holder sent and counts the rest, an encrypted group, a
# captured datagram replayed on the real network (refused), and key files that are not files.
#   test_auth.sh BINDIR       (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_auth.sh BINDIR}
pub=$bin/mcl-pub
dump=$bin/mcl-dump
keygen=$bin/mcl-keygen
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
status_is() { # status_is EXPECTED COMMAND...
    local want=$1
    shift
    timeout 10 "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want; stderr:" >&2; cat "$tmp/err" >&2; return 1; }
}
err_says() { grep -q -- "$1" "$tmp/err" || { echo "  stderr lacks '$1':" >&2; cat "$tmp/err" >&2; return 1; }; }
start_dump() { # start_dump NAME ARGS...: mcl-dump in the background, once it has joined
    local name=$1
    shift
    "$dump" -v "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    wait_for "$tmp/$name.err" "listening on" 5
}

# Keys: made with mode 0600; --rotate puts a new one first and keeps the old.
check "keygen group" status_is 0 "$keygen" --group "$tmp/grp"
check "keygen group mode" test "$(stat -c %a "$tmp/grp.gkey")" = 600
check "keygen other" status_is 0 "$keygen" --group "$tmp/other"
cp "$tmp/grp.gkey" "$tmp/rot.gkey"
check "keygen rotate" status_is 0 "$keygen" --group --rotate "$tmp/rot"
check "keygen rotate keeps" test "$(grep -c '^key = ' "$tmp/rot.gkey")" -eq 2
check "keygen rotate old second" test "$(grep '^key = ' "$tmp/rot.gkey" | tail -1)" = "$(grep '^key = ' "$tmp/grp.gkey")"
check "keygen rotate needs group" status_is 2 "$keygen" --rotate "$tmp/x"

base="udp://239.255.79.1:26100?iface=lo&ttl=0"
K="key=$tmp/grp.gkey"
# A keyed listener: no key and the wrong key are refused and counted; the key holders are heard
# (during a rotation: the listener has the new file, one broadcaster the old, one the new).
start_dump a -u "$base&key=$tmp/rot.gkey" -n 2 --stats --timeout 10
"$pub" -u "$base" -q "forged without a key"
"$pub" -u "$base&key=$tmp/other.gkey" -q "forged with another key"
"$pub" -u "$base&$K" -q "genuine 1, old key"
"$pub" -u "$base&key=$tmp/rot.gkey" -q "genuine 2, new key"
wait "$a_pid"
check "keyed dump exit" test $? -eq 0
check "keyed dump genuine" test "$(grep -c genuine "$tmp/a.out")" -eq 2
check "keyed dump no forgery" test "$(grep -c forged "$tmp/a.out")" -eq 0
check "keyed dump counts" grep -q "failed authentication [1-9]" "$tmp/a.err"

# An encrypted group: a listener with the key reads it, one without cannot.
start_dump e -u "$base&$K" -n 1 --timeout 10
start_dump n -u "$base" -n 1 --timeout 2 --stats
"$pub" -u "$base&$K&encrypt=1" -q "secret payload"
wait "$e_pid"
check "encrypted dump exit" test $? -eq 0
check "encrypted dump reads" grep -q "secret payload" "$tmp/e.out"
wait "$n_pid"
check "keyless dump times out" test $? -eq 1
check "keyless dump sees nothing" test "$(grep -c secret "$tmp/n.out")" -eq 0
check "keyless dump counts" grep -q "failed authentication [1-9]" "$tmp/n.err"

# A captured datagram replayed on the network (python3 joins the group, takes the first
# authenticated message, sends it again five times): delivered once, the copies counted.
g2=239.255.79.2
p2=26101
u2="udp://$g2:$p2?iface=lo&ttl=0&$K"
python3 - "$g2" "$p2" >"$tmp/replay.log" 2>&1 <<'PY' &
import socket, sys
g, p = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((g, p))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(g) + socket.inet_aton("127.0.0.1"))
s.settimeout(10)
print("joined", flush=True)
while True:
    d, _ = s.recvfrom(70000)
    if d[:4] == b"MCL\x01" and d[4] & 0x02 and not d[4] & 0x04:
        break
o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
o.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
o.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
for _ in range(5):
    o.sendto(d, (g, p))
print("replayed", flush=True)
PY
py_pid=$!
wait_for "$tmp/replay.log" joined 5
start_dump r -u "$u2" --timeout 3 --stats
"$pub" -u "$u2" -q "sent once"
wait_for "$tmp/replay.log" replayed 5
wait "$r_pid"
wait "$py_pid"
check "replay delivered once" test "$(grep -c "sent once" "$tmp/r.out")" -eq 1
check "replay counted" grep -q "replayed [5-9]" "$tmp/r.err"

# A bridge between two keyed islands (each its own key): it forwards only what was signed on
# its side, signed again with the other side's key; the forgery stays where it was sent.
check "keygen island key" status_is 0 "$keygen" --group "$tmp/isl"
ua="udp://239.255.79.5:26105?iface=lo&ttl=0&$K"
ub="udp://239.255.79.6:26106?iface=lo&ttl=0&key=$tmp/isl.gkey"
"$bin/mcl-bridge" --stats 0.2 "$ua" "$ub" 2>"$tmp/bridge.err" &
bp=$!
check "bridge reports" wait_for "$tmp/bridge.err" "B -> A: forwarded" 5
start_dump b -u "$ub" -n 1 --timeout 10 --stats
"$pub" -u "udp://239.255.79.5:26105?iface=lo&ttl=0" -q "forged on A"
"$pub" -u "$ua" -q "signed on A"
wait "$b_pid"
check "bridge dump exit" test $? -eq 0
check "bridge carried the signed one" grep -q "signed on A" "$tmp/b.out"
check "bridge dropped the forgery" test "$(grep -c forged "$tmp/b.out")" -eq 0
kill -TERM "$bp"
wait "$bp"

# Key files that are not regular files fail at once, with a message saying so.
mkfifo "$tmp/fifo"
check "fifo key fails" status_is 2 "$dump" -u "$base&key=$tmp/fifo" -n 1
check "fifo key says" err_says "not a regular file"
check "dev zero key fails" status_is 2 "$pub" -u "$base&key=/dev/zero" -q x
check "missing key fails" status_is 2 "$pub" -u "$base&key=$tmp/none.gkey" -q x
check "missing key says" err_says "none.gkey"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-bridge.
# 1. Two multicast groups of this namespace joined by one bridge, with datagrams made by hand
#    (bridge_forge.py): forged copies of a publisher on one island do not make the bridge hold
#    back that publisher's real traffic from the other, and a flood of publisher ids leaves
#    the bridge's memory bounded (a cap, then forgetting after --forget seconds).
# 2. Two multicast islands bridged over zmq+tcp: this network namespace and a second one,
#    joined by a veth pair, each with multicast on its own loopback (ttl 0: nothing crosses
#    except through the bridges). A message published in one island arrives exactly once in
#    the other, and never comes back to its own island. Run twice: over plain TCP, then over
#    CURVE with mcl-keygen's keys, each link admitting only the other bridge's key.
#   test_bridge.sh BINDIR       (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_bridge.sh BINDIR}
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    echo "test_bridge.sh: needs the private namespace of scripts/netns.sh; skipped" >&2
    exit 77
fi
tmp=$(mktemp -d)
holder=
cleanup() {
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    ip link del mclb0 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has, second_namespace
forge=$(dirname "$0")/bridge_forge.py

report() { # report: the failures' files, then the verdict
    echo "bridge tests: $pass passed, $fail failed"
    if [[ $fail -ne 0 ]]; then
        for f in "$tmp"/*.err; do echo "--- $f" >&2; cat "$f" >&2; done
    fi
    [[ $fail -eq 0 ]]
}
# wait_later FILE LINE TEXT SECONDS: bounded wait until TEXT is in FILE after its first LINE lines
wait_later() {
    local i
    for i in $(seq $(($4 * 40))); do
        tail -n +$(($2 + 1)) "$1" 2>/dev/null | grep -q -- "$3" && return 0
        sleep 0.025
    done
    echo "  '$3' never appeared in $1 after line $2:" >&2
    tail -n +$(($2 + 1)) "$1" >&2
    return 1
}

# --- 1. One bridge between two groups of this namespace, hand-made datagrams --------------------
ga=239.255.90.2:26091
gb=239.255.90.3:26092
ua="udp://$ga?iface=lo&ttl=0"
ub="udp://$gb?iface=lo&ttl=0"

# Forgery: a freshly (re)started bridge hears, on island B, a datagram carrying the id of a
# publisher of island A (seq 0), before any of that publisher's real messages; it forwards it
# (nothing tells a forgery from the real thing without keys), then the publisher's real 499
# messages (seq 1..499) on A must all cross to B, as they would have without the forgery.
"$bin/mcl-bridge" --stats 0.2 "$ua" "$ub" 2>"$tmp/forge-bridge.err" &
bf=$!
check "forge: bridge reports" wait_for "$tmp/forge-bridge.err" "B -> A: forwarded" 5
"$bin/mcl-dump" -v -u "$ub" -q --stats -n 500 --timeout 10 >"$tmp/forge-d.out" 2>"$tmp/forge-d.err" &
df=$!
check "forge: dump on B listening" wait_for "$tmp/forge-d.err" "listening on" 5
python3 "$forge" forge --real "$ga" --forged "$gb" --id 5eed5eed5eed5eed -n 500 2>"$tmp/forge-py.err"
check "forge: the forgery crossed to A (the bridge cannot tell)" test $? -eq 0
wait "$df"
check "forge: B got the forgery and the 499 real messages" test $? -eq 0
check "forge: B lost none, twice none" has "$tmp/forge-d.err" "total: received 500 .*lost 0, duplicates 0"
check "forge: B saw the publisher up to its last number" \
    grep -Eq "^5eed5eed5eed5eed .* 500 +0 +0 +[0-9]+ +499 " "$tmp/forge-d.err"
kill -TERM "$bf"
wait "$bf"
check "forge: bridge exit 0" test $? -eq 0
# A -> B: the 499 real ones; the forgery's copy on A came back and was stopped as its own.
check "forge: bridge forwarded the real ones" \
    has "$tmp/forge-bridge.err" "A -> B: forwarded 499 ([0-9]* bytes), loops suppressed 1, failed 0"
check "forge: bridge forwarded the forgery" \
    has "$tmp/forge-bridge.err" "B -> A: forwarded 1 ([0-9]* bytes), loops suppressed 499, failed 0"

# Flood: 12000 publisher ids on B, one message each. The bridge forwards them all and
# remembers at most 4096 (the default --publishers) per direction; its own copies still stop
# at A. (Before the cap, this bridge printed "publishers known: N", which grew with every id.)
"$bin/mcl-bridge" --stats 0.2 "$ua" "$ub" 2>"$tmp/flood-bridge.err" &
bfl=$!
check "flood: bridge reports" wait_for "$tmp/flood-bridge.err" "B -> A: forwarded" 5
python3 "$forge" flood --group "$gb" --base f100d00000000000 -n 12000 2>"$tmp/flood-py.err"
check "flood: sent" test $? -eq 0
check "flood: forwarded" wait_for "$tmp/flood-bridge.err" "B -> A: forwarded [0-9]\{5\} " 5
kill -TERM "$bfl"
wait "$bfl"
check "flood: bridge exit 0" test $? -eq 0
most=$(sed -n -e 's/.*publishers remembered: A -> B [0-9]*, B -> A \([0-9]*\) .*/\1/p' \
    -e 's/.*publishers known: \([0-9]*\)/\1/p' "$tmp/flood-bridge.err" | sort -n | tail -1)
check "flood: never more than 4096 remembered (most: ${most:-none})" test "${most:-99999}" -le 4096
check "flood: up to the cap" has "$tmp/flood-bridge.err" "B -> A 4096 (at most 4096 each"
heard=$(sed -n 's/.*B -> A: forwarded \([0-9]*\) .*/\1/p' "$tmp/flood-bridge.err" | tail -1)
check "flood: far more than the cap were forwarded (${heard:-none})" test "${heard:-0}" -gt 8000
check "flood: evictions counted" grep -Eq "forgotten [1-9][0-9]* for room" "$tmp/flood-bridge.err"
check "flood: nothing came back from A" has "$tmp/flood-bridge.err" "A -> B: forwarded 0 "

# Silence: with --forget 1, publishers nothing was forwarded of for a second are forgotten.
"$bin/mcl-bridge" --stats 0.2 --forget 1 "$ua" "$ub" 2>"$tmp/forget-bridge.err" &
bfg=$!
check "forget: bridge reports" wait_for "$tmp/forget-bridge.err" "B -> A: forwarded" 5
python3 "$forge" flood --group "$gb" --base f0f0000000000000 -n 300 2>"$tmp/forget-py.err"
check "forget: sent" test $? -eq 0
check "forget: remembered" wait_for "$tmp/forget-bridge.err" "B -> A 300 (at most 4096 each" 5
seen=$(wc -l <"$tmp/forget-bridge.err")
check "forget: then forgotten" \
    wait_later "$tmp/forget-bridge.err" "$seen" "remembered: A -> B 0, B -> A 0 .*, 300 silent" 5
kill -TERM "$bfg"
wait "$bfg"
check "forget: bridge exit 0" test $? -eq 0

# --- 2. Two islands over zmq+tcp ----------------------------------------------------------------
if [[ "${MCL_HAVE_ZMQ:-1}" != 1 ]]; then
    echo "test_bridge.sh: mcl is built without ZeroMQ; the zmq islands are skipped" >&2
    report
    exit
fi
# The second island: a namespace held open by a sleeping process, reached with nsenter.
if ! second_namespace mclb 10.203.0; then
    echo "test_bridge.sh: no veth support here; the zmq islands are skipped" >&2
    report
    exit
fi
in2() { nsenter -t "$holder" -n -- "$@"; }
in2 ip link set lo multicast on
in2 ip route add 224.0.0.0/4 dev lo

udp="udp://239.255.90.1:26090?iface=lo&ttl=0"

# run_islands MODE: the two bridges, listeners and publishers; $srvN/$cliN are appended to the
# zmq URLs of the side that binds (server) and the side that connects (client) of link N.
run_islands() {
    local mode=$1
    # Island 1 publishes its copies towards island 2 on 10.203.0.1:5601 and hears island 2 on
    # 10.203.0.2:5602; island 2 the other way round.
    "$bin/mcl-bridge" "$udp" "zmq+tcp://10.203.0.2:5602$cli2,zmq+tcp://10.203.0.1:5601$srv1" \
        2>"$tmp/$mode-bridge1.err" &
    b1=$!
    # (nsenter itself, not a shell function, so that $! is the bridge: nsenter -n execs it)
    nsenter -t "$holder" -n -- "$bin/mcl-bridge" "$udp" \
        "zmq+tcp://10.203.0.1:5601$cli1,zmq+tcp://10.203.0.2:5602$srv2" 2>"$tmp/$mode-bridge2.err" &
    b2=$!
    # Each bridge's zmq output has the other bridge as its subscriber: the link is up both ways.
    check "$mode: bridge 1 has its subscriber" wait_for "$tmp/$mode-bridge1.err" "1 subscriber" 10
    check "$mode: bridge 2 has its subscriber" wait_for "$tmp/$mode-bridge2.err" "1 subscriber" 10

    # One listener in each island, counting everything for a bounded time.
    "$bin/mcl-dump" -v -u "$udp" -q --stats -n 400 --timeout 20 >"$tmp/$mode-d1.out" 2>"$tmp/$mode-d1.err" &
    d1=$!
    nsenter -t "$holder" -n -- "$bin/mcl-dump" -v -u "$udp" -q --stats -n 400 --timeout 20 \
        >"$tmp/$mode-d2.out" 2>"$tmp/$mode-d2.err" &
    d2=$!
    check "$mode: dump 1 listening" wait_for "$tmp/$mode-d1.err" "listening on" 5
    check "$mode: dump 2 listening" wait_for "$tmp/$mode-d2.err" "listening on" 5

    "$bin/mcl-pub" -u "$udp" -t island1 -s 100 -n 200 -r 2000 -q &
    p1=$!
    in2 "$bin/mcl-pub" -u "$udp" -t island2 -s 2000 -n 200 -r 2000 -q
    check "$mode: publisher 2 ok" test $? -eq 0
    wait "$p1"
    check "$mode: publisher 1 ok" test $? -eq 0
    wait "$d1"
    check "$mode: dump 1 got 400" test $? -eq 0
    wait "$d2"
    check "$mode: dump 2 got 400" test $? -eq 0
    # Statistics: each island received 400 (200 of its own, 200 from the other), none lost, none
    # twice (a looped copy keeps its publisher and sequence, so it would count as a duplicate).
    for d in d1 d2; do
        check "$mode: $d totals" grep -q "total: received 400 .*lost 0, duplicates 0" "$tmp/$mode-$d.err"
    done
    # Stop the bridges (as Ctrl-C or a service manager would) and read their counts.
    kill -TERM "$b1" "$b2"
    wait "$b1"
    check "$mode: bridge 1 exit 0" test $? -eq 0
    wait "$b2"
    check "$mode: bridge 2 exit 0" test $? -eq 0
    for b in bridge1 bridge2; do
        # A -> B: its own island's 200 went out; B -> A: the other island's 200 came in.
        check "$mode: $b forwarded out" grep -q "A -> B: forwarded 200 " "$tmp/$mode-$b.err"
        check "$mode: $b forwarded in" grep -q "B -> A: forwarded 200 " "$tmp/$mode-$b.err"
        # What it put on its island came back by multicast loopback and was not sent again.
        check "$mode: $b suppressed its own copies" grep -q "A -> B: forwarded 200 ([0-9]* bytes), loops suppressed 200," "$tmp/$mode-$b.err"
        check "$mode: $b nothing failed" bash -c "test -s '$tmp/$mode-$b.err' && ! grep -q 'failed [1-9]' '$tmp/$mode-$b.err'"
    done
}

# Plain TCP between the islands.
srv1= cli1= srv2= cli2=
run_islands plain
# The same over CURVE: each link's binding side is the server, and it admits only the other
# bridge's key (curve_clients); keys from mcl-keygen.
for k in island1 island2; do "$bin/mcl-keygen" "$tmp/$k" >/dev/null || fail=$((fail + 1)); done
srv1="?curve=$tmp/island1.key&curve_clients=$tmp/island2.pub"
cli1="?curve_server=$tmp/island1.pub&curve=$tmp/island2.key"
srv2="?curve=$tmp/island2.key&curve_clients=$tmp/island1.pub"
cli2="?curve_server=$tmp/island2.pub&curve=$tmp/island1.key"
run_islands curve
report

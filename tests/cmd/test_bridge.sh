#!/usr/bin/env bash
# Two multicast islands bridged over zmq+tcp: this network namespace and a second one, joined
# by a veth pair, each with multicast on its own loopback (ttl 0: nothing crosses except
# through the bridges). A message published in one island arrives exactly once in the other,
# and never comes back to its own island. Run twice: over plain TCP, then over CURVE with
# mcl-keygen's keys, each link admitting only the other bridge's key.
#   test_bridge.sh BINDIR       (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_bridge.sh BINDIR}
if [[ "${MCL_HAVE_ZMQ:-1}" != 1 ]]; then
    echo "test_bridge.sh: mcl is built without ZeroMQ; skipped" >&2
    exit 77
fi
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

# The second island: a namespace held open by a sleeping process, reached with nsenter.
if ! second_namespace mclb 10.203.0; then
    echo "test_bridge.sh: no veth support here; skipped" >&2
    exit 77
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

echo "bridge tests: $pass passed, $fail failed"
if [[ $fail -ne 0 ]]; then
    for f in "$tmp"/*.err; do echo "--- $f" >&2; cat "$f" >&2; done
fi
[[ $fail -eq 0 ]]

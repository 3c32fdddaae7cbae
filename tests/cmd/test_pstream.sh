#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# examples/pstream_echo as a person runs it: over two pipes (native and --cs-compat), between
# two processes over zmq+tcp on this host, and between two network namespaces joined by a
# veth pair, 100,000 requests in flight at once; every answer is checked by the caller, and
# both sides' counts must agree.
#   test_pstream.sh EXAMPLES_DIR   (inside scripts/netns.sh, as ctest runs it)
set -uo pipefail
bin=${1:?usage: test_pstream.sh EXAMPLES_DIR}
echo_=$bin/pstream_echo
tmp=$(mktemp -d)
holder=
cleanup() {
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    ip link del mclp0 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has, second_namespace

# Usage errors say so and exit 2.
"$echo_" >/dev/null 2>"$tmp/u"
check "no arguments: exit 2" test $? -eq 2
"$echo_" call --cs-compat zmq+tcp://127.0.0.1:1 5 >/dev/null 2>"$tmp/u"
check "--cs-compat needs --stdio" test $? -eq 2
check "--cs-compat says why" has "$tmp/u" "over --stdio only"
"$echo_" call udp://239.1.2.3:4 1 2>"$tmp/u"
check "udp:// is refused" test $? -eq 1

# Over two pipes, as `ssh host pstream_echo serve --stdio` would be: sizes 0 B to 100 KiB.
for mode in "" --cs-compat; do
    mkfifo "$tmp/q$mode"
    timeout 60 "$echo_" serve $mode --stdio <"$tmp/q$mode" 2>"$tmp/serve$mode" |
        timeout 60 "$echo_" call $mode --stdio 300 >"$tmp/q$mode" 2>"$tmp/call$mode"
    rc=$?
    check "stdio$mode: every answer matched" test $rc -eq 0
    check "stdio$mode: 300 ok" has "$tmp/call$mode" "300 requests: 300 ok, 0 bad, 0 unanswered"
    check "stdio$mode: orderly close" has "$tmp/call$mode" "close: orderly"
    check "stdio$mode: the server saw 300" has "$tmp/serve$mode" "served 300 requests"
done

# run_pair WHERE SERVE_URL CALL_HOST [NS...]: a server, then a caller with 100,000 requests
# in flight; the caller checks every answer, and the server served exactly as many.
run_pair() {
    local where=$1 url=$2 host=$3
    shift 3
    "$@" "$echo_" serve "$url" >"$tmp/srv-$where" 2>"$tmp/srverr-$where" &
    local spid=$!
    wait_for "$tmp/srv-$where" "listening on" 10 || { check "$where: server up" false; return; }
    local port
    port=$(sed -n 's/^listening on zmq+tcp:\/\/[^:]*:\([0-9]*\)$/\1/p' "$tmp/srv-$where")
    timeout 120 "$echo_" call --window 100000 --max-size 512 "zmq+tcp://$host:$port" 100000 \
        2>"$tmp/call-$where"
    check "$where: every answer matched (exit 0)" test $? -eq 0
    check "$where: 100000 ok" has "$tmp/call-$where" "100000 requests: 100000 ok, 0 bad, 0 unanswered"
    check "$where: counters add up" has "$tmp/call-$where" \
        "sent 100000 received 100000 in flight 0 timeouts 0 unknown 0 late 0 protocol errors 0"
    # A second caller on the same server: each peer is its own connection.
    timeout 60 "$echo_" call --window 16 "zmq+tcp://$host:$port" 200 2>"$tmp/call2-$where"
    check "$where: a second caller" test $? -eq 0
    kill -TERM "$spid"
    wait "$spid"
    check "$where: server stops at SIGTERM" test $? -eq 0
    check "$where: the server served them all" has "$tmp/srverr-$where" \
        "served 100200 requests"
    check "$where: on two connections" has "$tmp/srverr-$where" "on 2 connection(s)"
}

run_pair host "zmq+tcp://127.0.0.1:0" 127.0.0.1

# Two namespaces joined by a veth pair: the server in the second.
if [[ "${MCL_NETNS:-}" == 1 ]] && second_namespace mclp 10.204.0; then
    run_pair veth "zmq+tcp://10.204.0.2:0" 10.204.0.2 nsenter -t "$holder" -n --
else
    echo "test_pstream.sh: no private namespace with veth support; the two-namespace run is skipped" >&2
fi

echo "test_pstream.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]

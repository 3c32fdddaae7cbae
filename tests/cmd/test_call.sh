#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mcl-call as a person runs it: a demo service in one process, calls from another (over
# zmq+tcp on this host, then from another network namespace joined by a veth pair): listing,
# results as JSON, arguments refused before sending (naming the field), the service's own
# errors, deadlines, unknown methods, exit statuses, and the service's statistics agreeing.
#   test_call.sh TOOLS_DIR [EXAMPLES_DIR]   (inside scripts/netns.sh, as ctest runs it)
set -uo pipefail
bin=${1:?usage: test_call.sh TOOLS_DIR [EXAMPLES_DIR]}
examples=${2:-}
call=$bin/mcl-call
tmp=$(mktemp -d)
holder=
cleanup() {
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    ip link del mclc0 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has, second_namespace

# Usage errors say so and exit 2; --help and --version exit 0.
"$call" >/dev/null 2>"$tmp/u"
check "no arguments: exit 2" test $? -eq 2
"$call" --bogus >/dev/null 2>"$tmp/u"
check "unknown option: exit 2" test $? -eq 2
"$call" -t abc zmq+tcp://127.0.0.1:1 x >/dev/null 2>"$tmp/u"
check "--timeout abc: exit 2" test $? -eq 2
"$call" zmq+tcp://127.0.0.1:1 calc.add '{"a": ' >/dev/null 2>"$tmp/u"
check "JSON that does not parse: exit 2" test $? -eq 2
check "... says where" has "$tmp/u" "not JSON: line 1"
"$call" zmq+tcp://127.0.0.1:1 calc.add '[1]' >/dev/null 2>"$tmp/u"
check "arguments that are not an object: exit 2" test $? -eq 2
"$call" --help >"$tmp/h"
check "--help: exit 0" test $? -eq 0
check "--help shows the exit statuses" has "$tmp/h" "10+S"
"$call" --version | grep -q "^mcl-call [0-9]"
check "--version" test $? -eq 0
# Nobody there: a clear failure, exit 1, in bounded time.
timeout 20 "$call" -t 300 zmq+tcp://127.0.0.1:1 --list >/dev/null 2>"$tmp/none"
check "no service: exit 1" test $? -eq 1
check "no service: says so" has "$tmp/none" "no service answered"
"$call" udp://239.1.2.3:4 --list >/dev/null 2>"$tmp/u"
check "udp:// is refused" test $? -ne 0

# json_get FILE EXPR: a value from JSON output (python3 reads it).
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# run_demo WHERE SERVE_URL CALL_HOST [NS...]: a demo service (in the namespace given), called
# from here.
run_demo() {
    local where=$1 url=$2 host=$3
    shift 3
    "$@" "$call" --serve-demo "$url" >"$tmp/srv-$where" 2>"$tmp/srverr-$where" &
    local spid=$!
    wait_for "$tmp/srv-$where" "serving demo on" 10 || { check "$where: service up" false; return; }
    local port u
    port=$(sed -n 's/^serving demo on zmq+tcp:\/\/[^:]*:\([0-9]*\)$/\1/p' "$tmp/srv-$where")
    u="zmq+tcp://$host:$port"

    "$call" "$u" --list >"$tmp/list-$where" 2>&1
    check "$where: --list exits 0" test $? -eq 0
    check "$where: --list shows a schema" has "$tmp/list-$where" "calc.add(a: float, b: float) -> {sum: float}"
    check "$where: --list shows a default" has "$tmp/list-$where" "demo.sleep(ms?: int = 1000)"
    check "$where: --list shows the built-ins" has "$tmp/list-$where" "rpc.stats(method?: str)"
    "$call" --json "$u" --list >"$tmp/listj-$where"
    check "$where: --list --json is the description" \
        test "$(json_get "$tmp/listj-$where" '[m["id"] for m in d["methods"] if m["name"]=="calc.div"][0]')" = 2

    "$call" "$u" calc.add '{"a": 1.5, "b": 2}' >"$tmp/add-$where"
    check "$where: calc.add exits 0" test $? -eq 0
    check "$where: calc.add prints the result" test "$(cat "$tmp/add-$where")" = '{"sum":3.5}'
    "$call" "$u" '#1' '{"a": 1, "b": 2}' >"$tmp/add2-$where"
    check "$where: by id" test "$(cat "$tmp/add2-$where")" = '{"sum":3.0}'
    "$call" "$u" text.upper '{"s": "héllo"}' >"$tmp/up-$where"
    check "$where: strings" test "$(cat "$tmp/up-$where")" = '{"s":"HéLLO"}'

    # A wrong argument is refused before sending, with a message naming the field.
    "$call" "$u" calc.add '{"a": 1, "b": "two"}' >/dev/null 2>"$tmp/bad-$where"
    check "$where: a wrong argument exits 13 (INVALID_ARGUMENT)" test $? -eq 13
    check "$where: ... names the field" has "$tmp/bad-$where" "field 'b': expected float, got str"
    check "$where: ... refused before sending" has "$tmp/bad-$where" "refused before sending"
    "$call" "$u" calc.add '{"a": 1}' >/dev/null 2>"$tmp/miss-$where"
    check "$where: a missing argument exits 13" test $? -eq 13
    check "$where: ... names it" has "$tmp/miss-$where" "field 'b' is missing"
    "$call" "$u" calc.add '{"a": 1, "b": 2, "c": 3}' >/dev/null 2>"$tmp/extra-$where"
    check "$where: an undeclared argument exits 13" test $? -eq 13
    # The service's own error.
    "$call" "$u" calc.div '{"a": 1, "b": 0}' >/dev/null 2>"$tmp/div-$where"
    check "$where: the service's INVALID_ARGUMENT exits 13" test $? -eq 13
    check "$where: ... with its message" has "$tmp/div-$where" "b must not be 0"
    # Unknown methods: by name (here), by id (the service says so).
    "$call" "$u" calc.mul '{}' >/dev/null 2>"$tmp/unk-$where"
    check "$where: unknown name exits 22 (UNIMPLEMENTED)" test $? -eq 22
    "$call" "$u" '#77' >/dev/null 2>"$tmp/unk2-$where"
    check "$where: unknown id exits 22" test $? -eq 22
    check "$where: ... the service says so" has "$tmp/unk2-$where" "has no method with id 77"
    # A deadline: exit 14, in bounded time; the service counts a timeout.
    local t0=$(date +%s%N)
    "$call" -t 200 "$u" demo.sleep '{"ms": 5000}' >/dev/null 2>"$tmp/slow-$where"
    check "$where: a call past its deadline exits 14" test $? -eq 14
    local took=$((($(date +%s%N) - t0) / 1000000))
    check "$where: ... after about 200 ms, not 5 s ($took ms)" test "$took" -lt 3000
    "$call" --json "$u" demo.sleep '{"ms": 20}' >"$tmp/sleepj-$where"
    check "$where: --json outcome" test "$(json_get "$tmp/sleepj-$where" 'd["status"], d["result"]["slept_ms"]')" = "OK 20"
    # The service's statistics agree with what was sent (refused calls never arrived).
    "$call" --json "$u" rpc.stats '{"method": "calc.add"}' >"$tmp/st-$where"
    check "$where: rpc.stats: calc.add reached the service twice" \
        test "$(json_get "$tmp/st-$where" 'd["result"]["methods"][0]["calls"]')" = 2
    "$call" --json "$u" rpc.stats '{"method": "demo.sleep"}' >"$tmp/st2-$where"
    check "$where: rpc.stats: the late call counted as a timeout" \
        test "$(json_get "$tmp/st2-$where" 'd["result"]["methods"][0]["timeouts"]')" = 1
    kill -TERM "$spid"
    wait "$spid"
    check "$where: the service stops at SIGTERM (exit 0)" test $? -eq 0
    check "$where: and says what it served" has "$tmp/srverr-$where" "served"
}

run_demo host "zmq+tcp://127.0.0.1:0" 127.0.0.1

# examples/rpc_calc: its service listed and called by mcl-call, its client calling it.
if [[ -n "$examples" && -x "$examples/rpc_calc" ]]; then
    "$examples/rpc_calc" serve "zmq+tcp://127.0.0.1:0" >"$tmp/calc" 2>&1 &
    cpid=$!
    if wait_for "$tmp/calc" "serving calc on" 10; then
        cu=$(sed -n 's/^serving calc on //p' "$tmp/calc")
        "$call" "$cu" --list >"$tmp/calc-list"
        check "rpc_calc: listed by mcl-call" has "$tmp/calc-list" "11  calc.div(a: float, b: float) -> {q: float}"
        "$examples/rpc_calc" call "$cu" 6 3 >"$tmp/calc-out" 2>&1
        check "rpc_calc: its client exits 0" test $? -eq 0
        check "rpc_calc: 6 + 3" has "$tmp/calc-out" "calc.add(6, 3) = 9"
        check "rpc_calc: 6 / 3" has "$tmp/calc-out" "calc.div(6, 3) = 2"
        "$examples/rpc_calc" call "$cu" 1 0 >"$tmp/calc-out0" 2>&1
        check "rpc_calc: 1 / 0 fails, with the service's reason" has "$tmp/calc-out0" "INVALID_ARGUMENT: cannot divide 1 by 0"
    else
        check "rpc_calc: up" false
    fi
    kill -TERM "$cpid"
    wait "$cpid"
    check "rpc_calc: stops at SIGTERM" test $? -eq 0
fi

# Two namespaces joined by a veth pair: the service in the second.
if [[ "${MCL_NETNS:-}" == 1 ]] && second_namespace mclc 10.205.0; then
    run_demo veth "zmq+tcp://10.205.0.2:0" 10.205.0.2 nsenter -t "$holder" -n --
else
    echo "test_call.sh: no private namespace with veth support; the two-namespace run is skipped" >&2
fi

echo "test_call.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]

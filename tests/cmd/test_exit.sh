#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Exit codes and error lines of every tool (cmd/common.h): 0 success, 1 runtime failure,
# 2 a wrong command line or input (usage, a missing or unreadable file, a file that is not a
# log, a malformed config). For each tool: success, an unknown option, a missing file, a
# runtime failure; each error prints exactly one line on stderr (without -v). Also -h is
# --help, --version has one format, and a receive buffer the kernel caps is reported once.
#   test_exit.sh BINDIR        (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_exit.sh BINDIR}
data=$(cd "$(dirname "$0")/../data/mcl" && pwd)
readme=$(cd "$(dirname "$0")/../.." && pwd)/README.md
if [[ "${MCL_NETNS:-}" != 1 ]]; then
    echo "test_exit.sh: needs the private namespace of scripts/netns.sh; skipped" >&2
    exit 77
fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
zmq=${MCL_HAVE_ZMQ:-ON}
[[ $zmq == ON || $zmq == 1 || $zmq == TRUE ]] && zmq=1 || zmq=0

tools=(mcl-pub mcl-dump mcl-sim mcl-log mcl-replay mcl-bridge mcl-keygen mcl-call mcl-broker mcl-stat)
# A group of this test; rcvbuf=128k: never above the kernel's cap, so that no warning about it
# adds a line (the capped receive buffer is tried at the end).
U() { echo "udp://239.255.93.$1:2609$1?iface=lo&ttl=0&rcvbuf=128k"; }
NOIF="udp://239.255.93.9:26099?iface=nosuch0&ttl=0"       # an interface this host lacks

# status_is WANT CMD...: CMD (stdin from /dev/null) exits WANT.
status_is() {
    local want=$1
    shift
    "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want; stderr:" >&2; cat "$tmp/err" >&2; return 1; }
}
one_line() { # stderr of the last status_is is exactly one line
    local n
    n=$(wc -l <"$tmp/err")
    [[ $n -eq 1 ]] || { echo "  stderr has $n lines, expected 1:" >&2; cat "$tmp/err" >&2; return 1; }
}
err_says() { grep -q -- "$1" "$tmp/err" || { echo "  stderr lacks '$1':" >&2; cat "$tmp/err" >&2; return 1; }; }
# fails NAME WANT CMD...: an error case: status WANT and one line on stderr.
fails() {
    local name=$1
    shift
    check "$name: status $1" status_is "$@"
    check "$name: one stderr line" one_line
}

# -h is --help (stdout, status 0), with a Usage line and the exit status section; --version.
for t in "${tools[@]}"; do
    check "$t -h" status_is 0 "$bin/$t" -h
    cp "$tmp/out" "$tmp/h"
    check "$t --help" status_is 0 "$bin/$t" --help
    check "$t -h == --help" cmp -s "$tmp/h" "$tmp/out"
    check "$t help usage" has "$tmp/out" "^Usage: $t"
    check "$t help exit status" has "$tmp/out" "^Exit status:"
    check "$t help exit 2" has "$tmp/out" "^  2  "
    check "$t --version" status_is 0 "$bin/$t" --version
    check "$t version format" grep -qx "$t [0-9][0-9.]*[-+a-z0-9.]*" "$tmp/out"
    sed "s/^$t //" "$tmp/out" >"$tmp/ver-$t"
    check "$t version same" cmp -s "$tmp/ver-mcl-pub" "$tmp/ver-$t"
    # Usage errors: an unknown option, a missing option value.
    fails "$t unknown option" 2 "$bin/$t" --no-such-option
    check "$t unknown option named" err_says "no-such-option"
    fails "$t unknown short option" 2 "$bin/$t" -Z
done
fails "mcl-pub missing value" 2 "$bin/mcl-pub" -q -u
check "missing value named" err_says "'-u'"

# Inputs that are not logs, for every reading tool.
head -c 4096 /dev/urandom >"$tmp/junk.bin"
printf '0 1 2 3\nnot a log\n' >"$tmp/digits.txt"
for f in "$readme" "$tmp/junk.bin" "$tmp/digits.txt"; do
    n=$(basename "$f")
    fails "mcl-dump -f $n" 2 "$bin/mcl-dump" -f "$f"
    check "mcl-dump -f $n says" err_says "not an mcl or Python MCL log"
    fails "mcl-replay $n" 2 "$bin/mcl-replay" -q -u "$(U 1)" "$f"
    check "mcl-replay $n says" err_says "not an mcl or Python MCL log"
    fails "mcl-stat -f $n" 2 "$bin/mcl-stat" -f "$f"
    check "mcl-stat -f $n says" err_says "not an mcl or Python MCL log"
done

missing=$tmp/no-such-file
gmissing="key=$tmp/no-such.gkey"

# mcl-pub
check "mcl-pub ok" status_is 0 "$bin/mcl-pub" -q -u "$(U 1)" hello
fails "mcl-pub missing file" 2 "$bin/mcl-pub" -q -u "$(U 1)" -f "$missing"
check "mcl-pub missing file named" err_says "$missing"
fails "mcl-pub missing key file" 2 "$bin/mcl-pub" -q -u "$(U 1)&$gmissing" hello
fails "mcl-pub runtime (no interface)" 1 "$bin/mcl-pub" -q -u "$NOIF" hello
if [[ $zmq == 1 ]]; then
    fails "mcl-pub runtime (no listener)" 1 "$bin/mcl-pub" -q -u "zmq+tcp://127.0.0.1:26190" --wait 0.2 hello
fi
# A file above maxmsg names the limit and the option that raises it.
head -c 2000 /dev/zero >"$tmp/2k"
fails "mcl-pub file too large" 2 "$bin/mcl-pub" -q -u "$(U 1)&maxmsg=1k" -f "$tmp/2k"
check "mcl-pub file too large says" err_says "above the connection's maxmsg (1 KiB).*maxmsg="

# mcl-dump
check "mcl-dump ok" status_is 0 "$bin/mcl-dump" -q -f "$data/UnitTestMessageA.log"
fails "mcl-dump missing file" 2 "$bin/mcl-dump" -f "$missing"
fails "mcl-dump missing key file" 2 "$bin/mcl-dump" -u "$(U 2)&$gmissing" --timeout 0.1
fails "mcl-dump runtime (timeout)" 1 "$bin/mcl-dump" -u "$(U 2)" -n 1 --timeout 0.2
fails "mcl-dump runtime (no interface)" 1 "$bin/mcl-dump" -u "$NOIF" --timeout 0.1
if [[ $zmq == 1 ]]; then
    fails "mcl-dump runtime (unresolvable host)" 1 "$bin/mcl-dump" -u "zmq+tcp://no-such-host.invalid:26191" -n 1 --timeout 0.2
fi

# mcl-sim
check "mcl-sim ok" status_is 0 "$bin/mcl-sim" -q -u "$(U 3)" -d 0.2
fails "mcl-sim missing file" 2 "$bin/mcl-sim" -q -u "$(U 3)" -c "$missing"
printf 'imu = abc\n' >"$tmp/bad.cfg"
fails "mcl-sim malformed config" 2 "$bin/mcl-sim" -q -u "$(U 3)" -c "$tmp/bad.cfg"
fails "mcl-sim runtime (no interface)" 1 "$bin/mcl-sim" -q -u "$NOIF" -d 0.2

# mcl-log (no input file option: the missing file is a key file named by the URL)
check "mcl-log ok" status_is 0 "$bin/mcl-log" -q -u "$(U 4)" -o "$tmp/rec.mcllog" --duration 0.3
fails "mcl-log missing key file" 2 "$bin/mcl-log" -q -u "$(U 4)&$gmissing" -o "$tmp/rec2.mcllog" --duration 0.3
: >"$tmp/plainfile"
fails "mcl-log runtime (unwritable output dir)" 1 "$bin/mcl-log" -q -u "$(U 4)" -o "$tmp/plainfile/x.mcllog" --duration 0.3

# mcl-replay
check "mcl-replay ok" status_is 0 "$bin/mcl-replay" -q -s 100 -u "$(U 5)" "$data/UnitTestMessageA.log"
fails "mcl-replay missing file" 2 "$bin/mcl-replay" -q -u "$(U 5)" "$missing"
fails "mcl-replay runtime (no interface)" 1 "$bin/mcl-replay" -q -u "$NOIF" "$data/UnitTestMessageA.log"

# mcl-bridge (no input file option: a key file named by a side's URL); 0 when stopped by a signal
"$bin/mcl-bridge" --stats 0.2 "$(U 6)" "$(U 7)" >/dev/null 2>"$tmp/bridge.err" &
bpid=$!
check "mcl-bridge started" wait_for "$tmp/bridge.err" "forwarded" 10
kill -TERM "$bpid"
wait "$bpid"
check "mcl-bridge ok (signal)" test $? -eq 0
fails "mcl-bridge missing key file" 2 "$bin/mcl-bridge" "$(U 6)&$gmissing" "$(U 7)"
fails "mcl-bridge runtime (no interface)" 1 "$bin/mcl-bridge" "$NOIF" "$(U 7)"
if [[ $zmq == 1 ]]; then
    fails "mcl-bridge runtime (unresolvable host)" 1 "$bin/mcl-bridge" -1 "zmq+tcp://no-such-host.invalid:26192,$(U 7)" "$(U 6)"
fi

# mcl-keygen (the input file: an existing group key file to --rotate)
# CURVE key pairs need libzmq: without it, the same cases with group keys.
if [[ $zmq == 1 ]]; then kg=(); kext=key; else kg=(--group); kext=gkey; fi
check "mcl-keygen ok" status_is 0 "$bin/mcl-keygen" "${kg[@]}" "$tmp/k"
check "mcl-keygen group ok" status_is 0 "$bin/mcl-keygen" --group "$tmp/g"
fails "mcl-keygen missing file (--rotate)" 2 "$bin/mcl-keygen" --group --rotate "$missing"
fails "mcl-keygen runtime (unwritable dir)" 1 "$bin/mcl-keygen" "${kg[@]}" "$tmp/plainfile/k"
check "mcl-keygen names the final file" err_says "$tmp/plainfile/k.$kext:"
check "mcl-keygen hides its temporary file" sh -c "! grep -q '\.tmp' '$tmp/err'"
fails "mcl-keygen usage (exists, no --force)" 2 "$bin/mcl-keygen" "${kg[@]}" "$tmp/k"

# mcl-call (zmq only; the missing file: a CURVE key file named by the URL)
if [[ $zmq == 1 ]]; then
    curl="zmq+tcp://127.0.0.1:26193"
    "$bin/mcl-call" --serve-demo "$curl" >"$tmp/srv" 2>"$tmp/srv.err" &
    spid=$!
    if check "mcl-call demo up" wait_for "$tmp/srv" "serving demo on" 10; then
        check "mcl-call ok" status_is 0 "$bin/mcl-call" -t 5000 "$curl" calc.add '{"a": 1, "b": 2}'
    fi
    kill -TERM "$spid"
    wait "$spid"
    fails "mcl-call missing key file" 2 "$bin/mcl-call" -t 300 "zmq+tcp://127.0.0.1:26194?curve_server=$missing" --list
    fails "mcl-call runtime (dead endpoint)" 1 "$bin/mcl-call" -t 300 "zmq+tcp://127.0.0.1:26194" --list
else
    echo "test_exit.sh: no zmq: mcl-call's cases skipped" >&2
fi

# mcl-broker (no input file option: a key file named by a --bridge-out URL); 0 when stopped
"$bin/mcl-broker" -u tcp://127.0.0.1:0 >/dev/null 2>"$tmp/broker.err" &
kpid=$!
check "mcl-broker started" wait_for "$tmp/broker.err" "listening on" 10
kill -TERM "$kpid"
wait "$kpid"
check "mcl-broker ok (signal)" test $? -eq 0
fails "mcl-broker missing key file" 2 "$bin/mcl-broker" -q -u tcp://127.0.0.1:0 --bridge-out "ch=$(U 8)&$gmissing"
fails "mcl-broker runtime (address not here)" 1 "$bin/mcl-broker" -q -u tcp://192.0.2.1:26195

# mcl-stat
check "mcl-stat ok" status_is 0 "$bin/mcl-stat" -f "$data/UnitTestMessageA.log"
fails "mcl-stat missing file" 2 "$bin/mcl-stat" -f "$missing"
fails "mcl-stat runtime (no interface)" 1 "$bin/mcl-stat" -u "$NOIF" --once 0.1

# A receive buffer the kernel caps (no CAP_NET_ADMIN: net.core.rmem_max) is reported once,
# without -v, by the listening tools: what was granted, what was asked, how to raise it.
rmem=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 0)
if command -v setpriv >/dev/null && [[ $rmem -gt 0 && $rmem -lt 67108864 ]]; then
    nocap=(setpriv --inh-caps=-net_admin --bounding-set=-net_admin)
    u9="udp://239.255.93.9:26099?iface=lo&ttl=0" # (rcvbuf: the default, 64 MiB)
    check "rcvbuf: mcl-dump" status_is 0 "${nocap[@]}" "$bin/mcl-dump" -u "$u9" --timeout 0.2
    check "rcvbuf: mcl-dump one line" one_line
    check "rcvbuf: mcl-dump says" err_says "receive buffer.*64 MiB.*rmem_max.*rcvbuf="
    check "rcvbuf: mcl-stat" status_is 0 "${nocap[@]}" "$bin/mcl-stat" -u "$u9" --once 0.2
    check "rcvbuf: mcl-stat one line" one_line
    check "rcvbuf: mcl-log" status_is 0 "${nocap[@]}" "$bin/mcl-log" -q -u "$u9" -o "$tmp/rb.mcllog" --duration 0.3
    check "rcvbuf: mcl-log one line" one_line
    check "rcvbuf: mcl-log says" err_says "receive buffer"
    # Asked for no more than the kernel grants: nothing to say.
    check "rcvbuf small: mcl-dump" status_is 0 "${nocap[@]}" "$bin/mcl-dump" -u "$u9&rcvbuf=64k" --timeout 0.2
    check "rcvbuf small: silent" test ! -s "$tmp/err"
else
    echo "test_exit.sh: no setpriv or rmem_max >= 64 MiB: the capped receive buffer is not tried" >&2
fi

echo "test_exit.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Tool tests: options, exit codes, error messages, and mcl-pub -> mcl-dump round trips.
#   test_tools.sh BINDIR       (run inside scripts/netns.sh, as ctest does from scripts/test.sh)
set -uo pipefail
bin=${1:?usage: test_tools.sh BINDIR}
pub=$bin/mcl-pub
dump=$bin/mcl-dump
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh" # check, wait_for, has
status_is() { # status_is EXPECTED COMMAND...
    local want=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [[ $rc -eq $want ]] || { echo "  '$*' exited $rc, expected $want; stderr:" >&2; cat "$tmp/err" >&2; return 1; }
}
err_says() { grep -q -- "$1" "$tmp/err" || { echo "  stderr lacks '$1':" >&2; cat "$tmp/err" >&2; return 1; }; }
out_says() { grep -q -- "$1" "$tmp/out" || { echo "  stdout lacks '$1':" >&2; head -5 "$tmp/out" >&2; return 1; }; }

# Usage, version, and usage errors (exit 2) with messages that name the problem.
for t in "$pub" "$dump"; do
    n=$(basename "$t")
    extra=()
    [[ $n == mcl-pub ]] && extra=(hello)
    check "$n --help" status_is 0 "$t" --help
    check "$n --help text" out_says "Usage: $n"
    check "$n --version" status_is 0 "$t" --version
    check "$n --version text" out_says "$n 0."
    check "$n bad option" status_is 2 "$t" --no-such-option
    check "$n bad url" status_is 2 "$t" -u "udp://10.1.2.3:26000" -n 1 "${extra[@]}"
    check "$n bad url message" err_says "not a multicast address"
    check "$n bad MCL_URL" status_is 2 env MCL_URL="udp://[ff15::1]:99999" "$t" -n 1 "${extra[@]}"
    check "$n bad MCL_URL message" err_says "MCL_URL"
done
check "pub no source" status_is 2 "$pub"
check "pub two sources" status_is 2 "$pub" -s 10 hello
check "pub bad size" status_is 2 "$pub" -s 12x
check "pub bad size message" err_says "invalid size '12x'"
check "pub bad rate" status_is 2 "$pub" -r -1 hi
check "pub tiny rate" status_is 2 "$pub" -r 1e-15 hi
check "pub bad rate-mb" status_is 2 "$pub" --rate-mb fast hi
check "pub bad rate-mb message" err_says "invalid --rate-mb 'fast'"
check "pub tiny rate-mb" status_is 2 "$pub" --rate-mb 0.001 hi
check "pub rate-mb on tcp" status_is 2 "$pub" -u tcp://127.0.0.1:1 --rate-mb 5 hi
check "pub rate-mb on tcp message" err_says "applies to connections with broadcasters"
long=$(printf 'a%.0s' $(seq 1100))
check "pub long topic" status_is 2 "$pub" -t "$long" hi
check "dump long topic" status_is 2 "$dump" -t "$long"
check "pub too big" status_is 2 "$pub" -u "udp://239.255.78.1:1?iface=lo&ttl=0&maxmsg=10" -s 11
check "pub missing file" status_is 2 "$pub" -f "$tmp/nonexistent"
check "dump bad count" status_is 2 "$dump" -n 0
check "dump bad timeout" status_is 2 "$dump" --timeout abc
check "dump timeout exit" status_is 1 "$dump" -u "udp://239.255.78.2:26000?iface=lo&ttl=0" -n 1 --timeout 0.2
check "dump timeout message" err_says "timed out after 0 of 1"
check "dump plain timeout ok" status_is 0 "$dump" -u "udp://239.255.78.2:26000?iface=lo&ttl=0" --timeout 0.1

# Starts mcl-dump in the background and waits (bounded) until it has joined the group.
start_dump() { # start_dump NAME ARGS...
    local name=$1
    shift
    "$dump" -v "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    local i
    for i in $(seq 200); do
        grep -q "listening on" "$tmp/$name.err" 2>/dev/null && return 0
        sleep 0.025
    done
    echo "  mcl-dump never started: $(cat "$tmp/$name.err")" >&2
    return 1
}

u1="udp://239.255.78.10:26010?iface=lo&ttl=0"
# Round trip with topics, JSON output and a topic filter.
start_dump j -u "$u1" -t "imu/*,gnss" --json -n 3 --timeout 20
"$pub" -u "$u1" -t imu/accel -q "ax=1"
"$pub" -u "$u1" -t camera -q "not for us"
"$pub" -u "$u1" -t gnss -q -f <(printf 'lat=1\tlon=2\n')
printf 'x\001y' | "$pub" -u "$u1" -t imu/raw -q -f -
wait "$j_pid"
check "json exit" test $? -eq 0
cp "$tmp/j.out" "$tmp/out"
check "json lines" test "$(wc -l <"$tmp/out")" -eq 3
check "json text" out_says '"topic":"imu/accel","size":4,'
check "json text payload" out_says '"text":"ax=1"'
check "json escapes" out_says '"text":"lat=1\\tlon=2\\n"'
check "json base64" out_says '"base64":"eAF5"'
check "json filter" bash -c "! grep -q camera '$tmp/out'"

# An empty topic entry selects messages published without a topic.
u5="udp://239.255.78.14:26014?iface=lo&ttl=0"
start_dump e -u "$u5" -t ",x" -n 2 --json --timeout 20
"$pub" -u "$u5" -q "no topic"
"$pub" -u "$u5" -t y -q "filtered"
"$pub" -u "$u5" -t x -q "x topic"
wait "$e_pid"
check "empty topic filter exit" test $? -eq 0
cp "$tmp/e.out" "$tmp/out"
check "empty topic delivered" out_says '"topic":"","size":8'
check "x delivered" out_says '"text":"x topic"'
check "y filtered" bash -c "! grep -q filtered '$tmp/out'"

# Hostile bytes in topics and payloads never reach the terminal raw, and JSON stays valid.
u6="udp://239.255.78.15:26015?iface=lo&ttl=0"
start_dump x -u "$u6" -n 1 --timeout 20
"$pub" -u "$u6" -t "$(printf 'a\033[2Jb')" -q "$(printf 'c\033[31md')"
wait "$x_pid"
check "no raw escape" bash -c "! grep -q \$'\\033' '$tmp/x.out'"
cp "$tmp/x.out" "$tmp/out"
check "escaped topic" out_says 'a\\x1b\[2Jb'

# Lines from stdin, the human format, and --stats at exit.
u2="udp://239.255.78.11:26011?iface=lo&ttl=0"
start_dump h -u "$u2" -n 3 --stats --timeout 20
printf 'one\ntwo\nthree\n' | "$pub" -u "$u2" -t lines -l -q
wait "$h_pid"
check "human exit" test $? -eq 0
cp "$tmp/h.out" "$tmp/out"
check "human text" out_says 'lines .* 3 B .*"two"'
cp "$tmp/h.err" "$tmp/err"
check "stats header" err_says "publisher .*received .*lost"
check "stats total" err_says "total: received 3 "

# 100,000 messages of 64 B at full rate: the counts reported are exact (received + lost +
# unseen tail = published), and the loss is printed for the record.
u3="udp://239.255.78.12:26012?iface=lo&ttl=0"
start_dump f -u "$u3" -q -n 100000 --stats --timeout 30
"$pub" -u "$u3" -n 100000 -s 64 -r 0 2>"$tmp/pub.err"
wait "$f_pid"
cat "$tmp/pub.err" "$tmp/f.err" | grep -E "published|total" | sed 's/^/  /' >&2
line=$(grep -E '^[0-9a-f]{16} ' "$tmp/f.err" | head -1)
read -r _ _ recv lost _ _ last _ <<<"$line" # (the last field, program[pid]@host, may follow)
check "full rate accounted" test $((recv + lost + 99999 - last)) -eq 100000

# 1 MiB messages arrive whole (paced at 500 MB/s by --rate-mb: the rate= it adds parses).
u4="udp://239.255.78.13:26013?iface=lo&ttl=0"
start_dump m -u "$u4" -n 5 --stats --timeout 20
"$pub" -u "$u4" -t frame -n 5 -s 1M -r 0 -q --rate-mb 500
wait "$m_pid"
check "1MiB exit" test $? -eq 0
cp "$tmp/m.out" "$tmp/out"
check "1MiB sizes" test "$(grep -c ' 1048576 B ' "$tmp/out")" -eq 5
cp "$tmp/m.err" "$tmp/err"
check "1MiB no loss" err_says "total: received 5 (5242880 bytes), lost 0,"

# --- messages: mcl-sim, decoding in mcl-dump, JSON publishing ---------------------------------
sim=$bin/mcl-sim
check "sim --help" status_is 0 "$sim" --help
check "sim --list" status_is 0 "$sim" --list
check "sim list has camera" out_says "camera .* 131072 .*CameraFrame .*camera/front"
printf '# test\nfast = 200, 0, imu\nblob_a = 2.5, 2k, blob, raw/a   # comment\n\n' >"$tmp/ok.cfg"
check "sim config list" status_is 0 "$sim" -c "$tmp/ok.cfg" --list
check "sim config rate" out_says "fast .* 200 .* imu .*Imu .*fast"
check "sim config blob" out_says "blob_a .* 2.5 .* 2048 .*blob .*Blob .*raw/a"
bad_cfg() { # bad_cfg TEXT EXPECTED-MESSAGE
    printf "$1" >"$tmp/bad.cfg"
    status_is 2 "$sim" -c "$tmp/bad.cfg" --list && err_says "$2"
}
check "cfg no equals" bad_cfg 'imu = 1, 0\nthis line is wrong\n' "bad.cfg:2: expected 'NAME = RATE_HZ"
check "cfg bad rate" bad_cfg 'imu = fast, 0\n' "bad.cfg:1: rate 'fast'"
check "cfg zero rate" bad_cfg 'imu = 0, 0\n' "bad.cfg:1: rate '0'"
check "cfg bad size" bad_cfg 'imu = 1, -5\n' "bad.cfg:1: size '-5'"
check "cfg bad type" bad_cfg '\n\nx = 1, 0, radar\n' "bad.cfg:3: unknown type 'radar'"
check "cfg twice" bad_cfg 'a = 1, 0\na = 2, 0\n' "bad.cfg:2: stream 'a' is defined twice"
check "cfg fields" bad_cfg 'a = 1, 0, imu, t, extra\n' "bad.cfg:1: too many fields"
check "cfg short" bad_cfg 'a = 1\n' "bad.cfg:1: 'a' needs at least a rate and a size"
check "cfg name" bad_cfg 'a b = 1, 0\n' "bad.cfg:1: stream name 'a b'"
check "cfg empty" bad_cfg '# nothing\n' "no streams defined"
check "cfg missing file" status_is 2 "$sim" -c "$tmp/none.cfg"
check "sim bad duration" status_is 2 "$sim" -d 0

# mcl-sim traffic decoded by mcl-dump; every JSON line parses with jq.
u7="udp://239.255.78.16:26016?iface=lo&ttl=0"
start_dump s -u "$u7" --json --timeout 20 -n 40
"$sim" -u "$u7" -d 0.6 -q
wait "$s_pid"
check "sim dump exit" test $? -eq 0
check "jq parses every line" bash -c "jq -e . '$tmp/s.out' >/dev/null"
check "jq imu fields" bash -c "jq -e 'select(.msg.name == \"Imu\") | .msg.az > 9 and .msg.az < 10.5' '$tmp/s.out' | grep -q true"
# camera and lidar carry typed arrays sized by the built-in SIZE_BYTES (131072, 61440), and
# no padding: a mono8 frame uint8[204,640] and float32[15328] ranges on the arena's walls.
check "jq camera frame" bash -c "jq -e 'select(.topic == \"camera/front\") | .msg.frame[\"\$ndarray\"] | .dtype == \"uint8\" and .shape == [204, 640] and (.data | length) == 204 and (.data[1] | length) == 640 and .data[1][0:3] == [1, 2, 3]' '$tmp/s.out' | grep -q true"
check "jq camera width and height" bash -c "jq -e 'select(.topic == \"camera/front\") | .msg.width == 640 and .msg.height == 204 and (.msg | has(\"data\") | not)' '$tmp/s.out' | grep -q true"
check "jq lidar ranges" bash -c "jq -e 'select(.topic == \"lidar/top\") | .msg.ranges[\"\$ndarray\"] | .dtype == \"float32\" and .shape == [15328] and (.data | min) > 29.5 and (.data | max) < 43' '$tmp/s.out' | grep -q true"
check "jq lidar no padding" bash -c "jq -e 'select(.topic == \"lidar/top\") | .msg | has(\"data\") | not' '$tmp/s.out' | grep -q true"
check "jq gnss near Sydney" bash -c "jq -e 'select(.msg.name == \"GnssFix\") | (.msg.lat | floor) == -34' '$tmp/s.out' | grep -q true"

# The human format shows the sim's arrays as dtype[shape] summaries; a lidar scan dumped with
# --json-base64 and published again by mcl-pub --json-lines arrives bit for bit the same.
start_dump sh -u "$u7" -t 'lidar/*,camera/*' --timeout 20 -n 4
start_dump sb -u "$u7" -t 'lidar/top' --timeout 20 -n 1 --json-base64
"$sim" -u "$u7" -d 0.6 -q
wait "$sh_pid" "$sb_pid"
check "sim lidar json-base64" bash -c "jq -e '.msg.ranges[\"\$ndarray\"] | .shape == [15328] and (.base64 | length) == 81752' '$tmp/sb.out' | grep -q true"
u11="udp://239.255.78.20:26020?iface=lo&ttl=0"
start_dump sr -u "$u11" --timeout 20 -n 1 --json-base64
jq -c .msg "$tmp/sb.out" | "$pub" -u "$u11" -t lidar/top -q --json-lines
wait "$sr_pid"
check "sim lidar json-base64 round trip" test "$(jq -c .msg "$tmp/sr.out")" = "$(jq -c .msg "$tmp/sb.out")"
check "sim lidar round trip size" test "$(jq .size "$tmp/sr.out")" = "$(jq .size "$tmp/sb.out")"
cp "$tmp/sh.out" "$tmp/out"
check "dump shows sim lidar as float32[...]" out_says 'lidar/top .*LidarScan .* ranges=float32\[15328\] 29\.9[0-9]* 30\.0[0-9]* '
check "dump shows sim camera as uint8[...]" out_says 'camera/front .*CameraFrame .* frame=uint8\[204,640\] [0-9]* [0-9]* '

# Human format: name and fields; --raw shows the bytes instead.
u8="udp://239.255.78.17:26017?iface=lo&ttl=0"
start_dump k -u "$u8" -n 1 --timeout 20
"$pub" -u "$u8" -t cmd -q -j '{"name":"Cmd","speed":1.5,"mode":"auto"}'
wait "$k_pid"
cp "$tmp/k.out" "$tmp/out"
check "human message" out_says 'cmd .*Cmd .* speed=1.5 .* mode="auto"'
start_dump r -u "$u8" -n 1 --timeout 20 --raw
"$pub" -u "$u8" -t cmd -q -j '{"name":"Cmd"}'
wait "$r_pid"
cp "$tmp/r.out" "$tmp/out"
check "raw shows hex" out_says ' 82[0-9a-f]*'

# JSON Lines in; a bad line is reported with its number, skipped, and exit is 1.
start_dump l -u "$u8" -n 2 --json --timeout 20
printf '{"n":1}\n{oops\n{"n":2,"b":{"$bin":"AAE="}}\n' | "$pub" -u "$u8" --json-lines -q 2>"$tmp/err"
check "json-lines exit" test $? -eq 1
check "json-lines bad line named" err_says "stdin line 2: line 1, column 5"
wait "$l_pid"
check "json-lines delivered" test "$(jq -s 'map(.msg.n) | add' "$tmp/l.out")" = 3
check "json-lines binary" test "$(jq -r 'select(.msg.n == 2) | .msg.b["$bin"]' "$tmp/l.out")" = "AAE="
check "pub bad json" status_is 2 "$pub" -j '[1,2]'
check "pub bad json message" err_says "must be a JSON object"

# A typed array (docs/json.md "$ndarray"): published from JSON, shown as a summary with its
# first elements, as the same object in --json (lists), and in --csv as DTYPE[SHAPE]:BASE64.
nd='{"name":"Scan","r":{"$ndarray":{"dtype":"float32","shape":[6],"data":[0.5,1.25,2.0,-1.0,7.0,8.0]}},"m":{"$ndarray":{"dtype":"uint8","shape":[2,2],"data":[[1,2],[3,4]]}}}'
u9="udp://239.255.78.18:26018?iface=lo&ttl=0"
start_dump nh -u "$u9" -n 1 --timeout 20
start_dump nj -u "$u9" -n 1 --timeout 20 --json
start_dump nc -u "$u9" -n 1 --timeout 20 --csv r,m
start_dump nb -u "$u9" -n 1 --timeout 20 --json-base64
"$pub" -u "$u9" -t scan -q -j "$nd"
check "ndarray pub exit" test $? -eq 0
wait "$nh_pid" "$nj_pid" "$nc_pid" "$nb_pid"
cp "$tmp/nh.out" "$tmp/out"
check "ndarray human summary" out_says 'r=float32\[6\] 0.5 1.25 2 -1 \.\.\.'
check "ndarray human 2-d" out_says 'm=uint8\[2,2\] 1 2 3 4$'
check "ndarray json lists" grep -q '"r":{"$ndarray":{"dtype":"float32","shape":\[6\],"data":\[0.5,1.25,2.0,-1.0,7.0,8.0\]}}' "$tmp/nj.out"
check "ndarray json shape" test "$(jq -c '.msg.m["$ndarray"]' "$tmp/nj.out")" = '{"dtype":"uint8","shape":[2,2],"data":[[1,2],[3,4]]}'
check "ndarray csv" test "$(tr -d '\r' <"$tmp/nc.out")" = 'float32[6]:AAAAPwAAoD8AAABAAACAvwAA4EAAAABB,"uint8[2,2]:AQIDBA=="'
# --json-base64: the same objects with "base64" (the little-endian bytes) instead of "data",
# and every other member as --json writes it.
check "ndarray json-base64 r" test "$(jq -c '.msg.r["$ndarray"]' "$tmp/nb.out")" = '{"dtype":"float32","shape":[6],"base64":"AAAAPwAAoD8AAABAAACAvwAA4EAAAABB"}'
check "ndarray json-base64 m" test "$(jq -c '.msg.m["$ndarray"]' "$tmp/nb.out")" = '{"dtype":"uint8","shape":[2,2],"base64":"AQIDBA=="}'
check "ndarray json-base64 rest as --json" test "$(jq -c 'del(.msg.r, .msg.m, .time)' "$tmp/nb.out")" = "$(jq -c 'del(.msg.r, .msg.m, .time)' "$tmp/nj.out")"
check "ndarray json-base64 no lists" test "$(grep -c '"data"' "$tmp/nb.out")" -eq 0
# Round trip: the "msg" of a --json-base64 line, published again by mcl-pub --json-lines,
# arrives as the same message (its timestamp included), in both JSON forms.
u10="udp://239.255.78.19:26019?iface=lo&ttl=0"
start_dump rb -u "$u10" -n 1 --timeout 20 --json-base64
start_dump rj -u "$u10" -n 1 --timeout 20 --json
jq -c .msg "$tmp/nb.out" | "$pub" -u "$u10" -t scan -q --json-lines
check "ndarray json-base64 republish exit" test $? -eq 0
wait "$rb_pid" "$rj_pid"
check "ndarray json-base64 round trip" test "$(jq -c .msg "$tmp/rb.out")" = "$(jq -c .msg "$tmp/nb.out")"
check "ndarray json-base64 round trip lists" test "$(jq -c .msg "$tmp/rj.out")" = "$(jq -c .msg "$tmp/nj.out")"

if [[ "${MCL_HAVE_ZMQ:-1}" == 1 ]]; then
# ZeroMQ: the same tools on zmq+ URLs. mcl-pub binds and waits for its subscriber (slow
# joiner), mcl-dump connects; a publisher nobody listens to says so and exits 1.
z1="zmq+ipc://$tmp/z1.sock"
start_dump z -u "$z1" -n 20 --timeout 20 --stats -q
"$pub" -u "$z1" -t zt -s 1000 -n 20 -r 0 -q
check "zmq pub exit" test $? -eq 0
wait "$z_pid"
check "zmq dump exit" test $? -eq 0
cp "$tmp/z.err" "$tmp/err"
check "zmq dump totals" err_says "total: received 20 .*lost 0, duplicates 0"
start_dump zj -u "$z1" -n 1 --json --timeout 20
"$pub" -u "$z1" -t zt -q "json over zmq"
wait "$zj_pid"
check "zmq json sender is null" test "$(jq -r '.sender' "$tmp/zj.out")" = null
check "zmq json text" test "$(jq -r '.text' "$tmp/zj.out")" = "json over zmq"
check "zmq pub without listener" status_is 1 "$pub" -u "zmq+ipc://$tmp/nobody.sock" --wait 0.2 hi
check "zmq pub without listener says" err_says "timed out waiting 0.2 s for 1 subscriber"
check "zmq epgm refused" status_is 2 "$pub" -u "zmq+epgm://127.0.0.1;239.1.1.1:5555" hi
check "zmq epgm message" err_says "not supported"
check "udp-only option on zmq" status_is 2 "$dump" -u "zmq+tcp://127.0.0.1:1?ttl=0" -n 1
check "udp-only option message" err_says "applies to udp:// connections only"
check "zmq unresolvable host" status_is 1 timeout 5 "$dump" -u 'zmq+tcp://no-such-host.invalid:5555' -n 1
check "zmq unresolvable host says" err_says "cannot resolve host 'no-such-host.invalid'"
check "zmq key file /dev/zero fails fast" status_is 2 timeout 1 "$pub" -u 'zmq+tcp://127.0.0.1:0?curve=/dev/zero' hi
check "zmq key file /dev/zero says" err_says "/dev/zero: not a regular file"

# CURVE through the tools: mcl-keygen's files, a right key and a wrong one.
keygen=$bin/mcl-keygen
check "keygen" status_is 0 "$keygen" "$tmp/srv"
check "keygen prints hex" bash -c "grep -Eq '^[0-9a-f]{64}$' '$tmp/out'"
check "keygen secret mode" test "$(stat -c %a "$tmp/srv.key")" = 600
check "keygen no overwrite" status_is 2 "$keygen" "$tmp/srv"
check "keygen no overwrite says" err_says "use --force"
check "keygen other" status_is 0 "$keygen" "$tmp/other"
hexkey=$(grep -o '[0-9a-f]\{64\}' "$tmp/srv.pub")
zc="zmq+tcp://127.0.0.1:5771"
start_dump c -u "$zc?curve_server=$hexkey" -n 1 --timeout 20
"$pub" -u "$zc?curve=$tmp/srv.key" -q "secret hello"
check "curve pub exit" test $? -eq 0
wait "$c_pid"
check "curve dump exit" test $? -eq 0
cp "$tmp/c.out" "$tmp/out"
check "curve delivered" out_says "secret hello"
start_dump w -u "$zc?curve_server=$tmp/other.pub" -n 1 --timeout 5
check "curve wrong key refused" status_is 1 "$pub" -u "$zc?curve=$tmp/srv.key" --wait 1 -v hi
check "curve wrong key reported" err_says "handshakes failed (wrong or missing CURVE key?)"
check "curve wrong key logged" err_says "handshake with .* failed"
# Without -v: one line for the failing peer (not one per retry) and the one error line.
check "curve wrong key, quiet" status_is 1 "$pub" -u "$zc?curve=$tmp/srv.key" --wait 1 hi
check "curve wrong key: two lines" test "$(wc -l <"$tmp/err")" -eq 2
check "curve wrong key: the count" err_says "[0-9][0-9]* handshakes failed (wrong or missing"
wait "$w_pid"
check "curve wrong key: nothing received" test $? -eq 1
check "curve wrong key: dump logged it once" test "$(grep -c 'handshake with the server at' "$tmp/w.err")" -eq 1
check "curve wrong key: dump says why" has "$tmp/w.err" "timed out after 0 of 1 messages; [0-9]* handshakes failed"

# Record from zmq with mcl-log (a queued listener: its receiver process connects), then replay
# the log onto zmq with mcl-replay, which waits for mcl-dump's subscription.
zl="zmq+ipc://$tmp/zlog.sock"
"$bin/mcl-log" -u "$zl" -o "$tmp/zlog.mcllog" --duration 20 2>"$tmp/zlog.err" &
zlog_pid=$!
"$pub" -u "$zl" -t rec -s 500 -n 50 -r 0 -q
check "zmq log pub exit" test $? -eq 0
for i in $(seq 200); do # the log holds all 50 once mcl-log has written them (bounded wait)
    [[ $("$dump" -f "$tmp/zlog.mcllog" 2>/dev/null | wc -l) -eq 50 ]] && break
    sleep 0.05
done
kill -INT "$zlog_pid"
wait "$zlog_pid"
check "zmq mcl-log exit" test $? -eq 0
check "zmq log has all" test "$("$dump" -f "$tmp/zlog.mcllog" | wc -l)" -eq 50
cp "$tmp/zlog.err" "$tmp/err"
check "zmq mcl-log summary" err_says "received 50, lost 0"
zr="zmq+ipc://$tmp/zreplay.sock"
start_dump zr -u "$zr" -n 50 --timeout 20 --stats -q
"$bin/mcl-replay" -u "$zr" -s 100 -q "$tmp/zlog.mcllog"
check "zmq replay exit" test $? -eq 0
wait "$zr_pid"
check "zmq replay dump exit" test $? -eq 0
cp "$tmp/zr.err" "$tmp/err"
check "zmq replay delivered" err_says "total: received 50 .*lost 0"

# mcl-sim over zmq: every stream's message broadcaster shares the one bound socket, and
# mcl-dump decodes what arrives.
zs="zmq+ipc://$tmp/zsim.sock"
start_dump zs -u "$zs" -t imu -n 5 --timeout 20
"$bin/mcl-sim" -u "$zs" -d 1 -q
check "zmq sim exit" test $? -eq 0
wait "$zs_pid"
check "zmq sim dump exit" test $? -eq 0
cp "$tmp/zs.out" "$tmp/out"
check "zmq sim decoded" out_says "imu .*Imu .*ax="

check "bridge bad url" status_is 2 "$bin/mcl-bridge" "$u8" "zmq+tcp://h"
check "bridge bad url says" err_says "missing port"
else
# Built without libzmq (MCL_WITH_ZMQ=OFF): zmq+ URLs are refused as a usage error that says why.
check "zmq refused" status_is 2 "$pub" -u "zmq+tcp://127.0.0.1:1" hi
check "zmq refused says" err_says "no ZeroMQ"
check "keygen without zmq" status_is 1 "$bin/mcl-keygen" "$tmp/nokey"
fi

# mcl-bridge usage errors (the two-island test is tests/cmd/test_bridge.sh).
check "bridge one side" status_is 2 "$bin/mcl-bridge" "$u8"
check "bridge one side says" err_says "give two sides"

# A valid message of 4 Mi nils (a Python MCL text log) is beyond the decoding budget: mcl-dump
# says so and shows it raw, its peak memory bounded (the old decoder took over 300 MB).
python3 -c 'import sys; n=4<<20; p=b"\x81\xa1a\xdd"+n.to_bytes(4,"big")+b"\xc0"*n; sys.stdout.write(" 0.0 \x27t\x27 %s\n" % p.hex())' >"$tmp/nils.log"
check "dump nil bomb memory" status_is 0 python3 -c 'import resource as r,subprocess as s,sys; s.run(sys.argv[1:],stdout=s.DEVNULL); m=r.getrusage(r.RUSAGE_CHILDREN).ru_maxrss; print("peak KiB", m, file=sys.stderr); sys.exit(m > 200000)' "$dump" -f "$tmp/nils.log" --json
check "dump nil bomb says" err_says "is undecodable, shown raw: .*budget of 8 x"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

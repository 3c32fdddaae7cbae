#!/usr/bin/env bash
# The live demo: sets everything up, builds, and in a private network namespace runs
# publishers of simulated sensor data while mcl-dump shows what arrives.
#
#   scripts/demo.sh [SECONDS]     (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}

scripts/setup.sh
build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMCL_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

if [[ "${MCL_NETNS:-}" != 1 ]]; then
    exec scripts/netns.sh "$0" "$@"
fi

bin=$build/cmd
url="udp://239.255.26.1:26000?iface=lo&ttl=0"
echo "demo: publishers of simulated IMU (50 Hz), GNSS (5 Hz) and 128 KiB camera frames (2 Hz)"
echo "demo: on $url, for $secs s; mcl-dump shows them, then its per-publisher statistics"
echo

err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$bin/mcl-dump" -u "$url" --timeout "$((secs + 1))" --stats -w 60 -v 2>"$err" &
dump=$!
# Start the publishers once the listener has joined (it says so; bounded wait).
for _ in $(seq 100); do grep -q "listening on" "$err" 2>/dev/null && break; sleep 0.05; done

imu() {
    awk -v n=$((secs * 50)) 'BEGIN { srand(1); for (i = 0; i < n; i++) {
        t = i / 50.0
        printf "ax=%+.3f ay=%+.3f az=%+.3f gz=%+.4f\n", 0.2*sin(t), 0.1*cos(t), 9.81 + 0.02*(rand()-0.5), 0.01*sin(2*t) } }' |
        "$bin/mcl-pub" -u "$url" -t imu -l -q -r 50
}
gnss() {
    awk -v n=$((secs * 5)) 'BEGIN { for (i = 0; i < n; i++)
        printf "lat=%.7f lon=%.7f alt=%.2f fix=3 sats=%d\n", -33.888 + i*1e-6, 151.194 + i*2e-6, 42 + 0.1*i, 9 + i % 3 }' |
        "$bin/mcl-pub" -u "$url" -t gnss -l -q -r 5
}
imu &
p1=$!
gnss &
p2=$!
"$bin/mcl-pub" -u "$url" -t camera -s 128k -n $((secs * 2)) -r 2 -q &
p3=$!
wait $p1 $p2 $p3
wait $dump
grep -v "listening on" "$err" >&2 || true

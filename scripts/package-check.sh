#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian packages of scripts/package.sh on this machine as a user would
# (`dpkg -i`), but inside a private mount namespace whose /usr, /etc and /var are overlays
# over the real ones: the real system never changes, and all of it is gone at exit. Then,
# with no environment variable, it checks that every tool runs from PATH, the man pages are
# found by man, and programs built with pkg-config and with find_package(mcl) run; then that
# the packages remove cleanly.
#   scripts/package-check.sh [BUILD_DIR]      (default build/package; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/package}
shopt -s nullglob
debs=("$build"/*.deb)
[[ ${#debs[@]} -ge 3 ]] || { echo "package-check: no packages in $build (run scripts/package.sh)" >&2; exit 1; }
if [[ $(id -u) -ne 0 ]]; then
    echo "package-check: needs root (dpkg in a private mount namespace)" >&2
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "${debs[@]}" "$tmp/"
cp tests/install/consumer/consumer.c tests/install/consumer/CMakeLists.txt "$tmp/"
version=$(awk '/#define MCL_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' \
    include/mcl/version.h)

cat >"$tmp/inside.sh" <<'INSIDE'
set -uo pipefail
tmp=$1
version=$2
for d in usr etc var; do
    mkdir -p "$tmp/$d.up" "$tmp/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/$d.up,workdir=$tmp/$d.work" "/$d" || exit 77
done
. "$3/tests/cmd/lib.sh"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i "$tmp"/*.deb >"$tmp/dpkg.log" 2>&1
check "dpkg -i installs the packages" test $? -eq 0 || cat "$tmp/dpkg.log" >&2
run() { env -i PATH=/usr/bin:/bin HOME="$tmp" "$@"; }
for t in mcl-pub mcl-dump mcl-sim mcl-log mcl-replay mcl-bridge mcl-keygen mcl-call mcl-broker mcl-stat; do
    check "$t is on PATH" bash -c "[[ \$(env -i PATH=/usr/bin:/bin bash -c 'command -v $t') == /usr/bin/$t ]]"
    check "$t --version" bash -c "env -i PATH=/usr/bin:/bin $t --version | grep -q '^$t $version'"
    if command -v man >/dev/null; then
        check "man $t" bash -c "env -i PATH=/usr/bin:/bin man -w $t | grep -q '/usr/share/man/man1/$t.1'"
    else
        check "$t.1 installed" bash -c "ls /usr/share/man/man1/$t.1* >/dev/null"
    fi
done
check "no run path in the tools" bash -c "! readelf -d /usr/bin/mcl-pub | grep -q 'R.*PATH'"
check "pkg-config finds mcl $version" bash -c "[[ \$(env -i PATH=/usr/bin:/bin pkg-config --modversion mcl) == $version ]]"
check "pkg-config consumer builds" run bash -c "cd '$tmp' && cc -o c-pc consumer.c \$(pkg-config --cflags --libs mcl)"
check "pkg-config consumer runs" run bash -c "'$tmp/c-pc' | grep -q \"received 'hello'\""
check "find_package consumer builds" run bash -c "cmake -S '$tmp' -B '$tmp/cm' >'$tmp/cm.log' 2>&1 && cmake --build '$tmp/cm' >>'$tmp/cm.log' 2>&1" \
    || cat "$tmp/cm.log" >&2
check "find_package consumer runs" run bash -c "'$tmp/cm/consumer' | grep -q \"received 'hello'\""
pkgs=$(for f in "$tmp"/*.deb; do dpkg-deb -f "$f" Package; done)
# shellcheck disable=SC2086
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -r $pkgs >"$tmp/dpkg-r.log" 2>&1
check "dpkg -r removes them" test $? -eq 0 || cat "$tmp/dpkg-r.log" >&2
check "nothing left in /usr/bin" bash -c "! ls /usr/bin/mcl-* 2>/dev/null"
echo "package-check: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
INSIDE
unshare -m --propagation private bash "$tmp/inside.sh" "$tmp" "$version" "$PWD"

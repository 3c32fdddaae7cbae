#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the build tree into a temporary prefix and uses it as a newcomer would, with no
# environment variable: every installed tool starts (--version), the man pages are there, and
# two programs outside the tree build against it and run: one with find_package(mcl), one with
# `pkg-config --cflags --libs mcl`. Then the prefix is moved and everything still works
# (relative run paths, a relocatable mcl.pc and CMake package).
#   test_install.sh BUILD_DIR SOURCE_DIR [SANITIZE_FLAGS]
set -uo pipefail
build=$1
src=$2
san=${3:-}
. "$src/tests/cmd/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cflags=""
[[ -n "$san" ]] && cflags="-fsanitize=$san"
unset LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
version=$(awk '/#define MCL_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' \
    "$src/include/mcl/version.h")

check "install" cmake --install "$build" --prefix "$tmp/p" >"$tmp/install.log"
# lib/ or lib/<multiarch>/, as GNUInstallDirs chose: where mcl.pc went, relative to the prefix.
pcdir=$(cd "$tmp/p" && find . -name mcl.pc -printf '%h\n' | head -n 1)

use_prefix() { # use_prefix P TAG: everything a user does with an installed prefix P
    local p=$1 tag=$2 t pc
    for t in mcl-pub mcl-dump mcl-sim mcl-log mcl-replay mcl-bridge mcl-keygen mcl-call mcl-broker mcl-stat; do
        check "$tag: $t --version runs" bash -c "'$p/bin/$t' --version | grep -q '^$t $version'"
        check "$tag: $t.1 installed" test -s "$p/share/man/man1/$t.1"
        check "$tag: $t.1 is its --help" grep -q "^\.TH ${t^^} 1 \"\" \"mcl $version\"" "$p/share/man/man1/$t.1"
    done
    check "$tag: headers" test -f "$p/include/mcl/mcl.h"
    pc="$p/$pcdir"
    check "$tag: pkg-config version" bash -c "[[ \$(PKG_CONFIG_PATH='$pc' pkg-config --modversion mcl) == $version ]]"
    check "$tag: pkg-config --cflags" bash -c "PKG_CONFIG_PATH='$pc' pkg-config --cflags mcl >/dev/null"
    check "$tag: pkg-config --static --libs" bash -c "PKG_CONFIG_PATH='$pc' pkg-config --static --libs mcl | grep -q -- -lmcl"
    rm -f "$tmp/c-pc"
    # shellcheck disable=SC2046
    check "$tag: pkg-config consumer builds" cc $cflags -o "$tmp/c-pc" "$src/tests/install/consumer/consumer.c" \
        $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs mcl)
    check "$tag: pkg-config consumer runs" bash -c "'$tmp/c-pc' | grep -q \"received 'hello' on greeting\""
    rm -rf "$tmp/cm"
    check "$tag: find_package consumer configures" cmake -S "$src/tests/install/consumer" -B "$tmp/cm" \
        -DCMAKE_PREFIX_PATH="$p" -DCMAKE_C_FLAGS="$cflags" >"$tmp/cm.log" 2>&1
    check "$tag: find_package consumer builds" cmake --build "$tmp/cm" >>"$tmp/cm.log" 2>&1
    check "$tag: find_package consumer runs" bash -c "'$tmp/cm/consumer' | grep -q \"received 'hello' on greeting\""
    # The version file: a newer major is refused at configure time.
    rm -rf "$tmp/cm2"
    check "$tag: find_package(mcl 99) is refused" bash -c "! cmake -S '$src/tests/install/consumer' -B '$tmp/cm2' \
        -DCMAKE_PREFIX_PATH='$p' -DMCL_WANT=99 >'$tmp/cm2.log' 2>&1"
    check "$tag: ... saying which version it found" grep -q "$version" "$tmp/cm2.log"
}
use_prefix "$tmp/p" "installed"
# A prefix moved elsewhere keeps working (nothing in it names where it was installed).
mv "$tmp/p" "$tmp/moved"
use_prefix "$tmp/moved" "moved"
check "nothing names the old prefix" bash -c "! grep -rlq '$tmp/p/' '$tmp/moved'"

echo "install: $pass passed, $fail failed"
[[ $fail -eq 0 ]]

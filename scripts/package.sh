#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Debian packages of mcl: a release build for /usr (build/package), then `cpack -G DEB`:
#   libmcl<SOVERSION>  the shared library (and LICENSE)
#   libmcl-dev         headers, libmcl.so, mcl.pc, the CMake package
#   mcl-tools          mcl-pub, mcl-dump, mcl-stat, ... and their man pages
# Dependencies come from dpkg-shlibdeps. Install them with `apt install ./build/package/*.deb`.
#   scripts/package.sh            build the packages; print their names
#   scripts/package.sh --check    ... then install them in a throwaway overlay of this machine's
#                                 /usr, /etc and /var (a private mount namespace: the real system
#                                 is untouched) and run the tools and a pkg-config consumer
#                                 there, with no environment variable
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[[ "${1:-}" == "--check" ]] && check=1
build=${MCL_PACKAGE_BUILD:-build/package}
jobs=$(nproc 2>/dev/null || echo 2)

scripts/setup.sh >/dev/null
echo "package: configuring $build (Release, prefix /usr)"
# No run path: the library goes where the dynamic linker looks.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_RPATH= \
    -DMCL_BUILD_TESTS=OFF -DMCL_BUILD_BENCH=OFF -DMCL_BUILD_EXAMPLES=OFF -DMCL_SANITIZE= >/dev/null
echo "package: building"
cmake --build "$build" -j"$jobs" >/dev/null
echo "package: cpack -G DEB"
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
ls "$build"/*.deb
[[ $check -eq 1 ]] || exit 0

exec scripts/package-check.sh "$build"

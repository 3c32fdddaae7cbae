#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every source file of the tree (C, shell, Python, CMake) names its licence in an SPDX line near
# its top, and LICENSE is the licence that line names.
#   check_spdx.sh SOURCE_DIR
set -uo pipefail
cd "$1" || exit 1
missing=0
while IFS= read -r -d '' f; do
    head -n 3 "$f" | grep -q 'SPDX-License-Identifier: BSD-3-Clause' || { echo "no SPDX line: $f"; missing=$((missing + 1)); }
done < <(find . \( -path ./build -o -path './build/*' -o -path ./tests/data -o -path ./fuzz/corpus -o -path ./.git \) -prune -o \
    -type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name '*.py' -o -name CMakeLists.txt -o -name '*.cmake' -o -name '*.in' \) -print0)
grep -q '^BSD 3-Clause License' LICENSE || { echo "LICENSE is not the BSD 3-Clause licence"; missing=$((missing + 1)); }
echo "spdx: $missing missing"
[[ $missing -eq 0 ]]

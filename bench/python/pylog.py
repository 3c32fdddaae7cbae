# SPDX-License-Identifier: BSD-3-Clause
"""The Python log row of scripts/bench.sh (ONLY=python): one typed field of a recording into
numpy with mcl.log.LogReader(PATH).to_numpy([FIELD]), against the C reader's record rate on the
same file (bench/logread.c -T / -R, run by bench.sh just before). Best of 3 runs, the file in
the page cache (the C row reads it first). Prints one line:
  BENCH case=logread-typed impl=python field=F records=N records_per_s=..

  pylog.py PATH FIELD
"""
import sys
import time

from mcl.log import LogReader


def main():
    path, field = sys.argv[1], sys.argv[2]
    best, n = None, 0
    for _ in range(3):
        t0 = time.monotonic()
        with LogReader(path) as r:
            a = r.to_numpy([field])
        t = time.monotonic() - t0
        n = len(a)
        best = t if best is None or t < best else best
    print('BENCH case=logread-typed impl=python field=%s records=%d records_per_s=%.0f'
          % (field, n, n / best))


if __name__ == '__main__':
    main()

# SPDX-License-Identifier: BSD-3-Clause
"""Record mcl-sim's IMU and GNSS traffic, then plot their fields over time into a PNG.

    mcl-sim -d 12 &                                   # simulated sensors for 12 s
    python3 python/examples/plot_sim.py -s 10 -o sim.png
    python3 python/examples/plot_sim.py --from run.mcllog -o sim.png   # plot a recording

Recording: a QueuedListener (its receiver runs in its own process, so plotting or a slow disk
never makes the kernel drop datagrams) writes every imu and gnss message into an mcl log
(LogWriter), also readable by mcl-dump -f and mcl-replay. Plotting: LogReader.to_numpy() reads
the fields of each message type into columns, matplotlib (Debian python3-matplotlib) draws them.
Prints what it recorded and what it lost; exit status 1 when it received nothing.
"""
import argparse
import os
import sys
import tempfile
import time

import mcl
from mcl.log import LogReader, LogWriter

IMU = ['ax', 'ay', 'az', 'gz']
GNSS = ['lat', 'lon', 'speed', 'heading']


def record(url, seconds, path):
    """Every imu and gnss message for `seconds` into the log at `path`: (messages, lost)."""
    written = [0]

    def keep(msg):  # on the listener's callback thread
        w.write(msg)
        written[0] += 1

    with LogWriter(path, overwrite=True) as w, \
            mcl.QueuedListener(mcl.Connection(url), topics=['imu', 'gnss']) as listener:
        listener.subscribe(keep)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.1)
        listener.close()  # the callback thread is done with w once close returns
        return written[0], listener.lost


def plot(path, png):
    import matplotlib
    matplotlib.use('Agg')  # no display needed
    import matplotlib.pyplot as plt

    imu = LogReader(path, topics='imu').to_numpy(IMU)
    gnss = LogReader(path, topics='gnss').to_numpy(GNSS)
    if len(imu) == 0 and len(gnss) == 0:
        return 0, 0
    t0 = min(a['time_received'][0] for a in (imu, gnss) if len(a))
    fig, ax = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ti, tg = imu['time_received'] - t0, gnss['time_received'] - t0
    for f in ('ax', 'ay', 'az'):
        ax[0, 0].plot(ti, imu[f], label=f, linewidth=0.8)
    ax[0, 0].set(title='IMU acceleration (%d messages)' % len(imu), xlabel='s', ylabel='m/s²')
    ax[0, 0].legend(loc='upper right')
    ax[0, 1].plot(ti, imu['gz'], color='tab:purple', linewidth=0.8)
    ax[0, 1].set(title='IMU yaw rate gz', xlabel='s', ylabel='rad/s')
    ax[1, 0].plot(gnss['lon'], gnss['lat'], marker='.', linewidth=0.8)
    ax[1, 0].set(title='GNSS track (%d fixes)' % len(gnss), xlabel='longitude °',
                 ylabel='latitude °')
    ax[1, 0].ticklabel_format(useOffset=False)
    ax[1, 0].tick_params(axis='x', labelrotation=30)
    ax[1, 1].plot(tg, gnss['speed'], color='tab:green', marker='.', linewidth=0.8)
    ax[1, 1].set(title='GNSS speed', xlabel='s', ylabel='m/s')
    fig.suptitle('mcl-sim, IMU and GNSS over %.1f s' % max(
        (a['time_received'][-1] - t0) for a in (imu, gnss) if len(a)))
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return len(imu), len(gnss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('-u', '--url', default=os.environ.get('MCL_URL', mcl.Connection().url),
                    help='connection (default: $MCL_URL, else the default connection)')
    ap.add_argument('-s', '--seconds', type=float, default=10.0, help='how long to record')
    ap.add_argument('-o', '--output', default='sim.png', help='the PNG to write')
    ap.add_argument('-l', '--log', help='keep the recording here (default: a temporary file)')
    ap.add_argument('--from', dest='source', help='plot this recording instead of recording')
    a = ap.parse_args()
    path = a.source
    tmp = None
    if path is None:
        if a.log is None:
            fd, tmp = tempfile.mkstemp(suffix='.mcllog')
            os.close(fd)
        path = a.log or tmp
        got, lost = record(a.url, a.seconds, path)
        print('recorded %d messages (%d lost) from %s' % (got, lost, a.url))
    try:
        n_imu, n_gnss = plot(path, a.output)
    finally:
        if tmp is not None:
            os.unlink(tmp)
    if n_imu == 0 and n_gnss == 0:
        print('no imu or gnss messages: is mcl-sim running on this URL?', file=sys.stderr)
        return 1
    print('plotted %d imu and %d gnss messages into %s' % (n_imu, n_gnss, a.output))
    return 0


if __name__ == '__main__':
    sys.exit(main())

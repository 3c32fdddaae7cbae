# SPDX-License-Identifier: BSD-3-Clause
# Python MCL's documentation examples (python/examples/) print "hello world" on this package.
# They use Python MCL's IPv6 addresses (ff15::...), so they need the test namespace's IPv6
# interface (scripts/netns.sh: MCL_NETNS_IFACE6); MCL_COMPAT_OPTIONS keeps them on it, ttl 0.
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(os.environ.get('MCL_PY_EXAMPLES',
                                       pathlib.Path(__file__).parent.parent / 'examples'))
IFACE6 = os.environ.get('MCL_NETNS_IFACE6')


@pytest.mark.skipif(not IFACE6, reason='needs scripts/netns.sh (IPv6 test interface)')
@pytest.mark.parametrize('name', ['raw_send_receive.py', 'message_send_receive.py',
                                  'queued_raw.py', 'queued_message.py'])
def test_example_prints_hello_world(name):
    env = dict(os.environ, MCL_COMPAT_OPTIONS='iface=%s&ttl=0' % IFACE6)
    r = subprocess.run([sys.executable, '-X', 'dev', str(EXAMPLES / name)], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'hello world'
    assert r.stderr == ''


@pytest.mark.skipif(not os.environ.get('MCL_SIM'), reason='needs the mcl-sim tool (MCL_SIM)')
def test_plot_example_records_and_plots_mcl_sim(tmp_path):
    # python/examples/plot_sim.py: records mcl-sim's imu and gnss topics for 2 s and plots
    # them; the PNG is a real image and the counts are what a 2 s recording holds (imu 100 Hz,
    # gnss 10 Hz). Then again from the kept recording (--from), to the same counts.
    pytest.importorskip('matplotlib')
    import re
    from conftest import udp_url
    url = udp_url()
    png, log = tmp_path / 'sim.png', tmp_path / 'sim.mcllog'
    sim = subprocess.Popen([os.environ['MCL_SIM'], '-u', url, '-d', '4', '-q'])
    try:
        r = subprocess.run([sys.executable, str(EXAMPLES / 'plot_sim.py'), '-u', url, '-s', '2',
                            '-o', str(png), '-l', str(log)], capture_output=True, text=True,
                           timeout=60)
    finally:
        sim.kill()
        sim.wait()
    assert r.returncode == 0, r.stderr
    m = re.search(r'plotted (\d+) imu and (\d+) gnss', r.stdout)
    assert m, r.stdout
    n_imu, n_gnss = int(m.group(1)), int(m.group(2))
    assert 150 <= n_imu <= 260 and 15 <= n_gnss <= 26, r.stdout
    assert 'recorded %d messages (0 lost)' % (n_imu + n_gnss) in r.stdout
    head = png.read_bytes()[:24]
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    width, height = int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    assert (width, height) == (990, 630)
    again = subprocess.run([sys.executable, str(EXAMPLES / 'plot_sim.py'), '--from', str(log),
                            '-o', str(tmp_path / 'again.png')], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr
    assert 'plotted %d imu and %d gnss' % (n_imu, n_gnss) in again.stdout
    # Nothing on the URL: it says so and fails.
    empty = subprocess.run([sys.executable, str(EXAMPLES / 'plot_sim.py'), '-u', udp_url(),
                            '-s', '0.2', '-o', str(tmp_path / 'none.png')],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and 'no imu or gnss messages' in empty.stderr

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

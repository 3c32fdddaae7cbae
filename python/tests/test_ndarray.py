# SPDX-License-Identifier: BSD-3-Clause
# Typed arrays (MCL_TYPE_NDARRAY, msgpack ext 110) as numpy arrays: sent and received over a
# real connection with their dtype, shape and bytes; the wire bytes are docs/wire-format.md's
# test vectors; arrays published by the C tool mcl-pub arrive as numpy; numpy stays optional
# for `import mcl`; logs turn array fields into (N, *shape) columns.
import itertools
import os
import re
import shutil
import subprocess
import sys

import pytest

import mcl
from conftest import udp_url
from mcl.log import LogReader, LogWriter

np = pytest.importorskip('numpy')

_names = itertools.count()
MCL_PUB = os.environ.get('MCL_PUB') or shutil.which('mcl-pub')

DTYPES = ['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'float32',
          'float64', 'bool']

# docs/wire-format.md "Typed arrays", test vectors 1-4: whole message payloads.
VECTORS = [
    ({'v': np.array([1.0, -2.5], dtype=np.float32)},
     '81 a1 76 c7 18 6e 01 09 01 00 00 00 00 00 02 00 00 00 00 00 00 00 00 00 80 3f 00 00 20 c0'),
    ({'m': np.array([[1, 2, 3], [-1, -2, -3]], dtype=np.int8)},
     '81 a1 6d c7 1e 6e 01 01 02 00 00 00 00 00 02 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00'
     ' 01 02 03 ff fe fd'),
    ({'e': np.zeros(0, dtype=np.uint8)},
     '81 a1 65 d8 6e 01 05 01 00 00 00 00 00 00 00 00 00 00 00 00 00'),
    ({'b': np.array(True)},
     '81 a1 62 c7 09 6e 01 0b 00 00 00 00 00 00 01'),
]


def message_type(*fields):
    name = 'PyTestNd%d' % next(_names)
    return type(name, (mcl.Message,), {'mandatory': fields,
                                       'connection': mcl.Connection(udp_url())})


def same(a, b):
    """Same type, dtype, shape and bytes (so NaNs and -0.0 count, and nothing is coerced)."""
    return (type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == b.tobytes())


def test_roundtrip_over_a_connection():
    rng = np.random.default_rng(22)
    sent = {
        'scan': rng.standard_normal(1024).astype(np.float32),
        'image': rng.integers(0, 256, size=(48, 64), dtype=np.uint8),
        'scalar': np.array(-0.0),
        'flags': np.array([True, False, True, True]),
        'empty': np.zeros((0, 3), dtype=np.float32),
        'ticks': np.array([-2**63, -1, 0, 1, 2**63 - 1], dtype=np.int64),
    }
    M = message_type(*sent)
    with mcl.MessageListener(M, timeout=5) as l, mcl.MessageBroadcaster(M) as b:
        b.publish(M(**sent), topic='arrays')
        d = l.recv(5)
    assert d is not None and d['topic'] == 'arrays'
    got = d['payload']
    for k, a in sent.items():
        assert same(a, got[k]), (k, a, got[k])
    assert got['scalar'].shape == () and np.signbit(got['scalar'])
    assert got['ticks'][0] == -2**63 and got['ticks'].dtype == np.int64
    # The received arrays are numpy's own: writable, owning their memory.
    assert got['scan'].flags['OWNDATA'] and got['scan'].flags['WRITEABLE']
    assert got['scan'].flags['C_CONTIGUOUS']


def test_every_dtype_packs_and_unpacks():
    for name in DTYPES:
        a = (np.arange(12) % 2 == 1) if name == 'bool' else np.arange(12).astype(name)
        a = a.reshape(3, 2, 2)
        back = mcl.unpack(mcl.pack({'a': a}))['a']
        assert same(a, back), name
    extremes = np.array([np.iinfo(np.uint64).max, 0], dtype=np.uint64)
    assert same(extremes, mcl.unpack(mcl.pack(extremes)))


def test_wire_bytes_are_the_documented_vectors():
    for value, hexbytes in VECTORS:
        wire = bytes.fromhex(hexbytes)
        assert mcl.pack(value) == wire, value
        (k, a), = value.items()
        assert same(a, mcl.unpack(wire)[k])


def test_non_contiguous_and_byteswapped_arrays_are_sent_as_their_values():
    base = np.arange(60, dtype=np.float64).reshape(6, 10)
    views = {
        'stepped': base[::2, 1::3],          # neither C- nor F-contiguous
        'transposed': base.T,                 # F-contiguous
        'reversed': np.arange(5, dtype=np.int16)[::-1],
        'big_endian': np.arange(4, dtype='>f4') - 1.5,
        'swapped_u32': np.array([1, 2**31 + 3], dtype='>u4'),
    }
    assert not views['stepped'].flags['C_CONTIGUOUS']
    M = message_type(*views)
    with mcl.MessageListener(M, timeout=5) as l, mcl.MessageBroadcaster(M) as b:
        b.publish(M(**views))
        d = l.recv(5)
    assert d is not None
    got = d['payload']
    for k, a in views.items():
        g = got[k]
        assert type(g) is np.ndarray and g.shape == a.shape, k
        assert g.dtype == a.dtype.newbyteorder('=') and g.dtype.isnative, k
        assert np.array_equal(g, a), k
    assert got['stepped'].tolist() == [[1, 4, 7], [21, 24, 27], [41, 44, 47]]


def test_big_endian_input_goes_on_the_wire_little_endian():
    wire = mcl.pack({'v': np.array([1.0, -2.5], dtype='>f4')})
    assert wire == bytes.fromhex(VECTORS[0][1])


@pytest.mark.parametrize('bad', [np.array([object(), 1], dtype=object),
                                 np.zeros(3, dtype=np.complex64), np.zeros(2, dtype=np.float16),
                                 np.array(['a', 'b']), np.zeros(2, dtype='M8[s]')])
def test_unsupported_dtype_is_a_type_error_naming_the_field_before_sending(bad):
    M = message_type('ok', 'pose')
    with mcl.MessageListener(M, timeout=0.3) as l, mcl.MessageBroadcaster(M) as b:
        want = r"field 'pose\.q\[1\]'.*dtype " + re.escape(str(bad.dtype))
        with pytest.raises(TypeError, match=want):
            b.publish(M(ok=np.zeros(2), pose={'q': [0, bad]}))
        assert b.stats['messages'] == 0
        assert list(l) == []
    with pytest.raises(TypeError, match="field 'payload'"):
        mcl.pack(bad)


def test_more_than_eight_dimensions_is_a_value_error():
    with pytest.raises(ValueError, match="at most 8 dimensions"):
        mcl.pack(np.zeros((1,) * 9))
    assert mcl.unpack(mcl.pack(np.zeros((1,) * 8))).shape == (1,) * 8


def test_numpy_scalars_are_sent_as_numbers():
    got = mcl.unpack(mcl.pack([np.float32(1.5), np.int64(-3), np.bool_(True), np.uint64(2**64 - 1),
                               np.float64(0.25)]))
    assert got == [1.5, -3, True, 2**64 - 1, 0.25]
    assert type(got[2]) is bool


def test_arrays_nested_in_lists_and_maps_and_raw_payloads():
    value = {'clouds': [np.ones((2, 4), np.float32), {'ids': np.arange(3, dtype=np.uint16)}]}
    got = mcl.unpack(mcl.pack(value))
    assert same(value['clouds'][0], got['clouds'][0])
    assert same(value['clouds'][1]['ids'], got['clouds'][1]['ids'])


def test_import_without_numpy_and_a_clear_error_when_an_array_arrives():
    # A child where `import numpy` fails: mcl imports and works for everything but arrays,
    # whose decoding raises an ImportError that names numpy and the array.
    code = r'''
import sys
sys.modules['numpy'] = None
import mcl
assert mcl.unpack(mcl.pack({'a': [1, 2.5, b'x']})) == {'a': [1, 2.5, b'x']}
import enum
class E(enum.IntEnum):
    A = 3
assert mcl.unpack(mcl.pack([bytearray(b'ab'), memoryview(b'cd'), E.A])) == [b'ab', b'cd', 3]
try:
    mcl.unpack(bytes.fromhex(%r))
except ImportError as e:
    assert e.name == 'numpy' and isinstance(e.__cause__, ImportError), (e.name, e.__cause__)
    print('ImportError:', e)
else:
    raise SystemExit('no error')
# A message listener raises it too, where it would deliver the message.
M = type('NoNumpy', (mcl.Message,), {'mandatory': ('m',), 'connection': mcl.Connection(%r)})
payload = b'\x82' + mcl.pack('name') + mcl.pack('NoNumpy') + bytes.fromhex(%r)[1:]
with mcl.MessageListener(M, timeout=5) as l, mcl.RawBroadcaster(M.connection) as b:
    b.publish(payload)
    try:
        l.recv(5)
    except ImportError as e:
        print('listener ImportError:', e)
assert 'numpy' not in sys.modules or sys.modules['numpy'] is None
''' % (VECTORS[1][1], udp_url(), VECTORS[1][1])
    r = subprocess.run([sys.executable, '-X', 'dev', '-c', code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'ImportError: reading a typed array (int8[2,3]) needs numpy' in r.stdout
    assert 'listener ImportError: reading a typed array (int8[2,3])' in r.stdout


@pytest.mark.skipif(not MCL_PUB, reason='needs the mcl-pub tool (MCL_PUB)')
def test_array_published_by_the_c_tool_arrives_as_numpy():
    url = udp_url()
    js = ('{"name": "Scan", "ranges": {"$ndarray": {"dtype": "float32", "shape": [2, 3], '
          '"data": [[0.5, 1.25, 2], [-1, "nan", "inf"]]}}, '
          '"img": {"$ndarray": {"dtype": "uint8", "shape": [2, 2], "base64": "AAH+/w=="}}}')
    with mcl.RawListener(mcl.Connection(url), timeout=5) as l:
        r = subprocess.run([MCL_PUB, '-u', url, '-t', 'lidar', '-q', '--json', js],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        d = l.recv(5)
    assert d is not None and d['topic'] == 'lidar'
    p = mcl.unpack(d['payload'])
    assert p['name'] == 'Scan'
    ranges = p['ranges']
    assert type(ranges) is np.ndarray and ranges.dtype == np.float32 and ranges.shape == (2, 3)
    assert ranges[0].tolist() == [0.5, 1.25, 2.0] and ranges[1, 0] == -1
    assert np.isnan(ranges[1, 1]) and np.isposinf(ranges[1, 2])
    assert p['img'].dtype == np.uint8 and p['img'].tolist() == [[0, 1], [254, 255]]


@pytest.mark.skipif(not os.environ.get('MCL_SIM'), reason='needs the mcl-sim tool (MCL_SIM)')
def test_mcl_sim_camera_and_lidar_arrive_as_numpy_arrays():
    url = udp_url()
    got = {}
    with mcl.RawListener(mcl.Connection(url), topics=['camera/front', 'lidar/top'],
                         timeout=5) as l:
        sim = subprocess.Popen([os.environ['MCL_SIM'], '-u', url, '-d', '3', '-q'])
        try:
            for d in l:
                got.setdefault(d['topic'], mcl.unpack(d['payload']))
                if len(got) == 2:
                    break
        finally:
            sim.kill()
            sim.wait()
    frame, scan = got['camera/front'], got['lidar/top']
    assert frame['name'] == 'CameraFrame' and frame['encoding'] == 'mono8'
    f = frame['frame']
    assert f.dtype == np.uint8 and f.shape == (frame['height'], frame['width']) == (204, 640)
    assert scan['name'] == 'LidarScan'
    r = scan['ranges']
    assert r.dtype == np.float32 and r.shape == (15328,)
    assert np.isclose(scan['angle_step'] * len(r), 2 * np.pi)
    assert 29.5 < r.min() and r.max() < 43  # the walls of a 60 m square, seen from its middle


def test_log_to_numpy_and_pandas_with_array_fields(tmp_path):
    path = str(tmp_path / 'arrays.mcllog')
    with LogWriter(path) as w:
        for i in range(5):
            w.write({'payload': {'name': 'Scan', 'i': i,
                                 'ranges': np.full(4, i, dtype=np.float32),
                                 'pose': np.eye(3)[i % 3] * i, 'nd0': np.array(i, np.int16)},
                     'time_received': 100.0 + i})
    a = LogReader(path).to_numpy(['i', 'ranges', 'pose', 'nd0'])
    assert a.dtype['ranges'].base == np.float32 and a.dtype['ranges'].shape == (4,)
    assert a['ranges'].shape == (5, 4) and a['ranges'][:, 0].tolist() == [0, 1, 2, 3, 4]
    assert a['pose'].shape == (5, 3) and a['pose'][4].tolist() == [0, 4, 0]
    assert a['nd0'].dtype == np.int16 and a['nd0'].tolist() == [0, 1, 2, 3, 4]
    assert a['time_received'].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    cols = LogReader(path).to_numpy(['ranges'], structured=False)
    assert cols['ranges'].dtype == np.float32 and cols['ranges'].shape == (5, 4)

    mixed = str(tmp_path / 'mixed.mcllog')
    with LogWriter(mixed) as w:
        w.write({'payload': {'name': 'Scan', 'ranges': np.zeros(4, np.float32)}})
        w.write({'payload': {'name': 'Scan', 'ranges': np.zeros(5, np.float32)}})
    with pytest.raises(ValueError, match=r"'ranges'.*different shapes"):
        LogReader(mixed).to_numpy(['ranges'])

    pd = pytest.importorskip('pandas')
    df = LogReader(mixed).to_pandas(['ranges'])
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and df['ranges'].dtype == object
    assert [x.shape for x in df['ranges']] == [(4,), (5,)]

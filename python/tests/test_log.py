# SPDX-License-Identifier: BSD-3-Clause
# mcl.log: Python MCL's logging tests in spirit (ReadFile/ReadDirectory records, min/max time,
# dump_to_csv byte for byte against its reference file) on its sample logs (tests/data/mcl),
# mcl logs written by LogWriter (topics, publisher, sequence), numpy and pandas exports, and
# dump_to_csv byte for byte against the C tool `mcl-dump --csv`.
import os
import pathlib
import shutil
import subprocess

import pytest

import mcl
from mcl.log import LogReader, LogWriter, dump_to_csv

DATA = pathlib.Path(os.environ.get('MCL_TEST_DATA',
                                   pathlib.Path(__file__).parents[2] / 'tests' / 'data')) / 'mcl'
A, B = str(DATA / 'UnitTestMessageA.log'), str(DATA / 'UnitTestMessageB.log')
MCL_DUMP = os.environ.get('MCL_DUMP') or shutil.which('mcl-dump')


def test_python_mcl_log_records():
    recs = LogReader(A).read_all()
    assert len(recs) == 10
    for i, r in enumerate(recs):
        assert r['topic'] is None  # Python MCL's '' topic
        assert r['time_received'] == pytest.approx(i / 100)
        assert r['payload'] == {'name': 'UnitTestMessageA', 'data': pytest.approx(i / 100),
                                'timestamp': pytest.approx(i / 100)}
        assert set(r) == {'topic', 'payload', 'time_received', 'publisher', 'sequence', 'sender'}


def test_start_end_and_reiteration():
    r = LogReader(A, start=0.035, end=0.085)
    assert [round(x['payload']['data'], 2) for x in r] == [0.04, 0.05, 0.06, 0.07, 0.08]
    assert len(list(r)) == 5  # iterating again starts from the top
    with pytest.raises(ValueError):
        LogReader(A, start=10, end=5)
    with pytest.raises(TypeError):
        LogReader(A, start='a')


def test_directory_merges_in_time_order():
    recs = LogReader(str(DATA)).read_all()
    assert [r['payload']['name'][-1] for r in recs] == ['A'] * 10 + ['B'] * 10
    times = [r['time_received'] for r in recs]
    assert times == sorted(times) and len(times) == 20


def test_missing_and_not_a_log(tmp_path):
    with pytest.raises(FileNotFoundError):
        LogReader(str(tmp_path / 'nothing.log'))
    bad = tmp_path / 'README.log'
    bad.write_text('hello\n')
    with pytest.raises(mcl.Error) as e:
        LogReader(str(bad))
    assert e.value.name == 'MCL_EPROTO'


class UnitTestMessageB(mcl.Message):
    mandatory = ('data',)
    connection = mcl.Connection('udp://239.255.26.1:26091?iface=lo&ttl=0')


def test_typed_payloads_decode_into_their_class():
    recs = LogReader([A, B]).read_all()
    assert all(isinstance(r['payload'], UnitTestMessageB) for r in recs[10:])
    assert not any(isinstance(r['payload'], mcl.Message) for r in recs[:10])  # A: no class
    assert recs[10]['payload']['data'] == pytest.approx(0.1)


def write_log(path):
    rows = [('imu', {'name': 'Imu', 'ax': 1.5, 'n': 3, 'ok': True, 's': 'a,b "c"'}),
            ('gnss', {'name': 'Gnss', 'lat': -33.8}),
            ('imu', {'name': 'Imu', 'ax': 1e16, 'n': -7, 'ok': False, 's': 'plain'}),
            (None, b'\x00raw bytes'),
            ('imu', {'name': 'Imu', 'ax': 1.5e-05, 'n': 2**63, 'ok': True, 's': 'x\ny'})]
    with LogWriter(path) as w:
        for i, (topic, p) in enumerate(rows):
            w.write({'topic': topic, 'payload': p, 'time_received': 1000.0 + i,
                     'publisher': 77, 'sequence': i})
    return rows


def test_mcl_log_written_and_read_back(tmp_path):
    path = str(tmp_path / 'run.mcllog')
    rows = write_log(path)
    recs = LogReader(path).read_all()
    assert [(r['topic'], r['payload']) for r in recs] == rows
    assert [r['sequence'] for r in recs] == list(range(5))
    assert {r['publisher'] for r in recs} == {77}
    assert [r['time_received'] for r in recs] == [1000.0 + i for i in range(5)]
    assert [r['sequence'] for r in LogReader(path, topics='imu')] == [0, 2, 4]
    assert [r['sequence'] for r in LogReader(path, topics=['gnss', ''])] == [1, 3]
    assert LogReader(path, payloads='bytes').read_all()[0]['payload'] == mcl.pack(rows[0][1])
    with pytest.raises(FileExistsError):
        LogWriter(path)


def test_to_numpy(tmp_path):
    np = pytest.importorskip('numpy')
    a = LogReader(A).to_numpy(['data', 'name'])
    assert a.dtype.names == ('time_received', 'data', 'name')
    assert a['data'].dtype == np.float64 and len(a) == 10
    assert np.allclose(a['data'], np.arange(10) / 100)
    assert np.array_equal(a['time_received'], a['data'])
    assert set(a['name']) == {'UnitTestMessageA'}
    path = str(tmp_path / 'run.mcllog')
    write_log(path)
    d = LogReader(path, topics='imu').to_numpy(['ax', 'ok'], structured=False)
    assert d['ax'].tolist() == [1.5, 1e16, 1.5e-05] and d['ok'].dtype == np.bool_
    assert d['time_received'].tolist() == [1000.0, 1002.0, 1004.0]
    assert len(LogReader(path).to_numpy('lat')) == 1  # only the messages that have it


def test_to_numpy_fast_path_matches_the_general_one(tmp_path):
    # Numeric fields are decoded in C (LogReader._fast_columns); the dtypes and values must be
    # those numpy infers from the Python values of the general path.
    np = pytest.importorskip('numpy')
    path = str(tmp_path / 'mixed.mcllog')
    rows = [{'name': 'M', 'f': 1.5, 'i': 3, 'b': True, 'm': 2, 'mb': True},
            {'name': 'M', 'f': -0.0, 'i': -(2**63), 'b': False, 'm': 2.5, 'mb': 7},
            {'name': 'M', 'i': 1},  # lacks f: skipped
            {'name': 'M', 'f': 1e308, 'i': 2**63 - 1, 'b': True, 'm': -1, 'mb': False}]
    with LogWriter(path) as w:
        for k, p in enumerate(rows):
            w.write({'topic': 't', 'payload': p, 'time_received': 10.0 + k})
        w.write({'topic': 't', 'payload': b'\x81\xa1f', 'time_received': 20.0})  # truncated map
    fields = ['f', 'i', 'b', 'm', 'mb']
    r = LogReader(path)
    fast = r._fast_columns(fields)
    assert fast is not None
    got = r.to_numpy(fields, structured=False)
    _, times, cols = r._columns(fields)
    assert got['time_received'].tolist() == times == [10.0, 11.0, 13.0]
    for f in fields:
        want = np.asarray(cols[f])
        assert got[f].dtype == want.dtype, f
        assert got[f].tolist() == want.tolist(), f
    assert [got[f].dtype for f in fields] == [np.float64, np.int64, np.bool_, np.float64, np.int64]
    assert np.signbit(got['f'][1])
    assert len(r.to_numpy('i')) == 4
    # A value of another kind (a str, an integer above INT64_MAX) takes the general path.
    assert r._fast_columns(['name']) is None
    assert LogReader(path).to_numpy(['name'])['name'].tolist() == ['M'] * 4
    p2 = str(tmp_path / 'big.mcllog')
    with LogWriter(p2) as w:
        w.write({'topic': 't', 'payload': {'u': 2**64 - 1}, 'time_received': 1.0})
    assert LogReader(p2)._fast_columns(['u']) is None
    assert LogReader(p2).to_numpy(['u'])['u'].tolist() == [2**64 - 1]


def test_to_pandas():
    pytest.importorskip('pandas')
    df = LogReader(str(DATA)).to_pandas(['data'])
    assert list(df.columns) == ['time_received', 'topic', 'data'] and len(df) == 20
    assert df['data'].iloc[10] == pytest.approx(0.1)


def test_dump_to_csv_matches_python_mcl(tmp_path):
    out = tmp_path / 'a.csv'
    assert dump_to_csv(A, str(out), ['name', 'data', 'timestamp']) == 10
    assert out.read_bytes() == (DATA / 'UnitTestMessageA.csv').read_bytes()
    out2 = tmp_path / 'b.csv'
    dump_to_csv(B, str(out2), ['timestamp'], 0.15, 0.95)
    # Python MCL's test: 8 rows, 0.2 ... 0.9 (min/max are seconds after the log's creation)
    assert [float(x) for x in out2.read_text().split()] == \
        pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert dump_to_csv(A, str(tmp_path / 'none.csv'), ['data'], min_time=30.0) is None
    assert not (tmp_path / 'none.csv').exists()


def test_dump_to_csv_errors(tmp_path):
    with pytest.raises(IOError):
        dump_to_csv(str(tmp_path / 'missing.log'), str(tmp_path / 'x.csv'), ['data'])
    with pytest.raises(TypeError):
        dump_to_csv(A, str(tmp_path / 'x.csv'), 5)
    with pytest.raises(TypeError):
        dump_to_csv(A, str(tmp_path / 'x.csv'), ['data', 5])
    with pytest.raises(KeyError):
        dump_to_csv(A, str(tmp_path / 'x.csv'), ['error'])
    with pytest.raises(TypeError):
        dump_to_csv(str(DATA), str(tmp_path / 'x.csv'), ['data'])  # A and B mixed


@pytest.mark.skipif(not MCL_DUMP, reason='needs the mcl-dump tool')
@pytest.mark.parametrize('which', ['A', 'B', 'written'])
def test_dump_to_csv_same_bytes_as_mcl_dump(tmp_path, which):
    keys = ['name', 'data', 'timestamp']
    if which == 'written':
        src = str(tmp_path / 'run.mcllog')
        write_log(src)
        keys = ['name', 'ax', 'n', 'ok', 's']
        args = ['-t', 'imu']  # one message type: Python MCL refuses mixed logs
        ours = tmp_path / 'imu.csv'
        rows = [[r['payload'][k] for k in keys] for r in LogReader(src, topics='imu')]
        import csv
        with open(ours, 'w', newline='') as f:
            csv.writer(f).writerows(rows)
    else:
        src, args = A if which == 'A' else B, []
        ours = tmp_path / 'ours.csv'
        dump_to_csv(src, str(ours), keys)
    r = subprocess.run([MCL_DUMP, '-f', src, '--csv', ','.join(keys)] + args,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ours.read_bytes()
    assert len(r.stdout) > 0


def _crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xffffffff


# docs/log-format.md "Compressed blocks": the lz4 test vector (two records in one block).
_LZ4_BLOCK = bytes.fromhex('''
4d 42 4c 4b 00 00 00 6d 9f 75 60 c2 02 00 00 00 00 00 00 4d 00 00 00 8a 00 00 00 02 00 00 00 00
3b 9a ca 00 00 00 00 00 3b 9a ca 01 f0 00 00 00 00 3d 0d df 84 70 00 00 00 00 3b 9a ca 07 00 00
02 00 10 01 05 00 01 02 00 11 03 06 00 bf 1a 69 6d 75 68 65 6c 6c 6f 2c 20 07 00 00 00 45 00 40
44 bd 92 f9 2b 00 34 3b 9a ca 3d 00 06 08 00 0f 45 00 0c 50 68 65 6c 6c 6f''')


def test_compressed_log_reads(tmp_path):
    # The C reader under the Python API reads compressed (version 2) logs as plain ones.
    import struct
    meta = b'host=x\npart=0\ncompress=lz4\n'
    h = b'MCLLOG\r\n' + struct.pack('>HHIQ', 2, 24 + len(meta) + 4, 0, 1) + meta
    p = tmp_path / 'z.mcllog'
    p.write_bytes(h + struct.pack('>I', _crc32c(h)) + _LZ4_BLOCK)
    try:
        recs = LogReader(str(p)).read_all()
    except mcl.Error as e:
        if e.name == 'MCL_ENOTSUP':
            pytest.skip('built without lz4')
        raise
    assert [r['topic'] for r in recs] == ['imu', 'imu']
    assert [r['payload'] for r in recs] == [b'hello, hello, hello, hello'] * 2
    assert [r['sequence'] for r in recs] == [0, 1]
    assert [r['publisher'] for r in recs] == [1, 1]
    assert recs[0]['time_received'] == pytest.approx(1.0)

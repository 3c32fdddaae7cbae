# SPDX-License-Identifier: BSD-3-Clause
"""Reading logs: mcl logs (mcl-log) and Python MCL's text logs, on the C reader (mcl/logfile.h).

    from mcl.log import LogReader, dump_to_csv
    for rec in LogReader('run.mcllog', topics='imu'):
        print(rec['time_received'], rec['payload'])
    LogReader('run.mcllog').to_numpy(['ax', 'ay'])       # numpy structured array
    dump_to_csv('UnitTestMessageA.log', 'a.csv', ['name', 'data', 'timestamp'])

A record is a dict as a listener gives: 'topic' (None when recorded without one),
'payload', 'time_received' (seconds since the epoch: the recorded receive time; a Python MCL
log's is its header's creation time plus the elapsed column), 'publisher', 'sequence',
'sender' (None: logs do not keep it). Payloads that are msgpack maps are decoded: into the
mcl.Message subclass of their 'name' when this process defined one, else a dict. Other
payloads stay bytes, unless payloads='objects' (Python MCL raw logs: any msgpack object) or
payloads='bytes' (nothing is decoded).
"""
import csv as _csv
import datetime as _dt
import os as _os

from . import _mcl, _message_classes, _topics_arg, pack, unpack

__all__ = ['LogReader', 'LogWriter', 'dump_to_csv']

_MODES = ('auto', 'objects', 'bytes')


def _seconds(t, what):
    if t is None:
        return None
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)  # naive: UTC, as Python MCL's utcnow()
        return t.timestamp()
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError("'%s' must be None, seconds since the epoch or a datetime." % what)
    return float(t)


class LogReader:
    """LogReader(path, topics=None, start=None, end=None, payloads='auto').

    path: a log file (mcl or Python MCL), the PATH of a split series, a directory, or a list
    of them (merged in time order). topics: as a listener's filter. start/end: seconds since
    the epoch (or datetimes): records received before start are skipped, reading ends at the
    first after end. Iterating yields record dicts; iterating again starts from the top.
    """

    def __init__(self, path, topics=None, start=None, end=None, payloads='auto'):
        paths = [path] if isinstance(path, (str, bytes, _os.PathLike)) else list(path)
        if not paths:
            raise ValueError('no log given')
        if payloads not in _MODES:
            raise ValueError("payloads must be one of %s" % ', '.join(map(repr, _MODES)))
        s, e = _seconds(start, 'start'), _seconds(end, 'end')
        if s is not None and e is not None and s > e:
            raise ValueError("'start' is after 'end'.")
        self.paths = paths
        self.topics = topics
        self.payloads = payloads
        self._r = _mcl._LogReader([_os.fspath(p) for p in paths], _topics_arg(topics), s, e)
        self._used = False

    def _decode(self, rec):
        p = rec['payload']
        if self.payloads == 'bytes':
            return rec
        if self.payloads == 'objects':
            rec['payload'] = unpack(p)
            return rec
        if p[:1] and (0x80 <= p[0] <= 0x8f or p[0] in (0xde, 0xdf)):  # a msgpack map
            try:
                obj = unpack(p)
            except ValueError:
                return rec
            cls = _message_classes.get(obj.get('name')) if isinstance(obj, dict) else None
            rec['payload'] = cls._from_fields(obj) if cls is not None else obj
        return rec

    def __iter__(self):
        if self._used:
            self._r.reset()
        self._used = True
        for rec in self._r:
            yield self._decode(rec)

    def read_all(self):
        """Every record (a list)."""
        return list(self)

    @property
    def damage(self):
        """Damaged records skipped so far and the bytes with them, and the unread tail."""
        return self._r.damage

    def close(self):
        return self._r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @staticmethod
    def _field_names(fields):
        if isinstance(fields, str):
            fields = [fields]
        fields = list(fields)
        for f in fields:
            if not isinstance(f, str):
                raise TypeError('fields must be strings, not %r' % (f,))
        return fields

    def _fast_columns(self, fields):
        # Numeric fields decoded in C, without a dict per record; None: a field holds
        # something else (str, None, a list...), and the general path reads it.
        if self._used:
            self._r.reset()
        self._used = True
        return self._r._columns(fields)

    def _columns(self, fields):
        fields = self._field_names(fields)
        times, cols = [], {f: [] for f in fields}
        for rec in self:
            p = rec['payload']
            if not isinstance(p, dict) or any(f not in p for f in fields):
                continue  # another message type (or a raw payload) in the same log
            times.append(rec['time_received'])
            for f in fields:
                cols[f].append(p[f])
        return fields, times, cols

    def to_numpy(self, fields, structured=True):
        """The fields of the messages that have them all, with their 'time_received'.

        structured=True: a numpy structured array (columns 'time_received' and the fields,
        each of the dtype numpy infers: float64, int64, bool, str, else object);
        False: a dict of arrays. Needs numpy (Debian python3-numpy).
        A typed-array field (a numpy array in every message, all of one shape S) is an
        (N, *S) array, a subarray column of shape S in the structured array; arrays of
        different dtypes are promoted as numpy.stack does. Arrays of different shapes, or
        an array in some messages and another value in others, are a ValueError naming the
        field (read those records with iteration instead).
        """
        import numpy as np
        fields = self._field_names(fields)
        fast = self._fast_columns(fields) if self.payloads != 'bytes' else None
        if fast is not None:
            times, cols = fast
            arrays = {'time_received': np.frombuffer(times, dtype='f8')}
            for f, (kind, data) in zip(fields, cols):
                arrays[f] = np.frombuffer(data, dtype={'f': 'f8', 'i': 'i8', 'b': '?'}[kind])
            fields = []
        else:
            fields, times, cols = self._columns(fields)
            arrays = {'time_received': np.asarray(times, dtype=np.float64)}
        for f in fields:
            vals = cols[f]
            if any(isinstance(v, np.ndarray) for v in vals):
                arrays[f] = _stack_arrays(np, f, vals)
                continue
            try:
                a = np.asarray(vals)
                if a.ndim != 1:
                    raise ValueError
            except ValueError:
                a = np.empty(len(vals), dtype=object)
                a[:] = vals
            arrays[f] = a
        if not structured:
            return arrays
        out = np.empty(len(arrays['time_received']),
                       dtype=[(k, a.dtype, a.shape[1:]) for k, a in arrays.items()])
        for k, a in arrays.items():
            out[k] = a
        return out

    def to_pandas(self, fields=None):
        """A pandas DataFrame: 'time_received', 'topic' and the payload fields (all of them
        when fields is None), one row per message that is a map. Needs pandas. A typed-array
        field is an object column holding one numpy array per row (any shapes)."""
        import pandas as pd
        rows = []
        for rec in self:
            p = rec['payload']
            if not isinstance(p, dict):
                continue
            row = {'time_received': rec['time_received'], 'topic': rec['topic']}
            if fields is None:
                row.update(p)
            elif all(f in p for f in fields):
                row.update((f, p[f]) for f in fields)
            else:
                continue
            rows.append(row)
        return pd.DataFrame(rows)


def _stack_arrays(np, field, vals):
    # One column of typed arrays: (N, *shape), or a ValueError saying what does not fit.
    shapes = set()
    for v in vals:
        if not isinstance(v, np.ndarray):
            raise ValueError('field %r: a typed array in some messages and a %s in others '
                             'cannot make one column' % (field, type(v).__name__))
        shapes.add(v.shape)
    if len(shapes) > 1:
        raise ValueError('field %r: typed arrays of different shapes (%s) cannot make one '
                         'column' % (field, ', '.join(sorted(map(str, shapes))[:4])))
    return np.stack(vals)


def _created(source):
    """The 'created' time of a Python MCL log (its first file's header), else None."""
    if _os.path.isdir(source):
        names = sorted(n for n in _os.listdir(source) if n.endswith('.log'))
        return min((c for c in (_created(_os.path.join(source, n)) for n in names)
                    if c is not None), default=None)
    path = source if _os.path.isfile(source) else source + '_000.log'
    try:
        with open(path, 'rb') as f:
            head = f.read(4096).decode('utf-8', 'replace').splitlines()
    except OSError:
        return None
    if len(head) < 2 or not head[1].startswith('# MCL_LOG'):
        return None
    for line in head:
        if '-- created' in line:
            text = line.split('-- created', 1)[1].strip()
            for fmt in ('%Y-%m-%d %H:%M:%S.%f', '%Y-%m-%d %H:%M:%S'):
                try:
                    t = _dt.datetime.strptime(text, fmt)
                except ValueError:
                    continue
                return t.replace(tzinfo=_dt.timezone.utc).timestamp()
    return None


def dump_to_csv(source, csv_file, keys, min_time=None, max_time=None):
    """Python MCL's dump_to_csv: one CSV row per message, [payload[k] for k in keys], as
    Python's csv.writer writes it (comma, CRLF, no header). min_time/max_time: seconds after
    the log's creation (a Python MCL log's header), or after its first record (an mcl log).
    No rows: returns None and writes nothing; else the number of rows written."""
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise TypeError("'keys' must be a list of strings.")
    keys = list(keys)
    if not _os.path.exists(source) and not _os.path.exists(source + '_000.log') and \
            not _os.path.exists(source + '_000.mcllog'):
        raise IOError('The path/file %s does not exist.' % source)
    for t, what in ((min_time, 'min_time'), (max_time, 'max_time')):
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0):
            raise TypeError("'%s' must be a number >= 0." % what)
    if min_time is not None and max_time is not None and min_time > max_time:
        raise ValueError("'min_time' is after 'max_time'.")
    first = next(iter(LogReader(source, payloads='bytes')), None)
    if first is None:
        return None
    t0 = _created(source)
    if t0 is None:
        t0 = first['time_received']
    reader = LogReader(source, start=None if not min_time else t0 + min_time,
                       end=None if max_time is None else t0 + max_time)
    rows = []
    name = None
    for rec in reader:
        p = rec['payload']
        if not isinstance(p, dict):
            continue
        if name is None:
            name = p.get('name')
            missing = [k for k in keys if k not in p]
            if missing:
                raise KeyError(missing[0])
        if p.get('name') != name:
            raise TypeError('The log holds more than one message type (%r, %r).'
                            % (name, p.get('name')))
        rows.append([p[k] for k in keys])
    if not rows:
        return None
    with open(csv_file, 'w', newline='') as f:
        _csv.writer(f).writerows(rows)
    return len(rows)


class LogWriter:
    """LogWriter(path, overwrite=False): an mcl log (what mcl-log records). write(record)
    takes a record dict as listeners and readers give ('payload': bytes, or a dict / Message
    / any msgpack-serialisable object, which is packed; 'topic', 'time_received',
    'publisher', 'sequence' optional). close(); `with` closes."""

    def __init__(self, path, overwrite=False):
        self._w = _mcl._LogWriter(_os.fspath(path), overwrite)

    def write(self, record):
        p = record['payload']
        if not isinstance(p, (bytes, bytearray, memoryview)):
            p = pack(dict(p) if isinstance(p, dict) else p)
        t = record.get('time_received') or 0.0
        if isinstance(t, _dt.datetime):
            t = _seconds(t, 'time_received')
        self._w.write(p, record.get('topic'), float(t), record.get('publisher') or 0,
                      record.get('sequence') or 0)

    def close(self):
        return self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

// SPDX-License-Identifier: BSD-3-Clause
// mcl._mcl: the CPython binding of the public C API (include/mcl). The Python package
// (python/mcl/__init__.py) builds the Python MCL shape on the types defined here:
//
//   Connection      an mcl_connection (immutable)
//   _Broadcaster    an mcl_raw_broadcaster, or an mcl_msg_broadcaster when given a message type
//   _Listener       an mcl_raw_listener or an mcl_msg_listener
//   define_type()   mcl_msgtype_define(); pack()/unpack(): Python objects <-> msgpack bytes
//
// Threads. A listener has no thread until its first subscribe(); until then recv() and
// iteration read on the caller's thread with the GIL released. The first subscribe starts the
// library's listener thread, whose callbacks take the GIL (PyGILState_Ensure). While that
// thread runs the listener holds a reference to itself (so a running listener is never
// deallocated under its thread); close() or the interpreter's exit (an atexit hook closes
// every open listener) drops it. A close from inside one of the listener's own callbacks is
// refused by the C API (MCL_ESTATE): the listener is closed for Python at once (no further
// callbacks, is_open() false) and really closed by a pending call on the main thread.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <mcl/mcl.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

PyMODINIT_FUNC PyInit__mcl(void);

static PyObject *Error;          // mcl.Error
static atomic_int finalizing;    // set once the atexit hook has closed every listener
static const char *errors_mode = "surrogateescape";

// ---------------------------------------------------------------------------------------
// Errors

// Raise mcl.Error(text) with .code (the mcl_err value), .name ("MCL_EINVAL") and .detail.
static PyObject *
raise_mcl(mcl_err rv, const char *what, const char *detail)
{
    char text[1024];
    if (detail != NULL && detail[0] != '\0')
        snprintf(text, sizeof text, "%s: %s (%s)", what, detail, mcl_err_name(rv));
    else
        snprintf(text, sizeof text, "%s: %s (%s)", what, mcl_strerror(rv), mcl_err_name(rv));
    PyObject *exc = PyObject_CallFunction(Error, "s", text);
    if (exc == NULL)
        return NULL;
    PyObject *code = PyLong_FromLong((long)rv);
    PyObject *name = PyUnicode_FromString(mcl_err_name(rv));
    PyObject *msg = PyUnicode_FromString(mcl_strerror(rv));
    if (code == NULL || name == NULL || msg == NULL ||
        PyObject_SetAttrString(exc, "code", code) < 0 ||
        PyObject_SetAttrString(exc, "name", name) < 0 ||
        PyObject_SetAttrString(exc, "strerror", msg) < 0) {
        Py_XDECREF(code);
        Py_XDECREF(name);
        Py_XDECREF(msg);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(code);
    Py_DECREF(name);
    Py_DECREF(msg);
    PyErr_SetObject(Error, exc);
    Py_DECREF(exc);
    return NULL;
}

// ---------------------------------------------------------------------------------------
// Python objects <-> mcl values

// Where a converted value goes: a message field, a map entry or the end of an array.
typedef struct slot {
    mcl_msg *msg;
    mcl_value *map;
    mcl_value *arr;
    const char *key;
} slot;

#define SLOT_SET(s, what, ...)                                                                 \
    ((s)->msg != NULL   ? mcl_msg_set_##what((s)->msg, (s)->key, __VA_ARGS__)                  \
     : (s)->map != NULL ? mcl_value_put_##what((s)->map, (s)->key, __VA_ARGS__)                \
                        : mcl_value_push_##what((s)->arr, __VA_ARGS__))

static mcl_err
slot_nil(const slot *s)
{
    if (s->msg != NULL)
        return mcl_msg_set_nil(s->msg, s->key);
    if (s->map != NULL)
        return mcl_value_put_nil(s->map, s->key);
    return mcl_value_push_nil(s->arr);
}

static int put_obj(const slot *s, PyObject *o, char *path, size_t plen, int depth);

// A container child: path grows by ".key" or "[i]" while the child is converted.
static int
put_child(const slot *s, PyObject *o, char *path, size_t plen, int depth, const char *key,
          Py_ssize_t idx)
{
    size_t n = strlen(path);
    if (key != NULL)
        snprintf(path + n, plen - n, ".%s", key);
    else
        snprintf(path + n, plen - n, "[%lld]", (long long)idx);
    int r = put_obj(s, o, path, plen, depth + 1);
    path[n] = '\0';
    return r;
}

static int
slot_err(mcl_err rv, const char *path)
{
    if (rv == MCL_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (rv == MCL_EREADONLY)
        PyErr_Format(PyExc_ValueError, "field '%s' is read-only", path);
    else if (rv == MCL_ETYPE)
        PyErr_Format(PyExc_TypeError, "field '%s': %s", path, mcl_strerror(rv));
    else
        raise_mcl(rv, path, NULL);
    return -1;
}

// ---------------------------------------------------------------------------------------
// numpy (optional): typed arrays (MCL_TYPE_NDARRAY) <-> numpy.ndarray, through numpy's Python
// API and the buffer protocol only, so the extension builds without numpy's headers and
// `import mcl` works without numpy. Decoding imports numpy when the first array arrives;
// encoding only asks whether the program has imported it (before that, no object can be a
// numpy array or scalar). Both copy the elements once (a memcpy), never element by element.

static PyObject *np_ndarray; // numpy.ndarray, once numpy is known
static PyObject *np_generic; // numpy.generic: numpy's scalars
static PyObject *np_empty;   // numpy.empty
static PyObject *np_asarray; // numpy.asarray

static int
np_cache(PyObject *mod)
{
    PyObject *nd = PyObject_GetAttrString(mod, "ndarray");
    PyObject *ge = nd != NULL ? PyObject_GetAttrString(mod, "generic") : NULL;
    PyObject *em = ge != NULL ? PyObject_GetAttrString(mod, "empty") : NULL;
    PyObject *as = em != NULL ? PyObject_GetAttrString(mod, "asarray") : NULL;
    if (as == NULL || !PyType_Check(nd) || !PyType_Check(ge)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "numpy has no ndarray type");
        Py_XDECREF(nd);
        Py_XDECREF(ge);
        Py_XDECREF(em);
        Py_XDECREF(as);
        return -1;
    }
    np_ndarray = nd;
    np_generic = ge;
    np_empty = em;
    np_asarray = as;
    return 0;
}

// numpy for decoding @p what: imported on first use. Without it, an ImportError (name 'numpy')
// that says what needed it, caused by the import's own error.
static int
np_need(const char *what)
{
    if (np_ndarray != NULL)
        return 0;
    PyObject *mod = PyImport_ImportModule("numpy");
    if (mod != NULL) {
        int r = np_cache(mod);
        Py_DECREF(mod);
        return r;
    }
    if (!PyErr_ExceptionMatches(PyExc_ImportError))
        return -1;
    PyObject *t, *cause, *tb;
    PyErr_Fetch(&t, &cause, &tb);
    PyErr_NormalizeException(&t, &cause, &tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    PyObject *text = PyUnicode_FromFormat(
        "reading a typed array (%s) needs numpy (Debian python3-numpy, or pip install numpy)",
        what);
    PyObject *name = PyUnicode_FromString("numpy");
    if (text != NULL && name != NULL)
        PyErr_SetImportError(text, name, NULL);
    Py_XDECREF(text);
    Py_XDECREF(name);
    if (cause != NULL && PyErr_Occurred()) {
        PyObject *t2, *v2, *tb2;
        PyErr_Fetch(&t2, &v2, &tb2);
        PyErr_NormalizeException(&t2, &v2, &tb2);
        if (v2 != NULL)
            PyException_SetCause(v2, cause); // steals cause
        else
            Py_DECREF(cause);
        PyErr_Restore(t2, v2, tb2);
    } else {
        Py_XDECREF(cause);
    }
    return -1;
}

// 1: @p o is a numpy.ndarray (or a subclass), 2: a numpy scalar, 0: neither (or numpy is not
// imported), -1: an error is set.
static int
np_kind(PyObject *o)
{
    if (np_ndarray == NULL) {
        PyObject *key = PyUnicode_FromString("numpy");
        if (key == NULL)
            return -1;
        PyObject *mod = PyImport_GetModule(key); // NULL, and no error, when not imported
        Py_DECREF(key);
        if (mod == NULL)
            return PyErr_Occurred() ? -1 : 0;
        // None (sys.modules['numpy'] = None blocks the import) or a module still being
        // imported is no numpy yet: nothing can be one of its arrays.
        int r = mod == Py_None ? -1 : np_cache(mod);
        Py_DECREF(mod);
        if (r < 0) {
            PyErr_Clear();
            return 0;
        }
    }
    if (PyObject_TypeCheck(o, (PyTypeObject *)np_ndarray))
        return 1;
    return PyObject_TypeCheck(o, (PyTypeObject *)np_generic) ? 2 : 0;
}

// The mcl dtype of numpy dtype kind @p kind ('b', 'i', 'u', 'f') and @p size bytes, 0 if none.
static mcl_dtype
np_dtype_of(int kind, long size)
{
    static const mcl_dtype ints[] = {MCL_DTYPE_INT8, MCL_DTYPE_INT16, MCL_DTYPE_INT32,
                                     MCL_DTYPE_INT64};
    static const mcl_dtype uints[] = {MCL_DTYPE_UINT8, MCL_DTYPE_UINT16, MCL_DTYPE_UINT32,
                                      MCL_DTYPE_UINT64};
    int lg = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
    if (lg < 0)
        return (mcl_dtype)0;
    switch (kind) {
    case 'b':
        return size == 1 ? MCL_DTYPE_BOOL : (mcl_dtype)0;
    case 'i':
        return ints[lg];
    case 'u':
        return uints[lg];
    case 'f':
        return size == 4 ? MCL_DTYPE_FLOAT32 : size == 8 ? MCL_DTYPE_FLOAT64 : (mcl_dtype)0;
    default:
        return (mcl_dtype)0;
    }
}

// A numpy array -> a typed array in slot @p s: its dtype must be one of mcl's (else TypeError
// naming the field); a non-contiguous or byte-swapped array is first made C-contiguous in the
// host's order by numpy (one copy), then the library copies it once.
static int
put_ndarray(const slot *s, PyObject *o, const char *path)
{
    PyObject *dt = PyObject_GetAttrString(o, "dtype");
    if (dt == NULL)
        return -1;
    PyObject *kind = PyObject_GetAttrString(dt, "kind");
    PyObject *size = kind != NULL ? PyObject_GetAttrString(dt, "itemsize") : NULL;
    long isz = size != NULL ? PyLong_AsLong(size) : -1;
    Py_ssize_t klen = 0;
    const char *ks =
        kind != NULL && PyUnicode_Check(kind) ? PyUnicode_AsUTF8AndSize(kind, &klen) : NULL;
    int k = ks != NULL && klen == 1 ? ks[0] : 0;
    Py_XDECREF(kind);
    Py_XDECREF(size);
    if (PyErr_Occurred()) {
        Py_DECREF(dt);
        return -1;
    }
    mcl_dtype dtype = np_dtype_of(k, isz);
    if (dtype == 0) {
        PyErr_Format(PyExc_TypeError,
                     "field '%s': cannot send a numpy array of dtype %S (typed arrays are int8 "
                     "to int64, uint8 to uint64, float32, float64 or bool)",
                     path, dt);
        Py_DECREF(dt);
        return -1;
    }
    Py_DECREF(dt);
    PyObject *args = Py_BuildValue("(O)", o);
    PyObject *kw = args != NULL
                       ? Py_BuildValue("{s:s,s:s}", "dtype", mcl_dtype_name(dtype), "order", "C")
                       : NULL;
    PyObject *c = kw != NULL ? PyObject_Call(np_asarray, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    if (c == NULL)
        return -1;
    Py_buffer view;
    if (PyObject_GetBuffer(c, &view, PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(c);
        return -1;
    }
    int r = 0;
    if (view.ndim < 0 || view.ndim > MCL_NDARRAY_MAX_NDIM) {
        PyErr_Format(PyExc_ValueError,
                     "field '%s': a typed array has at most %d dimensions, not %d", path,
                     (int)MCL_NDARRAY_MAX_NDIM, view.ndim);
        r = -1;
    } else {
        uint64_t shape[MCL_NDARRAY_MAX_NDIM] = {0};
        for (int i = 0; i < view.ndim; i++)
            shape[i] = (uint64_t)view.shape[i];
        mcl_err rv;
        if (view.len >= (1 << 20)) { // a big copy runs without the GIL: both sides are ours
            Py_BEGIN_ALLOW_THREADS;
            rv = SLOT_SET(s, ndarray, dtype, (size_t)view.ndim, shape, view.buf);
            Py_END_ALLOW_THREADS;
        } else {
            rv = SLOT_SET(s, ndarray, dtype, (size_t)view.ndim, shape, view.buf);
        }
        if (rv != MCL_OK)
            r = slot_err(rv, path);
    }
    PyBuffer_Release(&view);
    Py_DECREF(c);
    return r;
}

// A typed array -> a new numpy.ndarray of its dtype and shape (native byte order, writable,
// owning its memory), filled with one memcpy.
static PyObject *
ndarray_to_py(const mcl_value *v)
{
    mcl_dtype dtype = 0;
    size_t ndim = 0, nbytes = 0;
    const uint64_t *shape = NULL;
    const void *data = NULL;
    if (mcl_value_get_ndarray(v, &dtype, &ndim, &shape, &data, &nbytes) != MCL_OK) {
        PyErr_SetString(PyExc_ValueError, "not a typed array");
        return NULL;
    }
    if (np_ndarray == NULL) {
        char what[160];
        int n = snprintf(what, sizeof what, "%s[", mcl_dtype_name(dtype));
        for (size_t i = 0; i < ndim && n > 0 && (size_t)n < sizeof what - 24; i++)
            n += snprintf(what + n, sizeof what - (size_t)n, i ? ",%llu" : "%llu",
                          (unsigned long long)shape[i]);
        if (n > 0 && (size_t)n < sizeof what - 2)
            snprintf(what + n, sizeof what - (size_t)n, "]");
        if (np_need(what) < 0)
            return NULL;
    }
    PyObject *sh = PyTuple_New((Py_ssize_t)ndim);
    if (sh == NULL)
        return NULL;
    for (size_t i = 0; i < ndim; i++) {
        PyObject *d = PyLong_FromUnsignedLongLong(shape[i]);
        if (d == NULL) {
            Py_DECREF(sh);
            return NULL;
        }
        PyTuple_SET_ITEM(sh, (Py_ssize_t)i, d);
    }
    PyObject *arr = PyObject_CallFunction(np_empty, "Os", sh, mcl_dtype_name(dtype));
    Py_DECREF(sh);
    if (arr == NULL || nbytes == 0)
        return arr;
    Py_buffer view;
    if (PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    if ((size_t)view.len != nbytes) {
        PyBuffer_Release(&view);
        Py_DECREF(arr);
        PyErr_SetString(PyExc_SystemError, "numpy.empty gave an array of another size");
        return NULL;
    }
    if (nbytes >= (1 << 20)) {
        Py_BEGIN_ALLOW_THREADS;
        memcpy(view.buf, data, nbytes);
        Py_END_ALLOW_THREADS;
    } else {
        memcpy(view.buf, data, nbytes);
    }
    PyBuffer_Release(&view);
    return arr;
}

static int
put_obj(const slot *s, PyObject *o, char *path, size_t plen, int depth)
{
    mcl_err rv;
    int np;
    if (depth > 31) {
        PyErr_Format(PyExc_ValueError, "field '%s': nested deeper than 32", path);
        return -1;
    }
    if (o == Py_None) {
        rv = slot_nil(s);
    } else if (PyBool_Check(o)) {
        rv = SLOT_SET(s, bool, o == Py_True);
    } else if (!PyLong_CheckExact(o) && !PyFloat_CheckExact(o) && !PyUnicode_Check(o) &&
               !PyBytes_Check(o) && !PyList_Check(o) && !PyTuple_Check(o) && !PyDict_Check(o) &&
               (np = np_kind(o)) != 0) {
        if (np < 0)
            return -1;
        if (np == 1)
            return put_ndarray(s, o, path);
        // A numpy scalar (numpy.float32(1.5), numpy.bool_): its Python value, so that it is a
        // float or a bool rather than its bytes (buffer) or an index.
        PyObject *py = PyObject_CallMethod(o, "item", NULL);
        if (py == NULL)
            return -1;
        int r = np_kind(py) == 0 ? put_obj(s, py, path, plen, depth) : -1;
        if (r < 0 && !PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "field '%s': cannot send a numpy scalar of type %.100s",
                         path, Py_TYPE(o)->tp_name);
        Py_DECREF(py);
        return r;
    } else if (PyLong_Check(o) || (!PyFloat_Check(o) && PyIndex_Check(o))) {
        PyObject *i = PyNumber_Index(o);
        if (i == NULL)
            return -1;
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(i);
            Py_DECREF(i);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "field '%s': integer does not fit 64 bits", path);
                return -1;
            }
            rv = SLOT_SET(s, uint, (uint64_t)u);
        } else {
            Py_DECREF(i);
            if (overflow < 0) {
                PyErr_Format(PyExc_ValueError, "field '%s': integer does not fit 64 bits", path);
                return -1;
            }
            if (v == -1 && PyErr_Occurred())
                return -1;
            rv = SLOT_SET(s, int, (int64_t)v);
        }
    } else if (PyFloat_Check(o)) {
        rv = SLOT_SET(s, double, PyFloat_AS_DOUBLE(o));
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
        if (u == NULL) {
            PyErr_Clear();
            PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", errors_mode);
            if (b == NULL) {
                PyErr_Format(PyExc_ValueError, "field '%s': string is not encodable", path);
                return -1;
            }
            rv = SLOT_SET(s, strn, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
            Py_DECREF(b);
        } else {
            rv = SLOT_SET(s, strn, u, (size_t)n);
        }
    } else if (PyObject_CheckBuffer(o)) {
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0)
            return -1;
        rv = SLOT_SET(s, bin, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    } else if (PyList_Check(o) || PyTuple_Check(o)) {
        mcl_value *arr = NULL;
        rv = SLOT_SET(s, array, &arr);
        if (rv != MCL_OK)
            return slot_err(rv, path);
        slot c = {.arr = arr};
        PyObject *seq = PySequence_Fast(o, "not a sequence");
        if (seq == NULL)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (put_child(&c, PySequence_Fast_GET_ITEM(seq, i), path, plen, depth, NULL, i) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        return 0;
    } else if (PyDict_Check(o)) {
        mcl_value *map = NULL;
        rv = SLOT_SET(s, map, &map);
        if (rv != MCL_OK)
            return slot_err(rv, path);
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (!PyUnicode_Check(k)) {
                PyErr_Format(PyExc_TypeError, "field '%s': map keys must be str, not %.100s",
                             path, Py_TYPE(k)->tp_name);
                return -1;
            }
            const char *ks = PyUnicode_AsUTF8(k);
            if (ks == NULL)
                return -1;
            slot c = {.map = map, .key = ks};
            if (put_child(&c, v, path, plen, depth, ks, 0) < 0)
                return -1;
        }
        return 0;
    } else if (Py_TYPE(o)->tp_as_number != NULL &&
               Py_TYPE(o)->tp_as_number->nb_float != NULL) {
        double d = PyFloat_AsDouble(o); // numpy floating scalars and the like
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        rv = SLOT_SET(s, double, d);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "field '%s': cannot send a value of type %.100s (None, bool, int, float, "
                     "str, bytes, list, tuple, dict or numpy.ndarray)",
                     path, Py_TYPE(o)->tp_name);
        return -1;
    }
    return rv == MCL_OK ? 0 : slot_err(rv, path);
}

static PyObject *
value_to_py(const mcl_value *v, int depth)
{
    if (depth > 33) {
        PyErr_SetString(PyExc_ValueError, "value nested too deep");
        return NULL;
    }
    switch (mcl_value_type(v)) {
    case MCL_TYPE_NIL:
        Py_RETURN_NONE;
    case MCL_TYPE_BOOL: {
        bool b = false;
        mcl_value_get_bool(v, &b);
        return PyBool_FromLong(b);
    }
    case MCL_TYPE_INT:
        if (mcl_value_is_big_uint(v)) {
            uint64_t u = 0;
            mcl_value_get_uint(v, &u);
            return PyLong_FromUnsignedLongLong(u);
        } else {
            int64_t i = 0;
            mcl_value_get_int(v, &i);
            return PyLong_FromLongLong(i);
        }
    case MCL_TYPE_FLOAT: {
        double d = 0;
        mcl_value_get_double(v, &d);
        return PyFloat_FromDouble(d);
    }
    case MCL_TYPE_STR: {
        const char *s = NULL;
        size_t n = 0;
        mcl_value_get_str(v, &s, &n);
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, errors_mode);
    }
    case MCL_TYPE_BIN: {
        const void *p = NULL;
        size_t n = 0;
        mcl_value_get_bin(v, &p, &n);
        return PyBytes_FromStringAndSize(n ? p : "", (Py_ssize_t)n);
    }
    case MCL_TYPE_ARRAY: {
        size_t n = mcl_value_count(v);
        PyObject *l = PyList_New((Py_ssize_t)n);
        if (l == NULL)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *x = value_to_py(mcl_value_item(v, i), depth + 1);
            if (x == NULL) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, x);
        }
        return l;
    }
    case MCL_TYPE_MAP: {
        size_t n = mcl_value_count(v);
        PyObject *d = PyDict_New();
        if (d == NULL)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            const char *key = NULL;
            const mcl_value *x = mcl_value_entry(v, i, &key);
            PyObject *k = PyUnicode_DecodeUTF8(key, (Py_ssize_t)strlen(key), errors_mode);
            PyObject *pv = k != NULL ? value_to_py(x, depth + 1) : NULL;
            if (pv == NULL || PyDict_SetItem(d, k, pv) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(pv);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(pv);
        }
        return d;
    }
    case MCL_TYPE_NDARRAY:
        return ndarray_to_py(v);
    default:
        break;
    }
    PyErr_SetString(PyExc_ValueError, "value of an unknown kind");
    return NULL;
}

// Encode any convertible object as one msgpack object (Python MCL's raw payloads).
static PyObject *
pack_obj(PyObject *o, void **bufp, size_t *lenp)
{
    mcl_value *root = NULL;
    mcl_err rv = mcl_value_new(&root, MCL_TYPE_ARRAY);
    if (rv != MCL_OK)
        return raise_mcl(rv, "pack", NULL);
    char path[256] = "payload";
    slot s = {.arr = root};
    if (put_obj(&s, o, path, sizeof path, 0) < 0) {
        mcl_value_free(root);
        return NULL;
    }
    rv = mcl_value_encode(mcl_value_item(root, 0), bufp, lenp);
    mcl_value_free(root);
    if (rv != MCL_OK)
        return raise_mcl(rv, "pack", NULL);
    Py_RETURN_NONE;
}

static PyObject *
mod_pack(PyObject *mod, PyObject *o)
{
    (void)mod;
    void *buf = NULL;
    size_t len = 0;
    PyObject *r = pack_obj(o, &buf, &len);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    PyObject *b = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    mcl_free(buf);
    return b;
}

// Decode msgpack bytes; with errors != NULL, failures set *errors instead of raising.
static PyObject *
unpack_bytes(const void *p, size_t n)
{
    mcl_value *v = NULL;
    char eb[256] = "";
    mcl_err rv = mcl_value_decode(&v, p, n, eb, sizeof eb);
    if (rv != MCL_OK) {
        if (rv == MCL_EDECODE) {
            PyErr_Format(PyExc_ValueError, "cannot decode msgpack: %s", eb);
            return NULL;
        }
        return raise_mcl(rv, "unpack", eb);
    }
    PyObject *r = value_to_py(v, 0);
    mcl_value_free(v);
    return r;
}

static PyObject *
mod_unpack(PyObject *mod, PyObject *o)
{
    (void)mod;
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0)
        return NULL;
    PyObject *r = unpack_bytes(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return r;
}

// ---------------------------------------------------------------------------------------
// Connection

typedef struct {
    PyObject_HEAD mcl_connection *c;
} ConnObject;

static PyTypeObject ConnType;

static int
conn_init(ConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"url", NULL};
    const char *url = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:Connection", kwlist, &url))
        return -1;
    char eb[512] = "";
    mcl_connection *c = NULL;
    mcl_err rv = url != NULL ? mcl_connection_parse(&c, url, eb, sizeof eb)
                             : mcl_connection_default(&c, eb, sizeof eb);
    if (rv != MCL_OK) {
        raise_mcl(rv, url != NULL ? url : "default connection", eb);
        return -1;
    }
    mcl_connection_free(self->c);
    self->c = c;
    return 0;
}

static void
conn_dealloc(ConnObject *self)
{
    mcl_connection_free(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static mcl_connection *
conn_of(PyObject *o)
{
    if (!PyObject_TypeCheck(o, &ConnType)) {
        PyErr_Format(PyExc_TypeError, "'connection' must be an mcl.Connection, not %.100s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    mcl_connection *c = ((ConnObject *)o)->c;
    if (c == NULL)
        PyErr_SetString(PyExc_ValueError, "connection was not initialised");
    return c;
}

static PyObject *
conn_url(ConnObject *self, void *closure)
{
    (void)closure;
    if (self->c == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(mcl_connection_url(self->c));
}

static PyObject *
conn_scheme(ConnObject *self, void *closure)
{
    (void)closure;
    if (self->c == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(mcl_connection_scheme(self->c));
}

static PyObject *
conn_port(ConnObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(self->c != NULL ? (long)mcl_connection_port(self->c) : 0);
}

static PyObject *
conn_group(ConnObject *self, void *closure)
{
    (void)closure;
    const char *g = self->c != NULL ? mcl_connection_group(self->c) : NULL;
    if (g == NULL || *g == '\0')
        Py_RETURN_NONE;
    return PyUnicode_FromString(g);
}

static PyObject *
conn_rcvbuf(ConnObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->c != NULL ? mcl_connection_rcvbuf(self->c) : 0);
}

static PyObject *
conn_repr(ConnObject *self)
{
    if (self->c == NULL)
        return PyUnicode_FromFormat("%s(None)", Py_TYPE(self)->tp_name);
    PyObject *u = PyUnicode_FromString(mcl_connection_url(self->c));
    if (u == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("%s(%R)", Py_TYPE(self)->tp_name, u);
    Py_DECREF(u);
    return r;
}

static PyObject *
conn_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &ConnType))
        Py_RETURN_NOTIMPLEMENTED;
    ConnObject *x = (ConnObject *)a, *y = (ConnObject *)b;
    bool eq = x->c != NULL && y->c != NULL && mcl_connection_equal(x->c, y->c);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t
conn_hash(ConnObject *self)
{
    PyObject *u = conn_url(self, NULL);
    if (u == NULL)
        return -1;
    Py_hash_t h = PyObject_Hash(u);
    Py_DECREF(u);
    return h;
}

static PyGetSetDef conn_getset[] = {
    {"url", (getter)conn_url, NULL, "canonical URL", NULL},
    {"scheme", (getter)conn_scheme, NULL, "transport: udp, zmq+tcp, inproc, ...", NULL},
    {"port", (getter)conn_port, NULL, "port (0 when none)", NULL},
    {"group", (getter)conn_group, NULL, "multicast group (None for zmq and inproc)", NULL},
    {"rcvbuf", (getter)conn_rcvbuf, NULL, "receive buffer requested, bytes (0: the system default)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl.Connection",
    .tp_basicsize = sizeof(ConnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Connection(url=None): a parsed connection URL (None: $MCL_URL or the default).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)conn_init,
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_repr = (reprfunc)conn_repr,
    .tp_richcompare = conn_richcompare,
    .tp_hash = (hashfunc)conn_hash,
    .tp_getset = conn_getset,
};

// Whether a connection object asks for Python MCL's shapes: `objects = True`, payloads that are
// any object, msgpack-encoded; `datetimes = True`, time_received a naive UTC datetime. The
// compatibility connection mcl.network.udp.Connection sets both.
static int
conn_flag(PyObject *conn, const char *name)
{
    PyObject *f = PyObject_GetAttrString(conn, name);
    if (f == NULL) {
        PyErr_Clear();
        return 0;
    }
    int r = PyObject_IsTrue(f);
    Py_DECREF(f);
    return r;
}

// ---------------------------------------------------------------------------------------
// Message types

static void
msgtype_capsule_nop(PyObject *cap)
{
    (void)cap; // types live in the process-wide registry for the life of the process
}

static const mcl_msgtype *
msgtype_of(PyObject *cap)
{
    return PyCapsule_GetPointer(cap, "mcl._msgtype");
}

static PyObject *
mod_define_type(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *name, *url = NULL, *topic = NULL;
    PyObject *fields;
    if (!PyArg_ParseTuple(args, "sO|zz:define_type", &name, &fields, &url, &topic))
        return NULL;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence of str");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    mcl_field *fs = PyMem_Calloc((size_t)n + 1, sizeof *fs);
    if (fs == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        fs[i].name = PyUnicode_Check(f) ? PyUnicode_AsUTF8(f) : NULL;
        fs[i].type = MCL_TYPE_ANY;
        if (fs[i].name == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "field names must be str");
            PyMem_Free(fs);
            Py_DECREF(seq);
            return NULL;
        }
    }
    const mcl_msgtype *t = NULL;
    char eb[512] = "";
    mcl_err rv = mcl_msgtype_define(&t, name, fs, (size_t)n, url, topic, eb, sizeof eb);
    PyMem_Free(fs);
    Py_DECREF(seq);
    if (rv != MCL_OK)
        return raise_mcl(rv, name, eb);
    return PyCapsule_New((void *)t, "mcl._msgtype", msgtype_capsule_nop);
}

// ---------------------------------------------------------------------------------------
// Broadcaster

typedef struct {
    PyObject_HEAD mcl_raw_broadcaster *b; // the raw one (also of a message broadcaster)
    mcl_msg_broadcaster *mb;
    const mcl_msgtype *type;
    PyObject *conn;
    int objects;
    pthread_rwlock_t lock; // publishers share it; close takes it alone
    int lock_ok;
} BcastObject;

static int
bcast_init(BcastObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"connection", "topic", "msgtype", NULL};
    PyObject *conn, *topic = Py_None, *typecap = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:RawBroadcaster", kwlist, &conn, &topic,
                                     &typecap))
        return -1;
    if (self->b != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "broadcaster already initialised");
        return -1;
    }
    mcl_connection *c = conn_of(conn);
    if (c == NULL)
        return -1;
    if (topic != Py_None && !PyUnicode_Check(topic)) {
        PyErr_SetString(PyExc_TypeError, "The argument 'topic' must be None or a string.");
        return -1;
    }
    const char *ts = topic == Py_None ? NULL : PyUnicode_AsUTF8(topic);
    if (topic != Py_None && ts == NULL)
        return -1;
    const mcl_msgtype *t = NULL;
    if (typecap != Py_None && (t = msgtype_of(typecap)) == NULL)
        return -1;
    int objects = conn_flag(conn, "objects");
    if (objects < 0)
        return -1;
    if (!self->lock_ok) {
        if (pthread_rwlock_init(&self->lock, NULL) != 0) {
            PyErr_SetString(PyExc_OSError, "pthread_rwlock_init failed");
            return -1;
        }
        self->lock_ok = 1;
    }
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    if (t != NULL) {
        rv = mcl_msg_broadcaster_open(&self->mb, t, c, ts);
        if (rv == MCL_OK)
            self->b = mcl_msg_broadcaster_raw(self->mb);
    } else {
        rv = mcl_raw_broadcaster_open(&self->b, c, ts);
    }
    Py_END_ALLOW_THREADS;
    if (rv != MCL_OK) {
        raise_mcl(rv, mcl_connection_url(c), NULL);
        return -1;
    }
    self->type = t;
    self->objects = objects;
    Py_INCREF(conn);
    Py_XSETREF(self->conn, conn);
    return 0;
}

static void
bcast_dealloc(BcastObject *self)
{
    Py_BEGIN_ALLOW_THREADS;
    if (self->mb != NULL)
        mcl_msg_broadcaster_free(self->mb);
    else
        mcl_raw_broadcaster_free(self->b);
    Py_END_ALLOW_THREADS;
    if (self->lock_ok)
        pthread_rwlock_destroy(&self->lock);
    Py_XDECREF(self->conn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
bcast_ready(BcastObject *self)
{
    if (self->b == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "broadcaster was not initialised");
        return -1;
    }
    return 0;
}

static void
rd_lock(BcastObject *self)
{
    if (pthread_rwlock_tryrdlock(&self->lock) != 0) {
        Py_BEGIN_ALLOW_THREADS;
        pthread_rwlock_rdlock(&self->lock);
        Py_END_ALLOW_THREADS;
    }
}

// A Python dict (a Message) -> a new mcl_msg of the broadcaster's type.
static mcl_msg *
dict_to_msg(const mcl_msgtype *t, PyObject *d)
{
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "a message must be a dict, not %.100s",
                     Py_TYPE(d)->tp_name);
        return NULL;
    }
    mcl_msg *m = NULL;
    mcl_err rv = mcl_msg_new(&m, t);
    if (rv != MCL_OK) {
        raise_mcl(rv, "message", NULL);
        return NULL;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!PyUnicode_Check(k)) {
            PyErr_Format(PyExc_TypeError, "message keys must be str, not %.100s",
                         Py_TYPE(k)->tp_name);
            goto fail;
        }
        const char *ks = PyUnicode_AsUTF8(k);
        if (ks == NULL)
            goto fail;
        if (strcmp(ks, "name") == 0) {
            const char *nm = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
            if (nm == NULL || strcmp(nm, mcl_msgtype_name(t)) != 0) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "field 'name' is %R, not the type's '%s'", v,
                             mcl_msgtype_name(t));
                goto fail;
            }
            continue;
        }
        char path[512];
        snprintf(path, sizeof path, "%s", ks);
        slot s = {.msg = m, .key = ks};
        if (put_obj(&s, v, path, sizeof path, 0) < 0)
            goto fail;
    }
    return m;
fail:
    mcl_msg_free(m);
    return NULL;
}

static PyObject *
bcast_publish(BcastObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "topic", NULL};
    PyObject *data, *topic = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:publish", kwlist, &data, &topic))
        return NULL;
    if (bcast_ready(self) < 0)
        return NULL;
    if (topic != Py_None && !PyUnicode_Check(topic)) {
        PyErr_SetString(PyExc_TypeError, "The argument 'topic' must be None or a string.");
        return NULL;
    }
    const char *ts = topic == Py_None ? NULL : PyUnicode_AsUTF8(topic);
    if (topic != Py_None && ts == NULL)
        return NULL;
    mcl_err rv;
    char eb[256] = "";
    if (self->type != NULL) {
        mcl_msg *m = dict_to_msg(self->type, data);
        if (m == NULL)
            return NULL;
        rv = mcl_msg_check(m, self->type, eb, sizeof eb);
        if (rv != MCL_OK) {
            mcl_msg_free(m);
            PyErr_Format(rv == MCL_EMISSING ? PyExc_ValueError : PyExc_TypeError, "%s", eb);
            return NULL;
        }
        rd_lock(self);
        Py_BEGIN_ALLOW_THREADS;
        rv = mcl_msg_broadcaster_publish(self->mb, m, ts);
        Py_END_ALLOW_THREADS;
        pthread_rwlock_unlock(&self->lock);
        mcl_msg_free(m);
    } else if (self->objects) {
        void *buf = NULL;
        size_t len = 0;
        PyObject *r = pack_obj(data, &buf, &len);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        rd_lock(self);
        Py_BEGIN_ALLOW_THREADS;
        rv = mcl_raw_broadcaster_publish(self->b, ts, buf, len);
        Py_END_ALLOW_THREADS;
        pthread_rwlock_unlock(&self->lock);
        mcl_free(buf);
    } else {
        if (!PyObject_CheckBuffer(data)) {
            PyErr_Format(PyExc_TypeError,
                         "payload must be bytes-like (bytes, bytearray, memoryview), not %.100s",
                         Py_TYPE(data)->tp_name);
            return NULL;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_CONTIG_RO) < 0)
            return NULL;
        rd_lock(self);
        Py_BEGIN_ALLOW_THREADS;
        rv = mcl_raw_broadcaster_publish(self->b, ts, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS;
        pthread_rwlock_unlock(&self->lock);
        PyBuffer_Release(&view);
    }
    if (rv != MCL_OK)
        return raise_mcl(rv, "publish", NULL);
    Py_RETURN_NONE;
}

static PyObject *
bcast_close(BcastObject *self, PyObject *noargs)
{
    (void)noargs;
    if (bcast_ready(self) < 0)
        return NULL;
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    pthread_rwlock_wrlock(&self->lock);
    rv = self->mb != NULL ? mcl_msg_broadcaster_close(self->mb) : mcl_raw_broadcaster_close(self->b);
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS;
    if (rv == MCL_ECLOSED)
        Py_RETURN_FALSE; // a second close is harmless (Python MCL: False)
    if (rv != MCL_OK)
        return raise_mcl(rv, "close", NULL);
    Py_RETURN_TRUE;
}

static PyObject *
bcast_is_open(BcastObject *self, PyObject *noargs)
{
    (void)noargs;
    return PyBool_FromLong(self->b != NULL && mcl_raw_broadcaster_is_open(self->b));
}

static PyObject *
bcast_stats(BcastObject *self, void *closure)
{
    (void)closure;
    if (bcast_ready(self) < 0)
        return NULL;
    mcl_broadcaster_stats st;
    mcl_raw_broadcaster_stats(self->b, &st);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "messages",
                         (unsigned long long)st.messages, "bytes", (unsigned long long)st.bytes,
                         "datagrams", (unsigned long long)st.datagrams, "errors",
                         (unsigned long long)st.errors, "subscribers",
                         (unsigned long long)st.subscribers, "compressed",
                         (unsigned long long)st.compressed, "compressed_in",
                         (unsigned long long)st.compressed_in, "compressed_out",
                         (unsigned long long)st.compressed_out);
}

static PyObject *
bcast_id(BcastObject *self, void *closure)
{
    (void)closure;
    if (bcast_ready(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(mcl_raw_broadcaster_id(self->b));
}

static PyObject *
bcast_topic(BcastObject *self, void *closure)
{
    (void)closure;
    if (bcast_ready(self) < 0)
        return NULL;
    const char *t = mcl_raw_broadcaster_topic(self->b);
    if (t[0] == '\0')
        Py_RETURN_NONE;
    return PyUnicode_FromString(t);
}

static PyObject *
bcast_conn(BcastObject *self, void *closure)
{
    (void)closure;
    PyObject *c = self->conn != NULL ? self->conn : Py_None;
    Py_INCREF(c);
    return c;
}

static PyObject *
bcast_wait(BcastObject *self, PyObject *args)
{
    Py_ssize_t count = 1;
    double timeout = 5.0;
    if (!PyArg_ParseTuple(args, "|nd:wait_for_subscribers", &count, &timeout))
        return NULL;
    if (bcast_ready(self) < 0)
        return NULL;
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_raw_broadcaster_wait_for_subscribers(self->b, (size_t)count, (int)(timeout * 1000));
    Py_END_ALLOW_THREADS;
    if (rv == MCL_ETIMEDOUT)
        Py_RETURN_FALSE;
    if (rv != MCL_OK)
        return raise_mcl(rv, "wait_for_subscribers", NULL);
    Py_RETURN_TRUE;
}

static PyMethodDef bcast_methods[] = {
    {"publish", (PyCFunction)(void (*)(void))bcast_publish, METH_VARARGS | METH_KEYWORDS,
     "publish(data, topic=None)"},
    {"close", (PyCFunction)bcast_close, METH_NOARGS, "close() -> True, or False if closed"},
    {"_is_open", (PyCFunction)bcast_is_open, METH_NOARGS, NULL},
    {"wait_for_subscribers", (PyCFunction)bcast_wait, METH_VARARGS,
     "wait_for_subscribers(count=1, timeout=5.0) -> bool (zmq and inproc)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef bcast_getset[] = {
    {"stats", (getter)bcast_stats, NULL, "counters (dict)", NULL},
    {"id", (getter)bcast_id, NULL, "publisher id", NULL},
    {"topic", (getter)bcast_topic, NULL, "default topic", NULL},
    {"connection", (getter)bcast_conn, NULL, "the connection", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BcastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl._mcl._Broadcaster",
    .tp_basicsize = sizeof(BcastObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)bcast_init,
    .tp_dealloc = (destructor)bcast_dealloc,
    .tp_methods = bcast_methods,
    .tp_getset = bcast_getset,
};

// ---------------------------------------------------------------------------------------
// Listener

typedef struct ListenerObject {
    PyObject_HEAD mcl_raw_listener *l; // the raw listener (also of a message listener)
    mcl_msg_listener *ml;
    mcl_queued_listener *ql; // a QueuedListener (l and ml are NULL)
    int msg_cbs;             // ql: message callbacks (decoded for a type)
    PyObject *conn, *topics, *callbacks, *factory;
    int objects;
    int datetimes; // time_received a datetime (Python MCL)
    PyThreadState *cb_tstate; // the library thread's Python state, kept between callbacks
    double timeout; // iteration timeout in seconds (< 0: none)
    pthread_mutex_t io; // one thread at a time in recv/start/close
    int io_ok;
    int started;   // the library's listener thread runs
    int closed;    // closed for Python (callbacks no longer run)
    int mcl_closed; // closed in the library
    int pending;   // a deferred close is queued
    PyObject *selfref;
    unsigned long long callback_errors, undecodable;
    struct ListenerObject *next, *prev; // open listeners (under the GIL), for the atexit hook
    int linked;
    PyObject *weaklist;
} ListenerObject;

static PyTypeObject ListenerType;
static ListenerObject *open_listeners;
static _Thread_local ListenerObject *in_callback; // the listener whose callback runs here

static void
link_listener(ListenerObject *s)
{
    s->next = open_listeners;
    s->prev = NULL;
    if (open_listeners != NULL)
        open_listeners->prev = s;
    open_listeners = s;
    s->linked = 1;
}

static void
unlink_listener(ListenerObject *s)
{
    if (!s->linked)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        open_listeners = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->linked = 0;
}

static void
io_lock(ListenerObject *s)
{
    if (pthread_mutex_trylock(&s->io) != 0) {
        Py_BEGIN_ALLOW_THREADS;
        pthread_mutex_lock(&s->io);
        Py_END_ALLOW_THREADS;
    }
}

static PyObject *
sender_str(const mcl_raw_msg *m)
{
    char buf[80];
    if (m->sender_family == 0 || mcl_raw_msg_sender(m, buf, sizeof buf) != MCL_OK)
        Py_RETURN_NONE;
    return PyUnicode_FromString(buf);
}

// A receive time (ns since the epoch) as Python MCL's time_received: a naive datetime in UTC,
// to the microsecond (datetime.utcfromtimestamp() rounds the same way: half to even).
static PyObject *
utc_datetime(int64_t ns)
{
    int64_t us = ns / 1000, rem = ns % 1000;
    if (rem < 0) {
        rem += 1000;
        us--;
    }
    if (rem > 500 || (rem == 500 && (us & 1)))
        us++;
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        PyErr_SetString(PyExc_OverflowError, "time_received out of range");
        return NULL;
    }
    return PyDateTime_FromDateAndTime(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                      tm.tm_min, tm.tm_sec, (int)frac);
}

// The dict a callback or recv() gets: {'topic', 'payload', 'time_received', 'publisher',
// 'sequence', 'sender'}. NULL with an exception set, or NULL and no exception for a payload
// that does not decode (counted in undecodable).
static PyObject *
build_msg_dict(ListenerObject *self, const mcl_raw_msg *m, const mcl_msg *msg)
{
    PyObject *payload;
    if (msg != NULL) {
        PyObject *fields = value_to_py(mcl_msg_fields(msg), 0);
        if (fields == NULL)
            return NULL;
        if (self->factory != NULL && self->factory != Py_None) {
            payload = PyObject_CallOneArg(self->factory, fields);
            Py_DECREF(fields);
            if (payload == NULL)
                return NULL;
        } else {
            payload = fields;
        }
    } else if (self->objects) {
        payload = unpack_bytes(m->payload, m->len);
        if (payload == NULL) {
            if (PyErr_ExceptionMatches(PyExc_ImportError))
                return NULL; // a typed array without numpy: say so, as message listeners do
            PyErr_Clear();
            self->undecodable++;
            return NULL;
        }
    } else {
        payload = PyBytes_FromStringAndSize(m->len ? m->payload : "", (Py_ssize_t)m->len);
        if (payload == NULL)
            return NULL;
    }
    PyObject *topic = m->topic_len == 0
                          ? (Py_INCREF(Py_None), Py_None)
                          : PyUnicode_DecodeUTF8(m->topic, (Py_ssize_t)m->topic_len, errors_mode);
    PyObject *sender = sender_str(m);
    PyObject *when = self->datetimes ? utc_datetime(m->recv_realtime_ns)
                                     : PyFloat_FromDouble((double)m->recv_realtime_ns / 1e9);
    PyObject *d = NULL;
    if (topic != NULL && sender != NULL && when != NULL)
        d = Py_BuildValue("{s:O,s:O,s:O,s:K,s:K,s:O}", "topic", topic, "payload", payload,
                          "time_received", when, "publisher", (unsigned long long)m->publisher,
                          "sequence", (unsigned long long)m->seq, "sender", sender);
    Py_XDECREF(topic);
    Py_XDECREF(sender);
    Py_XDECREF(when);
    Py_DECREF(payload);
    return d;
}

static void
report_unraisable(ListenerObject *self, PyObject *where)
{
    self->callback_errors++;
    PyErr_WriteUnraisable(where);
}

static void
deliver(ListenerObject *self, const mcl_raw_msg *m, const mcl_msg *msg)
{
    if (self->closed || self->callbacks == NULL || PyList_GET_SIZE(self->callbacks) == 0)
        return;
    PyObject *d = build_msg_dict(self, m, msg);
    if (d == NULL) {
        if (PyErr_Occurred())
            report_unraisable(self, self->factory != NULL ? self->factory : (PyObject *)self);
        return;
    }
    // A snapshot: callbacks may subscribe, unsubscribe or close while it is walked.
    PyObject *cbs = PyList_AsTuple(self->callbacks);
    if (cbs == NULL) {
        report_unraisable(self, (PyObject *)self);
        Py_DECREF(d);
        return;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(cbs) && !self->closed; i++) {
        PyObject *cb = PyTuple_GET_ITEM(cbs, i);
        PyObject *r = PyObject_CallOneArg(cb, d);
        if (r == NULL)
            report_unraisable(self, cb);
        else
            Py_DECREF(r);
    }
    Py_DECREF(cbs);
    Py_DECREF(d);
}

static void
on_any(ListenerObject *self, const mcl_raw_msg *m, const mcl_msg *msg)
{
    if (atomic_load(&finalizing))
        return;
    // The library's thread has no Python thread state: PyGILState_Ensure() makes one, and
    // Release would delete it again after every message (with its frame stack: an mmap and a
    // munmap each time, a third of the thread's time at full rate). So the first callback
    // keeps one more level, and closing the listener, after its thread has ended, deletes it.
    bool fresh = PyGILState_GetThisThreadState() == NULL;
    PyGILState_STATE g = PyGILState_Ensure();
    if (fresh && self->cb_tstate == NULL) {
        (void)PyGILState_Ensure();
        self->cb_tstate = PyThreadState_Get();
    }
    ListenerObject *outer = in_callback;
    in_callback = self;
    deliver(self, m, msg);
    in_callback = outer;
    PyGILState_Release(g);
}

static void
on_raw(const mcl_raw_msg *m, void *user)
{
    on_any(user, m, NULL);
}

static void
on_msg(const mcl_msg *msg, const mcl_raw_msg *raw, void *user)
{
    on_any(user, raw, msg);
}

// Close in the library (not from one of its callbacks): stops the thread, drops the
// self-reference. Called with the GIL held.
static void
listener_close_now(ListenerObject *self)
{
    self->closed = 1;
    if ((self->l == NULL && self->ql == NULL) || self->mcl_closed)
        return;
    io_lock(self);
    mcl_err rv = MCL_OK;
    if (!self->mcl_closed) {
        Py_BEGIN_ALLOW_THREADS;
        rv = self->ql != NULL   ? mcl_queued_listener_close(self->ql)
             : self->ml != NULL ? mcl_msg_listener_close(self->ml)
                                : mcl_raw_listener_close(self->l);
        Py_END_ALLOW_THREADS;
        if (rv == MCL_OK || rv == MCL_ECLOSED)
            self->mcl_closed = 1;
    }
    pthread_mutex_unlock(&self->io);
    if (!self->mcl_closed)
        return; // MCL_ESTATE: from a callback (listener_close() defers those)
    if (self->cb_tstate != NULL) { // its thread has ended (joined by the close)
        PyThreadState_Clear(self->cb_tstate);
        PyThreadState_Delete(self->cb_tstate);
        self->cb_tstate = NULL;
    }
    unlink_listener(self);
    Py_CLEAR(self->selfref); // may be the last reference: the caller holds its own
}

static int
pending_close(void *arg)
{
    ListenerObject *self = arg;
    self->pending = 0;
    listener_close_now(self);
    Py_DECREF(self);
    return 0;
}

// Topics for the C API: None, or a sequence of str (the Python layer turns a str into a
// list). On success *seq holds the strings (release it, and PyMem_Free(*ts), after the call).
static int
topics_to_c(PyObject *topics, PyObject **seqp, const char ***tsp, Py_ssize_t *ntp)
{
    *seqp = NULL;
    *tsp = NULL;
    *ntp = 0;
    if (topics == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(topics, "topics must be None, a str or a sequence of str");
    if (seq == NULL)
        return -1;
    Py_ssize_t nt = PySequence_Fast_GET_SIZE(seq);
    const char **ts = PyMem_Calloc((size_t)nt + 1, sizeof *ts);
    if (ts == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nt; i++) {
        PyObject *x = PySequence_Fast_GET_ITEM(seq, i);
        ts[i] = PyUnicode_Check(x) ? PyUnicode_AsUTF8(x) : NULL;
        if (ts[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "topics must be str");
            PyMem_Free(ts);
            Py_DECREF(seq);
            return -1;
        }
    }
    *seqp = seq;
    *tsp = ts;
    *ntp = nt;
    return 0;
}

static int
listener_init(ListenerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"connection", "topics", "msgtype", "factory", "timeout", NULL};
    PyObject *conn, *topics = Py_None, *typecap = Py_None, *factory = Py_None,
                    *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOO:RawListener", kwlist, &conn, &topics,
                                     &typecap, &factory, &timeout))
        return -1;
    if (self->l != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "listener already initialised");
        return -1;
    }
    if (atomic_load(&finalizing)) {
        PyErr_SetString(PyExc_RuntimeError, "the interpreter is shutting down");
        return -1;
    }
    mcl_connection *c = conn_of(conn);
    if (c == NULL)
        return -1;
    self->timeout = -1;
    if (timeout != Py_None) {
        self->timeout = PyFloat_AsDouble(timeout);
        if (self->timeout == -1 && PyErr_Occurred())
            return -1;
        if (self->timeout < 0 || isnan(self->timeout)) {
            PyErr_SetString(PyExc_ValueError, "timeout must be None or >= 0");
            return -1;
        }
    }
    const mcl_msgtype *t = NULL;
    if (typecap != Py_None && (t = msgtype_of(typecap)) == NULL)
        return -1;
    int objects = conn_flag(conn, "objects");
    if (objects < 0)
        return -1;

    // Topics: None, or a sequence of str (the Python layer turns a str into a list).
    PyObject *seq = NULL;
    const char **ts = NULL;
    Py_ssize_t nt = 0;
    if (topics_to_c(topics, &seq, &ts, &nt) < 0)
        return -1;
    if (!self->io_ok) {
        if (pthread_mutex_init(&self->io, NULL) != 0) {
            PyMem_Free(ts);
            Py_XDECREF(seq);
            PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
            return -1;
        }
        self->io_ok = 1;
    }
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    if (t != NULL) {
        rv = mcl_msg_listener_open(&self->ml, t, c, ts, (size_t)nt);
        if (rv == MCL_OK)
            self->l = mcl_msg_listener_raw(self->ml);
    } else {
        rv = mcl_raw_listener_open(&self->l, c, ts, (size_t)nt);
    }
    Py_END_ALLOW_THREADS;
    PyMem_Free(ts);
    Py_XDECREF(seq);
    if (rv != MCL_OK) {
        raise_mcl(rv, mcl_connection_url(c), NULL);
        return -1;
    }
    if (self->ml != NULL)
        rv = mcl_msg_listener_subscribe(self->ml, on_msg, self);
    else
        rv = mcl_raw_listener_subscribe(self->l, on_raw, self);
    if (rv != MCL_OK) {
        raise_mcl(rv, "subscribe", NULL);
        return -1; // dealloc frees the handle
    }
    self->callbacks = PyList_New(0);
    if (self->callbacks == NULL)
        return -1;
    self->objects = objects;
    if ((self->datetimes = conn_flag(conn, "datetimes")) < 0)
        return -1;
    Py_INCREF(conn);
    Py_XSETREF(self->conn, conn);
    Py_INCREF(topics);
    Py_XSETREF(self->topics, topics);
    Py_INCREF(factory);
    Py_XSETREF(self->factory, factory);
    link_listener(self);
    return 0;
}

static int
listener_traverse(ListenerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->callbacks);
    Py_VISIT(self->factory);
    Py_VISIT(self->conn);
    Py_VISIT(self->topics);
    // selfref is not visited on purpose: a running listener stays alive.
    return 0;
}

static int
listener_clear(ListenerObject *self)
{
    Py_CLEAR(self->callbacks);
    Py_CLEAR(self->factory);
    Py_CLEAR(self->topics);
    Py_CLEAR(self->conn);
    return 0;
}

static void
listener_dealloc(ListenerObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weaklist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    // Never called while its thread runs (the self-reference), so not from a callback.
    unlink_listener(self);
    Py_BEGIN_ALLOW_THREADS;
    if (self->ql != NULL)
        mcl_queued_listener_free(self->ql);
    else if (self->ml != NULL)
        mcl_msg_listener_free(self->ml);
    else
        mcl_raw_listener_free(self->l);
    Py_END_ALLOW_THREADS;
    if (self->io_ok)
        pthread_mutex_destroy(&self->io);
    listener_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
listener_ready(ListenerObject *self)
{
    if (self->l == NULL && self->ql == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "listener was not initialised");
        return -1;
    }
    return 0;
}

static PyObject *
listener_subscribe(ListenerObject *self, PyObject *cb)
{
    if (listener_ready(self) < 0)
        return NULL;
    if (!PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable");
        return NULL;
    }
    if (self->closed && self->ql == NULL) // a queued listener may be subscribed before open()
        return raise_mcl(MCL_ECLOSED, "subscribe", NULL);
    int has = PySequence_Contains(self->callbacks, cb);
    if (has < 0)
        return NULL;
    if (has)
        Py_RETURN_FALSE;
    if (PyList_Append(self->callbacks, cb) < 0)
        return NULL;
    if (!self->started && in_callback != self && self->ql == NULL) {
        io_lock(self);
        mcl_err rv = MCL_OK;
        if (!self->mcl_closed) {
            Py_BEGIN_ALLOW_THREADS;
            rv = self->ml != NULL ? mcl_msg_listener_start(self->ml)
                                  : mcl_raw_listener_start(self->l);
            Py_END_ALLOW_THREADS;
        }
        pthread_mutex_unlock(&self->io);
        if (rv != MCL_OK && rv != MCL_EALREADY) {
            PySequence_DelItem(self->callbacks, PyList_GET_SIZE(self->callbacks) - 1);
            return raise_mcl(rv, "start", NULL);
        }
        self->started = 1;
        Py_INCREF(self);
        Py_XSETREF(self->selfref, (PyObject *)self);
    }
    Py_RETURN_TRUE;
}

static PyObject *
listener_unsubscribe(ListenerObject *self, PyObject *cb)
{
    if (listener_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(self->callbacks);
    for (Py_ssize_t i = 0; i < n; i++) {
        int eq = PyObject_RichCompareBool(PyList_GET_ITEM(self->callbacks, i), cb, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq) {
            if (PySequence_DelItem(self->callbacks, i) < 0)
                return NULL;
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

static PyObject *
listener_close(ListenerObject *self, PyObject *noargs)
{
    (void)noargs;
    if (listener_ready(self) < 0)
        return NULL;
    if (self->closed && (self->mcl_closed || self->pending || in_callback == self))
        Py_RETURN_FALSE;
    if (in_callback == self) {
        // The C API refuses a close from the listener's own callback (MCL_ESTATE): stop the
        // callbacks now and close on the main thread as soon as it runs Python code.
        self->closed = 1;
        Py_INCREF(self);
        if (Py_AddPendingCall(pending_close, self) == 0)
            self->pending = 1;
        else
            Py_DECREF(self); // queue full: the next close(), the exit hook or free does it
        Py_RETURN_TRUE;
    }
    int was_closed = self->closed;
    Py_INCREF(self);
    listener_close_now(self);
    Py_DECREF(self);
    if (was_closed)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyObject *
listener_is_open(ListenerObject *self, PyObject *noargs)
{
    (void)noargs;
    return PyBool_FromLong((self->l != NULL || self->ql != NULL) && !self->closed);
}

static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// recv(timeout=None) -> dict, or None when nothing came in time or the listener was closed.
static PyObject *
listener_recv_impl(ListenerObject *self, double timeout)
{
    if (listener_ready(self) < 0)
        return NULL;
    if (self->started)
        return raise_mcl(MCL_ESTATE, "recv",
                         "the listener delivers to callbacks; iterate one without subscribers");
    if (in_callback == self)
        return raise_mcl(MCL_ESTATE, "recv", "called from the listener's callback");
    int64_t deadline = 0;
    if (timeout >= 0)
        deadline = mono_ns() + (int64_t)(timeout * 1e9);
    for (;;) {
        if (self->closed)
            Py_RETURN_NONE;
        if (self->started)
            return raise_mcl(MCL_ESTATE, "recv", "the listener now delivers to callbacks");
        int slice = 100; // ms: how long a close from another thread may wait
        if (timeout >= 0) {
            int64_t left = deadline - mono_ns();
            if (left <= 0)
                slice = 0;
            else if (left < 100000000)
                slice = (int)(left / 1000000) + 1;
        }
        io_lock(self);
        if (self->mcl_closed) {
            pthread_mutex_unlock(&self->io);
            Py_RETURN_NONE;
        }
        mcl_err rv;
        const mcl_raw_msg *m = NULL;
        const mcl_msg *msg = NULL;
        Py_BEGIN_ALLOW_THREADS;
        if (self->ml != NULL)
            rv = mcl_msg_listener_recv(self->ml, &msg, &m, slice);
        else
            rv = mcl_raw_listener_recv(self->l, &m, slice);
        Py_END_ALLOW_THREADS;
        if (rv == MCL_OK) {
            PyObject *d = build_msg_dict(self, m, msg); // m is valid until the next recv
            pthread_mutex_unlock(&self->io);
            if (d != NULL || PyErr_Occurred())
                return d;
            continue; // undecodable (counted)
        }
        pthread_mutex_unlock(&self->io);
        if (rv == MCL_ECLOSED)
            Py_RETURN_NONE;
        if (rv != MCL_ETIMEDOUT)
            return raise_mcl(rv, "recv", NULL);
        if (PyErr_CheckSignals() < 0)
            return NULL;
        if (timeout >= 0 && slice == 0)
            Py_RETURN_NONE;
    }
}

static PyObject *
listener_recv(ListenerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *to = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv", kwlist, &to))
        return NULL;
    double t = -1;
    if (to != Py_None) {
        t = PyFloat_AsDouble(to);
        if (t == -1 && PyErr_Occurred())
            return NULL;
        if (t < 0)
            t = 0;
    }
    return listener_recv_impl(self, t);
}

static PyObject *
listener_next(ListenerObject *self)
{
    PyObject *d = listener_recv_impl(self, self->timeout);
    if (d == Py_None) {
        Py_DECREF(d);
        return NULL; // StopIteration: timed out or closed
    }
    return d;
}

static PyObject *
listener_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

#define STAT_FIELDS(X)                                                                         \
    X(messages) X(bytes) X(filtered) X(lost) X(duplicates) X(reordered) X(datagrams)           \
        X(malformed) X(expired) X(evicted) X(oversize) X(kernel_drops) X(publishers)           \
            X(heartbeats) X(lost_at_end) X(auth_rejected) X(replayed) X(suspect)         \
                X(compressed) X(compressed_bytes) X(undecompressed)

static PyObject *
listener_stats(ListenerObject *self, void *closure)
{
    (void)closure;
    if (listener_ready(self) < 0)
        return NULL;
    mcl_listener_stats st;
    mcl_msg_stats ms;
    if (self->ml != NULL) {
        mcl_msg_listener_stats(self->ml, &ms);
        st = ms.raw;
    } else {
        mcl_raw_listener_stats(self->l, &st);
    }
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
#define PUT_STAT(f)                                                                            \
    {                                                                                          \
        PyObject *v = PyLong_FromUnsignedLongLong((unsigned long long)st.f);                  \
        if (v == NULL || PyDict_SetItemString(d, #f, v) < 0) {                                 \
            Py_XDECREF(v);                                                                     \
            Py_DECREF(d);                                                                      \
            return NULL;                                                                       \
        }                                                                                      \
        Py_DECREF(v);                                                                          \
    }
    STAT_FIELDS(PUT_STAT)
#undef PUT_STAT
    unsigned long long und = self->undecodable + (self->ml ? ms.undecodable : 0);
    PyObject *v1 = PyLong_FromUnsignedLongLong(self->callback_errors);
    PyObject *v2 = PyLong_FromUnsignedLongLong(und);
    PyObject *v3 = PyLong_FromUnsignedLongLong(self->ml ? ms.messages : st.messages - self->undecodable);
    if (v1 == NULL || v2 == NULL || v3 == NULL ||
        PyDict_SetItemString(d, "callback_errors", v1) < 0 ||
        PyDict_SetItemString(d, "undecodable", v2) < 0 ||
        PyDict_SetItemString(d, "received", v3) < 0) {
        Py_XDECREF(v1);
        Py_XDECREF(v2);
        Py_XDECREF(v3);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(v1);
    Py_DECREF(v2);
    Py_DECREF(v3);
    return d;
}

static PyObject *
listener_publishers(ListenerObject *self, void *closure)
{
    (void)closure;
    if (listener_ready(self) < 0)
        return NULL;
    size_t cap = 16, n = 0;
    mcl_publisher_stats *ps = NULL;
    for (;;) {
        PyMem_Free(ps);
        ps = PyMem_Calloc(cap, sizeof *ps);
        if (ps == NULL)
            return PyErr_NoMemory();
        mcl_raw_listener_publishers(self->l, ps, cap, &n);
        if (n <= cap)
            break;
        cap = n + 16;
    }
    PyObject *d = PyDict_New();
    for (size_t i = 0; d != NULL && i < n; i++) {
        const mcl_publisher_stats *p = &ps[i];
        mcl_raw_msg fake = {.sender_family = p->family, .sender_port = p->port};
        memcpy(fake.sender_addr, p->addr, sizeof fake.sender_addr);
        PyObject *sender = sender_str(&fake);
        PyObject *e = sender == NULL ? NULL
                                     : Py_BuildValue(
                                           "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:O,s:s,s:s,s:I}",
                                           "messages", (unsigned long long)p->messages, "bytes",
                                           (unsigned long long)p->bytes, "lost",
                                           (unsigned long long)p->lost, "duplicates",
                                           (unsigned long long)p->duplicates, "reordered",
                                           (unsigned long long)p->reordered, "first_seq",
                                           (unsigned long long)p->first_seq, "last_seq",
                                           (unsigned long long)p->last_seq, "sender", sender,
                                           "host", p->host, "program", p->program, "pid",
                                           (unsigned int)p->pid);
        Py_XDECREF(sender);
        PyObject *k = PyLong_FromUnsignedLongLong((unsigned long long)p->publisher);
        if (e == NULL || k == NULL || PyDict_SetItem(d, k, e) < 0)
            Py_CLEAR(d);
        Py_XDECREF(e);
        Py_XDECREF(k);
    }
    PyMem_Free(ps);
    return d;
}

// One entry (named by closure) of the dict a stats function returns: the attribute getters
// of both listener kinds.
static PyObject *
stats_item(PyObject *(*stats)(ListenerObject *, void *), ListenerObject *self, void *closure)
{
    PyObject *d = stats(self, NULL);
    if (d == NULL)
        return NULL;
    PyObject *v = PyDict_GetItemString(d, (const char *)closure);
    Py_XINCREF(v);
    Py_DECREF(d);
    if (v == NULL)
        PyErr_SetString(PyExc_AttributeError, (const char *)closure);
    return v;
}

static PyObject *
listener_stat1(ListenerObject *self, void *closure)
{
    return stats_item(listener_stats, self, closure);
}

static PyObject *
listener_url(ListenerObject *self, void *closure)
{
    (void)closure;
    if (listener_ready(self) < 0)
        return NULL;
    return PyUnicode_FromString(mcl_raw_listener_url(self->l));
}

static PyObject *
listener_get_obj(ListenerObject *self, void *closure)
{
    PyObject *o = strcmp(closure, "connection") == 0 ? self->conn
                  : strcmp(closure, "topics") == 0   ? self->topics
                                                     : self->callbacks;
    if (o == NULL)
        o = Py_None;
    if (o == self->callbacks && o != Py_None)
        return PyList_AsTuple(o);
    Py_INCREF(o);
    return o;
}

static PyObject *
listener_get_timeout(ListenerObject *self, void *closure)
{
    (void)closure;
    if (self->timeout < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->timeout);
}

static int
listener_set_timeout(ListenerObject *self, PyObject *v, void *closure)
{
    (void)closure;
    if (v == NULL || v == Py_None) {
        self->timeout = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(v);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (t < 0 || isnan(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or >= 0");
        return -1;
    }
    self->timeout = t;
    return 0;
}

static PyMethodDef listener_methods[] = {
    {"subscribe", (PyCFunction)listener_subscribe, METH_O,
     "subscribe(callback) -> True, or False if already subscribed"},
    {"unsubscribe", (PyCFunction)listener_unsubscribe, METH_O,
     "unsubscribe(callback) -> True, or False if it was not subscribed"},
    {"close", (PyCFunction)listener_close, METH_NOARGS, "close() -> True, or False if closed"},
    {"_is_open", (PyCFunction)listener_is_open, METH_NOARGS, NULL},
    {"recv", (PyCFunction)(void (*)(void))listener_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout=None) -> message dict, or None (timed out or closed)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef listener_getset[] = {
    {"stats", (getter)listener_stats, NULL, "all counters (dict)", NULL},
    {"publishers", (getter)listener_publishers, NULL, "per-publisher counters by id", NULL},
    {"received", (getter)listener_stat1, NULL, "messages delivered", "received"},
    {"lost", (getter)listener_stat1, NULL, "messages lost (sequence gaps)", "lost"},
    {"duplicates", (getter)listener_stat1, NULL, "duplicate datagrams", "duplicates"},
    {"reordered", (getter)listener_stat1, NULL, "late messages", "reordered"},
    {"callback_errors", (getter)listener_stat1, NULL, "callbacks that raised",
     "callback_errors"},
    {"undecodable", (getter)listener_stat1, NULL, "payloads that did not decode",
     "undecodable"},
    {"url", (getter)listener_url, NULL, "effective URL (with the bound port)", NULL},
    {"connection", (getter)listener_get_obj, NULL, "the connection", "connection"},
    {"topics", (getter)listener_get_obj, NULL, "the topic filter as given", "topics"},
    {"callbacks", (getter)listener_get_obj, NULL, "subscribed callbacks (tuple)", "callbacks"},
    {"timeout", (getter)listener_get_timeout, (setter)listener_set_timeout,
     "iteration timeout in seconds (None: wait until closed)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ListenerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl._mcl._Listener",
    .tp_basicsize = sizeof(ListenerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)listener_init,
    .tp_dealloc = (destructor)listener_dealloc,
    .tp_traverse = (traverseproc)listener_traverse,
    .tp_clear = (inquiry)listener_clear,
    .tp_iter = listener_iter,
    .tp_iternext = (iternextfunc)listener_next,
    .tp_methods = listener_methods,
    .tp_getset = listener_getset,
    .tp_weaklistoffset = offsetof(ListenerObject, weaklist),
};

// ---------------------------------------------------------------------------------------
// Queued listener (mcl/queued.h): a receiver process fills a shared ring, the library's
// mcl-queued thread runs the callbacks (each under the GIL). The receiver is forked by that
// thread (not by os.fork()): Python's at-fork handlers do not run, and the child runs only
// the library's receive loop and ends with _exit(), never Python code. While open, the
// listener keeps itself alive (its thread runs); close() or the exit hook drops that.

static PyTypeObject QueuedType;

static int
queued_init(ListenerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"connection", "topics", "msgtype", "factory", "open_init",
                             "ring_size", "receiver_cpus", NULL};
    PyObject *conn, *topics = Py_None, *typecap = Py_None, *factory = Py_None;
    int open_init = 1;
    Py_ssize_t ring = 0;
    const char *cpus = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOpnz:QueuedListener", kwlist, &conn,
                                     &topics, &typecap, &factory, &open_init, &ring, &cpus))
        return -1;
    if (self->ql != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "listener already initialised");
        return -1;
    }
    if (atomic_load(&finalizing)) {
        PyErr_SetString(PyExc_RuntimeError, "the interpreter is shutting down");
        return -1;
    }
    if (ring < 0) {
        PyErr_SetString(PyExc_ValueError, "ring_size must be >= 0 (0: the default, 64 MiB)");
        return -1;
    }
    mcl_connection *c = conn_of(conn);
    if (c == NULL)
        return -1;
    self->timeout = -1;
    const mcl_msgtype *t = NULL;
    if (typecap != Py_None && (t = msgtype_of(typecap)) == NULL)
        return -1;
    int objects = conn_flag(conn, "objects");
    if (objects < 0)
        return -1;
    PyObject *seq = NULL;
    const char **ts = NULL;
    Py_ssize_t nt = 0;
    if (topics_to_c(topics, &seq, &ts, &nt) < 0)
        return -1;
    if (!self->io_ok) {
        if (pthread_mutex_init(&self->io, NULL) != 0) {
            PyMem_Free(ts);
            Py_XDECREF(seq);
            PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
            return -1;
        }
        self->io_ok = 1;
    }
    self->callbacks = PyList_New(0);
    if (self->callbacks == NULL) {
        PyMem_Free(ts);
        Py_XDECREF(seq);
        return -1;
    }
    mcl_queued_options opt = {.ring_size = (size_t)ring, .defer_open = true,
                              .receiver_cpus = cpus};
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_queued_listener_new(&self->ql, c, t, ts, (size_t)nt, &opt);
    Py_END_ALLOW_THREADS;
    PyMem_Free(ts);
    Py_XDECREF(seq);
    if (rv != MCL_OK) {
        raise_mcl(rv, mcl_connection_url(c), NULL);
        return -1;
    }
    if (t != NULL)
        rv = mcl_queued_listener_subscribe_msg(self->ql, on_msg, self);
    else
        rv = mcl_queued_listener_subscribe(self->ql, on_raw, self);
    if (rv != MCL_OK) {
        raise_mcl(rv, "subscribe", NULL);
        return -1; // dealloc frees the handle
    }
    self->msg_cbs = t != NULL;
    self->objects = objects;
    if ((self->datetimes = conn_flag(conn, "datetimes")) < 0)
        return -1;
    self->closed = self->mcl_closed = 1; // not open yet
    Py_INCREF(conn);
    Py_XSETREF(self->conn, conn);
    Py_INCREF(topics);
    Py_XSETREF(self->topics, topics);
    Py_INCREF(factory);
    Py_XSETREF(self->factory, factory);
    if (open_init) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "open", NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

// open() -> True, or False when already open.
static PyObject *
queued_open(ListenerObject *self, PyObject *noargs)
{
    (void)noargs;
    if (listener_ready(self) < 0)
        return NULL;
    if (!self->closed)
        Py_RETURN_FALSE;
    if (self->pending || !self->mcl_closed)
        return raise_mcl(MCL_ESTATE, "open", "a close from a callback has not finished yet");
    if (atomic_load(&finalizing))
        return raise_mcl(MCL_ESTATE, "open", "the interpreter is shutting down");
    io_lock(self);
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_queued_listener_open(self->ql);
    Py_END_ALLOW_THREADS;
    pthread_mutex_unlock(&self->io);
    if (rv != MCL_OK)
        return raise_mcl(rv, mcl_queued_listener_url(self->ql), NULL);
    self->closed = self->mcl_closed = 0;
    self->started = 1;
    Py_INCREF(self);
    Py_XSETREF(self->selfref, (PyObject *)self);
    link_listener(self);
    Py_RETURN_TRUE;
}

static int
queued_stats_of(ListenerObject *self, mcl_queued_stats *st)
{
    if (listener_ready(self) < 0)
        return -1;
    if (mcl_queued_listener_stats(self->ql, st) != MCL_OK) {
        raise_mcl(MCL_EINVAL, "stats", NULL);
        return -1;
    }
    return 0;
}

#define QUEUED_FIELDS(X)                                                                       \
    X(delivered) X(ring_drops) X(ring_oversize) X(restart_lost) X(restarts)                    \
        X(receiver_deaths) X(ring_high_water) X(ring_size) X(ring_direct)

static int
dict_put_u64(PyObject *d, const char *key, unsigned long long v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (o == NULL || PyDict_SetItemString(d, key, o) < 0) {
        Py_XDECREF(o);
        return -1;
    }
    Py_DECREF(o);
    return 0;
}

static PyObject *
queued_stats(ListenerObject *self, void *closure)
{
    (void)closure;
    mcl_queued_stats st;
    if (queued_stats_of(self, &st) < 0)
        return NULL;
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
#define PUT_RX(f)                                                                              \
    if (dict_put_u64(d, #f, (unsigned long long)st.receiver.f) < 0)                            \
        goto fail;
#define PUT_Q(f)                                                                               \
    if (dict_put_u64(d, #f, (unsigned long long)st.f) < 0)                                     \
        goto fail;
    STAT_FIELDS(PUT_RX)
    QUEUED_FIELDS(PUT_Q)
#undef PUT_RX
#undef PUT_Q
    if (dict_put_u64(d, "received", st.delivered) < 0 ||
        dict_put_u64(d, "undecodable", st.undecodable + self->undecodable) < 0 ||
        dict_put_u64(d, "callback_errors", self->callback_errors) < 0 ||
        dict_put_u64(d, "receiver_pid", (unsigned long long)st.receiver_pid) < 0 ||
        PyDict_SetItemString(d, "receiver_alive", st.receiver_alive ? Py_True : Py_False) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *
queued_stat1(ListenerObject *self, void *closure)
{
    return stats_item(queued_stats, self, closure);
}

static PyObject *
queued_url(ListenerObject *self, void *closure)
{
    (void)closure;
    if (listener_ready(self) < 0)
        return NULL;
    return PyUnicode_FromString(mcl_queued_listener_url(self->ql));
}

static PyMethodDef queued_methods[] = {
    {"subscribe", (PyCFunction)listener_subscribe, METH_O,
     "subscribe(callback) -> True, or False if already subscribed"},
    {"unsubscribe", (PyCFunction)listener_unsubscribe, METH_O,
     "unsubscribe(callback) -> True, or False if it was not subscribed"},
    {"open", (PyCFunction)queued_open, METH_NOARGS, "open() -> True, or False if open"},
    {"close", (PyCFunction)listener_close, METH_NOARGS, "close() -> True, or False if closed"},
    {"_is_open", (PyCFunction)listener_is_open, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef queued_getset[] = {
    {"stats", (getter)queued_stats, NULL, "all counters (dict)", NULL},
    {"received", (getter)queued_stat1, NULL, "messages handed to callbacks", "received"},
    {"lost", (getter)queued_stat1, NULL, "messages lost (sequence gaps)", "lost"},
    {"duplicates", (getter)queued_stat1, NULL, "duplicate datagrams", "duplicates"},
    {"reordered", (getter)queued_stat1, NULL, "late messages", "reordered"},
    {"ring_drops", (getter)queued_stat1, NULL, "messages dropped: the ring was full",
     "ring_drops"},
    {"ring_oversize", (getter)queued_stat1, NULL, "messages dropped: over half the ring",
     "ring_oversize"},
    {"restarts", (getter)queued_stat1, NULL, "receiver processes restarted", "restarts"},
    {"receiver_pid", (getter)queued_stat1, NULL, "the receiver process (0: none)",
     "receiver_pid"},
    {"callback_errors", (getter)queued_stat1, NULL, "callbacks that raised",
     "callback_errors"},
    {"undecodable", (getter)queued_stat1, NULL, "payloads that did not decode",
     "undecodable"},
    {"url", (getter)queued_url, NULL, "effective URL (with the bound port)", NULL},
    {"connection", (getter)listener_get_obj, NULL, "the connection", "connection"},
    {"topics", (getter)listener_get_obj, NULL, "the topic filter as given", "topics"},
    {"callbacks", (getter)listener_get_obj, NULL, "subscribed callbacks (tuple)", "callbacks"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject QueuedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl._mcl._Queued",
    .tp_basicsize = sizeof(ListenerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)queued_init,
    .tp_dealloc = (destructor)listener_dealloc,
    .tp_traverse = (traverseproc)listener_traverse,
    .tp_clear = (inquiry)listener_clear,
    .tp_methods = queued_methods,
    .tp_getset = queued_getset,
    .tp_weaklistoffset = offsetof(ListenerObject, weaklist),
};

// ---------------------------------------------------------------------------------------
// Log reader (mcl/logfile.h): mcl logs and Python MCL text logs, merged in time order. Each
// record is a dict as a listener's, the payload as bytes (mcl.log decodes it).

typedef struct {
    PyObject_HEAD mcl_log_reader *r;
} LogReaderObject;

static int64_t
seconds_to_ns(PyObject *o, const char *what, int *err)
{
    *err = 0;
    if (o == Py_None)
        return 0;
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
        *err = 1;
        return 0;
    }
    if (isnan(d) || d < 0 || d > 9.2e9) {
        PyErr_Format(PyExc_ValueError, "%s must be seconds since the epoch (>= 0)", what);
        *err = 1;
        return 0;
    }
    int64_t ns = (int64_t)(d * 1e9 + 0.5);
    return ns > 0 ? ns : 1; // 0 would mean "no bound"
}

static bool
logreader_stop(void *arg)
{
    (void)arg; // called on the reading thread, with the GIL released around next()
    PyGILState_STATE g = PyGILState_Ensure();
    bool stop = PyErr_CheckSignals() < 0; // the exception stays set for logreader_next()
    PyGILState_Release(g);
    return stop;
}

static int
logreader_init(LogReaderObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"paths", "topics", "start", "end", NULL};
    PyObject *paths, *topics = Py_None, *start = Py_None, *end = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO:LogReader", kwlist, &paths, &topics,
                                     &start, &end))
        return -1;
    if (self->r != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "reader already initialised");
        return -1;
    }
    int e1, e2;
    mcl_log_reader_options opt = {.start_ns = seconds_to_ns(start, "start", &e1)};
    if (e1)
        return -1;
    opt.end_ns = seconds_to_ns(end, "end", &e2);
    if (e2)
        return -1;
    PyObject *pseq = PySequence_Fast(paths, "paths must be a sequence of str");
    if (pseq == NULL)
        return -1;
    Py_ssize_t np = PySequence_Fast_GET_SIZE(pseq);
    PyObject **enc = PyMem_Calloc((size_t)np + 1, sizeof *enc);
    const char **ps = PyMem_Calloc((size_t)np + 1, sizeof *ps);
    PyObject *tseq = NULL;
    const char **ts = NULL;
    Py_ssize_t nt = 0;
    int rc = -1;
    if (enc == NULL || ps == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < np; i++) {
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(pseq, i), &enc[i]))
            goto out;
        ps[i] = PyBytes_AS_STRING(enc[i]);
    }
    if (topics_to_c(topics, &tseq, &ts, &nt) < 0)
        goto out;
    opt.topics = ts;
    opt.ntopics = (size_t)nt;
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_log_reader_open(&self->r, ps, (size_t)np, &opt);
    Py_END_ALLOW_THREADS;
    if (rv != MCL_OK) {
        if (rv == MCL_ENOENT) {
            PyErr_Format(PyExc_FileNotFoundError, "%s: no such log",
                         np > 0 ? ps[0] : "(no path)");
        } else {
            raise_mcl(rv, np > 0 ? ps[0] : "log", NULL);
        }
        goto out;
    }
    mcl_log_reader_set_stop(self->r, logreader_stop, NULL);
    rc = 0;
out:
    for (Py_ssize_t i = 0; enc != NULL && i < np; i++)
        Py_XDECREF(enc[i]);
    PyMem_Free(enc);
    PyMem_Free(ps);
    PyMem_Free(ts);
    Py_XDECREF(tseq);
    Py_DECREF(pseq);
    return rc;
}

static void
logreader_dealloc(LogReaderObject *self)
{
    mcl_log_reader_close(self->r);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
logreader_next(LogReaderObject *self)
{
    if (self->r == NULL) {
        PyErr_SetString(PyExc_ValueError, "the log reader is closed");
        return NULL;
    }
    const mcl_raw_msg *m = NULL;
    mcl_err rv;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS;
        rv = mcl_log_reader_next(self->r, &m);
        Py_END_ALLOW_THREADS;
        if (rv != MCL_EINTR)
            break;
        if (PyErr_Occurred() || PyErr_CheckSignals() < 0)
            return NULL; // a signal handler raised (KeyboardInterrupt)
    }
    if (rv == MCL_ENOENT)
        return NULL; // StopIteration
    if (rv != MCL_OK)
        return raise_mcl(rv, "log", NULL);
    PyObject *topic = m->topic_len == 0
                          ? (Py_INCREF(Py_None), Py_None)
                          : PyUnicode_DecodeUTF8(m->topic, (Py_ssize_t)m->topic_len, errors_mode);
    PyObject *payload =
        PyBytes_FromStringAndSize(m->len ? m->payload : "", (Py_ssize_t)m->len);
    PyObject *d = NULL;
    if (topic != NULL && payload != NULL)
        d = Py_BuildValue("{s:O,s:O,s:d,s:K,s:K,s:O}", "topic", topic, "payload", payload,
                          "time_received", (double)m->recv_realtime_ns / 1e9, "publisher",
                          (unsigned long long)m->publisher, "sequence",
                          (unsigned long long)m->seq, "sender", Py_None);
    Py_XDECREF(topic);
    Py_XDECREF(payload);
    return d;
}

static PyObject *
logreader_reset(LogReaderObject *self, PyObject *noargs)
{
    (void)noargs;
    if (self->r == NULL)
        return raise_mcl(MCL_ECLOSED, "reset", NULL);
    mcl_err rv = mcl_log_reader_reset(self->r);
    if (rv != MCL_OK)
        return raise_mcl(rv, "reset", NULL);
    Py_RETURN_NONE;
}

static PyObject *
logreader_close(LogReaderObject *self, PyObject *noargs)
{
    (void)noargs;
    if (self->r == NULL)
        Py_RETURN_FALSE;
    mcl_log_reader_close(self->r);
    self->r = NULL;
    Py_RETURN_TRUE;
}

static PyObject *
logreader_damage(LogReaderObject *self, void *closure)
{
    (void)closure;
    if (self->r == NULL)
        return raise_mcl(MCL_ECLOSED, "damage", NULL);
    uint64_t bytes = 0;
    uint64_t n = mcl_log_reader_corrupt(self->r, &bytes);
    return Py_BuildValue("{s:K,s:K,s:K}", "corrupt", (unsigned long long)n, "corrupt_bytes",
                         (unsigned long long)bytes, "tail",
                         (unsigned long long)mcl_log_reader_tail(self->r));
}

// _columns(fields): the numeric fields of every record whose payload is a msgpack map holding
// them all, read and decoded in C (to_numpy()'s fast path). -> (times, [(kind, data), ...]):
// times the float64 receive times, kind 'b' (bool), 'i' (int64) or 'f' (float64) as numpy's
// asarray() would infer from the values, data a bytearray of their native-order values (bool:
// 1 byte each; numpy.frombuffer() makes writable arrays of them without a copy). None when a
// field holds a value of another type (a str, nil, container, or an integer above INT64_MAX):
// the caller then takes the general path. The reader is left at its end.
enum { COL_BOOL = 1, COL_INT = 2, COL_FLOAT = 4 };

// A column is 8 bytes a row while it is read: int64 while it has held only bools and integers,
// double once it has held a float (the integers before are converted then, once).
typedef struct {
    PyObject *buf; // bytearray
    unsigned kinds;
} column;

// One record into row @p n of cols (room for it): 1 taken, 0 skipped (not a map with every
// field), -1 a field of another type (general path). mcl_value_scan_map() reads the fields
// without building a tree.
static int
col_take(const mcl_raw_msg *m, const char *const *names, size_t nf, column *cols, char **data,
         size_t n)
{
    const unsigned char *p = m->payload;
    if (m->len == 0 || !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
        return 0;
    mcl_scalar f[16];
    if (mcl_value_scan_map(m->payload, m->len, names, nf, f) != MCL_OK)
        return 0; // the general path leaves it bytes too
    for (size_t k = 0; k < nf; k++) {
        if (f[k].type == MCL_TYPE_ANY)
            return 0;
        if (f[k].type != MCL_TYPE_BOOL && f[k].type != MCL_TYPE_FLOAT &&
            (f[k].type != MCL_TYPE_INT || f[k].big_uint))
            return -1;
    }
    for (size_t k = 0; k < nf; k++) {
        column *c = &cols[k];
        char *row = data[k] + 8 * n;
        if (f[k].type == MCL_TYPE_FLOAT && !(c->kinds & COL_FLOAT) && n > 0) {
            for (size_t i = 0; i < n; i++) { // the integers so far become doubles
                int64_t x;
                memcpy(&x, data[k] + 8 * i, 8);
                double d = (double)x;
                memcpy(data[k] + 8 * i, &d, 8);
            }
        }
        unsigned kind = f[k].type == MCL_TYPE_FLOAT ? COL_FLOAT
                        : f[k].type == MCL_TYPE_INT ? COL_INT
                                                    : COL_BOOL;
        c->kinds |= kind;
        if (c->kinds & COL_FLOAT) {
            double d = kind == COL_FLOAT ? f[k].d : kind == COL_INT ? (double)f[k].i : f[k].b;
            memcpy(row, &d, 8);
        } else {
            int64_t x = kind == COL_INT ? f[k].i : f[k].b;
            memcpy(row, &x, 8);
        }
    }
    return 1;
}

static PyObject *
logreader_columns(LogReaderObject *self, PyObject *arg)
{
    if (self->r == NULL)
        return raise_mcl(MCL_ECLOSED, "columns", NULL);
    PyObject *seq = PySequence_Fast(arg, "fields must be a list of str");
    if (seq == NULL)
        return NULL;
    size_t nf = (size_t)PySequence_Fast_GET_SIZE(seq);
    if (nf > 16) { // more than mcl_value_scan_map()'s fast path takes: the general path
        Py_DECREF(seq);
        Py_RETURN_NONE;
    }
    const char *names[16];
    for (size_t k = 0; k < nf; k++)
        if ((names[k] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)k))) == NULL) {
            Py_DECREF(seq);
            return NULL;
        }
    column cols[16];
    char *data[16];
    memset(cols, 0, sizeof cols);
    PyObject *times = PyByteArray_FromStringAndSize(NULL, 0);
    size_t n = 0, cap = 0;
    int state = times == NULL ? -2 : 0; // 0 reading, 1 end, -1 general path, -2 error set,
                                        // -3 a reader error
    for (size_t k = 0; k < nf && state == 0; k++)
        if ((cols[k].buf = PyByteArray_FromStringAndSize(NULL, 0)) == NULL)
            state = -2;
    mcl_err rv = MCL_OK;
    while (state == 0) {
        if (n == cap) { // room for more rows, with the GIL
            size_t want = cap ? cap * 2 : 65536;
            if (want > (size_t)PY_SSIZE_T_MAX / 8 ||
                PyByteArray_Resize(times, (Py_ssize_t)(want * 8)) < 0) {
                state = -2;
                break;
            }
            for (size_t k = 0; k < nf && state == 0; k++)
                if (PyByteArray_Resize(cols[k].buf, (Py_ssize_t)(want * 8)) < 0)
                    state = -2;
            if (state != 0)
                break;
            cap = want;
        }
        char *tp = PyByteArray_AS_STRING(times);
        for (size_t k = 0; k < nf; k++)
            data[k] = PyByteArray_AS_STRING(cols[k].buf);
        Py_BEGIN_ALLOW_THREADS;
        for (int batch = 0; batch < 65536 && n < cap && state == 0; batch++) {
            const mcl_raw_msg *m;
            rv = mcl_log_reader_next(self->r, &m);
            if (rv != MCL_OK) {
                state = rv == MCL_ENOENT ? 1 : -3;
                break;
            }
            int t = col_take(m, names, nf, cols, data, n);
            if (t == 1) {
                double secs = (double)m->recv_realtime_ns / 1e9;
                memcpy(tp + 8 * n++, &secs, 8);
            } else if (t < 0) {
                state = -1;
            }
        }
        Py_END_ALLOW_THREADS;
        if (state == 0 && PyErr_CheckSignals() < 0)
            state = -2;
    }
    PyObject *out = NULL;
    if (state == -3 && !(rv == MCL_EINTR && PyErr_Occurred()))
        raise_mcl(rv, "log", NULL);
    if (state == -1)
        out = (Py_INCREF(Py_None), Py_None);
    if (state == 1 && PyByteArray_Resize(times, (Py_ssize_t)(n * 8)) == 0) {
        PyObject *list = PyList_New((Py_ssize_t)nf);
        for (size_t k = 0; list != NULL && k < nf; k++) {
            column *c = &cols[k];
            char kind = (c->kinds & COL_FLOAT) || c->kinds == 0 ? 'f'
                        : (c->kinds & COL_INT)                  ? 'i'
                                                                : 'b';
            char *d = PyByteArray_AS_STRING(c->buf);
            if (kind == 'b')
                for (size_t i = 0; i < n; i++) { // in place: row i's byte is before its word
                    int64_t x;
                    memcpy(&x, d + 8 * i, 8);
                    d[i] = x != 0;
                }
            PyObject *item = PyByteArray_Resize(c->buf, (Py_ssize_t)(n * (kind == 'b' ? 1 : 8))) == 0
                                 ? Py_BuildValue("(CO)", kind, c->buf)
                                 : NULL;
            if (item == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)k, item);
        }
        if (list != NULL)
            out = Py_BuildValue("(OO)", times, list);
        Py_XDECREF(list);
    }
    for (size_t k = 0; k < nf; k++)
        Py_XDECREF(cols[k].buf);
    Py_XDECREF(times);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef logreader_methods[] = {
    {"_columns", (PyCFunction)logreader_columns, METH_O,
     "_columns(fields) -> (times, [(kind, bytes)]) or None: to_numpy()'s fast path"},
    {"reset", (PyCFunction)logreader_reset, METH_NOARGS, "go back to the first record"},
    {"close", (PyCFunction)logreader_close, METH_NOARGS, "close() -> True, or False if closed"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef logreader_getset[] = {
    {"damage", (getter)logreader_damage, NULL,
     "{'corrupt': records skipped, 'corrupt_bytes', 'tail': unread bytes at the end}", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LogReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl._mcl._LogReader",
    .tp_basicsize = sizeof(LogReaderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)logreader_init,
    .tp_dealloc = (destructor)logreader_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)logreader_next,
    .tp_methods = logreader_methods,
    .tp_getset = logreader_getset,
};

// A log writer (mcl_log_writer): write(record dict fields) appends one record.
typedef struct {
    PyObject_HEAD mcl_log_writer *w;
} LogWriterObject;

static int
logwriter_init(LogWriterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "overwrite", NULL};
    PyObject *path;
    int overwrite = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p:LogWriter", kwlist, PyUnicode_FSConverter,
                                     &path, &overwrite))
        return -1;
    if (self->w != NULL) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_RuntimeError, "writer already initialised");
        return -1;
    }
    mcl_log_writer_options opt = {.overwrite = overwrite != 0};
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_log_writer_open(&self->w, PyBytes_AS_STRING(path), &opt);
    Py_END_ALLOW_THREADS;
    if (rv != MCL_OK) {
        if (rv == MCL_EEXIST)
            PyErr_Format(PyExc_FileExistsError, "%s: exists", PyBytes_AS_STRING(path));
        else
            raise_mcl(rv, PyBytes_AS_STRING(path), NULL);
        Py_DECREF(path);
        return -1;
    }
    Py_DECREF(path);
    return 0;
}

static PyObject *
logwriter_write(LogWriterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"payload", "topic", "time_received", "publisher", "sequence", NULL};
    Py_buffer view;
    const char *topic = NULL;
    Py_ssize_t tlen = 0;
    double t = 0;
    unsigned long long pub = 0, seq = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|z#dKK:write", kwlist, &view, &topic, &tlen,
                                     &t, &pub, &seq))
        return NULL;
    if (self->w == NULL) {
        PyBuffer_Release(&view);
        return raise_mcl(MCL_ECLOSED, "write", NULL);
    }
    if (isnan(t) || t < 0 || t > 9.2e9) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "time_received must be seconds since the epoch");
        return NULL;
    }
    if (t == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    }
    mcl_raw_msg m = {.topic = topic != NULL ? topic : "",
                     .topic_len = topic != NULL ? (size_t)tlen : 0,
                     .payload = view.buf,
                     .len = (size_t)view.len,
                     .publisher = pub,
                     .seq = seq,
                     .recv_realtime_ns = (int64_t)(t * 1e9 + 0.5)};
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_log_writer_write(self->w, &m);
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&view);
    if (rv != MCL_OK)
        return raise_mcl(rv, "write", NULL);
    Py_RETURN_NONE;
}

static PyObject *
logwriter_close(LogWriterObject *self, PyObject *noargs)
{
    (void)noargs;
    if (self->w == NULL)
        Py_RETURN_FALSE;
    mcl_err rv;
    Py_BEGIN_ALLOW_THREADS;
    rv = mcl_log_writer_close(self->w);
    Py_END_ALLOW_THREADS;
    self->w = NULL;
    if (rv != MCL_OK)
        return raise_mcl(rv, "close", NULL);
    Py_RETURN_TRUE;
}

static void
logwriter_dealloc(LogWriterObject *self)
{
    if (self->w != NULL)
        (void)mcl_log_writer_close(self->w);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef logwriter_methods[] = {
    {"write", (PyCFunction)(void (*)(void))logwriter_write, METH_VARARGS | METH_KEYWORDS,
     "write(payload, topic=None, time_received=now, publisher=0, sequence=0)"},
    {"close", (PyCFunction)logwriter_close, METH_NOARGS, "close() -> True, or False if closed"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LogWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcl._mcl._LogWriter",
    .tp_basicsize = sizeof(LogWriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)logwriter_init,
    .tp_dealloc = (destructor)logwriter_dealloc,
    .tp_methods = logwriter_methods,
};

// ---------------------------------------------------------------------------------------
// Module

// The atexit hook: close every open listener while threads can still take the GIL, then
// keep late callbacks away from an interpreter that is going away.
static PyObject *
mod_shutdown(PyObject *mod, PyObject *noargs)
{
    (void)mod;
    (void)noargs;
    while (open_listeners != NULL) {
        ListenerObject *s = open_listeners;
        Py_INCREF(s);
        listener_close_now(s); // unlinks it
        unlink_listener(s);
        Py_DECREF(s);
    }
    atomic_store(&finalizing, 1);
    Py_RETURN_NONE;
}

// os.register_at_fork(after_in_child=...): in a forked child the listeners are the parent's
// (mcl/raw.h: they may only be closed, which the library makes harmless there), and a lock that
// one of the parent's threads held at the fork (a recv() waiting) would never be released.
static PyObject *
mod_after_fork_child(PyObject *mod, PyObject *noargs)
{
    (void)mod;
    (void)noargs;
    for (ListenerObject *s = open_listeners; s != NULL; s = s->next) {
        if (s->io_ok)
            pthread_mutex_init(&s->io, NULL);
        s->cb_tstate = NULL; // Python deleted the other threads' states at the fork
    }
    Py_RETURN_NONE;
}

static PyObject *
mod_open_listeners(PyObject *mod, PyObject *noargs)
{
    (void)mod;
    (void)noargs;
    long n = 0;
    for (ListenerObject *s = open_listeners; s != NULL; s = s->next)
        n++;
    return PyLong_FromLong(n);
}

static PyObject *
mod_version(PyObject *mod, PyObject *noargs)
{
    (void)mod;
    (void)noargs;
    return PyUnicode_FromString(mcl_version());
}

static PyMethodDef mod_methods[] = {
    {"pack", mod_pack, METH_O, "pack(obj) -> msgpack bytes"},
    {"unpack", mod_unpack, METH_O, "unpack(bytes) -> object"},
    {"define_type", mod_define_type, METH_VARARGS,
     "define_type(name, fields, url=None, topic=None) -> capsule"},
    {"_shutdown", mod_shutdown, METH_NOARGS, "close every open listener (atexit)"},
    {"_open_listeners", mod_open_listeners, METH_NOARGS, "listeners not closed yet"},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS, "os.register_at_fork() child hook"},
    {"version", mod_version, METH_NOARGS, "the loaded libmcl's version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, .m_name = "mcl._mcl", .m_doc = "CPython binding of libmcl",
    .m_size = -1, .m_methods = mod_methods,
};

static int
add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0)
        return -1;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__mcl(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL)
        return NULL;
    Error = PyErr_NewExceptionWithDoc(
        "mcl.Error", "An mcl library error: .code (the mcl_err value), .name, .strerror.",
        NULL, NULL);
    if (Error == NULL || PyModule_AddObjectRef(m, "Error", Error) < 0 ||
        add_type(m, &ConnType, "Connection") < 0 || add_type(m, &BcastType, "_Broadcaster") < 0 ||
        add_type(m, &ListenerType, "_Listener") < 0 || add_type(m, &QueuedType, "_Queued") < 0 ||
        add_type(m, &LogReaderType, "_LogReader") < 0 ||
        add_type(m, &LogWriterType, "_LogWriter") < 0)
        goto fail;
#define ADD_ERR(name, val, text)                                                               \
    if (PyModule_AddIntConstant(m, "MCL_" #name, val) < 0)                                     \
        goto fail;
    MCL_ERR_MAP(ADD_ERR)
#undef ADD_ERR
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

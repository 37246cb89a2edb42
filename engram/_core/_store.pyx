# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled kernels of the store path (store.h); twins and specification in _ref.py.

These run once per stored memory, on every writer thread, so they are built for
small inputs: they hold the GIL on purpose for a single 768-float vector or a
small batch. Releasing it costs more than the work (with 32 writers every
release hands the GIL to another thread: a context switch each way), so only a
batch of more than PREPARE_NOGIL_VALUES values lets other threads run.

``embedding_f32`` takes the common inputs (a float32 array of the right shape,
a list or tuple of Python floats and ints) in one C loop; anything else, and any
input that breaks a rule, goes to the twin, which decides the error. So the two
accept, return and refuse exactly the same values.
"""

import numpy as np
cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.ref cimport PyObject
from libc.math cimport isfinite
from libc.stdint cimport int8_t, int64_t
from libc.string cimport memcpy
from libc.stdlib cimport free

cnp.import_array()

from engram._core import _ref
from engram._core._ref import _check_lsh_args, _check_quantize_args

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyFloat_Type
    PyTypeObject PyLong_Type
    PyTypeObject *Py_TYPE(PyObject *o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    PyObject *PyErr_Occurred()
    void PyErr_Clear()
    double _long_as_double "PyLong_AsDouble"(PyObject *o)
    PyObject *PyList_GET_ITEM(object o, Py_ssize_t i)
    PyObject *PyTuple_GET_ITEM(object o, Py_ssize_t i)

cdef extern from "store.h" nogil:
    void engram_inv_norms(const float *M, int64_t n, int64_t d, float *out)
    int engram_prepare_rows(const float *M, int64_t b, int64_t d, const int8_t *planes, int64_t tables,
                            int64_t bits, float *inv_norms, int8_t *codes, float *scales, int64_t *keys)
    int64_t engram_batch_pairs_hashed(const int64_t *keys, int64_t m, int64_t tables, const unsigned char *eligible,
                                      int64_t **later_out, int64_t **earlier_out)

cdef enum:
    # Above this many float values a kernel releases the GIL (about 85 rows of 768).
    PREPARE_NOGIL_VALUES = 65536
    # From this many rows (a bulk store) prepare_rows does the second half of the rows
    # on a thread of its own: each row's outputs are its own, so the bits are the same,
    # and on two cores a 5,000-row batch takes about half the time.
    PREPARE_SPLIT_ROWS = 1024


cdef extern from "pthread.h" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t *thread, const void *attr, void *(*start)(void *), void *arg)
    int pthread_join(pthread_t thread, void **retval)

cdef extern from "unistd.h" nogil:
    long sysconf(int name)
    int _SC_NPROCESSORS_ONLN


cdef struct _PrepareJob:
    const float *m
    int64_t b
    int64_t d
    const int8_t *planes
    int64_t tables
    int64_t bits
    float *inv
    int8_t *codes
    float *scales
    int64_t *keys
    int status


cdef void *_prepare_job(void *arg) noexcept nogil:
    cdef _PrepareJob *job = <_PrepareJob *>arg
    job.status = engram_prepare_rows(job.m, job.b, job.d, job.planes, job.tables, job.bits, job.inv, job.codes,
                                     job.scales, job.keys)
    return NULL


cdef int _prepare_rows_split(const float *m, int64_t b, int64_t d, const int8_t *pl, int64_t tables, int64_t bits,
                             float *inv, int8_t *c, float *sc, int64_t *k) noexcept nogil:
    """engram_prepare_rows over rows [0, h) here and [h, b) on a second thread (one
    thread if none can be started); the first error in row order wins."""
    cdef int64_t h = b // 2
    cdef _PrepareJob job
    cdef pthread_t thread
    job.m = m + h * d
    job.b = b - h
    job.d = d
    job.planes = pl
    job.tables = tables
    job.bits = bits
    job.inv = inv + h
    job.codes = c + h * d
    job.scales = sc + h
    job.keys = k + h * tables
    job.status = 0
    if pthread_create(&thread, NULL, _prepare_job, &job) != 0:
        return engram_prepare_rows(m, b, d, pl, tables, bits, inv, c, sc, k)
    cdef int first = engram_prepare_rows(m, h, d, pl, tables, bits, inv, c, sc, k)
    pthread_join(thread, NULL)
    return first if first != 0 else job.status


cdef inline cnp.ndarray _empty_f32(Py_ssize_t n):
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    return cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)


cdef object _from_sequence(object value, bint is_list, Py_ssize_t dimension):
    """The float32 copy of a list/tuple of exact floats and ints, or None (let the twin decide).

    Items are read as borrowed pointers with their exact type compared by address: no
    reference counting or Python call per value (a 768-float list in about a
    microsecond)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(value) if is_list else PyTuple_GET_SIZE(value)
    if n != dimension:
        return None
    cdef cnp.ndarray out = _empty_f32(n)
    cdef float *o = <float *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t i
    cdef PyObject *item
    cdef double x
    cdef float f
    cdef bint nonzero = False
    for i in range(n):
        item = PyList_GET_ITEM(value, i) if is_list else PyTuple_GET_ITEM(value, i)
        if Py_TYPE(item) == &PyFloat_Type:
            x = PyFloat_AS_DOUBLE(<object>item)
        elif Py_TYPE(item) == &PyLong_Type:
            x = _long_as_double(item)
            if x == -1.0 and PyErr_Occurred():
                PyErr_Clear()  # too large for a double: the twin decides
                return None
        else:
            return None
        f = <float>x
        if not isfinite(f):  # NaN or infinity, or a finite double beyond float32
            return None
        if f != 0.0:
            nonzero = True
        o[i] = f
    if not nonzero:
        return None
    return out


def embedding_f32(value, Py_ssize_t dimension):
    """See ``engram._core._ref.embedding_f32``: same contract, same values, same errors."""
    cdef cnp.ndarray array
    cdef cnp.ndarray out
    cdef const float *p
    cdef float *o
    cdef Py_ssize_t i
    cdef float x
    cdef bint nonzero = False
    cdef bint finite = True
    if PyList_CheckExact(value) or PyTuple_CheckExact(value):
        result = _from_sequence(value, PyList_CheckExact(value), dimension)
        if result is not None:
            return result
    elif type(value) is np.ndarray:
        array = <cnp.ndarray>value
        if (cnp.PyArray_TYPE(array) == cnp.NPY_FLOAT32 and cnp.PyArray_NDIM(array) == 1
                and cnp.PyArray_DIM(array, 0) == dimension and cnp.PyArray_IS_C_CONTIGUOUS(array)
                and cnp.PyArray_ISNOTSWAPPED(array)):
            p = <const float *>cnp.PyArray_DATA(array)
            for i in range(dimension):
                x = p[i]
                finite &= isfinite(x)
                nonzero |= x != 0.0
            if finite and nonzero:
                out = _empty_f32(dimension)
                o = <float *>cnp.PyArray_DATA(out)
                memcpy(o, p, dimension * sizeof(float))
                return out
    return _ref.embedding_f32(value, dimension)


def stack_rows_f32(vectors, Py_ssize_t dimension):
    """See ``engram._core._ref.stack_rows_f32``: same contract and result, compiled.

    Copies with memcpy and keeps the GIL: np.stack releases it for every row it
    copies, and a group-commit leader stacking its batch lost the GIL to a writer
    thread at each row, then waited to get it back."""
    if not PyList_CheckExact(vectors):
        return _ref.stack_rows_f32(vectors, dimension)
    cdef Py_ssize_t n = PyList_GET_SIZE(vectors)
    cdef Py_ssize_t i
    cdef cnp.ndarray row
    for i in range(n):
        item = <object>PyList_GET_ITEM(vectors, i)
        if type(item) is not np.ndarray:
            return _ref.stack_rows_f32(vectors, dimension)
        row = <cnp.ndarray>item
        if not (cnp.PyArray_TYPE(row) == cnp.NPY_FLOAT32 and cnp.PyArray_NDIM(row) == 1
                and cnp.PyArray_DIM(row, 0) == dimension and cnp.PyArray_IS_C_CONTIGUOUS(row)
                and cnp.PyArray_ISNOTSWAPPED(row)):
            return _ref.stack_rows_f32(vectors, dimension)
    if n == 0 or n * dimension > PREPARE_NOGIL_VALUES:
        return _ref.stack_rows_f32(vectors, dimension)  # none, or a bulk batch: np.stack may release the GIL
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = dimension
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32, 0)
    cdef char *o = <char *>cnp.PyArray_DATA(out)
    cdef size_t row_bytes = dimension * sizeof(float)
    for i in range(n):
        memcpy(o + i * row_bytes, cnp.PyArray_DATA(<cnp.ndarray>PyList_GET_ITEM(vectors, i)), row_bytes)
    return out


def row_inv_norms(matrix):
    """See ``engram._core._ref.row_inv_norms``: same contract, same bits, compiled."""
    _ref._check_rows_f32(matrix)
    source = np.ascontiguousarray(matrix)
    cdef int64_t n = source.shape[0]
    cdef int64_t d = source.shape[1]
    cdef cnp.ndarray out = _empty_f32(n)
    if n == 0:
        return out
    cdef const float *m = <const float *>cnp.PyArray_DATA(<cnp.ndarray>source)
    cdef float *o = <float *>cnp.PyArray_DATA(out)
    if n * d > PREPARE_NOGIL_VALUES:
        with nogil:
            engram_inv_norms(m, n, d, o)
    else:
        engram_inv_norms(m, n, d, o)
    return out


def prepare_rows(matrix, planes, int bits):
    """See ``engram._core._ref.prepare_rows``: same contract, same bits, compiled."""
    _check_quantize_args(matrix)
    if not matrix.flags.c_contiguous:
        raise ValueError("matrix: must be C-contiguous; example: np.stack(vectors)")
    cdef int64_t b = matrix.shape[0]
    cdef int64_t d = matrix.shape[1]
    codes = np.empty((b, d), np.int8)
    _check_lsh_args(codes, planes, bits)
    cdef int64_t tables = planes.shape[0] // bits
    inv_norms = np.empty(b, np.float32)
    scales = np.empty(b, np.float32)
    keys = np.empty((b, tables), np.int64)
    if b == 0:
        return inv_norms, codes, scales, keys
    cdef const float *m = <const float *>cnp.PyArray_DATA(<cnp.ndarray>matrix)
    cdef const int8_t *pl = <const int8_t *>cnp.PyArray_DATA(<cnp.ndarray>planes)
    cdef float *inv = <float *>cnp.PyArray_DATA(<cnp.ndarray>inv_norms)
    cdef int8_t *c = <int8_t *>cnp.PyArray_DATA(<cnp.ndarray>codes)
    cdef float *sc = <float *>cnp.PyArray_DATA(<cnp.ndarray>scales)
    cdef int64_t *k = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>keys)
    cdef int64_t nbits = bits
    cdef int status
    if b >= PREPARE_SPLIT_ROWS and sysconf(_SC_NPROCESSORS_ONLN) >= 2:
        with nogil:
            status = _prepare_rows_split(m, b, d, pl, tables, nbits, inv, c, sc, k)
    elif b * d > PREPARE_NOGIL_VALUES:
        with nogil:
            status = engram_prepare_rows(m, b, d, pl, tables, nbits, inv, c, sc, k)
    else:
        status = engram_prepare_rows(m, b, d, pl, tables, nbits, inv, c, sc, k)
    if status == -1:
        raise ValueError("matrix: contains NaN or infinity; allowed: finite values; example: np.zeros((10, 768), np.float32)")
    if status == -2:
        raise MemoryError("prepare_rows: no memory for the scratch arrays")
    return inv_norms, codes, scales, keys


# ---------------------------------------------------------------------------
# REMEMBER payloads: msgpack of {"f": fields, "e": float32 bytes or None, "r": str or None}


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    bint PyUnicode_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    bint PyList_CheckExact2 "PyList_CheckExact"(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
import sys

cdef bint _LITTLE_ENDIAN = sys.byteorder == "little"


cdef inline Py_ssize_t _str_head(Py_ssize_t n):
    if n < 32:
        return 1
    if n < 256:
        return 2
    if n < 65536:
        return 3
    return 5


cdef inline Py_ssize_t _int_size(long long x):
    if -32 <= x < 128:
        return 1
    if x >= 0:
        if x < 256:
            return 2
        if x < 65536:
            return 3
        if x < 4294967296:
            return 5
        return 9
    if x >= -128:
        return 2
    if x >= -32768:
        return 3
    if x >= -2147483648:
        return 5
    return 9


cdef inline unsigned char *_put_be(unsigned char *o, unsigned long long value, int width):
    cdef int k
    for k in range(width):
        o[k] = <unsigned char>((value >> (8 * (width - 1 - k))) & 0xFF)
    return o + width


cdef unsigned char *_put_str(unsigned char *o, object text):
    cdef Py_ssize_t n
    cdef const char *data = PyUnicode_AsUTF8AndSize(text, &n)
    if n < 32:
        o[0] = <unsigned char>(0xA0 | n)
        o += 1
    elif n < 256:
        o[0] = 0xD9
        o = _put_be(o + 1, n, 1)
    elif n < 65536:
        o[0] = 0xDA
        o = _put_be(o + 1, n, 2)
    else:
        o[0] = 0xDB
        o = _put_be(o + 1, n, 4)
    memcpy(o, data, n)
    return o + n


cdef unsigned char *_put_int(unsigned char *o, long long x):
    if 0 <= x < 128:
        o[0] = <unsigned char>x
        return o + 1
    if -32 <= x < 0:
        o[0] = <unsigned char>(x & 0xFF)
        return o + 1
    if x >= 0:
        if x < 256:
            o[0] = 0xCC
            return _put_be(o + 1, x, 1)
        if x < 65536:
            o[0] = 0xCD
            return _put_be(o + 1, x, 2)
        if x < 4294967296:
            o[0] = 0xCE
            return _put_be(o + 1, x, 4)
        o[0] = 0xCF
        return _put_be(o + 1, x, 8)
    if x >= -128:
        o[0] = 0xD0
        return _put_be(o + 1, <unsigned long long>x, 1)
    if x >= -32768:
        o[0] = 0xD1
        return _put_be(o + 1, <unsigned long long>x, 2)
    if x >= -2147483648:
        o[0] = 0xD2
        return _put_be(o + 1, <unsigned long long>x, 4)
    o[0] = 0xD3
    return _put_be(o + 1, <unsigned long long>x, 8)


cdef inline Py_ssize_t _array_head(Py_ssize_t n):
    return 1 if n < 16 else (3 if n < 65536 else 5)


cdef unsigned char *_put_array_head(unsigned char *o, Py_ssize_t n):
    if n < 16:
        o[0] = <unsigned char>(0x90 | n)
        return o + 1
    if n < 65536:
        o[0] = 0xDC
        return _put_be(o + 1, n, 2)
    o[0] = 0xDD
    return _put_be(o + 1, n, 4)


cdef Py_ssize_t _field_size(object value) except -2:
    """Bytes msgpack writes for ``value``, or -1 for a value this packer leaves to msgpack."""
    cdef Py_ssize_t n, total, i
    cdef int overflow = 0
    cdef long long x
    if value is None:
        return 1
    if PyUnicode_CheckExact(value):
        PyUnicode_AsUTF8AndSize(value, &n)  # UnicodeEncodeError (a lone surrogate) is msgpack's too
        return _str_head(n) + n
    if Py_TYPE(<PyObject *>value) == &PyFloat_Type:
        return 9
    if Py_TYPE(<PyObject *>value) == &PyLong_Type:
        x = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            return -1
        return _int_size(x)
    if PyTuple_CheckExact(value) or PyList_CheckExact2(value):
        n = len(value)
        total = _array_head(n)
        for i in range(n):
            item = value[i]
            if not PyUnicode_CheckExact(item):
                return -1
            total += _field_size(item)
        return total
    if PyDict_CheckExact(value) and not value:
        return 1
    return -1


cdef unsigned char *_put_field(unsigned char *o, object value):
    cdef int overflow = 0
    cdef double f
    cdef unsigned long long bits
    cdef Py_ssize_t i, n
    if value is None:
        o[0] = 0xC0
        return o + 1
    if PyUnicode_CheckExact(value):
        return _put_str(o, value)
    if Py_TYPE(<PyObject *>value) == &PyFloat_Type:
        f = PyFloat_AS_DOUBLE(value)
        memcpy(&bits, &f, 8)
        o[0] = 0xCB
        return _put_be(o + 1, bits, 8)
    if Py_TYPE(<PyObject *>value) == &PyLong_Type:
        return _put_int(o, PyLong_AsLongLongAndOverflow(value, &overflow))
    if PyTuple_CheckExact(value) or PyList_CheckExact2(value):
        n = len(value)
        o = _put_array_head(o, n)
        for i in range(n):
            o = _put_str(o, value[i])
        return o
    o[0] = 0x80  # the empty dict (the only one _field_size admits)
    return o + 1


def remember_payload(fields, embedding, replaces):
    """See ``engram._core._ref.remember_payload``: the same bytes, packed here for the
    usual values (None, str, float, int64, tuples of str, an empty dict, a C-contiguous
    float32 vector); anything else is left to the twin (msgpack)."""
    cdef Py_ssize_t total, size, i, nfields, emb_bytes = 0
    cdef cnp.ndarray vector
    if not PyTuple_CheckExact(fields) or not _LITTLE_ENDIAN:
        return _ref.remember_payload(fields, embedding, replaces)
    if embedding is not None:
        if type(embedding) is not np.ndarray:
            return _ref.remember_payload(fields, embedding, replaces)
        vector = <cnp.ndarray>embedding
        if cnp.PyArray_TYPE(vector) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(vector) \
                or not cnp.PyArray_ISNOTSWAPPED(vector):
            return _ref.remember_payload(fields, embedding, replaces)
        emb_bytes = cnp.PyArray_NBYTES(vector)
    if replaces is not None and not PyUnicode_CheckExact(replaces):
        return _ref.remember_payload(fields, embedding, replaces)
    nfields = len(fields)
    total = 1 + 2 + _array_head(nfields) + 2 + 2  # map, "f", array head, "e", "r"
    for i in range(nfields):
        size = _field_size(fields[i])
        if size < 0:
            return _ref.remember_payload(fields, embedding, replaces)
        total += size
    if embedding is None:
        total += 1
    else:
        total += (2 if emb_bytes < 256 else (3 if emb_bytes < 65536 else 5)) + emb_bytes
    total += _field_size(replaces)
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char *start = <unsigned char *>PyBytes_AS_STRING(out)
    cdef unsigned char *o = start
    o[0] = 0x83
    o[1] = 0xA1
    o[2] = ord("f")
    o = _put_array_head(o + 3, nfields)
    for i in range(nfields):
        o = _put_field(o, fields[i])
    o[0] = 0xA1
    o[1] = ord("e")
    o += 2
    if embedding is None:
        o[0] = 0xC0
        o += 1
    else:
        if emb_bytes < 256:
            o[0] = 0xC4
            o = _put_be(o + 1, emb_bytes, 1)
        elif emb_bytes < 65536:
            o[0] = 0xC5
            o = _put_be(o + 1, emb_bytes, 2)
        else:
            o[0] = 0xC6
            o = _put_be(o + 1, emb_bytes, 4)
        memcpy(o, cnp.PyArray_DATA(vector), emb_bytes)
        o += emb_bytes
    o[0] = 0xA1
    o[1] = ord("r")
    o = _put_field(o + 2, replaces)
    assert o - start == total
    return out


# ---------------------------------------------------------------------------
# In-batch dedup candidates

cdef enum:
    # Up to this many rows the pairs are found pair by pair here, holding the GIL; a
    # larger batch (a bulk store) goes through a hash of its keys, without the GIL.
    BATCH_PAIRS_DIRECT_MAX = 128


cdef extern from "stdlib.h" nogil:
    void qsort(void *base, size_t nmemb, size_t size, int (*compar)(const void *, const void *))


cdef int _cmp_i64(const void *a, const void *b) noexcept nogil:
    cdef int64_t x = (<const int64_t *>a)[0]
    cdef int64_t y = (<const int64_t *>b)[0]
    return (x > y) - (x < y)


def batch_pairs(keys, eligible):
    """See ``engram._core._ref.batch_pairs``: the same pairs in the same order.

    A group-commit batch (a few dozen rows) is checked pair by pair: each row's keys
    sorted once, then a merge of two sorted lists per pair, in (later, earlier)
    order, with no NumPy call (each would release the GIL for a few microseconds of
    work, and with many writer threads every release is a context switch). A larger
    batch (a bulk store) chains its keys in a hash table (store.h), one probe per key
    where the twin sorts them all: 5,000 rows of 24 keys took 15 ms in the twin."""
    _ref._check_batch_pairs_args(keys, eligible)
    cdef Py_ssize_t m = keys.shape[0]
    cdef Py_ssize_t tables = keys.shape[1]
    if m > BATCH_PAIRS_DIRECT_MAX and tables > 0:
        return _batch_pairs_hashed(keys, eligible, m, tables)
    later_out = np.empty(m * (m - 1) // 2 if m > 1 else 0, np.int64)
    earlier_out = np.empty(later_out.shape[0], np.int64)
    if m < 2 or tables == 0:
        return later_out[:0], earlier_out[:0]
    sorted_keys = np.array(keys, np.int64, order="C", copy=True)
    cdef int64_t *k = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>sorted_keys)
    cdef const unsigned char *el = <const unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>eligible)
    cdef int64_t *lo = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>later_out)
    cdef int64_t *eo = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>earlier_out)
    cdef Py_ssize_t i, j, a, b, count = 0
    cdef const int64_t *x
    cdef const int64_t *y
    for i in range(m):
        qsort(k + i * tables, tables, sizeof(int64_t), _cmp_i64)
    for i in range(1, m):
        if not el[i]:
            continue
        x = k + i * tables
        for j in range(i):
            y = k + j * tables
            a = 0
            b = 0
            while a < tables and b < tables:
                if x[a] == y[b]:
                    lo[count] = i
                    eo[count] = j
                    count += 1
                    break
                if x[a] < y[b]:
                    a += 1
                else:
                    b += 1
    return later_out[:count], earlier_out[:count]


cdef _batch_pairs_hashed(keys, eligible, Py_ssize_t m, Py_ssize_t tables):
    cdef const int64_t *k = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>keys)
    cdef const unsigned char *el = <const unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>eligible)
    cdef int64_t *lo = NULL
    cdef int64_t *eo = NULL
    cdef int64_t count
    with nogil:
        count = engram_batch_pairs_hashed(k, m, tables, el, &lo, &eo)
    if count < 0:
        raise MemoryError("batch_pairs: no memory for the key table")
    later_out = np.empty(count, np.int64)
    earlier_out = np.empty(count, np.int64)
    if count:
        memcpy(cnp.PyArray_DATA(<cnp.ndarray>later_out), lo, count * sizeof(int64_t))
        memcpy(cnp.PyArray_DATA(<cnp.ndarray>earlier_out), eo, count * sizeof(int64_t))
    free(lo)
    free(eo)
    return later_out, earlier_out

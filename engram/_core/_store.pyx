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

cdef enum:
    # Above this many float values a kernel releases the GIL (about 85 rows of 768).
    PREPARE_NOGIL_VALUES = 65536


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
    if b * d > PREPARE_NOGIL_VALUES:
        with nogil:
            status = engram_prepare_rows(m, b, d, pl, tables, nbits, inv, c, sc, k)
    else:
        status = engram_prepare_rows(m, b, d, pl, tables, nbits, inv, c, sc, k)
    if status == -1:
        raise ValueError("matrix: contains NaN or infinity; allowed: finite values; example: np.zeros((10, 768), np.float32)")
    if status == -2:
        raise MemoryError("prepare_rows: no memory for the scratch arrays")
    return inv_norms, codes, scales, keys

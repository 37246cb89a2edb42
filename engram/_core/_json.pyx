# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Embeddings of HTTP requests read in C; twins and specification in _ref.py.

A recall by embedding carries 768 numbers as JSON, in a query string or a body.
Read in Python (percent-decoding, a JSON parser, a list, NumPy's conversion) that
was ~100 us of the event loop's time per request; here it is a few. Both
functions take only the plain case: a strict JSON array of ``dim`` numbers that
are finite, within the API's float32 limit (|x| <= 3e38) and not all zero. They
return None for anything else, and the caller's Python path, which gives every
refusal its precise message, decides. So the bits and errors are the caller's.
"""

import numpy as np
cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.long cimport PyLong_AsDouble
from cpython.ref cimport PyObject
from libc.math cimport fabs, isfinite
from libc.stdlib cimport strtod
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "Python.h":
    bint PyFloat_CheckExact(PyObject *o)
    bint PyLong_CheckExact(PyObject *o)

# The API refuses magnitudes past this as "too large for float32" (schemas.to_embedding).
DEF MAGNITUDE_MAX = 3.0e38
# A number token longer than this (or an integer of more digits, which the Python
# path may read differently) is left to the caller.
DEF TOKEN_CHARS_MAX = 40
DEF INTEGER_DIGITS_MAX = 15

cdef double POWERS_OF_TEN[23]
POWERS_OF_TEN[:] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]  # each exact in float64


cdef inline bint _finish(float *out, Py_ssize_t i, double value, bint *nonzero) noexcept nogil:
    """Store one value as float32; False when it is not plain (non-finite or too large)."""
    cdef float f
    if not isfinite(value) or fabs(value) > MAGNITUDE_MAX:
        return False
    f = <float>value
    out[i] = f
    if f != 0.0:
        nonzero[0] = True
    return True


def float_list_f32(values, Py_ssize_t dim):
    """``values`` (a list of exactly ``dim`` Python floats and ints, bools excluded) as
    float32 through float64, or None. See _ref.float_list_f32."""
    if type(values) is not list or PyList_GET_SIZE(values) != dim:
        return None
    out = np.empty(dim, np.float32)
    cdef float *p = <float *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t i
    cdef PyObject *item
    cdef double value
    cdef bint nonzero = False
    for i in range(dim):
        item = PyList_GET_ITEM(values, i)
        if PyFloat_CheckExact(item):
            value = PyFloat_AS_DOUBLE(<object>item)
        elif PyLong_CheckExact(item):  # exactly int: a bool is not
            try:
                value = PyLong_AsDouble(<object>item)  # correctly rounded, as NumPy's conversion
            except OverflowError:
                return None
        else:
            return None
        if not _finish(p, i, value, &nonzero):
            return None
    return out if nonzero else None


cdef inline int _hex(unsigned char c) noexcept nogil:
    if c >= c'0' and c <= c'9':
        return c - c'0'
    if c >= c'a' and c <= c'f':
        return c - c'a' + 10
    if c >= c'A' and c <= c'F':
        return c - c'A' + 10
    return -1


cdef inline int _next(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pos, bint percent) noexcept nogil:
    """The next character of the text at *pos, percent-decoded when ``percent`` ('+' is a
    space in a query string); -1 at the end, -2 for a broken escape."""
    cdef Py_ssize_t p = pos[0]
    cdef int hi, lo
    if p >= n:
        return -1
    if not percent:
        pos[0] = p + 1
        return s[p]
    if s[p] == c'%':
        if p + 2 >= n:
            return -2
        hi = _hex(s[p + 1])
        lo = _hex(s[p + 2])
        if hi < 0 or lo < 0:
            return -2
        pos[0] = p + 3
        return hi * 16 + lo
    pos[0] = p + 1
    return 32 if s[p] == c'+' else s[p]


cdef inline bint _put(char *token, Py_ssize_t *length, int c) noexcept nogil:
    """Append c to the number's token; False when the token would pass TOKEN_CHARS_MAX."""
    if length[0] == TOKEN_CHARS_MAX:
        return False
    token[length[0]] = <char>c
    length[0] += 1
    return True


cdef inline bint _space(int c) noexcept nogil:
    return c == 32 or c == 9 or c == 10 or c == 13


def float_array_text(const unsigned char[::1] raw, Py_ssize_t dim, bint percent):
    """The JSON array of ``dim`` numbers in ``raw`` (percent-encoded as in a query string
    when ``percent``) as float32 through float64, or None. See _ref.float_array_text."""
    cdef Py_ssize_t n = raw.shape[0], pos = 0, count = 0, length, digits
    cdef const unsigned char *s = &raw[0] if n else NULL
    cdef char token[TOKEN_CHARS_MAX + 1]
    cdef int c
    cdef bint nonzero = False, integer
    cdef char *end
    cdef double value
    cdef bint negative, exponent_negative
    cdef unsigned long long mantissa
    cdef int significant, fraction, exponent
    out = np.empty(dim, np.float32)
    cdef float *p = <float *>cnp.PyArray_DATA(out)
    c = _next(s, n, &pos, percent)
    while _space(c):
        c = _next(s, n, &pos, percent)
    if c != c'[':
        return None
    c = _next(s, n, &pos, percent)
    while True:
        while _space(c):
            c = _next(s, n, &pos, percent)
        # A number, by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        length = 0
        integer = True
        negative = False
        mantissa = 0  # the digits as an integer, while there are at most 15 significant ones
        significant = 0
        fraction = 0
        exponent = 0
        if c == c'-':
            negative = True
            _put(token, &length, c)  # the first characters always fit
            c = _next(s, n, &pos, percent)
        if c == c'0':
            _put(token, &length, c)
            c = _next(s, n, &pos, percent)
            digits = 1
        elif c >= c'1' and c <= c'9':
            digits = 0
            while c >= c'0' and c <= c'9':
                if not _put(token, &length, c):
                    return None
                digits += 1
                mantissa = mantissa * 10 + (c - c'0')
                significant += 1
                c = _next(s, n, &pos, percent)
        else:
            return None
        if c == c'.':
            integer = False
            if not _put(token, &length, c):
                return None
            c = _next(s, n, &pos, percent)
            if not (c >= c'0' and c <= c'9'):
                return None
            while c >= c'0' and c <= c'9':
                if not _put(token, &length, c):
                    return None
                if significant or c != c'0':
                    significant += 1
                if significant <= 19:  # past 15 the slow path reads it; no overflow either way
                    mantissa = mantissa * 10 + (c - c'0')
                fraction += 1
                c = _next(s, n, &pos, percent)
        if c == c'e' or c == c'E':
            integer = False
            if not _put(token, &length, c'e'):
                return None
            c = _next(s, n, &pos, percent)
            exponent_negative = c == c'-'
            if c == c'+' or c == c'-':
                if not _put(token, &length, c):
                    return None
                c = _next(s, n, &pos, percent)
            if not (c >= c'0' and c <= c'9'):
                return None
            while c >= c'0' and c <= c'9':
                if not _put(token, &length, c):
                    return None
                if exponent < 100000:
                    exponent = exponent * 10 + (c - c'0')
                c = _next(s, n, &pos, percent)
            if exponent_negative:
                exponent = -exponent
        if integer and digits > INTEGER_DIGITS_MAX:
            return None
        if count == dim:
            return None
        exponent -= fraction
        if significant <= 15 and -22 <= exponent <= 22:
            # Clinger's fast path: the digits and the power of ten are exact doubles, so
            # one multiplication or division rounds once, correctly, as strtod would.
            value = <double>mantissa
            if exponent >= 0:
                value = value * POWERS_OF_TEN[exponent]
            else:
                value = value / POWERS_OF_TEN[-exponent]
            if negative and (mantissa != 0 or not integer):
                value = -value  # but JSON's -0 is the integer 0, which has no sign
        else:
            token[length] = 0
            # Plain ASCII of JSON's grammar, which strtod reads the same in any locale
            # that uses '.' (Python never changes LC_NUMERIC from "C" on its own).
            value = strtod(token, &end)
            if end != token + length:
                return None
            if integer and value == 0.0:
                value = 0.0  # as above
        if not _finish(p, count, value, &nonzero):
            return None
        count += 1
        while _space(c):
            c = _next(s, n, &pos, percent)
        if c == c',':
            c = _next(s, n, &pos, percent)
            continue
        if c == c']':
            break
        return None
    c = _next(s, n, &pos, percent)
    while _space(c):
        c = _next(s, n, &pos, percent)
    if c != -1 or count != dim or not nonzero:
        return None
    return out

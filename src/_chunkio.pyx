# cython: language_level=3, embedsignature=True
"""Compiled copier core: page-aligned buffers, pread/pwrite loops, zero scan, copies.

Built as ``datera_glance._chunkio``; ``datera_glance._chunkio_py`` is its pure-Python twin
with the same functions, results and errors. Knows nothing of Glance or EDF: file
descriptors, offsets, lengths and buffers only. Every syscall, and every copy or scan of
256 KiB or more, runs with the GIL released, so the copier's threads overlap on both cores.
"""

from cpython.buffer cimport (
    PyBUF_FORMAT,
    PyBUF_ND,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, ENOSPC, errno
from libc.stdlib cimport free
from libc.string cimport memcmp, memcpy, memset, strerror
from posix.types cimport off_t

cdef extern from "<unistd.h>" nogil:
    ssize_t c_pwrite "pwrite" (int fd, const void *buf, size_t count, off_t offset)
    ssize_t c_pread "pread" (int fd, void *buf, size_t count, off_t offset)
    long sysconf(int name)
    int _SC_PAGESIZE

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef char *_FORMAT_B = "B"
# Copies and scans shorter than this keep the GIL: dropping and retaking it costs more than
# the few microseconds they take, and risks waiting a switch interval to get it back.
cdef Py_ssize_t _NOGIL_MIN = 256 * 1024
cdef size_t _page_size = <size_t>sysconf(_SC_PAGESIZE)

CORE_NAME = "compiled"
PAGE_SIZE = _page_size


cdef class AlignedBuffer:
    """A zero-filled, page-aligned, writable buffer of ``size`` bytes.

    Supports the buffer protocol. ``close()`` frees the memory at once (``BufferError``
    while a view of it is still alive); otherwise it goes with the object.
    """

    cdef char *data
    cdef Py_ssize_t size
    cdef Py_ssize_t exports
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t size):
        cdef void *p = NULL
        cdef int rc
        if size <= 0:
            raise ValueError(f"buffer size must be positive, not {size}")
        with nogil:
            # posix_memalign returns the error; it does not set errno.
            rc = posix_memalign(&p, _page_size, <size_t>size)
            if rc == 0:
                memset(p, 0, <size_t>size)
        if rc != 0:
            raise MemoryError(f"cannot allocate an aligned buffer of {size} bytes")
        self.data = <char *>p
        self.size = size
        self.shape[0] = size
        self.strides[0] = 1

    def __dealloc__(self):
        free(self.data)
        self.data = NULL

    def __len__(self):
        self._check_open()
        return self.size

    cdef int _check_open(self) except -1:
        if self.data == NULL:
            raise ValueError("operation on a closed buffer")
        return 0

    @property
    def closed(self):
        return self.data == NULL

    def close(self):
        """Free the memory now; a second close does nothing."""
        if self.data == NULL:
            return
        if self.exports:
            raise BufferError("cannot close: views of the buffer still exist")
        free(self.data)
        self.data = NULL

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check_open()
        view.buf = self.data
        view.obj = self
        view.len = self.size
        view.readonly = 0
        view.itemsize = 1
        # Fill only what was asked for, as PyBuffer_FillInfo does for plain bytes.
        view.format = _FORMAT_B if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = self.strides if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1


cdef inline int _check_span(Py_ssize_t nbytes, Py_ssize_t start, Py_ssize_t length) except -1:
    if start < 0 or length < 0 or start + length > nbytes:
        raise ValueError(
            f"span [{start}, {start + length}) outside buffer of {nbytes} bytes")
    return 0


cdef object _os_error(int err, object path):
    return OSError(err, strerror(err).decode("utf-8", "replace"), path)


def pwrite_full(int fd, object buf, Py_ssize_t length, off_t offset, object path):
    """Write ``buf[:length]`` at ``offset``, looping on short writes and EINTR.

    :returns: ``length``.
    :raises OSError: with the errno and ``path`` as filename (ENOSPC if the target stops
        taking bytes).
    """
    cdef Py_buffer view
    cdef Py_ssize_t done = 0
    cdef ssize_t n
    cdef int err = 0
    PyObject_GetBuffer(buf, &view, 0)
    try:
        _check_span(view.len, 0, length)
        while done < length:
            with nogil:
                n = c_pwrite(fd, <char *>view.buf + done, <size_t>(length - done),
                             offset + done)
                if n < 0:
                    err = errno
            if n < 0:
                if err == EINTR:
                    PyErr_CheckSignals()  # a handler that raises ends the loop (PEP 475)
                    continue
                raise _os_error(err, path)
            if n == 0:
                raise _os_error(ENOSPC, path)
            done += n
    finally:
        PyBuffer_Release(&view)
    return length


def pread_full(int fd, object buf, Py_ssize_t length, off_t offset, object path):
    """Read up to ``length`` bytes at ``offset`` into ``buf``, looping on short reads and EINTR.

    :returns: the byte count read; less than ``length`` only at end of file.
    :raises OSError: with the errno and ``path`` as filename.
    """
    cdef Py_buffer view
    cdef Py_ssize_t done = 0
    cdef ssize_t n
    cdef int err = 0
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    except BufferError:
        raise TypeError("pread_full needs a writable buffer") from None
    try:
        _check_span(view.len, 0, length)
        while done < length:
            with nogil:
                n = c_pread(fd, <char *>view.buf + done, <size_t>(length - done),
                            offset + done)
                if n < 0:
                    err = errno
            if n < 0:
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise _os_error(err, path)
            if n == 0:
                break
            done += n
    finally:
        PyBuffer_Release(&view)
    return done


cdef bint _all_zero(const char *p, size_t n) noexcept nogil:
    # Zero head, then the buffer equals itself shifted by 16: glibc's vectorised memcmp
    # scans at memory speed and stops at the first non-zero byte.
    cdef size_t head = 16 if n > 16 else n
    cdef size_t i
    for i in range(head):
        if p[i] != 0:
            return False
    if n <= 16:
        return True
    return memcmp(p, p + 16, n - 16) == 0


def is_zero(object buf, Py_ssize_t length):
    """Whether the first ``length`` bytes of ``buf`` are all zero."""
    cdef Py_buffer view
    cdef bint result
    PyObject_GetBuffer(buf, &view, 0)
    try:
        _check_span(view.len, 0, length)
        if length >= _NOGIL_MIN:
            with nogil:
                result = _all_zero(<const char *>view.buf, <size_t>length)
        else:
            result = _all_zero(<const char *>view.buf, <size_t>length)
    finally:
        PyBuffer_Release(&view)
    return result


def copy_into(object buf, Py_ssize_t pos, object data):
    """Copy all of ``data`` into ``buf`` at ``pos``.

    :returns: the byte count copied.
    :raises ValueError: if it does not fit.
    """
    cdef Py_buffer dst
    cdef Py_buffer src
    cdef Py_ssize_t n
    PyObject_GetBuffer(buf, &dst, PyBUF_WRITABLE)
    try:
        # PyBUF_SIMPLE: any C-contiguous bytes-like source, viewed as plain bytes.
        PyObject_GetBuffer(data, &src, 0)
        try:
            n = src.len
            _check_span(dst.len, pos, n)
            if n >= _NOGIL_MIN:
                with nogil:
                    memcpy(<char *>dst.buf + pos, src.buf, <size_t>n)
            else:
                memcpy(<char *>dst.buf + pos, src.buf, <size_t>n)
        finally:
            PyBuffer_Release(&src)
    finally:
        PyBuffer_Release(&dst)
    return n


def copy_out(object buf, Py_ssize_t start, Py_ssize_t stop):
    """``bytes`` of ``buf[start:stop]``."""
    cdef Py_buffer view
    cdef object out
    cdef char *p
    PyObject_GetBuffer(buf, &view, 0)
    try:
        _check_span(view.len, start, stop - start)
        out = PyBytes_FromStringAndSize(NULL, stop - start)
        p = PyBytes_AS_STRING(out)
        if stop - start >= _NOGIL_MIN:
            with nogil:
                memcpy(p, <char *>view.buf + start, <size_t>(stop - start))
        else:
            memcpy(p, <char *>view.buf + start, <size_t>(stop - start))
    finally:
        PyBuffer_Release(&view)
    return out


def fill_zero(object buf, Py_ssize_t start, Py_ssize_t stop):
    """Zero ``buf[start:stop]`` (the padding of a last partial block)."""
    cdef Py_buffer view
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        _check_span(view.len, start, stop - start)
        memset(<char *>view.buf + start, 0, <size_t>(stop - start))
    finally:
        PyBuffer_Release(&view)

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
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, ENOSPC, errno
from libc.stdint cimport uintptr_t
from libc.string cimport memcmp, memcpy, memset, strerror
from posix.types cimport off_t

cdef extern from "<unistd.h>" nogil:
    ssize_t c_pwrite "pwrite" (int fd, const void *buf, size_t count, off_t offset)
    ssize_t c_pread "pread" (int fd, void *buf, size_t count, off_t offset)
    long sysconf(int name)
    int _SC_PAGESIZE

cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
    int munmap(void *addr, size_t length)
    int madvise(void *addr, size_t length, int advice)
    void *MAP_FAILED
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MADV_HUGEPAGE

cdef char *_FORMAT_B = "B"
# Copies and scans shorter than this keep the GIL: dropping and retaking it costs more than
# the few microseconds they take, and risks waiting a switch interval to get it back.
cdef Py_ssize_t _NOGIL_MIN = 256 * 1024
cdef size_t _page_size = <size_t>sysconf(_SC_PAGESIZE)
# The transparent huge page size of x86-64 (and of arm64 with 4 KiB pages). Buffers of at
# least this size start on such a boundary and ask for huge pages: a device read into one ran
# at 2.2-2.7 GB/s here where the same read into small pages ran at 1.0-1.2 (a 4 MiB buffer
# is 2 DMA segments' worth of contiguous memory instead of up to 1024 pages).
cdef size_t _HUGE = 2 * 1024 * 1024

CORE_NAME = "compiled"
PAGE_SIZE = _page_size
HUGE_PAGE_SIZE = _HUGE


cdef char *_map(size_t size) noexcept nogil:
    """``size`` bytes (a multiple of the page size) of fresh zeroed private memory, or NULL.
    From ``_HUGE`` bytes on, aligned to ``_HUGE`` and advised to use huge pages (a kernel
    without transparent huge pages keeps small ones; the advice then fails harmlessly).
    Linux 6.7 and later align such mappings themselves; elsewhere 2 MiB more are mapped and
    the ends trimmed."""
    cdef int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS
    cdef char *base = <char *>mmap(NULL, size, prot, flags, -1, 0)
    cdef size_t lead
    if <void *>base == MAP_FAILED:
        return NULL
    if size < _HUGE:
        return base
    if <uintptr_t>base % _HUGE:
        munmap(base, size)
        base = <char *>mmap(NULL, size + _HUGE, prot, flags, -1, 0)
        if <void *>base == MAP_FAILED:
            return NULL
        lead = (_HUGE - <uintptr_t>base % _HUGE) % _HUGE
        if lead:
            munmap(base, lead)
        if _HUGE - lead:
            munmap(base + lead + size, _HUGE - lead)
        base += lead
    madvise(base, size // _HUGE * _HUGE, MADV_HUGEPAGE)
    return base


cdef void _touch(char *p, size_t size) noexcept nogil:
    """Fault every page of fresh mapped memory in now rather than in the first I/O: one
    write per page (the kernel zeroes the page, or the huge page, it brings in)."""
    cdef size_t i = 0
    while i < size:
        p[i] = 0
        i += _page_size


cdef class AlignedBuffer:
    """A zero-filled, page-aligned, writable buffer of ``size`` bytes, on huge pages where
    the kernel has them (from ``HUGE_PAGE_SIZE`` bytes on; see ``_map``).

    Supports the buffer protocol. ``close()`` frees the memory at once (``BufferError``
    while a view of it is still alive); otherwise it goes with the object.
    """

    cdef char *data
    cdef Py_ssize_t size
    cdef size_t mapped  # bytes mapped at data: size rounded up to whole pages
    cdef Py_ssize_t exports
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t size):
        cdef char *p = NULL
        cdef size_t mapped
        if size <= 0:
            raise ValueError(f"buffer size must be positive, not {size}")
        mapped = (<size_t>size + _page_size - 1) // _page_size * _page_size
        with nogil:
            p = _map(mapped)
            if p != NULL:
                _touch(p, mapped)
        if p == NULL:
            raise MemoryError(f"cannot allocate an aligned buffer of {size} bytes")
        self.data = p
        self.size = size
        self.mapped = mapped
        self.shape[0] = size
        self.strides[0] = 1

    def __dealloc__(self):
        self._unmap()

    cdef void _unmap(self) noexcept:
        if self.data != NULL:
            munmap(self.data, self.mapped)
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
        self._unmap()

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


# ----------------------------------------------------------------------------- reads


cdef int _pread_all(int fd, char *buf, size_t length, off_t offset, size_t *done) noexcept nogil:
    """pread until ``length`` bytes or end of file; 0 or an errno."""
    cdef ssize_t n
    done[0] = 0
    while done[0] < length:
        n = c_pread(fd, buf + done[0], length - done[0], offset + <off_t>done[0])
        if n < 0:
            if errno == EINTR:
                continue
            return errno
        if n == 0:
            break
        done[0] += <size_t>n
    return 0


def unfilled(Py_ssize_t length):
    """A new ``bytes`` of ``length`` bytes for ``read_chunk`` to fill: made on the thread that
    will free it, so that glibc keeps all chunks in that thread's heap (chunks made on reader
    threads spread over one heap each, and kept three times the memory). Nobody else may see
    it before ``read_chunk`` returns it."""
    if length <= 0:
        raise ValueError(f"chunk length must be positive, not {length}")
    return PyBytes_FromStringAndSize(NULL, length)


def read_chunk(int fd, object bounce, off_t offset, Py_ssize_t length, Py_ssize_t block_size,
               object path, object chunk=None):
    """``bytes`` of ``[offset, offset + length)``: the aligned span around it read into
    ``bounce`` (an ``AlignedBuffer``) in one go, then copied out, into ``chunk`` (from
    ``unfilled(length)``) if given.

    Not straight into the ``bytes``: its memory is malloc's small pages, and a device read
    into huge-page memory ran twice as fast here (fewer, longer DMA segments) as one into
    small pages; the copy costs a tenth of that.
    ``block_size`` is what the fd's offsets and lengths must be multiples of (1: buffered).

    :raises ValueError: ``bounce`` cannot hold the aligned span.
    :raises TypeError: ``chunk`` is not a ``bytes`` of ``length`` bytes.
    :raises EOFError: the file ends inside the range.
    :raises OSError: with the errno and ``path`` as filename.
    """
    cdef Py_buffer view
    cdef size_t head, span, done = 0
    cdef int err
    cdef object out
    cdef char *dst
    if block_size <= 0 or offset < 0 or length <= 0:
        raise ValueError("block_size and length must be positive and offset not negative")
    if chunk is not None and not (PyBytes_CheckExact(chunk)
                                  and PyBytes_GET_SIZE(chunk) == length):
        raise TypeError(f"read_chunk fills a bytes of {length} bytes from unfilled()")
    head = <size_t>(offset % block_size)
    span = (head + <size_t>length + <size_t>block_size - 1) // <size_t>block_size
    span *= <size_t>block_size
    PyObject_GetBuffer(bounce, &view, PyBUF_WRITABLE)
    try:
        if <size_t>view.len < span:
            raise ValueError(f"bounce buffer of {view.len} bytes cannot hold a span of {span}")
        with nogil:
            err = _pread_all(fd, <char *>view.buf, span, offset - <off_t>head, &done)
        if err:
            raise _os_error(err, path)
        if done < head + <size_t>length:
            done = done - head if done > head else 0
            raise EOFError(f"{path}: short read at offset {offset + <off_t>done}")
        out = PyBytes_FromStringAndSize(NULL, length) if chunk is None else chunk
        dst = PyBytes_AS_STRING(out)
        if length >= _NOGIL_MIN:
            with nogil:
                memcpy(dst, <char *>view.buf + head, <size_t>length)
        else:
            memcpy(dst, <char *>view.buf + head, <size_t>length)
    finally:
        PyBuffer_Release(&view)
    return out

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
    _PyBytes_Resize,
)
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.errno cimport EINTR, EINVAL, ENOMEM, ENOSPC, errno
from libc.stdint cimport uintptr_t
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

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t c_preadv "preadv" (int fd, const iovec *iov, int iovcnt, off_t offset)

cdef char *_FORMAT_B = "B"
# Copies and scans shorter than this keep the GIL: dropping and retaking it costs more than
# the few microseconds they take, and risks waiting a switch interval to get it back.
cdef Py_ssize_t _NOGIL_MIN = 256 * 1024
cdef size_t _page_size = <size_t>sysconf(_SC_PAGESIZE)
# Memory O_DIRECT reads into must start on this boundary (the block layer's default DMA
# alignment); a device that wants more answers EINVAL and gets the bounce-buffer path.
cdef size_t _DMA_ALIGN = 512

CORE_NAME = "compiled"
#: Chunks are read straight into their ``bytes`` (no copy) when aligned; the twin copies.
ZERO_COPY_READS = True
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


# ----------------------------------------------------------------------------- chunks


cdef PyObject *_new_chunk(Py_ssize_t n) except NULL:
    """A new reference to an unfilled ``bytes`` of ``n`` bytes that no one else has seen."""
    cdef object chunk = PyBytes_FromStringAndSize(NULL, n)
    Py_INCREF(chunk)
    return <PyObject *>chunk


cdef extern from "Python.h":
    void Py_SET_SIZE(PyObject *ob, Py_ssize_t size)


cdef int _shorten(PyObject **chunk, Py_ssize_t n, Py_ssize_t slack) except -1:
    """Make a fresh chunk (ours alone) ``n`` bytes long, keeping its address.

    By less than ``slack`` through its size field only: its memory stays one whole
    allocation, so once freed it fits the next chunk of the original size. Shrinking with
    realloc there leaves a hole a few bytes too small for the next chunk and a remainder
    that a small allocation then pins, and the heap grew by a chunk every few reads.
    By more (the last chunk of a range), through realloc, which returns the rest.
    """
    cdef Py_ssize_t size = PyBytes_GET_SIZE(<object>chunk[0])
    if size - n < slack:
        Py_SET_SIZE(chunk[0], n)
        PyBytes_AS_STRING(<object>chunk[0])[n] = 0  # bytes keep a NUL after their data
        return 0
    return _PyBytes_Resize(chunk, n)


cdef inline size_t _skew(PyObject *chunk, size_t grain) noexcept:
    return (<uintptr_t>PyBytes_AS_STRING(<object>chunk)) % grain


cdef class ChunkAllocator:
    """Hands out fresh, unfilled ``bytes`` for consecutive ranges of a device.

    O_DIRECT reads straight into a chunk only where its memory address and the device offset
    agree modulo the alignment; a ``bytes`` object's address is malloc's choice. So the
    allocator makes the next chunk first and ends the current one where the next one's
    address says the device offset should be: every chunk after a non-exact one can be read
    without a copy. Not thread-safe: one reader's main thread uses it.
    """

    cdef PyObject *pending  # the next chunk: a reference only this object holds, or NULL
    cdef size_t grain

    def __cinit__(self, Py_ssize_t grain):
        if grain <= 0:
            raise ValueError(f"grain must be positive, not {grain}")
        self.pending = NULL
        self.grain = <size_t>grain

    def __dealloc__(self):
        Py_XDECREF(self.pending)
        self.pending = NULL

    def take(self, Py_ssize_t start, Py_ssize_t length, bint exact):
        """An unfilled ``bytes`` for the device range ``[start, start + n)``.

        ``n == length`` if ``exact`` (the first and the last chunk of a range); otherwise
        ``length - grain < n <= length``, chosen so that the chunk after it is aligned.
        Fill it with ``read_chunk`` before anyone else sees it.
        """
        cdef PyObject *chunk = self.pending
        cdef Py_ssize_t n = length
        cdef Py_ssize_t shift
        cdef object result
        if length <= 0:
            raise ValueError(f"chunk length must be positive, not {length}")
        self.pending = NULL
        if chunk == NULL or PyBytes_GET_SIZE(<object>chunk) < length:
            Py_XDECREF(chunk)
            chunk = NULL
            chunk = _new_chunk(length)
        try:
            if not exact:
                self.pending = _new_chunk(length)
                shift = <Py_ssize_t>((<size_t>(start + length) + self.grain
                                      - _skew(self.pending, self.grain)) % self.grain)
                if shift < length:
                    n = length - shift
            if PyBytes_GET_SIZE(<object>chunk) != n:
                # The only reference is ours: shortening a fresh bytes object is allowed.
                _shorten(&chunk, n, <Py_ssize_t>self.grain)
            result = <object>chunk
        finally:
            Py_XDECREF(chunk)
        return result


cdef int _preadv_all(int fd, iovec *iov, int count, off_t offset, size_t *done) noexcept nogil:
    """preadv until every segment is full or end of file; 0 or an errno."""
    cdef ssize_t n
    cdef size_t left
    cdef int i = 0
    done[0] = 0
    while i < count:
        n = c_preadv(fd, iov + i, count - i, offset + <off_t>done[0])
        if n < 0:
            if errno == EINTR:
                continue
            return errno
        if n == 0:
            break
        done[0] += <size_t>n
        left = <size_t>n
        while i < count and left >= iov[i].iov_len:
            left -= iov[i].iov_len
            i += 1
        if i < count and left:
            iov[i].iov_base = <char *>iov[i].iov_base + left
            iov[i].iov_len -= left
    return 0


cdef int _pread_all(int fd, char *buf, size_t length, off_t offset, size_t *done) noexcept nogil:
    """pread until ``length`` bytes or end of file (``_preadv_all`` with one segment)."""
    cdef iovec iov
    iov.iov_base = buf
    iov.iov_len = length
    return _preadv_all(fd, &iov, 1, offset, done)


cdef int _fill_direct(int fd, char *lead, size_t ln, char *dst, size_t n, off_t offset,
                      size_t bs, size_t *got) noexcept nogil:
    """``dst`` gets ``[offset, offset + n)``: its whole blocks straight from the device, the
    partial blocks at either end through a small bounce buffer, all in one ``preadv``; so do
    the ``ln`` bytes before ``offset`` into ``lead`` (a range's lead, see ``split_range``).
    0, an errno, or -1 if ``dst`` is misaligned. ``got``: bytes of ``dst`` filled."""
    cdef off_t start = offset - <off_t>ln
    cdef size_t head = <size_t>(start % <off_t>bs)  # bytes of the first block before the range
    cdef size_t first = (bs - <size_t>(offset % <off_t>bs)) % bs  # dst index of a block boundary
    cdef size_t front = head + ln + first  # bounce bytes before dst's first whole block
    cdef size_t middle, tail, done
    cdef iovec iov[3]
    cdef int count = 0, err
    cdef char *bounce = NULL
    if first >= n:
        return -1
    middle = (n - first) // bs * bs
    tail = n - first - middle
    if not middle or (<uintptr_t>(dst + first)) % _DMA_ALIGN:
        return -1
    if posix_memalign(<void **>&bounce, _page_size, front + bs) != 0:
        return ENOMEM
    if front:
        iov[count].iov_base = bounce
        iov[count].iov_len = front
        count += 1
    iov[count].iov_base = dst + first
    iov[count].iov_len = middle
    count += 1
    if tail:
        iov[count].iov_base = bounce + front
        iov[count].iov_len = bs
        count += 1
    err = _preadv_all(fd, iov, count, start - <off_t>head, &done)
    if not err:
        # The read started ``head + ln`` bytes before dst; dst's bytes are all there once
        # ``head + ln + n`` are.
        if done >= head + ln + n:
            got[0] = n
            if ln:
                memcpy(lead, bounce + head, ln)
            if first:
                memcpy(dst, bounce + head + ln, first)
            if tail:
                memcpy(dst + first + middle, bounce + front, tail)
        else:
            got[0] = done - head - ln if done > head + ln else 0
    free(bounce)
    return err


# One bounce buffer kept for the next misaligned chunk (taken and put back with the GIL
# held): a fresh one per ranged read costs page faults on every call, more than the read.
cdef char *_spare = NULL
cdef size_t _spare_size = 0
cdef size_t _SPARE_MAX = 16 * 1024 * 1024 + 64 * 1024


cdef struct _Bounce:
    char *buf
    size_t size
    bint owned  # ours to keep or free (not the caller's AlignedBuffer)


cdef void _take_spare(_Bounce *b) noexcept:
    global _spare, _spare_size
    b.buf = _spare
    b.size = _spare_size
    b.owned = True
    _spare = NULL
    _spare_size = 0


cdef void _put_spare(_Bounce *b) noexcept:
    global _spare, _spare_size
    if not b.owned or b.buf == NULL:
        return
    if b.size <= _SPARE_MAX and b.size > _spare_size:
        free(_spare)
        _spare, _spare_size = b.buf, b.size
    else:
        free(b.buf)
    b.buf = NULL


cdef int _fill_bounce(int fd, char *dst, size_t n, off_t offset, size_t bs, _Bounce *b,
                      size_t *got) noexcept nogil:
    """The aligned span into the bounce buffer (replaced by a bigger one of ours if too
    small), then the chunk's bytes out of it."""
    cdef size_t head = <size_t>(offset % <off_t>bs)
    cdef size_t span = (head + n + bs - 1) // bs * bs
    cdef size_t done
    cdef int err
    if b.buf == NULL or b.size < span:
        if b.owned:
            free(b.buf)
        b.buf = NULL
        b.owned = True
        if posix_memalign(<void **>&b.buf, _page_size, span) != 0:
            b.buf = NULL
            return ENOMEM
        b.size = span
    err = _pread_all(fd, b.buf, span, offset - <off_t>head, &done)
    if not err:
        got[0] = n if done >= head + n else (done - head if done > head else 0)
        memcpy(dst, b.buf + head, got[0])
    return err


cdef int _fill(int fd, char *lead, size_t ln, char *dst, size_t n, off_t offset, size_t bs,
               _Bounce *b, size_t *got) noexcept nogil:
    """``[offset - ln, offset)`` into ``lead`` and ``[offset, offset + n)`` into ``dst``, the
    cheapest way the fd allows. 0 or an errno; ``got``: bytes of ``dst`` filled (0 when the
    lead came back short)."""
    cdef int err = 0
    cdef size_t lead_got = 0
    if bs == 1:
        if ln:
            err = _pread_all(fd, lead, ln, offset - <off_t>ln, &lead_got)
        if err or lead_got < ln:
            got[0] = 0
            return err
        return _pread_all(fd, dst, n, offset, got)
    err = _fill_direct(fd, lead, ln, dst, n, offset, bs, got)
    if err != -1 and err != EINVAL:
        return err
    if ln:
        err = _fill_bounce(fd, lead, ln, offset - <off_t>ln, bs, b, &lead_got)
        if err or lead_got < ln:
            got[0] = 0
            return err
    return _fill_bounce(fd, dst, n, offset, bs, b, got)


cdef object _read_into(int fd, object lead, object chunk, off_t offset, Py_ssize_t block_size,
                       object path, object bounce):
    """``read_chunk`` and ``read_split``: ``chunk`` starts at ``offset``, ``lead`` (or None)
    ends there."""
    cdef char *dst
    cdef char *lead_dst = NULL
    cdef size_t n, ln = 0, got = 0
    cdef size_t bs = <size_t>block_size
    cdef int err
    cdef Py_buffer given
    cdef _Bounce b
    if not PyBytes_CheckExact(chunk) or (lead is not None and not PyBytes_CheckExact(lead)):
        raise TypeError("read_chunk fills bytes objects from ChunkAllocator or split_range")
    if lead is not None:
        lead_dst = PyBytes_AS_STRING(lead)
        ln = <size_t>PyBytes_GET_SIZE(lead)
    if block_size <= 0 or offset < <off_t>ln:
        raise ValueError("block_size must be positive and offset not negative")
    dst = PyBytes_AS_STRING(chunk)
    n = <size_t>PyBytes_GET_SIZE(chunk)
    if bounce is not None:
        PyObject_GetBuffer(bounce, &given, PyBUF_WRITABLE)
        b.buf, b.size, b.owned = <char *>given.buf, <size_t>given.len, False
    else:
        _take_spare(&b)
    try:
        with nogil:
            err = _fill(fd, lead_dst, ln, dst, n, offset, bs, &b, &got)
    finally:
        if bounce is not None:
            PyBuffer_Release(&given)
        _put_spare(&b)
    if err:
        raise _os_error(err, path)
    if got < n:
        raise EOFError(f"{path}: short read at offset {offset + <off_t>got}")
    return chunk


def read_chunk(int fd, object chunk, off_t offset, Py_ssize_t block_size, object path,
               object bounce=None):
    """Fill ``chunk`` (fresh from ``ChunkAllocator.take``) with ``[offset, offset + len)``.

    ``block_size`` is what the fd's offsets and lengths must be multiples of (1: buffered).
    Where the chunk's memory is aligned the device reads straight into it; otherwise, or if
    the device refuses that alignment, through a bounce buffer and one copy: ``bounce``
    (an ``AlignedBuffer``) when it holds the aligned span, else one of its own.

    :returns: ``chunk``, now immutable ``bytes`` like any other.
    :raises EOFError: the file ends inside the range.
    :raises OSError: with the errno and ``path`` as filename.
    """
    return _read_into(fd, None, chunk, offset, block_size, path, bounce)


def split_range(off_t start, Py_ssize_t length, Py_ssize_t grain):
    """Fresh, unfilled ``(lead, rest)`` for reading ``[start, start + length)`` in one call.

    A ``bytes`` object's address is malloc's choice, and O_DIRECT reads straight into memory
    only where its address and the device offset agree modulo the alignment. So ``rest`` is
    made first, and ``lead`` (fewer than ``grain`` bytes) takes the range's first bytes up to
    where ``rest``'s address says it should start. ``lead`` is None when ``rest`` already
    agrees (or the range is too short to gain): ``rest`` is then the whole range. Fill both
    with ``read_split`` before anyone else sees them.
    """
    cdef PyObject *rest
    cdef Py_ssize_t k
    cdef object lead = None, result
    if length <= 0 or grain <= 0 or start < 0:
        raise ValueError("length and grain must be positive and start not negative")
    rest = _new_chunk(length)
    try:
        k = <Py_ssize_t>((_skew(rest, <size_t>grain) + <size_t>grain
                          - <size_t>(start % grain)) % <size_t>grain)
        if 0 < k and k + grain <= length:
            # The only reference is ours: shortening it keeps the address (see take).
            _shorten(&rest, length - k, grain)
            lead = PyBytes_FromStringAndSize(NULL, k)
        result = (lead, <object>rest)
    finally:
        Py_XDECREF(rest)
    return result


def read_split(int fd, object lead, object rest, off_t offset, Py_ssize_t block_size,
               object path, object bounce=None):
    """Fill ``split_range``'s ``(lead, rest)`` with the range starting at ``offset``: one
    ``preadv`` where the device takes ``rest``'s alignment, the lead's bytes through the
    bounce buffer of ``rest``'s first block.

    :returns: ``(lead, rest)``, now immutable ``bytes`` (``lead`` may be None).
    :raises EOFError: the file ends inside the range.
    :raises OSError: with the errno and ``path`` as filename.
    """
    cdef Py_ssize_t ln = 0
    if lead is not None:
        if not PyBytes_CheckExact(lead):
            raise TypeError("read_split fills the bytes objects of split_range")
        ln = PyBytes_GET_SIZE(lead)
    _read_into(fd, lead, rest, offset + ln, block_size, path, bounce)
    return lead, rest

"""The copier on real loop devices (direct-io on), 512- and 4096-byte sectors, both cores."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_utils import units

from datera_glance import chunkio
from datera_glance.chunkio import DeviceFull, SizeMismatch
from tests.plugins.core import Resources, ShortReader

pytestmark = pytest.mark.root

SECTORS = [pytest.param(512, id="sector512"), pytest.param(4096, id="sector4096")]
LoopFactory = Callable[..., str]


def _payload(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _read_all(core: chunkio.Copier, dev: str, length: int) -> bytes:
    return b"".join(core.read_range(dev, 0, length, buffer_size=units.Mi))


def _device_size(dev: str) -> int:
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


@pytest.mark.parametrize("sector", SECTORS)
@pytest.mark.parametrize("size", [0, 1, 511, 4095, 4097, units.Mi - 1, units.Mi + 1])
def test_sizes_padding_and_hashes(
    core: chunkio.Copier, loop_device: LoopFactory, sector: int, size: int
) -> None:
    dev = loop_device(4 * units.Mi, sector_size=sector)
    capacity = _device_size(dev)
    core.write_stream([b"\xee" * capacity], dev, size=capacity)  # old contents
    data = _payload(size)
    md5, sha = hashlib.md5(), hashlib.sha512()
    res = Resources()
    n = core.write_stream(
        ShortReader(data, 256 * units.Ki),
        dev,
        size=size,
        hashers=[md5, sha],
        buffer_size=256 * units.Ki,
    )
    res.assert_nothing_left()
    assert n == size
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert sha.hexdigest() == hashlib.sha512(data).hexdigest()
    on_dev = _read_all(core, dev, capacity)
    padded = -(-size // sector) * sector
    assert on_dev[:size] == data
    assert on_dev[size:padded] == bytes(padded - size)  # padded to the logical block size
    assert on_dev[padded:] == b"\xee" * (capacity - padded)  # and no further
    res.assert_nothing_left()


@pytest.mark.parametrize("sector", SECTORS)
def test_unaligned_read_ranges(core: chunkio.Copier, loop_device: LoopFactory, sector: int) -> None:
    dev = loop_device(4 * units.Mi, sector_size=sector)
    data = _payload(4 * units.Mi)
    core.write_stream(io.BytesIO(data), dev, size=len(data))
    rng = random.Random(7)
    ranges = [
        (0, 1),
        (1, 1),
        (511, 2),
        (4095, 4098),
        (units.Mi - 1, units.Mi + 2),
        (4 * units.Mi - 1, 1),
    ]
    ranges += [(o, rng.randint(0, 4 * units.Mi - o)) for o in rng.sample(range(4 * units.Mi), 6)]
    for offset, length in ranges:
        got = b"".join(core.read_range(dev, offset, length, buffer_size=64 * units.Ki, depth=3))
        assert got == data[offset : offset + length], (offset, length)
    with pytest.raises(EOFError):
        next(core.read_range(dev, 4 * units.Mi - 10, 11))


@pytest.mark.parametrize("sector", SECTORS)
def test_skip_zeros_reads_back_input(
    core: chunkio.Copier, loop_device: LoopFactory, sector: int
) -> None:
    dev = loop_device(8 * units.Mi, sector_size=sector)  # fresh sparse backing file: zeros
    bs = 256 * units.Ki
    data = _payload(bs) + bytes(5 * bs) + _payload(bs, 2) + bytes(3 * bs) + b"tail"
    md5 = hashlib.md5()
    n = core.write_stream([data], dev, hashers=[md5], skip_zeros=True, buffer_size=bs)
    assert n == len(data)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert _read_all(core, dev, len(data)) == data


@pytest.mark.parametrize("sector", SECTORS)
def test_grow_crossing_several_times(
    core: chunkio.Copier, loop_device: LoopFactory, sector: int
) -> None:
    dev = loop_device(units.Mi, sector_size=sector)
    with open(f"/sys/block/{os.path.basename(dev)}/loop/backing_file") as f:
        backing = f.read().strip()
    calls: list[int] = []

    def grow(written: int) -> str:
        assert dev not in Resources().fds.values()  # handed over closed
        calls.append(written)
        with open(backing, "r+b") as f:
            f.truncate(os.path.getsize(backing) + units.Mi)
        subprocess.run(["losetup", "--set-capacity", dev], check=True)
        return dev

    data = _payload(3 * units.Mi + 4097)
    md5 = hashlib.md5()
    res = Resources()
    n = core.write_stream(
        ShortReader(data, 256 * units.Ki), dev, hashers=[md5], grow=grow, buffer_size=256 * units.Ki
    )
    res.assert_nothing_left()
    assert n == len(data)
    assert calls == [units.Mi, 2 * units.Mi, 3 * units.Mi]
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert _read_all(core, dev, len(data)) == data


def test_source_raising_midway_leaves_nothing(
    core: chunkio.Copier, loop_device: LoopFactory
) -> None:
    dev = loop_device(16 * units.Mi)

    def source() -> Iterator[bytes]:
        for i in range(5):
            yield _payload(units.Mi, i)
        raise OSError("upload aborted")

    res = Resources()
    with pytest.raises(OSError, match="upload aborted"):
        core.write_stream(
            source(), dev, hashers=[hashlib.md5(), hashlib.sha512()], buffer_size=units.Mi, depth=4
        )
    res.assert_nothing_left()


@pytest.mark.parametrize("sector", SECTORS)
def test_device_full_leaves_nothing(
    core: chunkio.Copier, loop_device: LoopFactory, sector: int
) -> None:
    dev = loop_device(2 * units.Mi, sector_size=sector)
    data = _payload(2 * units.Mi + 1)
    res = Resources()
    with pytest.raises(DeviceFull):
        core.write_stream(
            io.BytesIO(data), dev, hashers=[hashlib.md5()], buffer_size=256 * units.Ki
        )
    res.assert_nothing_left()
    with pytest.raises(DeviceFull):
        core.write_stream(io.BytesIO(data), dev, size=len(data))
    with pytest.raises(SizeMismatch):
        core.write_stream(io.BytesIO(data), dev, size=units.Mi)
    res.assert_nothing_left()
    # Exactly full is fine.
    assert core.write_stream(io.BytesIO(data[: 2 * units.Mi]), dev) == 2 * units.Mi
    assert _read_all(core, dev, 2 * units.Mi) == data[: 2 * units.Mi]


def test_two_copies_at_once(core: chunkio.Copier, loop_device: LoopFactory) -> None:
    devs = [loop_device(8 * units.Mi), loop_device(8 * units.Mi, sector_size=4096)]
    datas = [_payload(7 * units.Mi + 3, seed=11), _payload(6 * units.Mi + 4095, seed=12)]
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        try:
            md5 = hashlib.md5()
            n = core.write_stream(
                ShortReader(datas[i], units.Mi, seed=i),
                devs[i],
                hashers=[md5],
                buffer_size=units.Mi,
            )
            back = hashlib.md5(_read_all(core, devs[i], n)).hexdigest()
            results[i] = (n, md5.hexdigest(), back)
        except BaseException as exc:  # compared below
            results[i] = exc

    res = Resources()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        want = hashlib.md5(datas[i]).hexdigest()
        assert results[i] == (len(datas[i]), want, want)
    res.assert_nothing_left()


@pytest.mark.slow
@pytest.mark.parametrize("sector", [pytest.param(4096, id="sector4096")])
def test_large_image(core: chunkio.Copier, loop_device: LoopFactory, sector: int) -> None:
    size = 256 * units.Mi + 12345
    dev = loop_device(260 * units.Mi, sector_size=sector)
    block = _payload(16 * units.Mi)

    def source() -> Iterator[memoryview]:
        view = memoryview(block)
        left = size
        i = 0
        while left:
            n = min(left, 3 * units.Mi + 17 * i % 4096)  # odd chunk sizes
            start = (i * 4099) % (len(block) - n)
            yield view[start : start + n]
            left -= n
            i += 1

    want_md5, want_sha = hashlib.md5(), hashlib.sha512()
    for chunk in source():
        want_md5.update(chunk)
        want_sha.update(chunk)
    md5, sha = hashlib.md5(), hashlib.sha512()
    res = Resources()
    n = core.write_stream(source(), dev, size=size, hashers=[md5, sha], depth=4)
    assert n == size
    assert (md5.hexdigest(), sha.hexdigest()) == (want_md5.hexdigest(), want_sha.hexdigest())
    back = hashlib.md5()
    for piece in core.read_range(dev, 0, size, depth=4):
        back.update(piece)
    assert back.hexdigest() == want_md5.hexdigest()
    res.assert_nothing_left()

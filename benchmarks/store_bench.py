"""Store.add / Store.get end to end against the EDF simulator on loop media.

``Store.add`` includes what glance pays per upload: creating the app instance, attaching its
loop device, the copy with md5 + sha512, detaching and the metadata call.  Interleaved with
hashlib md5 alone on the same data (the limit of an upload on these machines).

``run_reads``: ``Store.get`` of one image (attach, the read, detach) interleaved with ``dd
iflag=direct`` and ``fio --iodepth=4`` on a fresh loop device over the same volume file, as
issue 15 measured it.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glance_store import location as glance_location

from benchmarks import harness as h
from benchmarks.harness import Measurement, MiB
from benchmarks.suite import GET_BUFFER, Config


@contextmanager
def loop_simulator(workdir: Path) -> Iterator[Any]:
    """A started loop-media simulator (root); stopped, its loop devices detached, on exit."""
    from datera_glance.simulator import Simulator

    sim = Simulator(workdir / "edfsim", media="loop")
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def make_store(sim: Any, lock_path: Path, **options: Any) -> tuple[Any, Any]:
    """A configured multistore ``Store`` (backend ``datera1``) and its ``ConfigOpts``."""
    from datera_glance.store import Store
    from tests.plugins.store import make_conf

    lock_path.mkdir(parents=True, exist_ok=True)
    conf = make_conf(sim, "datera1", str(lock_path), options)
    store = Store(conf, backend="datera1")
    store.configure(re_raise_bsc=False)
    return store, conf


def close_store(store: Any) -> None:
    store.close()  # we made it: close its EDF session


def add(store: Any, pattern: h.Pattern, known_size: bool = True) -> tuple[str, Measurement]:
    """Store.add the pattern stream; checks the returned size, md5 and sha512."""
    image_id = str(uuid.uuid4())
    source = h.PatternSource(pattern)
    t0 = time.perf_counter()
    uri, size, md5, multihash, _meta = store.add(
        image_id, source, pattern.total if known_size else 0, "sha512"
    )
    seconds = time.perf_counter() - t0
    if size != pattern.total:
        raise h.CopyMismatch(f"Store.add stored {size} bytes, expected {pattern.total}")
    if md5 != pattern.digest("md5") or multihash != pattern.digest("sha512"):
        raise h.CopyMismatch("Store.add returned hashes that differ from hashlib's")
    return uri, Measurement(size, seconds)


def location(conf: Any, uri: str) -> Any:
    """The glance Location of ``uri`` (without glance's global scheme registry)."""
    from datera_glance.store import StoreLocation

    return glance_location.Location("datera", StoreLocation, conf, uri=uri, backend="datera1")


def get(store: Any, conf: Any, uri: str, pattern: h.Pattern) -> Measurement:
    """Store.get the whole image, comparing every byte."""
    loc = location(conf, uri)
    pos = 0
    t0 = time.perf_counter()
    chunks, size = store.get(loc)
    for chunk in chunks:
        pattern.check(pos, chunk)
        pos += len(chunk)
    seconds = time.perf_counter() - t0
    if pos != pattern.total or size != pattern.total:
        raise h.CopyMismatch(f"Store.get returned {pos} of {size} bytes, expected {pattern.total}")
    return Measurement(pos, seconds)


def delete(store: Any, conf: Any, uri: str) -> None:
    store.delete(location(conf, uri))


def run(config: Config, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Interleaved rounds of (Store.add, hashlib md5, Store.get) on the default io settings."""
    pattern = h.Pattern(11, config.store_total, 64 * MiB)
    pattern.digest("md5"), pattern.digest("sha512")  # before timing anything
    adds: list[Measurement] = []
    gets: list[Measurement] = []
    md5s: list[Measurement] = []
    with loop_simulator(workdir) as sim:
        store, conf = make_store(sim, workdir / "locks")
        settings = store.settings
        try:
            for r in range(config.rounds):
                steps: list[str] = ["add", "md5"] if r % 2 == 0 else ["md5", "add"]
                uri = ""
                for step in steps:
                    if step == "add":
                        uri, m = add(store, pattern)
                        adds.append(m)
                    else:
                        md5s.append(h.hash_speed(pattern, "md5"))
                gets.append(get(store, conf, uri, pattern))
                delete(store, conf, uri)
                log(
                    f"round {r + 1}/{config.rounds} store add {adds[-1].mbps:.0f} MB/s, "
                    f"md5 {md5s[-1].mbps:.0f} MB/s, get {gets[-1].mbps:.0f} MB/s"
                )
        finally:
            close_store(store)
    ratios = [a.mbps / m.mbps for a, m in zip(adds, md5s, strict=True)]
    io = f"io buffer {h.size_label(settings.io_buffer_size)}, depth {settings.io_depth}"

    def cell(ms: list[Measurement]) -> str:
        rates = [m.mbps for m in ms]
        return f"{statistics.median(rates):.0f} [{min(rates):.0f}-{max(rates):.0f}]"

    return {
        "store": {
            "total": config.store_total,
            "io_buffer_size": settings.io_buffer_size,
            "io_depth": settings.io_depth,
            "add_MBps": [m.mbps for m in adds],
            "get_MBps": [m.mbps for m in gets],
            "md5_MBps": [m.mbps for m in md5s],
            "add_vs_md5": ratios,
            "detail": f"{config.store_total // MiB} MiB image, {io}, loop simulator",
        },
        "store_table": [
            f"## Store end to end ({config.store_total // MiB} MiB image, {io})",
            "",
            "| operation | MB/s median [min-max] |",
            "|---|---|",
            f"| Store.add (md5 + sha512, known size) | {cell(adds)} |",
            f"| hashlib md5 alone, interleaved | {cell(md5s)} |",
            f"| Store.get (every byte compared) | {cell(gets)} |",
        ],
    }


def _volume_file(sim: Any) -> Path:
    """The backing file of the simulator's only volume."""
    files = sorted((Path(sim.data_dir) / "volumes").glob("*.img"))
    if len(files) != 1:
        raise RuntimeError(f"expected one volume file in the simulator, found {files}")
    return files[0]


def _reference(tool: str, volume: Path, total: int) -> Measurement:
    """dd or fio on a fresh loop device (direct I/O) over ``volume``, detached afterwards."""
    from datera_glance.simulator.media import LoopMedia

    loop = LoopMedia()
    dev = loop.attach(volume)
    try:
        if tool == "dd":
            return h.dd_read(dev, GET_BUFFER, total)
        return h.fio(dev, "read", GET_BUFFER, total)
    finally:
        loop.detach(dev, volume)


def run_reads(config: Config, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Interleaved rounds of Store.get, dd and fio on one image of ``store_read_total``."""
    pattern = h.Pattern(13, config.store_read_total, 64 * MiB)
    steps = ["get", "dd", "fio"]
    results: dict[str, list[float]] = {step: [] for step in steps}
    with loop_simulator(workdir) as sim:
        store, conf = make_store(sim, workdir / "locks")
        settings = store.settings
        try:
            uri, _ = add(store, pattern)
            volume = _volume_file(sim)
            for r in range(config.rounds):
                for step in steps[r % 3 :] + steps[: r % 3]:
                    if step == "get":
                        m = get(store, conf, uri, pattern)
                    else:
                        m = _reference(step, volume, pattern.total)
                    results[step].append(m.mbps)
                log(
                    f"round {r + 1}/{config.rounds} Store.get {results['get'][-1]:.0f} MB/s, "
                    f"dd {results['dd'][-1]:.0f}, fio {results['fio'][-1]:.0f}"
                )
            delete(store, conf, uri)
        finally:
            close_store(store)
    io = f"io buffer {h.size_label(settings.io_buffer_size)}, depth {settings.io_depth}"
    return {
        "store_reads": {
            "total": pattern.total,
            "get_MBps": results["get"],
            "dd_MBps": results["dd"],
            "fio_MBps": results["fio"],
            "detail": f"{pattern.total // MiB} MiB image, {io}, loop simulator; dd and fio "
            f"bs {h.size_label(GET_BUFFER)} on a fresh loop device over the volume file",
        }
    }

"""Store.add / Store.get end to end against the EDF simulator's loop backend.

``Store.add`` includes what glance pays per upload: creating the app instance, attaching its
loop device, the copy with md5 + sha512, detaching and the metadata call.  Interleaved with
hashlib md5 alone on the same data (the limit of an upload on these machines).
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
from benchmarks.suite import Config


@contextmanager
def loop_simulator(workdir: Path) -> Iterator[Any]:
    """A started loop-backend simulator (root); stopped, its loop devices detached, on exit."""
    from datera_glance.simulator import Simulator

    sim = Simulator(workdir / "edfsim", backend="loop")
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

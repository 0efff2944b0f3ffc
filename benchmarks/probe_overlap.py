"""Does the copier overlap hashing with writing?  ``python -m benchmarks.probe_overlap``.

Per round, on one loop device (root): md5 alone; an md5 thread next to a separate loop of plain
``write_stream`` calls (what perfect overlap could reach); and ``write_stream`` with md5 as its
only hasher, with the share of wall time its busiest thread (the md5 thread) spent on a CPU;
and ``write_stream`` with a hasher that sleeps as long as md5 takes (no CPU at all).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import harness as h
from benchmarks import suite
from benchmarks.harness import MiB


def _thread_cpu() -> dict[str, float]:
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class SleepingHasher:
    """Takes as long as md5 would but uses no CPU (sleeps, GIL released): isolates the
    pipeline's structure from CPU and cache effects."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second

    def update(self, data: memoryview) -> None:
        time.sleep(len(data) / self.rate)


def _timed(fn: Callable[[], None], times: int, gb: float, out: dict[str, float]) -> None:
    t0 = time.perf_counter()
    for _ in range(times):
        fn()
    out["write"] = times * gb / (time.perf_counter() - t0)


def _sample(done: threading.Event, samples: dict[str, float]) -> None:
    while not done.wait(0.05):
        samples.update(_thread_cpu())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_overlap", description=__doc__)
    p.add_argument("--mib", type=int, default=512)
    p.add_argument("--buffer-mib", type=int, default=4)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--core", default="compiled")
    args = p.parse_args(argv)
    h.require_root()
    total, bs = args.mib * MiB, args.buffer_mib * MiB
    gb = total / 1e9
    with suite.scratch_dir() as d, suite.Bench(d, total, bs) as bench:
        copier = suite.get_copier(args.core)
        data, other = bench.patterns

        def plain_write() -> None:
            copier.write_stream(
                h.PatternSource(data), bench.dev, size=total, buffer_size=bs, depth=args.depth
            )

        for r in range(args.rounds):
            alone = h.hash_speed(other, "md5").mbps / 1e3
            res: dict[str, float] = {}
            writer = threading.Thread(target=_timed, args=(plain_write, 3, gb, res))
            writer.start()
            time.sleep(0.2)  # let the writes get going
            beside = h.hash_speed(other, "md5").mbps / 1e3
            writer.join()

            md5 = hashlib.md5()
            before = _thread_cpu()
            samples: dict[str, float] = {}
            done = threading.Event()
            sampler = threading.Thread(target=_sample, args=(done, samples))
            sampler.start()
            t0 = time.perf_counter()
            copier.write_stream(
                h.PatternSource(data),
                bench.dev,
                size=total,
                hashers=[md5],
                buffer_size=bs,
                depth=args.depth,
            )
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()
            if md5.hexdigest() != data.digest("md5"):
                raise h.CopyMismatch("md5 of the pipeline differs from hashlib's")
            h.verify_device(bench.dev, data)
            t0 = time.perf_counter()
            copier.write_stream(
                h.PatternSource(other),
                bench.dev,
                size=total,
                hashers=[SleepingHasher(alone * 1e9)],
                buffer_size=bs,
                depth=args.depth,
            )
            sleeping = gb / (time.perf_counter() - t0)
            h.verify_device(bench.dev, other)
            busiest = max((v - before.get(tid, 0.0) for tid, v in samples.items()), default=0.0)
            print(
                f"round {r + 1}: md5 alone {alone:.2f} GB/s | md5 beside plain writes "
                f"{beside:.2f} (writes {res['write']:.2f}) | write_stream+md5 {gb / wall:.2f} "
                f"GB/s, busiest thread on CPU {busiest / wall:.0%} of the time | "
                f"write_stream+sleeping hasher at md5's speed {sleeping:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

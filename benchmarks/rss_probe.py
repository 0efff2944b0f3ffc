"""Peak memory of a 4 GiB ``Store.add`` of unknown size, in a child process of its own.

The child resets its peak RSS (``echo 5 > /proc/self/clear_refs``) right before the add and
reports ``VmHWM`` minus the ``VmRSS`` it started from: the growth caused by the upload alone,
with the volume growing in ``datera_chunk_size`` steps.  The simulator runs in the parent, so
its memory is not counted.

Child usage: ``python -m benchmarks.rss_probe --host H --port P --locks DIR --total N
--chunk-size N --md5 HEX`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks import harness as h
from benchmarks.harness import GiB, MiB
from benchmarks.suite import Config

PERIOD = MiB + 4097  # a small period: the source itself costs a few MiB, allocated up front


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--locks", type=Path, required=True)
    p.add_argument("--total", type=int, required=True)
    p.add_argument("--chunk-size", type=int, required=True)
    p.add_argument("--md5", required=True)
    p.add_argument("--depth", type=int, help="datera_io_depth (default: the option's default)")
    args = p.parse_args(argv)
    from benchmarks import store_bench

    sim = SimpleNamespace(host=args.host, port=args.port)
    options: dict[str, Any] = {"chunk_size": args.chunk_size}
    if args.depth:
        options["io_depth"] = args.depth
    store, conf = store_bench.make_store(sim, args.locks, **options)
    settings = store.settings
    pattern = h.Pattern(21, args.total, settings.io_buffer_size, period=PERIOD)
    source = h.PatternSource(pattern)
    # No warm-up add: the growth includes first-use costs (thread stacks, arenas), as a
    # freshly started glance-api worker would pay them.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    uri, size, md5, _multihash, _ = store.add(str(uuid.uuid4()), source, 0, "sha512")
    peak = _status("VmHWM")
    ok = size == args.total and md5 == args.md5
    store_bench.delete(store, conf, uri)
    store_bench.close_store(store)
    result = {
        "rss_before": before,
        "vmhwm": peak,
        "growth": peak - before,
        "buffer_size": settings.io_buffer_size,
        "depth": settings.io_depth,
        "chunk_size": args.chunk_size,
        "total": args.total,
        "verified": ok,
        "what": "Store.add, unknown size (grows by datera_chunk_size)",
    }
    print(json.dumps(result))
    return 0 if ok else 1


def probe(
    sim: Any,
    locks: Path,
    total: int,
    chunk_size: int,
    md5: str,
    timeout: float = 900,
    depth: int | None = None,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.rss_probe",
        f"--host={sim.host}",
        f"--port={sim.port}",
        f"--locks={locks}",
        f"--total={total}",
        f"--chunk-size={chunk_size}",
        f"--md5={md5}",
        *([f"--depth={depth}"] if depth else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {
            "chunk_size": chunk_size,
            "buffer_size": 0,
            "total": total,
            "growth": None,
            "error": proc.stderr.strip()[-2000:],
        }
    result: dict[str, Any] = json.loads(lines[-1])
    if proc.returncode != 0 or not result.get("verified"):
        raise h.CopyMismatch(f"the 4 GiB add stored wrong data: {result}")
    return result


def run_all(config: Config, workdir: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """``datera_chunk_size`` 1 GiB (the target) and 4 GiB (independence) at the default
    depth, and 1 GiB at the deepest swept depth (the memory cost of more I/O in flight)."""
    from benchmarks import store_bench
    from datera_glance.options import DEFAULT_IO_DEPTH

    total = config.rss_total
    md5 = h.Pattern(21, total, 64 * MiB, period=PERIOD).digest("md5")
    out = []
    with store_bench.loop_simulator(workdir) as sim:
        runs: list[tuple[int, int | None]] = [(1 * GiB, None), (4 * GiB, None)]
        if max(config.depths) != DEFAULT_IO_DEPTH:  # else the same probe twice
            runs.append((1 * GiB, max(config.depths)))
        for chunk, depth in runs:
            r = probe(sim, workdir / "locks", total, chunk, md5, depth=depth)
            growth = r.get("growth")
            log(
                f"rss probe: chunk {h.size_label(chunk)} depth {r.get('depth')}: growth "
                + (f"{growth / MiB:.1f} MiB" if growth is not None else f"failed {r['error']}")
            )
            out.append(r)
    return out


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))

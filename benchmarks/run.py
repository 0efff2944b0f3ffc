"""``./dev bench``: the interleaved benchmark run that produces ``benchmarks/results/``.

Quick mode (default, a few minutes): 256 MiB transfers, buffer sizes 256K-16M, 4 rounds.
``--full``: 1 GiB transfers, 64K-64M, depths 1/2/4, 5 rounds.  Both end with get_size, get and
delete in tenants of 10 and 10,000 app instances (``lookup_bench``), uploads of unknown size
(``growth_probe``: 1.5 and 2.5 GiB, with ``--full`` also 10 and 40) and the lingering
attachment's time to first byte and attach count (``linger_probe``).  ``--reads``: only the read
comparisons (read_range and Store.get against dd and fio, ranged reads against fio randread),
2 GiB, 5 rounds.  Needs root (loop devices) and fio (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness as h
from benchmarks import report, suite

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    p.add_argument(
        "--full",
        action="store_true",
        help="the whole sweep (30-60 minutes here; with --mib 512 --rounds 4 about 18)",
    )
    p.add_argument(
        "--reads",
        action="store_true",
        help="only the read comparisons of issue 15 (about 5 minutes)",
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 4 quick, 5 full)")
    p.add_argument("--mib", type=int, help="MiB per transfer (default 256 quick, 1024 full)")
    p.add_argument("--scratch", help="directory for loop backing files (a disk, not tmpfs)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--no-store", action="store_true", help="skip Store.add/get end to end")
    p.add_argument("--no-rss", action="store_true", help="skip the 4 GiB peak-memory probe")
    p.add_argument(
        "--no-lookups",
        action="store_true",
        help="skip get_size/get/delete with 10 and 10,000 app instances in the tenant",
    )
    p.add_argument(
        "--no-growth", action="store_true", help="skip the unknown-size uploads (volume growth)"
    )
    p.add_argument("--no-linger", action="store_true", help="skip the lingering-attachment timings")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority for this run and its children (e.g. -5 on a shared machine;"
        " recorded in the results)",
    )
    return p.parse_args(argv)


def _end_to_end(args: argparse.Namespace, config: Any, scratch: Path, log: Any) -> dict[str, Any]:
    """The Store-level parts after the copier rounds, each skippable with its ``--no-`` flag."""
    extra: dict[str, Any] = {}
    if not args.no_store:
        from benchmarks import store_bench

        if not config.reads_only:
            extra.update(store_bench.run(config, scratch, log))
        extra.update(store_bench.run_reads(config, scratch, log))
    if not args.no_rss and not config.reads_only:
        from benchmarks import rss_probe

        extra["rss"] = rss_probe.run_all(config, scratch, log)
    if not args.no_lookups and not config.reads_only:
        from benchmarks import lookup_bench

        extra.update(lookup_bench.run(config, scratch, log))
    if not args.no_growth and not config.reads_only:
        from benchmarks import growth_probe

        extra.update(growth_probe.run(config, scratch, log))
    if not args.no_linger and not config.reads_only:
        from benchmarks import linger_probe

        extra.update(linger_probe.run(config, scratch, log))
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    h.require_root()
    h.ensure_fio()
    from datera_glance import chunkio

    if "compiled" not in chunkio.available_cores():
        raise SystemExit("the compiled copier core is not built: ./dev builds it")
    if args.reads:
        config = suite.reads_config()
    else:
        config = suite.full_config() if args.full else suite.quick_config()
    if args.rounds:
        config.rounds = args.rounds
    if args.mib:
        config.total = args.mib * h.MiB
        if config.reads_only:
            config.store_read_total = config.total
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    log = suite.log_stderr
    env = suite.environment()
    env["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    log(
        f"==> {config.mode} benchmark: {config.total // h.MiB} MiB per transfer, "
        f"{config.rounds} rounds, buffer sizes "
        f"{', '.join(h.size_label(b) for b in config.buffer_sizes)}; load {env['loadavg']}"
    )
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    with suite.scratch_dir(args.scratch) as scratch:
        blocks = config.blocks()
        cases = [c for block in blocks for c in block]
        with suite.Bench(scratch, config.total, max(config.buffer_sizes)) as bench:
            device = bench.info()
            results = suite.run_rounds(bench, blocks, config.rounds, log)
        extra.update(_end_to_end(args, config, scratch, log))
    extra["elapsed_seconds"] = time.perf_counter() - t0
    env["loadavg_end"] = os.getloadavg()
    doc = report.build_document(config, cases, results, environment=env, device=device, extra=extra)
    paths = report.write_outputs(doc, args.out)
    print(report.markdown(doc))
    for kind, path in paths.items():
        log(f"==> {kind}: {path}")
    log(f"==> took {extra['elapsed_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

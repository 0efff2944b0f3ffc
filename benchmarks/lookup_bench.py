"""Lookups that do not grow with the tenant: ``get_size``, a 1 MiB ``get`` and ``delete`` with
10 and with 10,000 app instances in the tenant (issue 15 part 2).

Two loop-media simulators, one per tenant size, filled through the simulator's seeding path
(``Simulator.seed_app_instances``: the same code as ``POST /app_instances``, without the HTTP
round trips), each with its own Store (``datera_attach_linger = 0``: every get attaches and
detaches). Each operation runs ``REPS`` times per tenant per round, the two tenants taking
turns call by call (who goes first alternates); a round's figure is the median of its calls,
the ratio is 10,000's over 10's in that round, and the result the median of the ratios with
their min-max. REST calls per operation are counted too (``RequestCounter``): they must be
the same in both tenants.

Part of ``./dev bench`` (``--no-lookups`` leaves it out); alone:

    .venv/bin/python -m benchmarks.lookup_bench [--rounds 5] [--sizes 10 10000] [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oslo_utils import units

from benchmarks import harness as h
from benchmarks.store_bench import close_store, location, loop_simulator

SIZES = (10, 10_000)
OPERATIONS = ("get_size", "get", "delete")
REPS = {"get_size": 20, "get": 10, "delete": 5}
THRESHOLD = 1.2  # the larger tenant's time within 1.2 x the smaller's
IMAGE = units.Mi


@dataclass
class Tenant:
    """One simulator holding ``size`` app instances besides the images measured."""

    size: int
    sim: Any
    store: Any
    conf: Any
    counter: Any
    pattern: h.Pattern
    uri: str = ""
    ms: dict[str, list[float]] = field(default_factory=dict)  # per round: median ms
    calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self) -> str:
        source = h.PatternSource(self.pattern)
        uri: str = self.store.add(str(uuid.uuid4()), source, self.pattern.total, "md5")[0]
        return uri

    def get(self) -> None:
        chunks, size = self.store.get(location(self.conf, self.uri), chunk_size=IMAGE)
        pos = 0
        for chunk in chunks:
            self.pattern.check(pos, chunk)
            pos += len(chunk)
        if pos != size or size != self.pattern.total:
            raise h.CopyMismatch(f"get returned {pos} of {size} bytes")

    def get_size(self) -> None:
        if self.store.get_size(location(self.conf, self.uri)) != self.pattern.total:
            raise h.CopyMismatch("get_size returned the wrong size")

    def once(self, operation: str) -> float:
        """One timed run of ``operation`` (seconds); its REST calls are kept."""
        run = self._runner(operation)
        self.counter.reset()
        t0 = time.perf_counter()
        run()
        seconds = time.perf_counter() - t0
        self.calls[operation] = self.counter.counts
        return seconds

    def _runner(self, operation: str) -> Callable[[], None]:
        if operation != "delete":
            run: Callable[[], None] = getattr(self, operation)
            return run
        loc = location(self.conf, self.add())  # a fresh image each time; the add is not timed
        return lambda: self.store.delete(loc)


@contextlib.contextmanager
def tenant(workdir: Path, size: int) -> Iterator[Tenant]:
    """A started simulator with ``size`` seeded app instances, its Store and one image."""
    from datera_glance.edf import EdfClient, RequestCounter
    from datera_glance.store import Store
    from tests.plugins.store import make_conf

    base = workdir / f"tenant-{size}"
    with loop_simulator(base) as sim:
        sim.set_capacity((size + 64) * units.Gi)
        sim.seed_app_instances(size)  # seed-0 ... : 1 GiB each, offline
        counter = RequestCounter()
        (base / "locks").mkdir()
        conf = make_conf(sim, "datera1", str(base / "locks"), {})
        store = Store(
            conf,
            backend="datera1",
            client_factory=lambda config: EdfClient(config, on_request=counter),
        )
        store.configure(re_raise_bsc=False)
        try:
            t = Tenant(size, sim, store, conf, counter, h.Pattern(size % 251, IMAGE, IMAGE))
            t.uri = t.add()
            for operation in OPERATIONS:  # warm up: login, initiator, first attach
                t.once(operation)
            yield t
            t.store.delete(location(conf, t.uri))
        finally:
            close_store(store)


def measure(
    workdir: Path, rounds: int, sizes: Sequence[int], log: Callable[[str], None]
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        tenants = [stack.enter_context(tenant(workdir, size)) for size in sizes]
        for r in range(rounds):
            for operation in OPERATIONS:
                seconds: dict[int, list[float]] = {t.size: [] for t in tenants}
                for i in range(REPS[operation]):  # the tenants alternate, each leading in turn
                    for t in tenants if (r + i) % 2 == 0 else tenants[::-1]:
                        seconds[t.size].append(t.once(operation))
                for t in tenants:
                    t.ms.setdefault(operation, []).append(1000 * statistics.median(seconds[t.size]))
            log(
                f"round {r + 1}/{rounds} lookups: "
                + ", ".join(
                    f"{op} " + "/".join(f"{t.ms[op][-1]:.1f}" for t in tenants) + " ms"
                    for op in OPERATIONS
                )
                + f" ({' / '.join(str(t.size) for t in tenants)} app instances)"
            )
    return {
        "sizes": list(sizes),
        "reps": dict(REPS),
        "threshold": THRESHOLD,
        "image": IMAGE,
        "ms": {str(t.size): t.ms for t in tenants},
        "calls": {str(t.size): t.calls for t in tenants},
        "detail": "loop simulator, datera_attach_linger 0; per round the median of "
        + ", ".join(f"{REPS[op]} x {op}" for op in OPERATIONS),
    }


def run(config: Any, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """``./dev bench``'s part: ``config.rounds`` interleaved rounds at 10 and 10,000."""
    return {"lookups": measure(workdir, config.rounds, SIZES, log)}


def ratios(lookups: dict[str, Any], operation: str) -> list[float]:
    """Per round: the largest tenant's median over the smallest's."""
    small, large = (str(s) for s in (min(lookups["sizes"]), max(lookups["sizes"])))
    pairs = zip(lookups["ms"][large][operation], lookups["ms"][small][operation], strict=True)
    return [a / b for a, b in pairs]


def table(lookups: dict[str, Any]) -> list[str]:
    """Markdown: ms per operation and tenant size, the ratio, the REST calls."""
    sizes = [str(s) for s in lookups["sizes"]]

    def cell(values: list[float], digits: int = 1) -> str:
        return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-" + (
            f"{max(values):.{digits}f}]"
        )

    head = " | ".join(f"{int(s):,} app instances, ms" for s in sizes)
    lines = [
        f"## Lookups and tenant size ({lookups['detail']})",
        "",
        f"| operation | {head} | ratio (target <= {lookups['threshold']}) | REST calls |",
        "|---|" + "---|" * len(sizes) + "---|---|",
    ]
    for operation in OPERATIONS:
        cells = [cell(lookups["ms"][s][operation]) for s in sizes]
        calls = {sum(lookups["calls"][s][operation].values()) for s in sizes}
        ratio = cell(ratios(lookups, operation), 2)
        calls_text = "/".join(str(n) for n in sorted(calls))
        lines.append(f"| {operation} | {' | '.join(cells)} | {ratio} | {calls_text} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lookup_bench", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs=2, default=list(SIZES))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    h.require_root()
    with tempfile.TemporaryDirectory(prefix="lookups-", dir="/var/tmp") as tmp:
        lookups = measure(Path(tmp), args.rounds, args.sizes, lambda msg: print(msg, flush=True))
    print("\n".join(table(lookups)))
    if args.json:
        args.json.write_text(json.dumps(lookups, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

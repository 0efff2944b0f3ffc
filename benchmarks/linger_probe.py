"""Time to first byte and REST calls of ``get_size`` and a 1 MiB ``get``, cold and with a
lingering attachment (``datera_attach_linger``), on the EDF simulator's loop backend.

Two stores on one simulator: one with ``datera_attach_linger = 0`` (every get attaches and
detaches: cold) and one with 30 s (after a first get, the attachment lingers). Rounds
interleave the two. Time to first byte is from calling ``Store.get`` to holding the first
chunk (the store reads it before returning).

    .venv/bin/python -m benchmarks.linger_probe [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from oslo_utils import units

from benchmarks import harness as h
from benchmarks.store_bench import close_store, location, loop_simulator
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.store import Store
from tests.plugins.store import make_conf


class CountingSession(requests.Session):
    count = 0

    def request(self, *a: Any, **kw: Any) -> Any:
        self.count += 1
        return super().request(*a, **kw)


def make(sim: Any, workdir: Path, linger: float) -> tuple[Store, Any, CountingSession]:
    session = CountingSession()
    locks = workdir / f"locks-{uuid.uuid4().hex[:6]}"
    locks.mkdir()
    conf = make_conf(sim, "datera1", str(locks), {"attach_linger": linger})

    def client_factory(config: ClientConfig) -> EdfClient:
        return EdfClient(config, session=session)

    store = Store(conf, backend="datera1", client_factory=client_factory)
    store.configure(re_raise_bsc=False)
    return store, conf, session


def timed(session: CountingSession, fn: Callable[[], Any]) -> tuple[float, int, Any]:
    before = session.count
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, session.count - before, result


def first_byte(store: Store, loc: Any) -> Callable[[], Any]:
    def run() -> Any:
        chunks, _ = store.get(loc, offset=5 * units.Mi, chunk_size=units.Mi)
        first = next(iter(chunks))  # already read by get: this is the time to first byte
        return chunks, first

    return run


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(1000 * statistics.median(values), 2),
        "min_ms": round(1000 * min(values), 2),
        "max_ms": round(1000 * max(values), 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linger_probe", description=__doc__)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    h.require_root()
    samples: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="linger-") as tmp, loop_simulator(Path(tmp)) as sim:
        cold, conf, cold_session = make(sim, Path(tmp), 0)
        warm, _, warm_session = make(sim, Path(tmp), 30)
        pattern = h.Pattern(3, 64 * units.Mi, 4 * h.MiB)
        uri = cold.add(str(uuid.uuid4()), h.PatternSource(pattern), pattern.total, "sha512")[0]
        loc = location(conf, uri)
        chunks, _ = warm.get(loc, chunk_size=units.Mi)  # the attach that then lingers
        list(chunks)
        cases: dict[str, tuple[Store, CountingSession, Callable[[], Any]]] = {
            "get_size cold": (cold, cold_session, lambda: cold.get_size(loc)),
            "get ttfb cold": (cold, cold_session, first_byte(cold, loc)),
            "get_size lingering": (warm, warm_session, lambda: warm.get_size(loc)),
            "get ttfb lingering": (warm, warm_session, first_byte(warm, loc)),
        }
        try:
            for r in range(args.rounds):
                order = list(cases) if r % 2 == 0 else list(reversed(cases))
                for name in order:
                    _store, session, fn = cases[name]
                    seconds, n, result = timed(session, fn)
                    if isinstance(result, tuple):  # a get: finish it (release the attachment)
                        list(result[0])
                        pattern.check(5 * units.Mi, result[1])
                    samples.setdefault(name, []).append(seconds)
                    calls[name] = n
            cold.delete(loc)
        finally:
            close_store(warm)
            close_store(cold)
    results = {name: {**summary(v), "rest_calls": calls[name]} for name, v in samples.items()}
    for name, r in results.items():
        print(
            f"{name:<20} median {r['median_ms']:7.2f} ms  (min {r['min_ms']:.2f}, "
            f"max {r['max_ms']:.2f})  REST calls {r['rest_calls']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time to first byte and REST calls of ``get_size`` and a 1 MiB ``get``, cold and with a
lingering attachment (``datera_attach_linger``), on the EDF simulator's loop backend.

Two stores on one simulator: one with ``datera_attach_linger = 0`` (every get attaches and
detaches: cold) and one with 30 s (after a first get, the attachment lingers). Rounds
interleave the two. Time to first byte is from calling ``Store.get`` to holding the first
chunk (the store reads it before returning).

    .venv/bin/python -m benchmarks.linger_probe [--rounds 15]

``./dev bench`` runs it too (``run``). Its targets (issue 15): time to first byte with a
lingering attachment <= 25 ms, and ``BACK_TO_BACK`` 1 MiB gets of one image attach once (the
connector's ``connect_volume`` calls are counted).
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
from benchmarks.growth_probe import TimedConnector, Timeline
from benchmarks.store_bench import close_store, location, loop_simulator
from datera_glance.attach import os_brick_connector_factory
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.store import Store
from tests.plugins.store import make_conf


class CountingSession(requests.Session):
    count = 0

    def request(self, *a: Any, **kw: Any) -> Any:
        self.count += 1
        return super().request(*a, **kw)


#: Time to first byte with a lingering attachment, at most (issue 15).
TTFB_TARGET_MS = 25.0
#: Back-to-back gets of one image that must share one attach.
BACK_TO_BACK = 20


def make(
    sim: Any, workdir: Path, linger: float, timeline: Timeline | None = None
) -> tuple[Store, Any, CountingSession]:
    """A Store whose REST calls are counted (and attaches timed on ``timeline``)."""
    session = CountingSession()
    locks = workdir / f"locks-{uuid.uuid4().hex[:6]}"
    locks.mkdir()
    conf = make_conf(sim, "datera1", str(locks), {"attach_linger": linger})

    def client_factory(config: ClientConfig) -> EdfClient:
        return EdfClient(config, session=session)

    def connector_factory(protocol: str, root_helper: str) -> Any:
        inner = os_brick_connector_factory(protocol, root_helper)
        return TimedConnector(inner, timeline) if timeline is not None else inner

    store = Store(
        conf, backend="datera1", client_factory=client_factory, connector_factory=connector_factory
    )
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


def measure(workdir: Path, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The four cases in interleaved rounds, then the back-to-back gets; results by case."""
    samples: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    timeline = Timeline()
    with loop_simulator(workdir) as sim:
        cold, conf, cold_session = make(sim, workdir, 0)
        warm, _, warm_session = make(sim, workdir, 30, timeline)
        pattern = h.Pattern(3, 64 * units.Mi, 4 * h.MiB)
        try:
            uri = cold.add(str(uuid.uuid4()), h.PatternSource(pattern), pattern.total, "sha512")[0]
            loc = location(conf, uri)
            list(warm.get(loc, chunk_size=units.Mi)[0])  # the attach that then lingers
            cases: dict[str, tuple[CountingSession, Callable[[], Any]]] = {
                "get_size cold": (cold_session, lambda: cold.get_size(loc)),
                "get ttfb cold": (cold_session, first_byte(cold, loc)),
                "get_size lingering": (warm_session, lambda: warm.get_size(loc)),
                "get ttfb lingering": (warm_session, first_byte(warm, loc)),
            }
            log(f"--> lingering attachments: {rounds} rounds")
            for r in range(rounds):
                for name in list(cases) if r % 2 == 0 else list(reversed(cases)):
                    session, fn = cases[name]
                    seconds, n, result = timed(session, fn)
                    if isinstance(result, tuple):  # a get: finish it (release the attachment)
                        list(result[0])
                        pattern.check(5 * units.Mi, result[1])
                    samples.setdefault(name, []).append(seconds)
                    calls[name] = n
            fresh = cold.add(str(uuid.uuid4()), h.PatternSource(pattern), pattern.total, "sha512")
            attaches = back_to_back(warm, location(conf, fresh[0]), pattern, timeline)
            cold.delete(location(conf, fresh[0]))
            cold.delete(loc)
        finally:
            close_store(warm)
            close_store(cold)
    results: dict[str, Any] = {
        name: {**summary(v), "rest_calls": calls[name]} for name, v in samples.items()
    }
    results["back_to_back"] = {"gets": BACK_TO_BACK, "attaches": attaches}
    return results


def back_to_back(store: Store, loc: Any, pattern: h.Pattern, timeline: Timeline) -> int:
    """Attaches made by ``BACK_TO_BACK`` 1 MiB gets of an image no one has attached yet."""
    before = sum(1 for call in timeline.calls if call[0] == "connect")
    for i in range(BACK_TO_BACK):
        offset = i * units.Mi
        chunks, _ = store.get(loc, offset=offset, chunk_size=units.Mi)
        for chunk in chunks:
            pattern.check(offset, chunk)
            offset += len(chunk)
    return sum(1 for call in timeline.calls if call[0] == "connect") - before


def run(config: Any, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """``./dev bench``'s part: three times the run's rounds (each case is milliseconds)."""
    return {"linger": measure(workdir, 3 * config.rounds, log)}


def table(results: dict[str, Any]) -> list[str]:
    """Markdown: time to first byte / call time and REST calls per case, the attach count."""
    lines = [
        "## Lingering attachments (1 MiB ranged get at 5 MiB; loop simulator)",
        "",
        "| case | median ms [min-max] | REST calls |",
        "|---|---|---|",
    ]
    for name, r in results.items():
        if name != "back_to_back":
            lines.append(
                f"| {name} | {r['median_ms']:.1f} [{r['min_ms']:.1f}-{r['max_ms']:.1f}] "
                f"| {r['rest_calls']} |"
            )
    b2b = results["back_to_back"]
    lines += ["", f"{b2b['gets']} back-to-back 1 MiB gets of one image: {b2b['attaches']} attach."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linger_probe", description=__doc__)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    h.require_root()
    with tempfile.TemporaryDirectory(prefix="linger-") as tmp:
        results = measure(Path(tmp), args.rounds, print)
    print("\n".join(table(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What growing the volume costs an upload of unknown size (``Store.add(..., image_size=0)``).

Runs ``Store.add`` with no size on the EDF simulator's loop backend for a few image sizes and
reports, per image: the offline resizes, the time spent in them (detach, offline, resize,
online, attach) as a share of the upload, and the final volume size. The phases are timed
through the store's own injection points (a client factory and a connector factory), so the
store runs unchanged.

    .venv/bin/python -m benchmarks.growth_probe [--gib 1.5 2.5 10 40] [--sparse-from 20]

``./dev bench`` runs it too (``run``): 1.5 and 2.5 GiB in quick mode, all four with ``--full``;
its targets are the final-size rule (the smallest whole GiB that holds the image) and the time
in resizes as a share of the upload.

Images below ``--sparse-from`` GiB are pattern data written in full; larger ones are 90 %
zero blocks with ``datera_skip_zero_blocks`` on (every byte is still read and hashed with md5
and sha512; only the data blocks reach the disk), so a 40 GiB case needs about 4 GiB of disk.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oslo_utils import units

from benchmarks import harness as h
from benchmarks.store_bench import close_store, location, loop_simulator
from datera_glance.attach import Connector, os_brick_connector_factory
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.edf.routes import AiRef
from datera_glance.store import Store
from tests.plugins.store import make_conf

PHASES = ("detach", "offline", "resize", "online", "attach")
#: Images of this size and up are 90 % zero blocks with zero-skip (disk space, not the data path).
SPARSE_FROM_GIB = 20.0
#: What the resizes may cost: every growth is six REST calls plus a detach and an attach; on
#: the simulator with TCP_NODELAY one costs 13-24 ms, 0.5-1.3 % of an upload. On EDF each also
#: pays an iSCSI logout and login (seconds) once per GiB, so 5 % is the budget it is judged by.
MAX_SHARE = 0.05


@dataclass
class Timeline:
    """(phase, start, end) of every timed call, in call order."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, phase: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with self.lock:
                self.calls.append((phase, t0, time.perf_counter()))


class TimedClient(EdfClient):
    """The real client; the calls a growth makes are timed."""

    timeline: Timeline

    def set_offline(self, ai: AiRef, *, force: bool = True) -> Any:
        return self.timeline.timed("offline", super().set_offline, ai, force=force)

    def resize_volume(
        self, ai: AiRef, size_gib: int, *, si: str = "storage-1", volume: str = "volume-1"
    ) -> Any:
        return self.timeline.timed(
            "resize", super().resize_volume, ai, size_gib, si=si, volume=volume
        )

    def set_online(self, ai: AiRef) -> Any:
        return self.timeline.timed("online", super().set_online, ai)


class TimedConnector:
    def __init__(self, inner: Connector, timeline: Timeline) -> None:
        self.inner = inner
        self.timeline = timeline

    def get_connector_properties(self, root_helper: str, *a: Any, **kw: Any) -> dict[str, Any]:
        return self.inner.get_connector_properties(root_helper, *a, **kw)

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.timeline.timed("connect", self.inner.connect_volume, props)
        return result

    def disconnect_volume(self, props: dict[str, Any], info: dict[str, Any], **kw: Any) -> None:
        self.timeline.timed("disconnect", self.inner.disconnect_volume, props, info, **kw)


def growth_windows(timeline: Timeline) -> list[tuple[float, float]]:
    """[start of the detach, end of the reattach] of every growth: the n-th disconnect and
    the (n+1)-th connect; the first connect and the last disconnect are the upload's own."""
    connects = [c for c in timeline.calls if c[0] == "connect"]
    disconnects = [c for c in timeline.calls if c[0] == "disconnect"]
    return [(d[1], c[2]) for d, c in zip(disconnects[:-1], connects[1:], strict=True)]


def phase_seconds(timeline: Timeline, windows: list[tuple[float, float]]) -> dict[str, float]:
    """Time per phase inside the growth windows: "detach" is the window up to the offline
    call, "attach" the window after the resize call except the online call (os-brick, REST
    lookups, attach records)."""
    out = dict.fromkeys(PHASES, 0.0)
    for lo, hi in windows:
        inside = {c[0]: c for c in timeline.calls if lo <= c[1] and c[2] <= hi}
        for phase in ("offline", "resize", "online"):
            if phase in inside:
                out[phase] += inside[phase][2] - inside[phase][1]
        if "offline" in inside and "resize" in inside:
            out["detach"] += inside["offline"][1] - lo
            out["attach"] += (
                hi
                - inside["resize"][2]
                - (inside["online"][2] - inside["online"][1] if "online" in inside else 0.0)
            )
    out["total"] = sum(hi - lo for lo, hi in windows)
    return out


def one_case(sim: Any, workdir: Path, gib: float, sparse: bool) -> dict[str, Any]:
    timeline = Timeline()

    def client_factory(config: ClientConfig) -> EdfClient:
        client = TimedClient(config)
        client.timeline = timeline
        return client

    def connector_factory(protocol: str, root_helper: str) -> Any:
        return TimedConnector(os_brick_connector_factory(protocol, root_helper), timeline)

    total = int(gib * units.Gi)
    pattern = h.Pattern(5, total, 4 * h.MiB)
    source: Any = h.SparseSource(pattern, 0.9, 4 * h.MiB) if sparse else h.PatternSource(pattern)
    locks = workdir / f"locks-{uuid.uuid4().hex[:6]}"
    locks.mkdir()
    conf = make_conf(sim, "datera1", str(locks), {"skip_zero_blocks": sparse})
    store = Store(
        conf, backend="datera1", client_factory=client_factory, connector_factory=connector_factory
    )
    store.configure(re_raise_bsc=False)
    image_id = str(uuid.uuid4())
    try:
        t0 = time.perf_counter()
        uri, size, _md5, _sha, _ = store.add(image_id, source, 0, "sha512")
        seconds = time.perf_counter() - t0
        assert size == total, (size, total)
        final_gib = next(
            ai["size_gib"] for ai in sim.state()["app_instances"] if ai["uuid"] == image_id
        )
        windows = growth_windows(timeline)
        phases = phase_seconds(timeline, windows)
        store.delete(location(conf, uri))
    finally:
        close_store(store)
    return {
        "gib": gib,
        "bytes": total,
        "data": "sparse (90% zero blocks, skipped)" if sparse else "pattern (all written)",
        "upload_s": round(seconds, 3),
        "resizes": len(windows),
        "resize_s": round(phases["total"], 3),
        "share": round(phases["total"] / seconds, 4),
        "per_resize_ms": round(1000 * phases["total"] / max(1, len(windows)), 1),
        "phases_s": {k: round(phases[k], 3) for k in PHASES},
        "final_gib": final_gib,
        "smallest_gib": -(-total // units.Gi),
    }


def measure(
    workdir: Path,
    sizes_gib: Sequence[float],
    log: Callable[[str], None],
    sparse_from: float = SPARSE_FROM_GIB,
) -> list[dict[str, Any]]:
    """One upload of unknown size per image size, on a loop simulator of its own."""
    results = []
    with loop_simulator(workdir) as sim:
        for gib in sizes_gib:
            log(f"--> growth: {gib} GiB of unknown size")
            results.append(one_case(sim, workdir, gib, sparse=gib >= sparse_from))
    return results


def run(config: Any, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """``./dev bench``'s part: the sizes ``config.growth_gib`` names."""
    return {"growth": measure(workdir, config.growth_gib, log)}


def table(results: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown: per image the resizes, their time and share, the final and smallest size."""
    lines = [
        "## Uploads of unknown size (Store.add with no size, loop simulator)",
        "",
        "| image | data | resizes | time in resizes | upload | share | per resize "
        "| final volume | smallest |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['gib']} GiB | {r['data']} | {r['resizes']} | {r['resize_s']:.2f} s "
            f"| {r['upload_s']:.1f} s | {100 * r['share']:.1f} % | {r['per_resize_ms']:.0f} ms "
            f"| {r['final_gib']} GiB | {r['smallest_gib']} GiB |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.growth_probe", description=__doc__)
    p.add_argument("--gib", type=float, nargs="+", default=[1.5, 2.5, 10, 40])
    p.add_argument("--sparse-from", type=float, default=SPARSE_FROM_GIB)
    p.add_argument("--scratch", type=Path, help="directory for the volume files (a disk)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    h.require_root()
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="growth-") as tmp:
        results = measure(Path(tmp), args.gib, print, args.sparse_from)
    print("\n".join(table(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

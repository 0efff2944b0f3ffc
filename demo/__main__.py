"""``./dev demo``: a real glance-api storing an image on the embedded Datera EDF simulator.

Starts the simulator (loop devices as root, sparse files otherwise) and glance-api 33 under
uwsgi with the ``datera`` backend, uploads a generated ~1 GiB image (or ``--file PATH``) with a
progress bar, downloads it back verifying md5 and sha512, shows where the image lives on the
cluster, deletes it and stops everything again, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from oslo_utils import units

from datera_glance.cli.progress import CountingReader, Progress
from demo.glance_client import GlanceClient
from demo.glance_env import (
    GlanceApi,
    GlanceVenv,
    SimulatorProcess,
    datera_store_options,
    mapped_files,
    repo_root,
)

BACKEND = "datera1"
INITIATOR = "iqn.2026-11.org.datera-glance:demo-host"


class Hasher:
    """md5 and sha512 of a stream, each on its own thread (hashlib releases the GIL)."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.sha512 = hashlib.sha512()
        self._queues: list[queue.Queue[bytes | None]] = []
        self._threads: list[threading.Thread] = []
        for h in (self.md5, self.sha512):
            q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
            t = threading.Thread(target=self._run, args=(h, q), daemon=True)
            t.start()
            self._queues.append(q)
            self._threads.append(t)

    @staticmethod
    def _run(h: Any, q: queue.Queue[bytes | None]) -> None:
        while (chunk := q.get()) is not None:
            h.update(chunk)

    def update(self, chunk: bytes) -> None:
        for q in self._queues:
            q.put(chunk)

    def result(self) -> tuple[str, str]:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()
        return self.md5.hexdigest(), self.sha512.hexdigest()


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def mbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-6) / 1e6:.0f} MB/s"


def generate(path: Path, size: int, seed: int = 2026) -> tuple[str, str]:
    """Write ``size`` incompressible bytes (no zero blocks) and return their md5 and sha512."""
    block = 4 * units.Mi
    base = bytearray(random.Random(seed).randbytes(block))
    hasher = Hasher()
    progress = Progress("generate", size)
    with path.open("wb") as f:
        for index, start in enumerate(range(0, size, block)):
            base[:8] = index.to_bytes(8, "little")  # every block differs
            chunk = bytes(base[: min(block, size - start)])
            f.write(chunk)
            hasher.update(chunk)
            progress.update(len(chunk))
    progress.finish()
    return hasher.result()


def hash_file(path: Path) -> tuple[str, str]:
    hasher = Hasher()
    progress = Progress("hash", path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(4 * units.Mi):
            hasher.update(chunk)
            progress.update(len(chunk))
    progress.finish()
    return hasher.result()


def find_app_instance(state: dict[str, Any], image_id: str) -> dict[str, Any] | None:
    return next((ai for ai in state["app_instances"] if ai["uuid"] == image_id), None)


def copier_core_in(api: GlanceApi) -> str:
    """Which copier core glance-api's workers have loaded (a mapped ``_chunkio`` module)."""
    loaded = [f for f in mapped_files(api.pids()) if "/_chunkio" in f and f.endswith(".so")]
    return "compiled" if loaded else "python"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev demo",
        description="Run glance-api with the datera backend on the embedded EDF simulator: "
        "upload an image, download it back, verify it, clean up.",
    )
    parser.add_argument("--file", type=Path, help="upload this file instead of a generated one")
    parser.add_argument(
        "--size", type=int, default=1024, help="size of the generated image in MiB (1024)"
    )
    parser.add_argument(
        "--media",
        "--backend",  # the old spelling, kept for existing command lines
        dest="media",
        choices=("loop", "file"),
        help="simulator volumes: loop devices (default as root) or sparse files",
    )
    parser.add_argument("--work-dir", type=Path, help="keep config, logs and data here")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=os.environ.get("DATERA_GLANCE_CACHE"),
        help="where glance's venv is cached (default: .cache in the checkout)",
    )
    args = parser.parse_args(argv)
    if args.file is not None and not args.file.is_file():
        parser.error(f"--file {args.file}: no such file")
    if args.media == "loop" and os.geteuid() != 0:
        parser.error("--media loop needs root (loop devices)")
    if args.size < 1:
        parser.error("--size must be at least 1 (MiB)")
    return args


@dataclass
class RoundTrip:
    """What one upload, download and delete through glance-api showed."""

    image: dict[str, Any]
    size: int
    md5: str
    sha512: str
    up_seconds: float
    received: int
    down_seconds: float
    app_instance: dict[str, Any] | None
    checks: dict[str, bool]


def _work_dir(args: argparse.Namespace, stack: contextlib.ExitStack) -> Path:
    if args.work_dir:
        work: Path = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        return work
    work = Path(tempfile.mkdtemp(prefix="datera-glance-demo-"))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    return work


def _start_simulator(work: Path, media: str, stack: contextlib.ExitStack) -> SimulatorProcess:
    sim = SimulatorProcess(work / "edf", media=media)
    stack.callback(sim.stop)
    try:
        sim.start()
    except RuntimeError as e:
        hint = " (no loop devices here? try --media file)" if media == "loop" else ""
        raise RuntimeError(f"{e}{hint}") from e
    say(f"EDF simulator ({media} media) listening on {sim.url}")
    return sim


def _start_glance(
    venv: GlanceVenv, work: Path, sim: SimulatorProcess, stack: contextlib.ExitStack
) -> GlanceApi:
    options = datera_store_options(
        sim.host,
        sim.port,
        username=sim.username,
        password=sim.password,
        initiator_name=INITIATOR,
    )
    api = GlanceApi(
        venv,
        work / "glance",
        store_options=options,
        backend=BACKEND,
        processes=1,
        threads=4,
        show_locations=True,
        debug=False,
    )
    stack.callback(api.stop)
    api.setup()
    api.start()
    say(f"glance-api (uwsgi, 1 process x 4 threads, sqlite) on {api.url}, store {BACKEND}")
    return api


def _source(args: argparse.Namespace, work: Path) -> tuple[Path, str, str]:
    """The image file to upload and its md5 and sha512."""
    if args.file:
        source: Path = args.file.resolve()
        say(f"source {source}: computing md5 and sha512")
        return (source, *hash_file(source))
    source = work / "demo-image.raw"
    say(f"generating a {args.size} MiB test image in {source}")
    return (source, *generate(source, args.size * units.Mi))


def _round_trip(
    glance: GlanceClient, sim: SimulatorProcess, source: Path, md5: str, sha512: str, work: Path
) -> RoundTrip:
    """Upload ``source``, download it back, delete it; check each step."""
    size = source.stat().st_size
    image_id = glance.create_image(f"datera-glance-demo-{source.name}")["id"]
    say(f"created image {image_id}; uploading (PUT /v2/images/{image_id}/file)")
    progress = Progress("upload", size)
    with source.open("rb") as f:
        reply = glance.upload(image_id, CountingReader(f, progress), size=size, piece=4 * units.Mi)
    progress.finish()
    up_seconds = progress.seconds
    if reply.status != 204:
        raise RuntimeError(f"upload failed: HTTP {reply.status}: {reply.text[:500]}")
    image = glance.get_image(image_id)
    ai = find_app_instance(sim.state(), image_id)

    copy = work / "downloaded.raw"
    say(f"downloading it back (GET /v2/images/{image_id}/file) to {copy}")
    progress = Progress("download", size)
    with copy.open("wb") as f:
        for chunk in glance.download(image_id, progress=progress.update):
            f.write(chunk)
    progress.finish()
    down_seconds = progress.seconds
    received = copy.stat().st_size
    say("verifying the downloaded copy: md5 and sha512")
    down_md5, down_sha512 = hash_file(copy)
    copy.unlink()

    checks = {
        "glance status active": image["status"] == "active",
        "glance size = file size": image["size"] == size,
        "glance checksum = md5 of the file": image["checksum"] == md5,
        "glance os_hash_value = sha512 of the file": image["os_hash_value"] == sha512,
        "download size": received == size,
        "download md5": down_md5 == md5,
        "download sha512": down_sha512 == sha512,
        "EDF app instance exists": ai is not None,
    }
    say(f"deleting image {image_id}")
    checks["delete: HTTP 204"] = glance.delete_image(image_id) == 204
    checks["delete: app instance removed"] = find_app_instance(sim.state(), image_id) is None
    return RoundTrip(image, size, md5, sha512, up_seconds, received, down_seconds, ai, checks)


def _summary(trip: RoundTrip, core: str) -> dict[str, str]:
    image, size, received = trip.image, trip.size, trip.received
    locations = [loc["url"] for loc in image.get("locations", [])]
    summary = {
        "image": f"{image['id']} ({image['status']}, {size} bytes, "
        f"{image['disk_format']}/{image['container_format']})",
        "location": ", ".join(locations) or image.get("direct_url", "?"),
        "upload": f"{size / units.Mi:.1f} MiB in {trip.up_seconds:.2f} s = "
        f"{mbps(size, trip.up_seconds)} (glance-api hashing md5 + sha512)",
        "download": f"{received / units.Mi:.1f} MiB in {trip.down_seconds:.2f} s = "
        f"{mbps(received, trip.down_seconds)} (into a file)",
        "checksum": f"md5 {trip.md5}",
        "os_hash_value": f"sha512 {trip.sha512[:32]}...",
        "copier core": f"{core} (in glance-api's worker)",
    }
    ai = trip.app_instance
    if ai is not None:
        device = ai["device_path"] or "-"
        summary["EDF app instance"] = (
            f"{ai['name']} in tenant {ai['tenant']}: {ai['size_gib']} GiB volume, "
            f"{ai['admin_state']}, device {device}, ACL {', '.join(ai['acl']) or '-'}"
        )
        summary["EDF metadata"] = ", ".join(f"{k}={v}" for k, v in sorted(ai["metadata"].items()))
    failed = [name for name, ok in trip.checks.items() if not ok]
    passed = f"all {len(trip.checks)} passed"
    summary["checks"] = f"FAILED: {'; '.join(failed)}" if failed else passed
    if failed:
        summary["result"] = "FAILED"
    return summary


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, str]:
    media = args.media or ("loop" if os.geteuid() == 0 else "file")
    started = time.monotonic()
    venv = GlanceVenv(repo_root(), args.cache_dir, log=say).ensure()
    say(f"glance 33 venv ready: {venv.venv_dir}")
    setup_started = time.monotonic()
    work = _work_dir(args, stack)
    sim = _start_simulator(work, media, stack)
    api = _start_glance(venv, work, sim, stack)
    source, md5, sha512 = _source(args, work)
    trip = _round_trip(GlanceClient(api.url), sim, source, md5, sha512, work)
    summary = _summary(trip, copier_core_in(api))
    result = summary.pop("result", None)
    summary["time"] = (
        f"{time.monotonic() - setup_started:.1f} s after the install "
        f"({time.monotonic() - started:.1f} s in all)"
    )
    if result:
        summary["result"] = result
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C even when started where SIGINT is ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    summary: dict[str, str] = {}
    code = 0
    with contextlib.ExitStack() as stack:
        try:
            summary = run(args, stack)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping glance-api and the simulator", file=sys.stderr)
            code = 130
        except Exception as e:  # a demo prints the problem, then still cleans up
            print(f"\ndemo failed: {e}", file=sys.stderr)
            code = 1
        finally:
            # A second Ctrl-C must not cut the cleanup short (loop devices, child processes).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if summary:
        width = max(len(k) for k in summary)
        print("\nSummary")
        for key, value in summary.items():
            print(f"  {key:<{width}}  {value}")
        if summary.get("result") == "FAILED":
            code = 1
    if code == 0:
        say("stopped glance-api and the simulator; done")
    return code


if __name__ == "__main__":
    sys.exit(main())

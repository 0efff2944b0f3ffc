"""``put``, ``ls``, ``show``, ``get``, ``rm`` and ``verify`` through the console script.

Every command goes through the Store (``Store.add``/``get``/``delete``) as glance does; the
bytes land in the simulator's volume file, which the tests read and change behind the store's
back (``GET /_sim/state`` gives each app instance's ``file``).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

from datera_glance import ownership, upload_state
from datera_glance.simulator import Simulator
from tests.plugins.cli import Cli
from tests.plugins.simulator import Edf

SIZE = 3 * 1024 * 1024 + 123


def put(cli: Cli, path: Path, *extra: str) -> dict[str, Any]:
    doc: dict[str, Any] = cli.json("put", str(path), *extra)
    return doc


def backing_file(sim: Simulator, image_id: str) -> str:
    [ai] = [ai for ai in sim.state()["app_instances"] if ai["uuid"] == image_id]
    return str(ai["file"])


def image_file(tmp_path: Path, size: int = SIZE) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / f"image-{uuid.uuid4().hex[:6]}.raw"
    path.write_bytes(data)
    return path, data


def test_put_prints_what_glance_records(simulator: Simulator, cli: Cli, tmp_path: Path) -> None:
    path, data = image_file(tmp_path)
    result = cli.ok("put", str(path))
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines()[1:])
    image_id = fields["id"]
    assert (
        fields["location"] == f"datera://{simulator.host}:{simulator.port}/app_instances/{image_id}"
    )
    assert fields["checksum"] == hashlib.md5(data).hexdigest()
    assert fields["multihash"] == "sha512:" + hashlib.sha512(data).hexdigest()
    assert re.fullmatch(rf"{SIZE} bytes in \d+\.\d\d s, \d+\.\d MB/s\n", result.err), result.err

    chosen = str(uuid.uuid4())
    doc = put(cli, path, "--id", chosen)
    assert doc["id"] == chosen and doc["size"] == SIZE
    assert doc["location_metadata"] == {"store": "fast"}
    assert set(doc["transfer"]) == {"bytes", "seconds", "MBps"}
    [ai] = [a for a in simulator.state()["app_instances"] if a["uuid"] == chosen]
    assert ai["metadata"]["multihash_algo"] == "sha512"
    assert ai["metadata"]["multihash"] == hashlib.sha512(data).hexdigest()
    again = cli.run("put", str(path), "--id", chosen)
    assert again.rc == 1 and again.err.startswith("error: ") and chosen in again.err


def test_ls_show_get_rm(simulator: Simulator, cli: Cli, tmp_path: Path) -> None:
    path, data = image_file(tmp_path)
    image_id = put(cli, path)["id"]

    lines = cli.ok("ls").out.splitlines()
    assert lines[0].split() == ["ID", "SIZE", "CHECKSUM", "CREATED", "STATE", "ATTACHED", "HOSTS"]
    assert re.match(
        rf"{image_id}  3\.0 MiB  {hashlib.md5(data).hexdigest()}  "
        r"\d{4}-\d\d-\d\dT\S+Z  complete  iqn\.2026-11\.org\.datera-glance:test-host$",
        lines[1],
    ), lines
    listed = cli.json("ls")
    assert listed["backend"] == "fast" and listed["tenant"] == "/root"
    [entry] = listed["images"]
    assert entry["id"] == image_id and entry["state"] == "complete" and entry["size"] == SIZE
    assert set(entry) == {
        "id", "app_instance", "state", "reason", "size", "volume_size", "checksum",
        "multihash_algo", "multihash", "created", "attached_hosts", "upload",
    }  # fmt: skip

    shown = cli.json("show", image_id)
    assert shown["metadata"]["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["storage_instances"][0]["volumes"][0]["size_gib"] == 1
    assert shown["location"].endswith(f"/app_instances/{image_id}")
    assert "metadata multihash_algo" in cli.ok("show", image_id).out

    out = tmp_path / "copy.raw"
    got = cli.ok("get", image_id, "-o", str(out))
    assert out.read_bytes() == data and got.out == ""
    assert re.fullmatch(rf"{SIZE} bytes in .* MB/s\n", got.err)
    part = cli.ok("get", image_id, "--offset", "4097", "--length", "10000")
    assert part.raw == data[4097 : 4097 + 10000]
    assert cli.run("get", image_id, "--json").rc == 1  # stdout would carry the data

    assert cli.ok("rm", image_id).out == f"deleted image {image_id} (OS-IMAGE-{image_id})\n"
    assert cli.json("ls")["images"] == []
    gone = cli.run("rm", image_id)
    assert gone.rc == 1 and gone.err == (
        f"error: no image {image_id} in tenant /root (datera-glance ls lists the images)\n"
    )
    assert cli.run("show", image_id).rc == 1


def test_put_from_stdin_with_unknown_size(simulator: Simulator, cli: Cli) -> None:
    data = os.urandom(2 * 1024 * 1024 + 1)
    result = cli.run("put", "-", "--json", input=data)
    assert result.rc == 0, result.err
    assert cli.json("verify", "--all")["ok"] is True
    assert cli.json("ls")["images"][0]["size"] == len(data)


def test_verify_good_and_tampered(simulator: Simulator, cli: Cli, tmp_path: Path) -> None:
    good = put(cli, image_file(tmp_path)[0])["id"]
    bad = put(cli, image_file(tmp_path)[0])["id"]
    assert cli.ok("verify", good, bad).out.count("  ok\n") == 2

    with open(backing_file(simulator, bad), "r+b") as f:  # behind the store's back
        f.seek(SIZE // 2)
        f.write(b"\0rot\0")
    table = cli.run("verify", "--all")
    assert table.rc == 1
    assert re.search(rf"{good}\s+3\.0 MiB\s+md5 ok\s+sha512 ok\s+ok$", table.out, re.M)
    assert re.search(
        rf"{bad}\s+3\.0 MiB\s+md5 MISMATCH\s+sha512 MISMATCH\s+mismatch: md5, sha512$",
        table.out,
        re.M,
    )
    assert cli.run("verify", good).rc == 0
    doc = cli.json("verify", bad, expect=1)
    [result] = doc["images"]
    assert doc["ok"] is False and result["status"] == "mismatch: md5, sha512"
    assert result["checksum"]["recorded"] != result["checksum"]["actual"]
    assert result["multihash"]["algo"] == "sha512"
    assert cli.run("verify").rc == 1  # neither ids nor --all


def test_verify_an_image_without_multihash(simulator: Simulator, cli: Cli, edf: Edf) -> None:
    """Images stored before the multihash was recorded (by Datera's original driver: uuid the
    image id, no descr, type: image): md5 only, and it says so."""
    data = os.urandom(100_000)
    image_id = str(uuid.uuid4())
    ai = edf.create_ai(f"OS-IMAGE-{image_id}", uuid=image_id)["data"]
    metadata = {
        "checksum": hashlib.md5(data).hexdigest(),
        "length": str(len(data)),
        "type": "image",
    }
    edf.call("PUT", f"/app_instances/{ai['id']}/metadata", json=metadata)
    with open(backing_file(simulator, ai["uuid"]), "r+b") as f:
        f.write(data)
    doc = cli.json("verify", image_id)
    assert doc["ok"] is True
    [result] = doc["images"]
    assert result["status"] == "ok (md5 only: no multihash recorded)"
    assert result["multihash"] is None
    assert "not recorded" in cli.ok("verify", "--all").out


def test_orphans_are_listed(simulator: Simulator, cli: Cli, edf: Edf, tmp_path: Path) -> None:
    complete = put(cli, image_file(tmp_path, 5000)[0])["id"]
    orphan = str(uuid.uuid4())
    # an upload that died before writing any record: what Store.add's create call leaves
    edf.create_ai(f"OS-IMAGE-{orphan}", uuid=orphan, descr=ownership.marker(orphan))
    edf.create_ai("not-an-image")
    states = {i["id"]: i["state"] for i in cli.json("ls")["images"]}
    assert states == {complete: "complete", orphan: "orphan"}
    [only] = cli.json("ls", "--orphans")["images"]
    assert only["id"] == orphan and only["reason"] == "incomplete, no upload record"
    assert cli.json("verify", orphan, expect=1)["images"][0]["status"].startswith(
        "not verifiable: orphan"
    )


def test_put_verbose_logs_no_secrets(
    simulator_factory: Any, cli_factory: Any, tmp_path: Path
) -> None:
    secret = "An0ther-S3cret"
    sim = simulator_factory(password=secret)
    cli = cli_factory(sim, password=secret)
    path, data = image_file(tmp_path, 70_000)
    result = cli.run("put", str(path), "-v")
    assert result.rc == 0, result.err
    md5 = hashlib.md5(data).hexdigest()
    everything = (result.out + result.err).replace(md5, "")
    assert secret not in everything
    assert not re.search(r"\b[0-9a-f]{32}\b", everything)
    assert upload_state.HEARTBEAT in cli.json("show", cli.json("ls")["images"][0]["id"])["metadata"]


def test_progress_bar_only_on_a_terminal(simulator: Simulator, cli: Cli, tmp_path: Path) -> None:
    """A tqdm bar goes to stderr when it is a TTY; stdout keeps only the result."""
    import pty
    import subprocess
    import threading

    from tests.plugins.cli import SCRIPT

    path, _ = image_file(tmp_path)
    master, slave = pty.openpty()
    err = bytearray()

    def drain() -> None:  # read while it runs: a full pty buffer would block the command
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer is gone
                return
            if not chunk:
                return
            err.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            [str(SCRIPT), "put", str(path), "--config-file", str(cli.conf), "--json"],
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
            check=False,
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    text = err.decode("utf-8", errors="replace")
    assert proc.returncode == 0, text
    assert "put:" in text and "%|" in text, text
    assert '"location"' in proc.stdout.decode() and "put:" not in proc.stdout.decode()

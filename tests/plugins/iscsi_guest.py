"""Fixture ``iscsi_lane``: the iSCSI lane's one qemu guest per session.

The host kernel may have no iSCSI (this project's CI machines have none); Debian's
``linux-image-amd64`` has the initiator, dm-multipath and the LIO target as modules. The
fixture installs what the lane needs (as root: Debian packages with apt-get, virtme-ng from
PyPI into its own venv under ``.cache/virtme-ng``, held to ``constraints/current.txt``), boots
that kernel once with virtme-ng on the host's own root filesystem (so the guest runs this
checkout and its ``.venv``), with KVM when a probe guest boots under it in time and under TCG
otherwise, and runs ``tests/iscsi/guest.sh``: every guest case in that one boot. The guest
has no network device; its results come back as junit XML in a directory of ``.cache``
(under the checkout, not /tmp: the guest mounts its own /tmp).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUEST_SCRIPT = ROOT / "tests" / "iscsi" / "guest.sh"
VNG_VENV = ROOT / ".cache" / "virtme-ng"
RESULTS_BASE = ROOT / ".cache" / "iscsi-lane"
#: Debian packages: the guest kernel, qemu, the initiator (open-iscsi, multipath-tools), udev
#: for /dev/disk/by-path, virtme-ng's static busybox, sudo for glance's root helper.
PACKAGES = (
    "linux-image-amd64",
    "qemu-system-x86",
    "open-iscsi",
    "multipath-tools",
    "udev",
    "busybox-static",
    "sudo",
)
KVM_PROBE_SECONDS = 30.0  # a KVM guest boots in seconds; the hang seen here never ends
LANE_TIMEOUT = 1500.0


@dataclass
class Case:
    outcome: str  # "passed" | "failed" | "error" | "skipped"
    message: str = ""
    seconds: float = 0.0


@dataclass
class Lane:
    accel: str  # "kvm" | "tcg"
    seconds: float  # boot to power-off, all cases
    results: Path
    cases: dict[str, Case] = field(default_factory=dict)
    pytest_rc: str = ""

    def log_tail(self, lines: int = 60) -> str:
        """The end of the guest's log, else of virtme-ng's output (the guest never ran)."""
        for name in ("guest.log", "vng.out"):
            try:
                text = (self.results / name).read_text(errors="replace")
            except OSError:
                continue
            return f"{name}:\n" + "\n".join(text.splitlines()[-lines:])
        return f"(nothing in {self.results})"


_lanes: list[Lane] = []


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, check=False, env=env)


def install_packages() -> None:
    missing = [
        p
        for p in PACKAGES
        if _run(["dpkg-query", "-W", "-f", "${Status}", p]).stdout != "install ok installed"
    ]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if _run(install, env=env).returncode != 0:
        _run(["apt-get", "update", "-q"], env=env)
        proc = _run(install, env=env)
        if proc.returncode != 0:
            pytest.fail(f"apt-get install {' '.join(missing)} failed:\n{proc.stderr[-2000:]}")


def vng() -> str:
    """virtme-ng's ``vng`` from its own venv (installed on first use)."""
    exe = VNG_VENV / "bin" / "vng"
    if exe.exists():
        return str(exe)
    shutil.rmtree(VNG_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VNG_VENV)], check=True)
    proc = _run(
        [str(VNG_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints" / "current.txt"), "virtme-ng"]
    )  # fmt: skip
    if proc.returncode != 0 or not exe.exists():
        pytest.fail(f"pip install virtme-ng failed:\n{proc.stderr[-2000:]}")
    return str(exe)


def guest_kernel() -> str:
    """The newest installed kernel image whose modules include the iSCSI target."""
    for image in sorted(glob.glob("/boot/vmlinuz-*"), key=os.path.getmtime, reverse=True):
        release = image.removeprefix("/boot/vmlinuz-")
        target = f"/lib/modules/{release}/kernel/drivers/target/iscsi/iscsi_target_mod.ko"
        if os.path.exists(target) or os.path.exists(target + ".xz"):
            return image
    pytest.fail(
        "no kernel in /boot has the iSCSI target module (apt-get install linux-image-amd64)"
    )


def boot_argv(kernel: str, results: Path, accel: str, command: str) -> list[str]:
    argv = [vng(), "--force-9p", "--rwdir", str(results), "--overlay-rwdir", "/etc",
            "--overlay-rwdir", "/usr/local/bin", "--run", kernel, "--memory", "2G",
            "--cpus", "2", "--exec", command]  # fmt: skip
    return argv if accel == "kvm" else [argv[0], "--disable-kvm", *argv[1:]]


def boot(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """Run a guest; on timeout kill its process group (vng and its qemu): (None, output)."""
    env = {**os.environ, "PATH": f"{VNG_VENV / 'bin'}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


def probe_accel(kernel: str, results: Path) -> str:
    """ "kvm" when a KVM guest boots and runs a command within the probe's time, else "tcg"."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    marker = results / "kvm-probe"
    boot(boot_argv(kernel, results, "kvm", f"touch {marker}"), KVM_PROBE_SECONDS)
    return "kvm" if marker.exists() else "tcg"


def parse_junit(path: Path) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    # Our own guest's pytest wrote it, into our own directory: not untrusted input.
    for tc in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        name = tc.get("name", "")
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            el = tc.find(kind)
            if el is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = (el.get("message") or "") + "\n" + (el.text or "")
                break
        if name in cases and cases[name].outcome != "passed":
            continue  # a teardown error after a failure: keep the first
        cases[name] = Case(outcome, message.strip(), float(tc.get("time") or 0))
    return cases


def run_lane() -> Lane:
    install_packages()
    kernel = guest_kernel()
    RESULTS_BASE.mkdir(parents=True, exist_ok=True)
    results = RESULTS_BASE / f"run-{os.getpid()}-{int(time.time())}"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir()
    accel = probe_accel(kernel, results)
    command = f"{GUEST_SCRIPT} {results}"
    start = time.monotonic()
    status, out = boot(boot_argv(kernel, results, accel, command), LANE_TIMEOUT)
    (results / "vng.out").write_text(f"exit status {status}\n{out[-20000:]}")
    lane = Lane(accel=accel, seconds=time.monotonic() - start, results=results)
    junit = results / "junit.xml"
    if junit.exists():
        lane.cases = parse_junit(junit)
    rc = results / "pytest.rc"
    lane.pytest_rc = rc.read_text().strip() if rc.exists() else ""
    return lane


@pytest.fixture(scope="session")
def iscsi_lane() -> Iterator[Lane]:
    """The guest's results (booted once per session; skipped, saying so, when not root)."""
    if os.geteuid() != 0:
        pytest.skip("the iSCSI lane needs root (apt-get, a qemu guest): run ./dev test as root")
    lane = run_lane()
    _lanes.append(lane)
    yield lane


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for lane in _lanes:
        passed = sum(1 for c in lane.cases.values() if c.outcome == "passed")
        terminalreporter.write_line(
            f"iSCSI lane: {lane.accel.upper()} guest, {lane.seconds:.0f} s boot to power-off, "
            f"{passed}/{len(lane.cases)} guest cases passed; log {lane.results}/guest.log"
        )

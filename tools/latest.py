"""The suite against the newest release of every dependency: what will break us next.

``./dev latest [pytest args]`` copies the working tree to ``.cache/latest/tree``, runs
``./dev pytest`` there with no constraints at all (its own ``.venv`` and glance-api venv take
the newest releases), and writes ``.cache/latest/report.md``: each package whose newest
version differs from ``constraints/current.txt``, and which of them the failures run through
(their tracebacks name files in that package). It is not part of ``./dev test`` or CI: the
constraints keep those repeatable; this finds, by one command, what a new release broke.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.constraints import CURRENT, ROOT, canonical, pinned

LATEST = ROOT / ".cache" / "latest"
# A file of an installed package, or the dotted name of an exception or warning class.
_MENTION = re.compile(
    r"site-packages/([A-Za-z0-9_]+)|\b([A-Za-z_]\w*)(?:\.\w+)+(?:Warning|Error|Exception)\b"
)


def copy_tree(dest: Path) -> None:
    """A clone (reno reads release notes from git history) with the working tree's files on
    top: what git knows or would add (tracked and untracked, not ignored), changes included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(dest)], check=True)
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() or src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).unlink(missing_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)


def run_suite(tree: Path, args: Sequence[str], log: Path) -> int:
    """``./dev pytest`` in the copy without constraints; output to the terminal and the log."""
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    env["DATERA_GLANCE_CONSTRAINTS"] = "none"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(tree / "dev"), "pytest", *args], cwd=tree, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stdout = proc.stdout
        assert stdout is not None
        for chunk in iter(lambda: os.read(stdout.fileno(), 65536), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            out.write(chunk)
        return proc.wait()


def installed(python: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``{canonical dist: version}`` and ``{top-level module: [dists]}`` of a venv."""
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps([{d.metadata['Name']: d.version for d in m.distributions()},"
        " m.packages_distributions()]))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    versions, modules = json.loads(out.stdout)
    return {canonical(k): v for k, v in versions.items()}, modules


def culprits(log_text: str, modules: Mapping[str, list[str]]) -> Counter[str]:
    """Distributions whose files appear in the run's tracebacks and warnings, by mentions."""
    found: Counter[str] = Counter()
    for path_top, class_top in _MENTION.findall(log_text):
        for dist in modules.get(path_top or class_top, []):
            found[canonical(dist)] += 1
    return found


def report(rc: int, pins: Mapping[str, str], now: Mapping[str, str], seen: Counter[str]) -> str:
    moved = {k: (pins[k], now[k]) for k in sorted(now) if k in pins and pins[k] != now[k]}
    lines = [f"# ./dev latest: pytest exit code {rc} ({'passed' if rc == 0 else 'FAILED'})", ""]
    suspects = [k for k in moved if seen[k]] if rc else []
    if suspects:
        lines.append("## Broke it: newer than the constraints, and in the failures' tracebacks")
        lines += [f"- {k} {moved[k][1]} (constraints: {moved[k][0]})" for k in suspects]
    elif rc:
        lines.append("## No newer package appears in the tracebacks; packages that do:")
        lines += [f"- {k} {now.get(k, '?')} ({n} mentions)" for k, n in seen.most_common(10)]
    lines += ["", f"## Newer than constraints/current.txt ({len(moved)})"]
    lines += [f"- {k}: {old} -> {new}" for k, (old, new) in moved.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    tree, log = LATEST / "tree", LATEST / "pytest.log"
    print(f"==> copying the working tree to {tree}", file=sys.stderr)
    copy_tree(tree)
    rc = run_suite(tree, args, log)
    venv_python = tree / ".venv" / "bin" / "python"
    now, modules = installed(venv_python) if venv_python.exists() else ({}, {})
    seen = culprits(log.read_text(errors="replace"), modules)
    text = report(rc, pinned(CURRENT.read_text().splitlines()), now, seen)
    (LATEST / "report.md").write_text(text)
    print(f"\n{text}\n(written to {LATEST / 'report.md'})")
    return rc


if __name__ == "__main__":
    sys.exit(main())

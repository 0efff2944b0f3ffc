"""Rebuild ``constraints/<release>.txt``: the versions every environment of the project installs.

OpenStack deploys each release with the versions of its ``upper-constraints.txt``
(openstack/requirements), so glance-api hosts run exactly those; the project tests with them.
A constraints file is that list, with the pins of ``constraints/sources.toml`` applied (glance
itself, which services' lists never carry, and versions a release shipped with after the copy
we hold), followed by what OpenStack does not list (the test, docs and build tools, pyuwsgi),
resolved by pip against the rest. Those keep their current versions unless ``--upgrade``.

``./dev constraints [--release R] [--upstream FILE_OR_URL] [--upgrade]`` writes the file and
prints what changed; then run ``./dev test`` and commit both.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS_DIR = ROOT / "constraints"
SOURCES = CONSTRAINTS_DIR / "sources.toml"
CURRENT = CONSTRAINTS_DIR / "current.txt"
_LOCAL_MARK = "# --- not in OpenStack's list"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)===([^;\s]+)")


def canonical(name: str) -> str:
    """PEP 503's normalised name: ``oslo.config``, ``oslo_config`` -> ``oslo-config``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Release:
    name: str
    upstream: str
    pins: Mapping[str, str]

    @property
    def path(self) -> Path:
        return CONSTRAINTS_DIR / f"{self.name}.txt"


def current_release() -> str:
    """The release ``current.txt`` links to (``./dev test``'s)."""
    return CURRENT.resolve().stem


def release_names(sources: Path = SOURCES) -> list[str]:
    """Every release of ``sources.toml``, oldest first (``2025.1`` < ``2025.2`` < ``2026.1``)."""
    releases = tomllib.loads(sources.read_text())["release"]
    return sorted(releases, key=lambda r: tuple(map(int, r.split("."))))


def load_release(name: str | None, sources: Path = SOURCES) -> Release:
    """A release of ``sources.toml``; None: the one ``current.txt`` links to."""
    if name is None:
        name = current_release()
    releases = tomllib.loads(sources.read_text())["release"]
    if name not in releases:
        known = ", ".join(release_names(sources))
        raise SystemExit(f"release {name!r} is not in {sources.name}: {known}")
    spec = releases[name]
    return Release(name, spec["upstream"], dict(spec.get("pins", {})))


def read_text(source: str) -> str:
    """A file's text, or a URL's (OpenStack publishes each release's list at one)."""
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=60) as reply:  # noqa: S310 (https only)
            text: str = reply.read().decode()
            return text
    return Path(source).read_text()


def pinned(lines: Iterable[str]) -> dict[str, str]:
    """``{canonical name: version}`` of the ``name===version`` lines (markers ignored)."""
    found: dict[str, str] = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def apply_pins(upstream: Sequence[str], pins: Mapping[str, str]) -> list[str]:
    """OpenStack's lines with each pinned package's lines replaced by one ``===`` line."""
    wanted = {canonical(name): (name, version) for name, version in pins.items()}
    out: list[str] = []
    done: set[str] = set()
    for line in upstream:
        match = _PIN.match(line.strip())
        key = canonical(match.group(1)) if match else ""
        if key in wanted:
            if key not in done:  # a package may have a line per python_version marker
                name, version = wanted[key]
                out.append(f"{name}==={version}  # pinned in constraints/sources.toml")
                done.add(key)
        elif line.strip():
            out.append(line.rstrip())
    out.extend(
        f"{n}==={v}  # pinned in constraints/sources.toml"
        for key, (n, v) in wanted.items()
        if key not in done
    )
    return out


def install_set() -> list[str]:
    """Every requirement an environment of the project installs (one resolver run). The
    project's own requirements, not the project: a release its bounds refuse still resolves."""
    sys.path.insert(0, str(ROOT / "src"))
    from demo.glance_env import GLANCE_REQUIREMENTS, build_requirements

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own = [*project["dependencies"], *chain(*project.get("optional-dependencies", {}).values())]
    names = [re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0] for req in own]
    return [*names, *GLANCE_REQUIREMENTS, *build_requirements(ROOT), "pip"]


def resolve(constraint_lines: Sequence[str], requirements: Sequence[str]) -> dict[str, str]:
    """What pip installs for the requirements under the constraints: ``{name: version}``."""
    with tempfile.TemporaryDirectory() as tmp:
        cfile = Path(tmp) / "constraints.txt"
        cfile.write_text("\n".join(constraint_lines) + "\n")
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run"]
        cmd += ["--ignore-installed", "--report", str(report), "-c", str(cfile), *requirements]
        subprocess.run(cmd, check=True)
        items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in items}


def render(release: Release, source: str, base: Sequence[str], local: Mapping[str, str]) -> str:
    header = [
        f"# Constraints of OpenStack {release.name} for datera-glance: generated by",
        f"# `./dev constraints --release {release.name}`; edit constraints/sources.toml, not this.",
        f"# OpenStack's upper-constraints of {release.name}: {release.upstream}",
        f"# generated from: {source if '://' in source else 'a copy, ' + Path(source).name}",
    ]
    tail = [
        f"{_LOCAL_MARK}: the versions the suite passed with ---",
        *(f"{name}==={version}" for name, version in sorted(local.items(), key=_sort_key)),
    ]
    return "\n".join([*header, *base, *tail]) + "\n"


def _sort_key(item: tuple[str, str]) -> str:
    return canonical(item[0])


def local_part_of(lines: Sequence[str]) -> list[str]:
    """A constraints file's own additions (kept as preferences unless --upgrade)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(_LOCAL_MARK)]
    return list(lines[starts[0] + 1 :]) if starts else []


def changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """One line per package that was added, removed or moved."""
    out = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after:
            out.append(f"  {key}: {before or '(none)'} -> {after or '(none)'}")
    return out


def generate(release: Release, source: str, *, upgrade: bool) -> tuple[str, list[str]]:
    """The new file's text and the list of changes against the current one."""
    upstream = read_text(source).splitlines()
    base = apply_pins(upstream, release.pins)
    listed = pinned(base)
    current = release.path.read_text().splitlines() if release.path.exists() else []
    kept = [] if upgrade else local_part_of(current)
    resolved = resolve([*base, *kept], install_set())
    local = {
        name: version
        for name, version in resolved.items()
        if canonical(name) not in listed and canonical(name) != "datera-glance"
    }
    text = render(release, source, base, local)
    return text, changes(pinned(current), pinned(text.splitlines()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev constraints", description=__doc__.split("\n")[0])
    parser.add_argument("--release", help="an OpenStack release of sources.toml (default: current)")
    parser.add_argument("--upstream", help="OpenStack's upper-constraints.txt: a file or a URL")
    parser.add_argument("--upgrade", action="store_true", help="newest versions of the rest too")
    args = parser.parse_args(argv)
    release = load_release(args.release)
    text, changed = generate(release, args.upstream or release.upstream, upgrade=args.upgrade)
    release.path.write_text(text)
    print(f"{release.path.relative_to(ROOT)}: {len(changed)} change(s)")
    if len(changed) == len(pinned(text.splitlines())):
        print("  (a new file: every line is new)")
    else:
        print("\n".join(changed) or "  (none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Everything around a real glance-api: its virtualenv, PostgreSQL, uwsgi and the EDF simulator.

glance 33 gets its own cached virtualenv (``.cache/glance-venv-<key>`` in the checkout), keyed
on the pinned versions below and on this project's runtime dependencies. This project is built
from a snapshot of the working tree into ``.cache/datera-glance-<hash>`` (keyed on the sources)
and reaches glance-api through ``PYTHONPATH``: glance runs the code as installed by pip,
compiled copier core included, and building never writes into the working tree, where other
processes may have the in-place extension loaded.

Everything here starts child processes and stops them again; all classes are context managers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from datera_glance import host
from datera_glance.simulator.cli import PASSWORD_ENV, generate_password
from datera_glance.simulator.facade import SimControl

LOG = logging.getLogger(__name__)

Logger = Callable[[str], None]

#: What glance-api runs on. The versions come from the constraints file (``constraints_file``):
#: OpenStack's upper-constraints of the release whose glance this is.
GLANCE_REQUIREMENTS: tuple[str, ...] = (
    "glance",
    "glance-store",
    "python-glanceclient",
    "oslo.config",
    "os-brick",
    "pyuwsgi",
    "psycopg2-binary",
)
#: ``./dev`` names the constraints in force here; ``none`` (``./dev latest``) lifts them.
CONSTRAINTS_ENV = "DATERA_GLANCE_CONSTRAINTS"

_SNAPSHOT_FILES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in")
_SNAPSHOT_IGNORE = ("__pycache__", "*.so", "*.c", "*.egg-info", "*.pyc")
_PIP_NOISE = "is ignored: it is neither a file nor a directory"
_STALE_BUILD_SECONDS = 2 * 24 * 3600
# The paste pipeline (flavor) the harness adds: glance's default one with the context filter of
# ``demo.noauth`` (a project for every request, so imports can create tasks).
_PASTE_FLAVOR = "datera-noauth"
_CACHE_FLAVOR = f"{_PASTE_FLAVOR}+cachemanagement"  # the same with glance's image cache API
# The one harness module glance-api itself imports; the build carries it beside the package
# (the wheel does not: the harness is a checkout's, not a glance-api host's).
_PASTE_MODULE = Path("demo") / "noauth.py"


def repo_root() -> Path:
    """The source checkout this module belongs to (the harness needs one: it builds from it)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "datera_glance").is_dir():
        raise RuntimeError(f"{root} is not a datera-glance source checkout")
    return root


def build_requirements(repo: Path) -> list[str]:
    """pyproject's ``build-system.requires``: glance's venv builds this project without build
    isolation (fast rebuilds), so it installs them itself."""
    requires: list[str] = tomllib.loads((repo / "pyproject.toml").read_text())["build-system"][
        "requires"
    ]
    return requires


def constraints_file(repo: Path, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The constraints every pip install of glance's venv is held to; None: the newest of all."""
    named = environ.get(CONSTRAINTS_ENV)
    if named == "none":
        return None
    return Path(named) if named else repo / "constraints" / "current.txt"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800,
) -> str:
    """Run a command; return its output, or raise with the output's tail when it fails."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    out = "\n".join(line for line in proc.stdout.splitlines() if _PIP_NOISE not in line)
    if log_file is not None:
        with log_file.open("a") as f:
            f.write(f"$ {' '.join(str(c) for c in cmd)}\n{out}\n")
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-40:])
        raise RuntimeError(f"{' '.join(str(c) for c in cmd)} failed ({proc.returncode}):\n{tail}")
    return out


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (several test runs may share one cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    result: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        result.append(p)
        for tid in tids:
            with contextlib.suppress(OSError):
                todo.extend(
                    int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()
                )
    return result


def open_files(pids: Sequence[int]) -> dict[int, list[str]]:
    """What each process has open (``/proc/PID/fd`` link targets)."""
    result: dict[int, list[str]] = {}
    for pid in pids:
        targets: list[str] = []
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        result[pid] = targets
    return result


def mapped_files(pids: Sequence[int]) -> set[str]:
    """Files mapped into any of the processes (shows which extension modules are loaded)."""
    found: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    found.add(parts[5])
    return found


def _add_paste_module(snapshot: Path, staged: Path) -> None:
    """Put ``demo.noauth`` beside the installed package, alone in its ``demo`` package."""
    package = staged / _PASTE_MODULE.parent
    package.mkdir()
    (package / "__init__.py").write_text('"""The harness\'s paste filter for glance-api."""\n')
    shutil.copy2(snapshot / _PASTE_MODULE, package / _PASTE_MODULE.name)


class GlanceVenv:
    """glance 33's own virtualenv plus a build of this project that glance-api imports.

    :param repo: the source checkout to build from
    :param cache_dir: where venvs and builds live (default ``<repo>/.cache``)
    :param log: progress messages for people (the demo prints them)
    :param glance_patches: patches for glance's source (``patch -p1`` in site-packages, such
        as those in ``contrib/``), applied to a copy of glance's package that goes ahead of it
        on ``PYTHONPATH``; the cached venv itself stays as pip installed it
    :param environ: where ``DATERA_GLANCE_CONSTRAINTS`` is looked up (``constraints_file``)
    """

    def __init__(
        self,
        repo: Path,
        cache_dir: Path | None = None,
        *,
        log: Logger = LOG.info,
        glance_patches: Sequence[Path] = (),
        environ: Mapping[str, str] = os.environ,
    ):
        self.repo = repo
        self.cache_dir = cache_dir or repo / ".cache"
        self._log = log
        self.glance_patches = tuple(glance_patches)
        self.constraints = constraints_file(repo, environ)
        key = self._venv_key()
        self.venv_dir = self.cache_dir / f"glance-venv-{key}"
        self.build_dir: Path | None = None
        self.patched_glance_dir: Path | None = None

    def _project_dependencies(self) -> list[str]:
        pyproject = tomllib.loads((self.repo / "pyproject.toml").read_text())
        deps: list[str] = pyproject["project"].get("dependencies", [])
        return sorted(deps)

    def _venv_key(self) -> str:
        material = json.dumps(
            {
                "python": list(sys.version_info[:2]),
                "glance": GLANCE_REQUIREMENTS,
                "build": build_requirements(self.repo),
                "project": self._project_dependencies(),
                "constraints": self.constraints.read_text() if self.constraints else None,
            }
        )
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def bin(self, name: str) -> Path:
        """A console script of glance's venv (``uwsgi``, ``glance-manage``, ``glance``...)."""
        return self.venv_dir / "bin" / name

    @property
    def python(self) -> Path:
        return self.bin("python")

    def ensure(self) -> GlanceVenv:
        """Create or reuse the venv, and build the current sources into it (cached)."""
        with _file_lock(self.cache_dir / "glance-env.lock"):
            self._ensure_venv()
            self.build_dir = self._ensure_build()
            if self.glance_patches:
                self.patched_glance_dir = self._ensure_patched_glance()
        return self

    def _ensure_venv(self) -> None:
        stamp = self.venv_dir / ".complete"
        if stamp.exists():
            os.utime(stamp)  # in use: _prune keeps it
            return
        self._log(f"installing glance 33 into {self.venv_dir} (once; about a minute)")
        shutil.rmtree(self.venv_dir, ignore_errors=True)
        log_file = self.cache_dir / "glance-venv-install.log"
        log_file.unlink(missing_ok=True)
        # The base interpreter, not .venv's: a venv made from a venv still gets the real one.
        _run([sys.executable, "-m", "venv", self.venv_dir], log_file=log_file)
        pip: list[str | os.PathLike[str]] = [
            self.python, "-m", "pip", "install", "--disable-pip-version-check", "-q"
        ]  # fmt: skip
        if self.constraints:
            pip += ["-c", self.constraints]
        _run([*pip, "--upgrade", "pip"], log_file=log_file)
        # One resolver run, so this project's dependencies cannot move glance's pins.
        _run(
            [
                *pip,
                *GLANCE_REQUIREMENTS,
                *build_requirements(self.repo),
                *self._project_dependencies(),
            ],
            log_file=log_file,
        )
        stamp.write_text(json.dumps({"created": time.time()}))

    def _source_files(self) -> list[Path]:
        files = [self.repo / name for name in _SNAPSHOT_FILES if (self.repo / name).is_file()]
        files.append(self.repo / _PASTE_MODULE)
        # etc/: the wheel's data files (pyproject's [tool.setuptools.data-files]).
        for path in sorted([*(self.repo / "src").rglob("*"), *(self.repo / "etc").rglob("*")]):
            rel = path.relative_to(self.repo)
            ignored = any(rel.match(pat) for pat in _SNAPSHOT_IGNORE) or any(
                part == "__pycache__" or part.endswith(".egg-info") for part in rel.parts
            )
            if path.is_file() and not ignored:
                files.append(path)
        return files

    def _ensure_build(self) -> Path:
        files = self._source_files()
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(self.repo)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        key = f"{self.venv_dir.name[-12:]}-{digest.hexdigest()[:12]}"
        target = self.cache_dir / f"datera-glance-{key}"
        if (target / ".complete").exists():
            os.utime(target)
            return target
        self._log("building datera-glance (compiled core included) for glance-api")
        work = Path(tempfile.mkdtemp(prefix="datera-glance-build-", dir=self.cache_dir))
        try:
            snapshot = work / "src-snapshot"
            for path in files:
                dest = snapshot / path.relative_to(self.repo)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            staged = work / "target"
            _run(
                [
                    self.python,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    "--no-deps",
                    "--no-build-isolation",
                    "--target",
                    staged,
                    snapshot,
                ],
                log_file=work / "build.log",
            )
            _add_paste_module(snapshot, staged)
            (staged / ".complete").write_text(str(time.time()))
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._prune(keep=target)
        return target

    def _ensure_patched_glance(self) -> Path:
        """A copy of the venv's ``glance`` package with ``glance_patches`` applied (cached)."""
        digest = hashlib.sha256()
        for patch in self.glance_patches:
            digest.update(patch.read_bytes() + b"\0")
        key = f"{self.venv_dir.name[-12:]}-{digest.hexdigest()[:12]}"
        target = self.cache_dir / f"glance-patched-{key}"
        if (target / ".complete").exists():
            os.utime(target)
            return target
        self._log(
            f"patching a copy of glance with {', '.join(p.name for p in self.glance_patches)}"
        )
        find = "import glance, os; print(os.path.dirname(glance.__file__))"
        package = Path(_run([self.python, "-c", find]).strip().splitlines()[-1])
        work = Path(tempfile.mkdtemp(prefix="glance-patched-", dir=self.cache_dir))
        try:
            staged = work / "target"
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(package, staged / "glance", ignore=ignore)
            for patch in self.glance_patches:
                _run(["patch", "-p1", "--forward", "--batch", "-d", staged, "-i", patch.resolve()],
                     log_file=work / "patch.log")  # fmt: skip
            (staged / ".complete").write_text(str(time.time()))
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target

    def _prune(self, keep: Path) -> None:
        """Drop builds and venvs nobody used for two days (other versions, old sources)."""
        now = time.time()
        for old in [
            *self.cache_dir.glob("datera-glance-*"),
            *self.cache_dir.glob("glance-patched-*"),
        ]:
            if old != keep and old.is_dir() and now - old.stat().st_mtime > _STALE_BUILD_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        for old in self.cache_dir.glob("glance-venv-*"):
            stamp = old / ".complete"
            if old == self.venv_dir or not old.is_dir() or not stamp.exists():
                continue
            if now - stamp.stat().st_mtime > _STALE_BUILD_SECONDS:
                shutil.rmtree(old, ignore_errors=True)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for glance's processes: this project's build first on the path."""
        if self.build_dir is None:
            raise RuntimeError("call ensure() first")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        # A patched copy of glance, if any, shadows the venv's stock one.
        paths = [self.patched_glance_dir, self.build_dir]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths if p is not None)
        env["PATH"] = f"{self.venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra or {})
        return env

    def copier_core(self) -> str:
        """Which copier core ``datera_glance.chunkio`` loads with glance's interpreter."""
        out = _run(
            [self.python, "-c", "import datera_glance.chunkio as c; print(c.CORE)"],
            env=self.env(),
        )
        return out.strip().splitlines()[-1]


def _find_pg_bin() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    return candidates[0].parent if candidates else None


def ensure_postgresql(log: Logger = LOG.info) -> Path:
    """The PostgreSQL binaries directory, installing Debian's ``postgresql`` when missing."""
    found = _find_pg_bin()
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql, as root)")
    log("installing PostgreSQL (apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "install", "-y", "-q", "postgresql"], env=env)
    except RuntimeError:
        _run(["apt-get", "update", "-q"], env=env)
        _run(["apt-get", "install", "-y", "-q", "postgresql"], env=env)
    found = _find_pg_bin()
    if not found:
        raise RuntimeError("postgresql installed but no pg_ctl under /usr/lib/postgresql")
    return found


class PostgreSQL:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with an empty database ``glance``.

    PostgreSQL refuses to run as root, so as root its commands run as the ``postgres`` user.
    Durability is off (``fsync=off``): the cluster is deleted afterwards anyway.
    """

    def __init__(self, *, database: str = "glance", log: Logger = LOG.info) -> None:
        self.database = database
        self.port = 0
        self._log = log
        self._dir: Path | None = None
        self._bin: Path | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL glance's ``[database] connection`` takes."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, name: str, *args: str) -> list[str]:
        assert self._bin is not None
        cmd = [str(self._bin / name), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> None:
        self._bin = ensure_postgresql(self._log)
        self._dir = Path(tempfile.mkdtemp(prefix="glance-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
        data = self._dir / "data"
        self.port = free_port()
        _run(self._cmd("initdb", "--auth=trust", "-U", "postgres", "-E", "UTF8", "-D", str(data)))
        opts = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log_file = self._dir / "postgresql.log"
        _run(self._cmd("pg_ctl", "-D", str(data), "-l", str(log_file), "-w", "-t", "60", "-o",
                       opts, "start"))  # fmt: skip
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database]
        _run(self._cmd("createdb", *args))

    def stop(self) -> None:
        if self._dir is None:
            return
        with contextlib.suppress(RuntimeError):
            _run(self._cmd("pg_ctl", "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop"))
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> PostgreSQL:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def datera_store_options(
    host: str,
    port: int,
    *,
    username: str,
    password: str,
    initiator_name: str,
    **overrides: object,
) -> dict[str, object]:
    """The ``[datera1]`` options for a glance-api on the simulator (plain HTTP, LOCAL attach)."""
    options: dict[str, object] = {
        "datera_san_ip": host,
        "datera_san_port": port,
        "datera_san_login": username,
        "datera_san_password": password,
        "datera_ssl": False,
        "datera_connector": "local",
        "datera_initiator_name": initiator_name,
        "datera_replica_count": 1,
    }
    options.update(overrides)
    return options


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class GlanceApi:
    """glance-api 33 under uwsgi (``glance.wsgi.api:application``), no Keystone.

    :param venv: an ensured :class:`GlanceVenv`
    :param base_dir: config, logs, staging and lock directories go here
    :param store_type: the ``glance_store.drivers`` entry point (``datera``, or ``file``)
    :param store_options: option lines for the backend's group
    :param database_url: SQLAlchemy URL; default sqlite in ``base_dir`` (not for concurrency)
    :param processes: uwsgi worker processes; ``threads`` per process
    :param extra_backends: more ``enabled_backends``: name -> (store type, its options)
    :param image_cache: glance's image cache (the ``cachemanagement`` pipeline, ``/v2/cache``)
    :param extra_config: more glance-api.conf options by section (``DEFAULT`` included); they
        win over the harness's own
    """

    def __init__(
        self,
        venv: GlanceVenv,
        base_dir: Path,
        *,
        store_type: str = "datera",
        backend: str = "datera1",
        store_options: Mapping[str, object] | None = None,
        database_url: str | None = None,
        processes: int = 2,
        threads: int = 4,
        import_methods: Sequence[str] = ("glance-direct",),
        show_locations: bool = False,
        debug: bool = True,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        extra_backends: Mapping[str, tuple[str, Mapping[str, object]]] | None = None,
        image_cache: bool = False,
        extra_config: Mapping[str, Mapping[str, object]] | None = None,
        log: Logger = LOG.info,
    ) -> None:
        self.venv = venv
        self.base_dir = base_dir
        self.store_type = store_type
        self.backend = backend
        self.store_options = dict(store_options or {})
        self.database_url = database_url or f"sqlite:///{base_dir / 'glance.sqlite'}"
        self.processes = processes
        self.threads = threads
        self.import_methods = tuple(import_methods)
        self.show_locations = show_locations
        self.debug = debug
        self.port = port or free_port()
        self.extra_env = dict(extra_env or {})
        self.extra_backends = dict(extra_backends or {})
        self.image_cache = image_cache
        self.extra_config = {k: dict(v) for k, v in (extra_config or {}).items()}
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._log_offset = 0
        self.etc_dir = base_dir / "etc"
        self.log_dir = base_dir / "log"
        self.lock_dir = base_dir / "lock"
        self.log_file = self.log_dir / "glance-api.log"
        self.uwsgi_log = self.log_dir / "uwsgi.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The uwsgi master's pid while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def pids(self) -> list[int]:
        """uwsgi's master and worker processes."""
        return process_tree(self.pid) if self.pid else []

    def setup(self) -> None:
        """Write the configuration and create the database schema."""
        for d in (self.etc_dir, self.log_dir, self.lock_dir):
            d.mkdir(parents=True, exist_ok=True)
        for store in ("staging", "tasks"):
            (self.base_dir / "data" / store).mkdir(parents=True, exist_ok=True)
        self._write_config()
        _run(
            [self.venv.bin("glance-manage"), "--config-file", self.etc_dir / "glance-api.conf",
             "db_sync"],
            log_file=self.log_dir / "db_sync.log",
            env=self.venv.env(),
        )  # fmt: skip

    def config_sections(self) -> dict[str, dict[str, object]]:
        """glance-api.conf as sections of options: the harness's own, then ``extra_backends``
        and ``extra_config`` (whose values win)."""
        b = self.base_dir
        backends = {self.backend: self.store_type}
        backends.update({name: kind for name, (kind, _) in self.extra_backends.items()})
        default: dict[str, object] = {
            "debug": self.debug,
            "log_file": self.log_file,
            "enabled_backends": ", ".join(f"{n}:{t}" for n, t in backends.items()),
            "enabled_import_methods": f"[{', '.join(self.import_methods)}]",
            "image_size_cap": 1099511627776,
        }
        if self.image_cache:
            # glance 33's default cache driver (centralized_db) names the node caching an image
            default.update(image_cache_dir=b / "cache", worker_self_reference_url=self.url)
        if self.show_locations:
            # Only when asked: merely setting show_multiple_locations logs a deprecation warning.
            default.update(show_image_direct_url=True, show_multiple_locations=True)
        sections: dict[str, dict[str, object]] = {
            "DEFAULT": default,
            "database": {"connection": self.database_url},
            "paste_deploy": {
                "flavor": self.paste_flavor,
                "config_file": self.etc_dir / "glance-api-paste.ini",
            },
            # Under pyuwsgi sys.executable is the system python, not glance's: the image
            # conversion plugin runs `python -m oslo_concurrency.prlimit -- qemu-img` with this.
            "wsgi": {"python_interpreter": self.venv.python},
            "glance_store": {"default_backend": self.backend},
            self.backend: {
                "store_description": f"{self.store_type} backend under test",
                **self.store_options,
            },
        }
        for name, (kind, options) in self.extra_backends.items():
            sections[name] = {"store_description": f"{kind} backend {name}", **options}
        for store in ("staging", "tasks"):
            sections[f"os_glance_{store}_store"] = {"filesystem_store_datadir": b / "data" / store}
        sections.update(
            oslo_concurrency={"lock_path": self.lock_dir},
            os_brick={"lock_path": self.lock_dir},
            privsep_osbrick={"helper_command": self.venv.bin("privsep-helper")},
            oslo_policy={"enforce_scope": False, "enforce_new_defaults": False},
        )
        for section, options in self.extra_config.items():
            sections.setdefault(section, {}).update(options)
        return sections

    def _write_config(self) -> None:
        text = "".join(
            f"[{section}]\n"
            + "".join(f"{k} = {_conf_value(v)}\n" for k, v in options.items())
            + "\n"
            for section, options in self.config_sections().items()
        )
        (self.etc_dir / "glance-api.conf").write_text(text)
        self._write_paste_ini()
        self._write_uwsgi_ini()

    def _write_uwsgi_ini(self) -> None:
        # glance's own uwsgi settings (devstack's glance-api uwsgi.ini), plus
        # chunked-input-limit: glanceclient sends 1 MiB parts and uwsgi's default limit
        # (1 MiB) fails them with HTTP 500; and py-sys-executable: pyuwsgi leaves sys.executable
        # at the system python, and oslo.concurrency's prlimit wrapper (qemu-img info in
        # legacy task imports) runs `sys.executable -m oslo_concurrency.prlimit`.
        (self.etc_dir / "uwsgi.ini").write_text(f"""\
[uwsgi]
http-socket = 127.0.0.1:{self.port}
module = glance.wsgi.api:application
master = true
processes = {self.processes}
threads = {self.threads}
enable-threads = true
lazy-apps = true
die-on-term = true
thunder-lock = true
buffer-size = 65535
add-header = Connection: close
socket-timeout = 600
http-raw-body = true
http-chunked-input = true
http-auto-chunked = true
chunked-input-limit = 67108864
chunked-input-timeout = 300
py-sys-executable = {self.venv.python}
""")

    @property
    def paste_flavor(self) -> str:
        return _CACHE_FLAVOR if self.image_cache else _PASTE_FLAVOR

    def _write_paste_ini(self) -> None:
        """glance's paste file plus our pipelines: its ``default`` and (``image_cache``) its
        ``cachemanagement`` one, each with our fixed-identity context filter."""
        paste = (self.venv.venv_dir / "etc" / "glance" / "glance-api-paste.ini").read_text()
        section = re.search(r"^\[composite:api\]\n((?:[^\[\n].*\n)*)", paste, re.M)
        found = (
            re.findall(r"^(default|cachemanagement) = (.*)$", section.group(1), re.M)
            if section
            else []
        )
        pipelines: dict[str, str] = dict(found)
        if (
            section is None
            or len(pipelines) != 2
            or any("unauthenticated-context" not in p for p in pipelines.values())
        ):
            raise RuntimeError("unexpected glance-api-paste.ini: no [composite:api] pipelines")
        ours = {
            _PASTE_FLAVOR: pipelines["default"],
            _CACHE_FLAVOR: pipelines["cachemanagement"],
        }
        lines = "".join(
            f"{flavor} = {pipeline.replace('unauthenticated-context', 'datera-noauth-context')}\n"
            for flavor, pipeline in ours.items()
        )
        composites = "".join(
            f"\n[composite:glance-api-{flavor}]\n"
            "paste.composite_factory = glance.api:root_app_factory\n"
            "/: api\n/healthcheck: healthcheck\n"
            for flavor in ours
        )
        paste = (
            paste[: section.end()]
            + lines
            + paste[section.end() :]
            + composites
            + "\n[filter:datera-noauth-context]\n"
            + "paste.filter_factory = demo.noauth:filter_factory\n"
        )
        (self.etc_dir / "glance-api-paste.ini").write_text(paste)

    def start(self, timeout: float = 120.0) -> None:
        """Start uwsgi and wait until ``/healthcheck`` answers."""
        if self.pid:
            return
        # pyuwsgi ignores the ini's "env =": the interpreter already exists when it reads it.
        env = self.venv.env(
            {"OS_GLANCE_CONFIG_DIR": str(self.etc_dir), "OSLO_LOCK_PATH": str(self.lock_dir),
             **self.extra_env}
        )  # fmt: skip
        self._out = self.uwsgi_log.open("ab")
        self._log_offset = self._out.tell()
        self._proc = subprocess.Popen(
            [str(self.venv.bin("uwsgi")), "--ini", str(self.etc_dir / "uwsgi.ini")],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.base_dir,
            start_new_session=True,  # its own group: Ctrl-C reaches us, and we stop it in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"glance-api exited ({self._proc.returncode}):\n{_tail(self.uwsgi_log)}\n"
                    f"{_tail(self.log_file)}"
                )
            if self._healthy():
                return
            if b"no app loaded" in self.uwsgi_log.read_bytes()[self._log_offset :]:
                self.stop()
                raise RuntimeError(
                    f"glance-api failed to load:\n{_tail(self.log_file)}\n{_tail(self.uwsgi_log)}"
                )
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"glance-api did not become healthy:\n{_tail(self.uwsgi_log)}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Stop uwsgi (SIGTERM; SIGKILL to its process group after ``timeout``) and return
        once every process of the group is reaped: workers of a master that died are init's
        children, and until init reaps them they hold the port and count as alive."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    LOG.warning("glance-api did not stop in %.0f s; killing it", timeout)
            # Workers left behind by a master that died: they are all in its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + timeout
            while (left := host.group_members(proc.pid)) and time.monotonic() < deadline:
                time.sleep(0.05)
            if left:
                LOG.warning("glance-api's processes %s were not reaped in %.0f s", left, timeout)
        if self._out is not None:
            self._out.close()
            self._out = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> GlanceApi:
        self.setup()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SimulatorProcess:
    """``datera-glance simulator`` as a child process (the demo's cluster).

    :param media: ``loop`` (root: real block devices) or ``file`` (sparse files)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        media: str,
        username: str = "admin",
        password: str | None = None,
        capacity: str | None = None,
        python: str = sys.executable,
    ) -> None:
        self.data_dir = data_dir
        self.media = media
        self.username = username
        # Random unless given; the child reads it from its environment, never its argv.
        self.password = password or generate_password()
        self.capacity = capacity
        self.python = python
        self.host = "127.0.0.1"
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self.log_file = data_dir / "simulator.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, "-m", "datera_glance.cli", "simulator", "--host", self.host,
               "--port", str(free_port()), "--media", self.media,
               "--data-dir", str(self.data_dir), "--user", self.username]  # fmt: skip
        if self.capacity:
            cmd += ["--capacity", self.capacity]
        log = self.log_file.open("a")
        self._proc = subprocess.Popen(
            cmd,
            env={**os.environ, PASSWORD_ENV: self.password},
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        log.close()
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on https?://([^:/\s]+):(\d+)", line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return
        self.stop()
        raise RuntimeError(f"the simulator did not start:\n{_tail(self.log_file)}")

    def state(self) -> dict[str, Any]:
        """``GET /_sim/state``: app instances, loop devices, initiators, capacity."""
        return SimControl.for_data_dir(self.url, self.data_dir).state()

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it detaches its loop devices on the way out
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

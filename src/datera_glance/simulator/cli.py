"""``datera-glance simulator``: run the EDF simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from oslo_utils import units

from datera_glance.edf import versions
from datera_glance.simulator.facade import Simulator
from datera_glance.simulator.media import MediaError
from datera_glance.simulator.persistence import ensure_data_dir, write_file_atomic

#: The login password, when no --password-file is given (never on the command line).
PASSWORD_ENV = "DATERA_GLANCE_SIM_PASSWORD"  # noqa: S105 (a variable name)
#: In the data directory: the password generated when none is given.
PASSWORD_FILE = "password"  # noqa: S105 (a file name)

_UNITS = {"": 1, "B": 1, "K": units.Ki, "M": units.Mi, "G": units.Gi, "T": units.Ti, "P": units.Pi}


def parse_size(text: str) -> int:
    """``100GiB``, ``1.5TiB``, ``512M``, ``1073741824`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _versions(text: str) -> tuple[str, ...]:
    names = tuple(v.strip().lstrip("v") for v in text.split(",") if v.strip())
    if not names or any(v not in versions.NAMES for v in names):
        known = ", ".join(versions.NAMES)
        raise argparse.ArgumentTypeError(f"API versions must be some of {known}, not {text!r}")
    return names


def _sw_version(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+){1,3}", text):
        raise argparse.ArgumentTypeError(f"not a version like 3.2.5.0: {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=7717, help="port; 0 picks a free one (7717)")
    parser.add_argument("--tls", action="store_true", help="HTTPS; the CA is DIR/tls/cert.pem")
    parser.add_argument(
        "--media",
        choices=("file", "loop"),
        default="file",
        help="where volumes live: device_path is the sparse file, or a loop device (root)",
    )
    # The old spelling, kept so that existing command lines work ("backend" is glance's word).
    parser.add_argument(
        "--backend",
        dest="media",
        choices=("file", "loop"),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--iscsi", action="store_true", help=ISCSI_HELP)
    parser.add_argument("--data-dir", required=True, help="state, volume files, tls/")
    parser.add_argument("--user", default="admin", help="login name (admin)")
    parser.add_argument(
        "--password-file",
        help=f"file whose first line is the login password; else ${PASSWORD_ENV}; else "
        f"DATA_DIR/{PASSWORD_FILE}, generated (0600) when missing",
    )
    # Refused in run(): a password on the command line is in every local user's ps.
    parser.add_argument("--password", help=argparse.SUPPRESS)
    parser.add_argument(
        "--capacity",
        type=parse_size,
        default=100 * units.Gi,
        help="cluster capacity, e.g. 100GiB (default)",
    )
    parser.add_argument(
        "--api-versions",
        type=_versions,
        default=versions.NAMES,
        help=f"comma-separated: {','.join(versions.NAMES)} (default)",
    )
    parser.add_argument(
        "--sw-version",
        type=_sw_version,
        default="3.2.5.0",
        help="product version reported by /system (3.2.5.0)",
    )
    parser.add_argument(
        "--session-ttl",
        type=float,
        default=900.0,
        help="idle seconds before a session key expires (900)",
    )
    parser.add_argument(
        "--available-delay",
        type=float,
        default=0.0,
        help="seconds a storage instance stays unavailable after online (0)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")


def generate_password() -> str:
    """A random login password EDF's schema accepts (a letter or ``_`` first, then letters,
    digits, ``_``, ``-``, ``.``; 3 to 128 characters)."""
    return "sim_" + secrets.token_urlsafe(24)


class PasswordError(ValueError):
    """The password file named on the command line cannot be used."""


def read_password(args: argparse.Namespace) -> str:
    """The login password: ``--password-file``, else ``$DATERA_GLANCE_SIM_PASSWORD``, else
    ``DATA_DIR/password`` (generated when missing; says so on stderr). Call it after
    ``ensure_data_dir``: the generated one is written there."""
    if args.password_file:
        try:
            lines = Path(args.password_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PasswordError(f"--password-file {args.password_file}: {exc}") from None
        if not lines or not lines[0]:
            raise PasswordError(f"--password-file {args.password_file}: its first line is empty")
        return lines[0]
    if os.environ.get(PASSWORD_ENV):
        return os.environ.pop(PASSWORD_ENV)  # not passed on to losetup
    path = Path(args.data_dir) / PASSWORD_FILE
    if path.exists():
        lines = path.read_text().splitlines()
        if lines and lines[0]:
            print(f"simulator: login password from {path}", file=sys.stderr)
            return lines[0]
    password = generate_password()
    write_file_atomic(path, password.encode() + b"\n", 0o600)
    print(
        f"simulator: no --password-file or ${PASSWORD_ENV}: generated a login password "
        f"into {path} (mode 0600)",
        file=sys.stderr,
    )
    return password


ISCSI_HELP = (
    "serve online storage instances as real iSCSI targets on 127.0.0.1 and 127.0.0.2 (root)"
)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _needs_root(args: argparse.Namespace) -> str | None:
    """Why these arguments need root, when not run as root."""
    if os.geteuid() == 0:
        return None
    if args.media == "loop":
        return "--media loop needs root (losetup); use --media file"
    if args.iscsi:
        return "--iscsi needs root (the kernel's iSCSI target)"
    return None


def run(args: argparse.Namespace) -> int:
    if args.password is not None:
        print(
            "error: --password shows the password to every local user (ps); use "
            f"--password-file FILE or the environment variable {PASSWORD_ENV}",
            file=sys.stderr,
        )
        return 2
    if missing_root := _needs_root(args):
        return _usage_error(missing_root)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:
        logging.getLogger("datera_glance.simulator").setLevel(logging.INFO)
    try:
        ensure_data_dir(Path(args.data_dir))
        password = read_password(args)
    except (OSError, ValueError) as exc:
        print(f"error: cannot start the simulator: {exc}", file=sys.stderr)
        return 1
    sim = Simulator(
        args.data_dir,
        host=args.host,
        port=args.port,
        tls=args.tls,
        media=args.media,
        username=args.user,
        password=password,
        capacity_bytes=args.capacity,
        api_versions=args.api_versions,
        sw_version=args.sw_version,
        session_ttl=args.session_ttl,
        available_delay=args.available_delay,
        iscsi=args.iscsi,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except (OSError, MediaError, ValueError) as exc:
            print(f"error: cannot start the simulator: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"listening on {sim.url}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            sim.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0

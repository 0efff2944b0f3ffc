"""Configuration options of the Datera EDF image store.

The upstream driver's eight options keep their names and defaults, so existing
``glance-api.conf`` files keep working. Every option lives in the backend's group
(multistore, ``enabled_backends = NAME:datera``) or in ``[glance_store]`` (legacy).

Each option is declared once, in ``SETTINGS``: its oslo.config ``Opt``, the ``StoreSettings``
field it fills and the check of its value. ``read`` gives the store every field, checked;
``list_opts`` gives oslo-config-generator (the sample config and the configuration docs) the
same ``Opt`` objects. Nothing else reads, casts or checks an option's value
(tests/unit/test_option_table.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oslo_config import cfg
from oslo_utils import units

from datera_glance.edf import normalize_tenant, versions
from datera_glance.edf.config import SYSTEM_CA, system_ca_bundle

DEFAULT_PORT = 7718
DEFAULT_TENANT = "/root"
DEFAULT_REPLICA_COUNT = 3
MAX_REPLICA_COUNT = 5  # EDF's volume schema: replica_count 1..5
PLACEMENT_MODES = ("hybrid", "single_flash", "all_flash")
DEFAULT_GROWTH_STEP = 1 * units.Gi  # datera_chunk_size (the upstream name of the option)
API_VERSIONS = (versions.AUTO, *versions.NEGOTIATION_ORDER)  # the choices of datera_api_version
CONNECTORS = ("iscsi", "local")
DEFAULT_IMAGE_SIZE_GIB = 1
CHAP_KEY_MIN_LENGTH = 16
CHAP_KEY_MIN_DISTINCT = 10  # characters; a random key of 16 has about 14
DEFAULT_IO_BUFFER_SIZE = 4 * units.Mi
# Chosen by the benchmark sweep (benchmarks/results/summary.md): with md5 and sha512 on their
# own threads, 4 buffers in flight kept the device busy where 2 left it waiting on the hashes.
DEFAULT_IO_DEPTH = 4
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_RETRY_DEADLINE = 120.0
DEFAULT_ROOTWRAP_CONFIG = "/etc/glance/rootwrap.conf"
DEFAULT_ATTACH_LINGER = 30.0


# -- checks of the values (the store turns OptionError into BadStoreConfiguration) ------------

# One DNS label (RFC 1123), the same rule as the host pattern in EDF's own schema.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# EDF's schema for an initiator id (POST /initiators): an IQN or an EUI.
INITIATOR_ID = re.compile(
    r"(?=.{16,223}$)iqn\.[0-9]{4}-[0-1][0-9]\.[^/]*\.[^/]*|eui\.[0-9A-Fa-f]{16}"
)
_TENANT_FIX = (
    "use /root, /root/NAME or NAME, where each NAME is made of letters, digits, '_', '-' and '.'"
)
_CHAP_KEY_FIX = "set it to the same random value on every glance-api host (openssl rand -base64 24)"


class OptionError(ValueError):
    """A bad option value; the message names the option, what is wrong and the fix."""

    def __init__(self, option: str, problem: str, fix: str) -> None:
        super().__init__(f"{option} {problem}: {fix}")
        self.option = option


def value(group: Any, name: str) -> Any:
    """``group.<name>``; oslo.config's own range and choice errors (raised when the value
    is read, not when the file is parsed) become ``OptionError``."""
    try:
        return getattr(group, name)
    except ValueError as e:  # cfg.ConfigFileValueError
        problem = str(e).rpartition("is not valid: ")[2]
        raise OptionError(name, f"is not valid ({problem})", _range_fix(name)) from e
    except cfg.Error as e:  # e.g. "$x" in the value: oslo.config substitutes other options
        raise OptionError(
            name, f"cannot be read ({e})", "write '$$' for a '$' that is part of the value"
        ) from e


def _range_fix(name: str) -> str:
    kind = getattr(_BY_NAME.get(name), "type", None)
    choices = getattr(kind, "choices", None)
    if choices:
        return "use one of " + ", ".join(str(c) for c in choices)
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    if low is not None and high is not None:
        return f"use a value from {low} to {high}"
    if low is not None:
        return f"use a value of at least {low}"
    return "fix the value in glance-api.conf"


def san_ip(text: str) -> str:
    """An IP address or a host name: a URL, a port or a path are refused."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text))
    labels = text.split(".")
    names = len(text) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)
    if names and not labels[-1].isdigit():  # "10.0.0.300" is a bad address, not a name
        return text
    raise OptionError(
        "datera_san_ip",
        f"{text!r} is not a host name or an IP address",
        "give the management address alone, e.g. 10.0.0.5, fd00::5 or edf.example.com "
        "(no scheme, port or path; the port is datera_san_port)",
    )


def io_buffer_size(size: int) -> int:
    """O_DIRECT needs whole pages: refuse rather than silently change the value."""
    if size % 4096:
        rounded = -(-size // 4096) * 4096
        raise OptionError(
            "datera_io_buffer_size",
            f"{size} is not a multiple of 4096",
            f"use {rounded} or another multiple of 4096 up to {64 * units.Mi}",
        )
    return size


def tenant(text: str | None) -> str:
    """The tenant path, by the EDF client's own rule (``datera_glance.edf.normalize_tenant``)."""
    try:
        return normalize_tenant(text)
    except ValueError as e:
        raise OptionError("datera_tenant_id", f"{text!r} is not a tenant ({e})", _TENANT_FIX) from e


def ca_file(path: str | None) -> str | None:
    """A CA bundle that can be loaded now, not at the first request (requests would raise a
    bare OSError there, far from the configuration); ``system`` if this host has one; None
    when unset."""
    if not path:
        return None
    if path == SYSTEM_CA:
        if system_ca_bundle() is None:
            raise OptionError(
                "datera_ssl_ca_file",
                "system: this host has no system CA bundle "
                f"({ssl.get_default_verify_paths().openssl_cafile} is missing)",
                "install the ca-certificates package, or give the path of a PEM CA bundle",
            )
        return path
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise OptionError(
            "datera_ssl_ca_file",
            f"{path!r} cannot be loaded ({e})",
            "point it at a readable PEM CA bundle, or set it to system for the system's CAs",
        ) from e
    return path


def initiator_name(text: str | None) -> str | None:
    """EDF would refuse a bad one at the first upload (422 from POST /initiators): say it now."""
    if text and not INITIATOR_ID.fullmatch(text):
        raise OptionError(
            "datera_initiator_name",
            f"{text!r} is not an iSCSI IQN or EUI",
            "use e.g. iqn.2004-10.com.example:host1",
        )
    return text


def chap_key(key: str | None) -> str:
    """Unset is ``""``; what CHAP needs of the key is ``chap_key_rule``'s (other options)."""
    return key or ""


def chap_key_rule(values: Mapping[str, Any]) -> None:
    """``datera_chap_key``: needed for CHAP on iSCSI, a random key of its own (the CHAP
    secrets are derived from it, see ``attach.chap``). ``values`` by option name."""
    key = values["datera_chap_key"] or ""
    if not (values["datera_use_chap"] and values["datera_connector"] == "iscsi"):
        return
    name = "datera_chap_key"
    if not key:
        raise OptionError(name, "is not set (datera_use_chap)", _CHAP_KEY_FIX)
    if len(key) < CHAP_KEY_MIN_LENGTH:
        raise OptionError(name, f"is shorter than {CHAP_KEY_MIN_LENGTH} characters", _CHAP_KEY_FIX)
    if key == values["datera_san_password"]:
        raise OptionError(name, "is the cluster password", _CHAP_KEY_FIX)
    if len(set(key)) < CHAP_KEY_MIN_DISTINCT:
        # The wire carries a response to test guesses of the key against: no patterns.
        raise OptionError(
            name, f"has fewer than {CHAP_KEY_MIN_DISTINCT} different characters", _CHAP_KEY_FIX
        )


# -- the options: each declared once, with the settings field it fills and its check ----------


@dataclass(frozen=True)
class Setting:
    """One option: its oslo.config declaration, the ``StoreSettings`` field it fills (the
    name without ``datera_`` unless given), and the check that turns the value oslo.config
    typed into the field's value (OptionError naming the option and the fix)."""

    opt: cfg.Opt
    field: str = ""
    check: Callable[[Any], Any] | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.opt.name.removeprefix("datera_"))


SETTINGS: tuple[Setting, ...] = (
    Setting(
        cfg.StrOpt(
            "datera_san_ip",
            help="""
Host name or IP address of the Datera EDF cluster's management interface.

Required. Locations of stored images carry this address (``datera://IP:PORT/...``) so that
glance can tell which backend an image belongs to.

Possible values:
    * A host name, an IPv4 address or an IPv6 address

Related options:
    * datera_san_port
    * datera_san_login
    * datera_san_password
""",
        ),
        check=san_ip,
        required=True,
    ),
    Setting(
        cfg.StrOpt(
            "datera_san_login",
            help="""
User name for the Datera EDF REST API.

Required.

Related options:
    * datera_san_password
""",
        ),
        field="login",
        required=True,
    ),
    Setting(
        cfg.StrOpt(
            "datera_san_password",
            secret=True,
            help="""
Password for the Datera EDF REST API.

Required. Never logged.

Related options:
    * datera_san_login
""",
        ),
        field="password",
        required=True,
    ),
    Setting(
        cfg.PortOpt(
            "datera_san_port",
            default=DEFAULT_PORT,
            min=1,
            help="""
TCP port of the Datera EDF REST API.

7718 is the HTTPS port, 7717 the plain HTTP port.

Related options:
    * datera_ssl
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_tenant_id",
            default=DEFAULT_TENANT,
            help="""
Datera tenant under which images are stored.

Missing tenants are created (every level). A short name ``a`` means ``/root/a``.

Possible values:
    * ``/root``
    * A tenant path such as ``/root/glance`` or ``/root/a/b``, or a name such as ``glance``
""",
        ),
        field="tenant",
        check=tenant,
    ),
    Setting(
        cfg.IntOpt(
            "datera_replica_count",
            default=DEFAULT_REPLICA_COUNT,
            min=1,
            max=MAX_REPLICA_COUNT,
            help="""
Number of replicas of each image volume (EDF allows 1 to 5).
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_placement_mode",
            default="hybrid",
            choices=PLACEMENT_MODES,
            help="""
Media placement of image volumes.

Possible values:
    * ``hybrid``: hybrid placement
    * ``single_flash``: one replica on flash
    * ``all_flash``: every replica on flash
""",
        ),
    ),
    Setting(
        cfg.IntOpt(
            "datera_chunk_size",
            default=DEFAULT_GROWTH_STEP,
            min=1,
            help="""
Growth step, in bytes, for uploads whose size is not known in advance.

An upload without a size (a chunked upload, a ``web-download`` import from a server that sends
no Content-Length) starts with a volume of ``datera_default_image_size`` GiB; whenever it is
full, the volume grows by this step, rounded up to whole GiB (at most 64 GiB). Each growth
detaches the volume, takes it offline, resizes it, brings it online and attaches it again.

With the default, 1 GiB, the volume ends at the smallest whole GiB that holds the image. EDF
cannot shrink a volume, and Datera's Cinder driver clones an image's volume and then sets the
size the user asked for, so a volume larger than the image's size in GiB breaks that clone.
A larger step means fewer resizes but a volume up to one step larger than needed.

This option no longer decides how much memory a transfer uses: data is copied through a few
buffers of ``datera_io_buffer_size`` bytes whatever this value is.

Related options:
    * datera_default_image_size
    * datera_io_buffer_size
""",
        ),
        field="growth_step",
    ),
    Setting(
        cfg.BoolOpt(
            "datera_ssl",
            help="""
Use HTTPS for the Datera EDF REST API.

Unset: HTTPS, except on port 7717 (the plain HTTP port).

Related options:
    * datera_san_port
    * datera_ssl_verify
    * datera_ssl_ca_file
""",
        ),
    ),
    Setting(
        cfg.BoolOpt(
            "datera_ssl_verify",
            default=True,
            help="""
Verify the cluster's TLS certificate.

Related options:
    * datera_ssl_ca_file
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_ssl_ca_file",
            help="""
CA bundle used to verify the cluster's TLS certificate.

Unset: the CA bundle that python-requests uses (the ``certifi`` package's, or the file named
by ``REQUESTS_CA_BUNDLE`` in glance-api's environment), not the operating system's trusted
CAs: a private CA added with ``update-ca-certificates`` is not in it.

Possible values:
    * ``system``: the operating system's trusted CAs (OpenSSL's default bundle, e.g.
      ``/etc/ssl/certs/ca-certificates.crt``)
    * The path of a PEM CA bundle

Related options:
    * datera_ssl_verify
""",
        ),
        check=ca_file,
    ),
    Setting(
        cfg.StrOpt(
            "datera_api_version",
            default="auto",
            choices=API_VERSIONS,
            help=f"""
Datera EDF REST API version.

Possible values:
    * ``auto``: the newest version the cluster offers ({", else ".join(versions.NEGOTIATION_ORDER)})
{"".join(f"    * ``{name}``{chr(10)}" for name in versions.NEGOTIATION_ORDER)}""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_connector",
            default="iscsi",
            choices=CONNECTORS,
            help="""
How image volumes are attached to the glance-api host.

Possible values:
    * ``iscsi``: os-brick's iSCSI connector (production)
    * ``local``: os-brick's LOCAL connector on the device path that the Datera EDF simulator
      reports (tests and demos)

Related options:
    * datera_use_chap
    * datera_initiator_name
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_initiator_name",
            help="""
iSCSI initiator name registered in app instance ACLs for this host.

Used only where os-brick reports no initiator of its own (the ``local`` connector, or hosts
without ``/etc/iscsi/initiatorname.iscsi``).

Related options:
    * datera_connector
""",
        ),
        check=initiator_name,
    ),
    Setting(
        cfg.BoolOpt(
            "datera_use_chap",
            default=False,
            help="""
Protect image volumes with CHAP (``iscsi`` connector).

Each image volume gets its own CHAP secret, derived from ``datera_chap_key``, set on its
storage instance at every attach and handed to os-brick; secrets are never stored or logged,
and nothing EDF shows or iSCSI sends is derived from them.

Related options:
    * datera_chap_key
    * datera_connector
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_chap_key",
            secret=True,
            help=f"""
Key from which each image volume's CHAP secret is derived (required with ``datera_use_chap``).

At least {CHAP_KEY_MIN_LENGTH} characters ({CHAP_KEY_MIN_DISTINCT} different ones), random
(``openssl rand -base64 24``): an iSCSI login's CHAP exchange lets an eavesdropper test guesses
of it offline. Not the cluster password, and the same on every glance-api host of the
cluster: each host derives the secrets itself. Changing it: change it on every host
together; each image's target gets the new secret at its next attach.

Related options:
    * datera_use_chap
""",
        ),
        check=chap_key,
    ),
    Setting(
        cfg.BoolOpt(
            "datera_use_multipath",
            default=False,
            help="""
Attach image volumes through every iSCSI portal of their access, as one dm-multipath device
(``iscsi`` connector; as ``cinder_use_multipath`` of glance's cinder store).

Needs multipath-tools with ``multipathd`` running on the glance-api host.

Related options:
    * datera_connector
""",
        ),
    ),
    Setting(
        cfg.IntOpt(
            "datera_default_image_size",
            default=DEFAULT_IMAGE_SIZE_GIB,
            min=1,
            help="""
Initial volume size, in GiB, of an upload whose size is not known in advance.

Also the smallest volume such an upload ends on: above 1, small images get volumes larger
than they need.

Related options:
    * datera_chunk_size
""",
        ),
        field="default_image_size_gib",
    ),
    Setting(
        cfg.IntOpt(
            "datera_io_buffer_size",
            default=DEFAULT_IO_BUFFER_SIZE,
            min=4096,
            max=64 * units.Mi,
            help="""
Size in bytes of each aligned O_DIRECT buffer used to copy image data.

The default, 4 MiB, came out best in the benchmark sweep (64 KiB to 64 MiB) on loop devices
with direct I/O; below 1 MiB every I/O costs too much, above 16 MiB nothing is gained.

Also the size of the pieces a download is sent in. Memory per transfer is about
``(datera_io_depth + 2) * datera_io_buffer_size``. Must be a multiple of 4096 (O_DIRECT
alignment).

Buffers of 2 MiB and more use transparent huge pages where the kernel offers them
(``/sys/kernel/mm/transparent_hugepage/enabled`` set to ``always`` or ``madvise``): device
reads and writes into huge pages ran about twice as fast on the loop simulator as into small
pages, so prefer a multiple of 2 MiB.

Related options:
    * datera_io_depth
""",
        ),
        check=io_buffer_size,
    ),
    Setting(
        cfg.IntOpt(
            "datera_io_depth",
            default=DEFAULT_IO_DEPTH,
            min=1,
            max=64,
            help="""
Number of O_DIRECT reads or writes kept in flight on the device per transfer.

With 4 (the default) an upload hashing md5 and sha512 ran 1.2-1.4 times faster than with 2
in a 1 GiB loop-device probe: the writes go on while the hash threads catch up. Memory per
transfer is ``(datera_io_depth + 2) * datera_io_buffer_size``, 24 MiB with the defaults.

Related options:
    * datera_io_buffer_size
""",
        ),
    ),
    Setting(
        cfg.BoolOpt(
            "datera_skip_zero_blocks",
            default=False,
            help="""
Do not write all-zero blocks of an image (thin provisioning).

New Datera volumes read back zeros where never written, so skipping zero blocks saves space
and time for sparse images. Like ``rbd_thin_provisioning`` and
``filesystem_thin_provisioning``.
""",
        ),
    ),
    Setting(
        cfg.FloatOpt(
            "datera_request_timeout",
            default=DEFAULT_REQUEST_TIMEOUT,
            min=1,
            help="""
Seconds to wait for the cluster's answer to one REST request.

The whole answer, not each read of it: an answer still incomplete after this (plus the
connect time-out, at most 10 seconds) fails like a time-out and the call is retried until
``datera_retry_deadline``.

Related options:
    * datera_retry_deadline
""",
        ),
    ),
    Setting(
        cfg.FloatOpt(
            "datera_retry_deadline",
            default=DEFAULT_RETRY_DEADLINE,
            min=0,
            help="""
Seconds during which one REST call is retried on connection errors and HTTP 503.

Also the time allowed for a storage instance to become available after an attach or a resize.

Related options:
    * datera_request_timeout
""",
        ),
    ),
    Setting(
        cfg.StrOpt(
            "datera_rootwrap_config",
            default=DEFAULT_ROOTWRAP_CONFIG,
            deprecated_opts=[cfg.DeprecatedOpt("datera_glance_rootwrap_config")],
            help="""
Path to the rootwrap configuration used for privileged commands.

Commands run as ``sudo glance-rootwrap <this file> ...``: os-brick's privsep helper, and the
temporary ``chown`` of an attached device when glance-api does not run as root. The shipped
``etc/glance/rootwrap.d/images.filters`` lists what is allowed.
""",
        ),
    ),
    Setting(
        cfg.FloatOpt(
            "datera_attach_linger",
            default=DEFAULT_ATTACH_LINGER,
            min=0,
            help="""
Seconds an image's volume stays attached to this host after its last reader.

Reads of one image that follow each other within this time (instances booting one after
another from the same image) attach the volume once instead of paying an iSCSI login and
logout each. The count of readers is shared by every glance-api process of the host.
Deleting the image detaches a lingering attachment first; glance-api's shutdown detaches
those of its idle workers (uwsgi skips the exit hooks of a worker busy with a request), and
the next start of glance-api detaches whatever a crash or a busy worker left.

Possible values:
    * 0: detach as soon as the last reader is done
    * A positive number of seconds
""",
        ),
    ),
)

_OPTS: list[cfg.Opt] = [setting.opt for setting in SETTINGS]
_BY_NAME = {opt.name: opt for opt in _OPTS}
_SETTING = {setting.opt.name: setting for setting in SETTINGS}
# Checks over several options, run after every option's own check.
_RULES: tuple[Callable[[Mapping[str, Any]], None], ...] = (chap_key_rule,)


def get_opts() -> list[cfg.Opt]:
    """Return fresh copies of the options (glance registers them per backend group)."""
    return list(_OPTS)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for oslo-config-generator (entry point ``oslo.config.opts: datera_glance``)."""
    return [("glance_store", get_opts())]


def read(group: Any) -> dict[str, Any]:
    """Every option of ``group`` (a backend group or ``conf.glance_store``), checked, by
    ``StoreSettings`` field; OptionError for the first bad value in declaration order."""
    values = {setting.opt.name: _raw(group, setting) for setting in SETTINGS}
    fields = {setting.field: _checked(setting, values[setting.opt.name]) for setting in SETTINGS}
    for rule in _RULES:
        rule(values)
    return fields


def read_one(group: Any, name: str) -> Any:
    """One option of ``group``, checked (what ``read`` gives its field)."""
    setting = _SETTING[name]
    return _checked(setting, _raw(group, setting))


def _raw(group: Any, setting: Setting) -> Any:
    found = value(group, setting.opt.name)
    if setting.required and not found:
        raise OptionError(setting.opt.name, "is not set", "set it in the backend's section")
    return found


def _checked(setting: Setting, found: Any) -> Any:
    return found if setting.check is None else setting.check(found)

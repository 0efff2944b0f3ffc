"""Where and how to reach one EDF cluster: ``ClientConfig`` and the project's tenant normaliser.

``normalize_tenant`` is the one place that turns a configured or parsed tenant into EDF's
tenant path; the Store and the client both use it. It knows nothing of HTTP.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field

__all__ = [
    "API_VERSIONS",
    "HTTPS_PORT",
    "HTTP_PORT",
    "SYSTEM_CA",
    "TENANT_NAME_RULE",
    "ClientConfig",
    "normalize_tenant",
    "system_ca_bundle",
]

HTTP_PORT = 7717
HTTPS_PORT = 7718
API_VERSIONS = ("2.2", "2.1")  # "auto" tries them in this order
#: ``ca_file`` meaning the operating system's trusted CAs. Without a ``ca_file`` requests
#: verifies against its own bundle (certifi's, or ``REQUESTS_CA_BUNDLE``), not the system's.
SYSTEM_CA = "system"


def system_ca_bundle() -> str | None:
    """The operating system's CA bundle as OpenSSL finds it (a file, else a hashed
    directory, e.g. ``/etc/ssl/certs``), or None when this host has none."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.capath):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


# A tenant path segment, from EDF's v2.1 schema (POST /tenants "name", and the
# /tenants/:tenant_path route): a name of letters, digits, '_', '-', '.' that starts with a
# letter or '_', or a UUID (which may start with a digit). The schema's 3-64 length is left to
# the server, so that "a" -> "/root/a" keeps working where the server allows it.
_TENANT_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-\.]*")
TENANT_NAME_RULE = (
    "each level is letters, digits, '_', '-' or '.', starting with a letter, digit or '_'"
)


def normalize_tenant(tenant: str | None) -> str:
    """EDF's tenant path: ``None``/``""``/``root`` -> ``/root``, ``a`` -> ``/root/a``.

    ``/root/a/b`` and ``a/b`` both give ``/root/a/b``; surrounding whitespace and slashes are
    dropped. Unlike upstream's ``_format_tenant``, a name merely containing "root" is not
    mapped to ``/root``.

    :raises ValueError: a level breaks EDF's tenant name rule (the message names both).
    """
    text = (tenant or "").strip().strip("/")
    if not text:
        return "/root"
    parts = text.split("/")
    if parts[0] == "root":
        parts = parts[1:]
    for part in parts:
        if not _TENANT_SEGMENT.fullmatch(part):
            raise ValueError(
                f"invalid EDF tenant {tenant!r}: level {part!r} breaks the rule "
                f"({TENANT_NAME_RULE})"
            )
    return "/" + "/".join(["root", *parts])


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach one EDF cluster."""

    host: str
    port: int = HTTPS_PORT
    username: str = ""
    password: str = field(default="", repr=False)
    tenant: str = "/root"  # "/root", "/root/a", "/root/a/b"; "a" -> "/root/a"
    api_version: str = "auto"  # "auto" | "2.2" | "2.1"
    ssl: bool | None = None  # None: https unless port == 7717
    ssl_verify: bool = True
    ca_file: str | None = None  # a PEM bundle, or SYSTEM_CA
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_deadline: float = 120.0  # total time for retries of one call

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant", normalize_tenant(self.tenant))
        version = self.api_version.strip().lstrip("v")
        if version not in ("auto", *API_VERSIONS):
            raise ValueError(f"api_version must be auto, 2.2 or 2.1, not {self.api_version!r}")
        object.__setattr__(self, "api_version", version)
        if not self.host:
            raise ValueError("host is required")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.retry_deadline < 0:
            raise ValueError("timeouts must be positive and retry_deadline not negative")

    @property
    def use_ssl(self) -> bool:
        return self.ssl if self.ssl is not None else self.port != HTTP_PORT

    @property
    def base_url(self) -> str:
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        scheme = "https" if self.use_ssl else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def verify(self) -> bool | str:
        """``requests``' ``verify``: the CA file when one is given (``SYSTEM_CA``: the system's
        bundle), else ``ssl_verify`` (True: requests' own bundle)."""
        if self.use_ssl and self.ssl_verify and self.ca_file == SYSTEM_CA:
            return system_ca_bundle() or self.ssl_verify
        if self.use_ssl and self.ssl_verify and self.ca_file:
            return self.ca_file
        return self.ssl_verify

"""Glance image store backed by Datera EDF: one app instance (one volume) per image.

``Store`` is loaded by glance through the entry point ``glance_store.drivers: datera``.
Every method is thin: the EDF client (``datera_glance.edf``) talks to the cluster, the
attacher (``datera_glance.attach``) turns an app instance into a local block device, and the
copier (``datera_glance.chunkio``) moves the bytes with O_DIRECT and hashes them on its own
threads. One ``Store`` serves every thread of a glance-api worker: nothing per request is kept
on ``self``.

Location URIs: ``datera://<san_ip>:<san_port>/app_instances/<image_id>`` (the upstream
driver's form) for images in tenant ``/root``; for other tenants the tenant path goes before
``/app_instances``, e.g. ``datera://10.0.0.1:7718/root/glance/app_instances/<image_id>``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from glance_store import capabilities, driver, exceptions
from glance_store import location as glance_location
from glance_store.common import utils
from oslo_concurrency import opts as lock_opts
from oslo_config import cfg
from oslo_utils import units

from datera_glance import chunkio, options
from datera_glance.attach import (
    Attacher,
    AttachError,
    Attachment,
    AttachSettings,
    ConnectorFactory,
    Executor,
    TimerFactory,
    thread_timer,
)
from datera_glance.edf import ClientConfig, EdfClient, errors, models

LOG = logging.getLogger(__name__)

SCHEME = "datera"
MAX_GROWTH_STEP_GIB = 64
AI_PREFIX = "OS-IMAGE-"
# EDF's schema for an initiator id (POST /initiators): an IQN or an EUI.
INITIATOR_ID = re.compile(
    r"(?=.{16,223}$)iqn\.[0-9]{4}-[0-1][0-9]\.[^/]*\.[^/]*|eui\.[0-9A-Fa-f]{16}"
)
LEGACY_AI_PREFIX = "OS-"  # the upstream driver's first version named app instances OS-<id>
ClientFactory = Callable[[ClientConfig], EdfClient]


def normalize_tenant(tenant: str | None) -> str:
    """``None``/``""``/``root`` -> ``/root``; ``a`` -> ``/root/a``; ``/root/a/b`` kept."""
    parts = [p for p in (tenant or "").strip().split("/") if p]
    if parts[:1] == ["root"]:
        parts = parts[1:]
    return "/" + "/".join(["root", *parts])


def uri_host(host: str) -> str:
    """``host`` as it appears in a URI: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def uri_tenant(tenant: str) -> str:
    """The tenant's part of a location URI: none for ``/root`` (the upstream driver's form)."""
    return "" if tenant == "/root" else tenant


class StoreLocation(glance_location.StoreLocation):
    """``datera://HOST:PORT[/root/TENANT...]/app_instances/IMAGE_ID``.

    Host and port say which cluster wrote the image (glance maps URIs to backends by prefix);
    operations use the configured cluster and find the app instance by name.
    """

    host: str
    port: int
    tenant: str
    image_id: str
    ai_name: str

    def process_specs(self) -> None:
        self.host = self.specs["host"]
        self.port = int(self.specs["port"])
        self.tenant = normalize_tenant(self.specs.get("tenant"))
        self.image_id = self.specs["image_id"]
        self.ai_name = self.specs.get("ai_name") or AI_PREFIX + self.image_id

    def get_uri(self) -> str:
        host, tenant = uri_host(self.host), uri_tenant(self.tenant)
        leaf = self.image_id if self.ai_name == AI_PREFIX + self.image_id else self.ai_name
        return f"{SCHEME}://{host}:{self.port}{tenant}/app_instances/{leaf}"

    def parse_uri(self, uri: str) -> None:
        self.validate_schemas(uri, valid_schemas=(f"{SCHEME}://",))
        bad = exceptions.BadStoreUri(uri=uri)
        try:
            parsed = urllib.parse.urlparse(uri)
            host, port = parsed.hostname, parsed.port
        except ValueError as e:
            raise bad from e
        if not host or port is None or parsed.query or parsed.fragment:
            raise bad
        head, sep, leaf = parsed.path.rpartition("/app_instances/")
        if not sep or not leaf or "/" in leaf or (head and not head.startswith("/root")):
            raise bad
        if leaf.startswith(AI_PREFIX):
            image_id, ai_name = leaf[len(AI_PREFIX) :], leaf
        elif leaf.startswith(LEGACY_AI_PREFIX):
            image_id, ai_name = leaf[len(LEGACY_AI_PREFIX) :], leaf
        else:
            image_id, ai_name = leaf, AI_PREFIX + leaf
        if not utils.is_uuid_like(image_id):
            raise bad
        self.host, self.port, self.tenant = host, port, normalize_tenant(head)
        self.image_id, self.ai_name = image_id, ai_name


@dataclass(frozen=True)
class StoreSettings:
    """The store's configuration, read once by ``configure_add``."""

    san_ip: str
    san_port: int
    login: str
    password: str = field(repr=False)
    tenant: str
    replica_count: int
    placement_mode: str
    chunk_size: int
    ssl: bool | None
    ssl_verify: bool
    ssl_ca_file: str | None
    api_version: str
    connector: str
    initiator_name: str | None
    use_chap: bool
    default_image_size_gib: int
    io_buffer_size: int
    io_depth: int
    skip_zero_blocks: bool
    request_timeout: float
    retry_deadline: float
    rootwrap_config: str
    lock_path: str
    attach_linger: float = 0.0

    @classmethod
    def from_conf(cls, group: Any, lock_path: str, store_name: str) -> StoreSettings:
        """Read ``group`` (a backend group or ``conf.glance_store``)."""
        for required in ("datera_san_ip", "datera_san_login", "datera_san_password"):
            if not getattr(group, required):
                raise exceptions.BadStoreConfiguration(
                    store_name=store_name, reason=f"{required} is not set"
                )
        initiator = group.datera_initiator_name
        if initiator and not INITIATOR_ID.fullmatch(initiator):
            # EDF would refuse it at the first upload (422 from POST /initiators): say it now.
            raise exceptions.BadStoreConfiguration(
                store_name=store_name,
                reason=f"datera_initiator_name {initiator!r} is not an iSCSI IQN or EUI "
                "(e.g. iqn.2004-10.com.example:host1)",
            )
        buffer_size = -(-int(group.datera_io_buffer_size) // 4096) * 4096
        return cls(
            san_ip=group.datera_san_ip,
            san_port=int(group.datera_san_port),
            login=group.datera_san_login,
            password=group.datera_san_password,
            tenant=normalize_tenant(group.datera_tenant_id),
            replica_count=int(group.datera_replica_count),
            placement_mode=group.datera_placement_mode,
            chunk_size=int(group.datera_chunk_size),
            ssl=group.datera_ssl,
            ssl_verify=bool(group.datera_ssl_verify),
            ssl_ca_file=group.datera_ssl_ca_file,
            api_version=group.datera_api_version,
            connector=group.datera_connector,
            initiator_name=group.datera_initiator_name,
            use_chap=bool(group.datera_use_chap),
            default_image_size_gib=int(group.datera_default_image_size),
            io_buffer_size=buffer_size,
            io_depth=int(group.datera_io_depth),
            skip_zero_blocks=bool(group.datera_skip_zero_blocks),
            request_timeout=float(group.datera_request_timeout),
            retry_deadline=float(group.datera_retry_deadline),
            rootwrap_config=group.datera_rootwrap_config,
            lock_path=lock_path,
            attach_linger=float(group.datera_attach_linger),
        )

    @property
    def growth_step_gib(self) -> int:
        return min(MAX_GROWTH_STEP_GIB, max(1, math.ceil(self.chunk_size / units.Gi)))

    @property
    def url_prefix(self) -> str:
        """Unique per cluster and tenant, so glance maps each URI to the right backend."""
        return f"{SCHEME}://{uri_host(self.san_ip)}:{self.san_port}{uri_tenant(self.tenant)}/app_instances/"

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            host=self.san_ip,
            port=self.san_port,
            username=self.login,
            password=self.password,
            tenant=self.tenant,
            api_version=self.api_version,
            ssl=self.ssl,
            ssl_verify=self.ssl_verify,
            ca_file=self.ssl_ca_file,
            connect_timeout=min(10.0, self.request_timeout),
            read_timeout=self.request_timeout,
            retry_deadline=self.retry_deadline,
        )

    def attach_settings(self) -> AttachSettings:
        return AttachSettings(
            connector=self.connector,
            lock_path=self.lock_path,
            scope=f"{self.san_ip}:{self.san_port}{self.tenant}",
            initiator_name=self.initiator_name,
            use_chap=self.use_chap,
            chap_key=self.password.encode(),
            rootwrap_config=self.rootwrap_config,
            wait_timeout=max(self.retry_deadline, 30.0),
            linger=self.attach_linger,
        )


@dataclass(frozen=True)
class _Parts:
    """Everything a configured store uses; replaced as a whole by ``configure_add``."""

    settings: StoreSettings
    client: EdfClient
    attacher: Attacher
    copier: chunkio.Copier

    def destroy(self, ai: models.AppInstance) -> None:
        """Offline and delete ``ai`` (gone already is fine) and forget its attach records."""
        self.attacher.detach_idle(ai.uuid)  # a lingering attachment goes before the volume
        with contextlib.suppress(errors.NotFound):
            self.client.set_offline(ai.id, force=True)
            self.client.delete_app_instance(ai.id, force=True)
        self.attacher.forget(ai.uuid)


def ai_name(image_id: str) -> str:
    return AI_PREFIX + image_id


def _length(metadata: dict[str, Any]) -> int | None:
    """The image length from app instance metadata, or None for an incomplete upload."""
    if metadata.get("type") != "image" or metadata.get("length") in (None, ""):
        return None
    try:
        return int(metadata["length"])
    except (TypeError, ValueError):
        return None


def _translate(exc: BaseException, image_id: str) -> BaseException | None:
    """The glance exception for ``exc``, or None to re-raise it unchanged."""
    if isinstance(exc, chunkio.SizeMismatch):
        return exceptions.Invalid(message=f"Image {image_id}: {exc}")
    if isinstance(exc, chunkio.DeviceFull):
        return exceptions.StorageFull(message=f"Image {image_id}: {exc}")
    if isinstance(exc, errors.InsufficientCapacity):
        return exceptions.StorageFull(message=f"Datera EDF: {exc}")
    if isinstance(exc, errors.NotFound):
        return exceptions.NotFound(image=image_id)
    if isinstance(exc, errors.ConnectionFailed | errors.ServiceUnavailable | errors.Timeout):
        return exceptions.RemoteServiceUnavailable(message=f"Datera EDF: {exc}")
    if isinstance(exc, errors.EdfError | AttachError):
        return exceptions.BackendException(f"Datera EDF, image {image_id}: {exc}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG):
        return exceptions.StorageFull(message=str(exc))
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return exceptions.StorageWriteDenied(message=str(exc))
    # glance's own errors (ImageSizeLimitExceeded, a client disconnect's OSError, a verifier's
    # failure) and glance_store exceptions pass unchanged.
    return None


@contextlib.contextmanager
def _glance_errors(image_id: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _translate(exc, image_id)
        if mapped is None:
            raise
        raise mapped from exc


class _Upload:
    """State of one ``add``: the app instance, its attachment and its growth."""

    def __init__(self, parts: _Parts, ai: models.AppInstance, size_gib: int) -> None:
        self.parts = parts
        self.ai = ai
        self.size_gib = size_gib
        self.step_gib = parts.settings.growth_step_gib
        self.resizes = 0
        self.attachment: Attachment | None = None

    def open(self) -> str:
        self.attachment = self.parts.attacher.attach(self.ai)
        return self.attachment.path

    def close(self) -> None:
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            attachment.detach()  # no lingering: a growth takes the volume offline next

    def grow(self, written: int) -> str:
        """The copier's ``grow`` callback: resize offline, reattach, return the new path.

        The volume grows by one step (1 GiB by default) each time it is full, never by more:
        EDF cannot shrink a volume, and Datera's Cinder driver clones the image's volume and
        then sets the requested size, which fails when the image's volume is the larger. So
        the final volume is the smallest one on the step grid that holds the image.
        """
        new_size = self.size_gib + self.step_gib
        while new_size * units.Gi <= written:
            new_size += self.step_gib
        LOG.debug("Growing %s from %d to %d GiB", self.ai.name, self.size_gib, new_size)
        self.close()
        # EDF resizes volumes of offline app instances only; only this writer has it attached.
        self.parts.client.set_offline(self.ai.id, force=True)
        self.parts.client.resize_volume(self.ai.id, new_size)
        self.parts.client.set_online(self.ai.id)
        self.size_gib = new_size
        self.resizes += 1
        return self.open()

    @property
    def growth(self) -> str:
        return f"{self.size_gib} GiB volume, {self.resizes} resizes"

    def rollback(self) -> None:
        """Detach and delete the app instance; log (never raise) cleanup failures."""
        try:
            self.close()
        except Exception:
            LOG.exception("Rollback of %s: detach failed", self.ai.name)
        try:
            self.parts.destroy(self.ai)
        except Exception:
            LOG.exception(
                "Rollback of %s: could not delete the app instance; a retried upload of this "
                "image replaces it",
                self.ai.name,
            )


def _read(
    parts: _Parts, attachment: Attachment, offset: int, length: int
) -> Generator[bytes, None, None]:
    try:
        yield from parts.copier.read_range(
            attachment.path,
            offset,
            length,
            buffer_size=parts.settings.io_buffer_size,
            depth=parts.settings.io_depth,
        )
    finally:
        try:
            attachment.close()
        except Exception:
            LOG.exception("Detaching %s after a read failed", attachment.path)


def _chain(first: bytes, rest: Generator[bytes, None, None]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()


class Store(driver.Store):
    """Datera EDF image store.

    :param conf: glance's ``ConfigOpts``.
    :param backend: the backend id (multistore) or None (legacy ``[glance_store]``).
    :param copier: the copier to use (tests pick a core); default ``chunkio.get_copier()``.
    :param connector_factory: builds os-brick connectors (tests inject a fake).
    :param executor: runs privileged commands (tests inject a fake).
    :param client_factory: builds the EDF client from a ``ClientConfig``.
    :param timer: schedules the end of lingering attachments (tests fire it by hand).
    """

    _CAPABILITIES = (
        capabilities.BitMasks.READ_RANDOM
        | capabilities.BitMasks.WRITE_ACCESS
        | capabilities.BitMasks.DRIVER_REUSABLE
    )
    OPTIONS = options.get_opts()

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        backend: str | None = None,
        *,
        copier: chunkio.Copier | None = None,
        connector_factory: ConnectorFactory | None = None,
        executor: Executor | None = None,
        client_factory: ClientFactory | None = None,
        timer: TimerFactory | None = None,
    ) -> None:
        super().__init__(conf, backend=backend)
        self._timer = timer
        self._copier = copier
        self._connector_factory = connector_factory
        self._executor = executor
        self._client_factory: ClientFactory = client_factory or EdfClient
        self._parts: _Parts | None = None
        if self.backend_group:
            self.store_conf: Any = driver.BackendGroupConfiguration(
                self.OPTIONS, self.backend_group, conf=self.conf
            )
        else:
            self.store_conf = self.conf.glance_store

    def get_schemes(self) -> tuple[str, ...]:
        return (SCHEME,)

    @property
    def _name(self) -> str:
        return self.backend_group or SCHEME

    def _lock_path(self) -> str:
        for _group, opts in lock_opts.list_opts():
            with contextlib.suppress(cfg.DuplicateOptError):
                self.conf.register_opts(opts, group="oslo_concurrency")
        path = self.conf.oslo_concurrency.lock_path
        if not path:
            path = os.path.join(tempfile.gettempdir(), f"datera-glance-locks-{os.geteuid()}")
            LOG.warning(
                "[oslo_concurrency] lock_path is not set; the Datera store keeps its attach "
                "records in %s",
                path,
            )
        return str(path)

    def configure_add(self) -> None:
        """Read the configuration once, build the client, and check the cluster.

        A missing credential or an unreachable cluster raises ``BadStoreConfiguration``, which
        glance turns into "adding images disabled"; reads keep working once the cluster is back.
        """
        settings = StoreSettings.from_conf(self.store_conf, self._lock_path(), self._name)
        self.READ_CHUNKSIZE = self.WRITE_CHUNKSIZE = settings.io_buffer_size
        self._url_prefix = settings.url_prefix
        client = self._client_factory(settings.client_config())
        attacher = Attacher(
            client,
            settings.attach_settings(),
            connector_factory=self._connector_factory,
            executor=self._executor,
            timer=self._timer or thread_timer,
        )
        copier = self._copier or chunkio.get_copier()
        self._parts = _Parts(settings, client, attacher, copier)
        attacher.sweep()  # what a crashed glance-api of this host left attached
        try:
            client.ensure_tenant()  # first: EDF refuses any call in a missing tenant
            system = client.system()
        except errors.EdfError as e:
            LOG.error(
                "Datera store %s: cluster %s:%s is not usable (%s); adding images is disabled",
                self._name,
                settings.san_ip,
                settings.san_port,
                e,
            )
            raise exceptions.BadStoreConfiguration(
                store_name=self._name, reason=f"Datera EDF cluster not usable: {e}"
            ) from e
        LOG.info(
            "Datera store %s: cluster %s (%s, API %s), tenant %s, %s copier core",
            self._name,
            system.name,
            system.sw_version,
            client.api_version,
            settings.tenant,
            copier.core_name,
        )

    @property
    def settings(self) -> StoreSettings:
        """The configuration ``configure_add`` read (BackendException before that)."""
        return self._configured().settings

    def close(self) -> None:
        """Log out of the cluster (glance never calls this; tools and tests that made the
        store do). Safe to call on a store that was never configured."""
        parts = self._parts
        if parts is not None:
            parts.attacher.close()  # lingering attachments first: they need the client
            parts.client.close()

    def _configured(self) -> _Parts:
        parts = self._parts
        if parts is None:
            raise exceptions.BackendException("the Datera store is not configured")
        return parts

    def _location(self, parts: _Parts, location: Any) -> StoreLocation:
        loc: StoreLocation = location.store_location
        if loc.tenant != parts.settings.tenant:
            raise exceptions.BadStoreUri(
                message=f"image {loc.image_id} is in tenant {loc.tenant}, this store "
                f"uses {parts.settings.tenant}"
            )
        return loc

    def _find_image(self, parts: _Parts, loc: StoreLocation) -> tuple[models.AppInstance, int]:
        """The image's app instance and length; NotFound unless it is complete."""
        ai = parts.client.find_app_instance(loc.ai_name)
        if ai is None:
            raise exceptions.NotFound(image=loc.image_id)
        length = _length(parts.client.get_metadata(ai.id))
        if length is None:  # an upload in progress or the leftover of a failed one
            raise exceptions.NotFound(image=loc.image_id)
        return ai, length

    @capabilities.check
    def get(
        self, location: Any, offset: int = 0, chunk_size: int | None = None, context: Any = None
    ) -> tuple[Iterator[bytes], int]:
        """Return ``(iterator, size)`` for ``chunk_size`` bytes (or all) from ``offset``."""
        parts = self._configured()
        loc = self._location(parts, location)
        with _glance_errors(loc.image_id):
            ai, length = self._find_image(parts, loc)
            if offset < 0 or offset > length:
                raise exceptions.Invalid(
                    message=f"offset {offset} is outside image {loc.image_id} ({length} bytes)"
                )
            count = length - offset if not chunk_size else min(chunk_size, length - offset)
            if count == 0:
                return iter(()), 0
            reader = _read(parts, parts.attacher.attach(ai), offset, count)
            try:
                # Read the first chunk now: attach and I/O errors become errors, not a
                # truncated HTTP 200.
                first = next(reader)
            except BaseException:
                reader.close()
                raise
        return _chain(first, reader), count

    def get_size(self, location: Any, context: Any = None) -> int:
        parts = self._configured()
        loc = self._location(parts, location)
        with _glance_errors(loc.image_id):
            return self._find_image(parts, loc)[1]

    @driver.back_compat_add
    @capabilities.check
    def add(
        self,
        image_id: str,
        image_file: Any,
        image_size: int,
        hashing_algo: str,
        context: Any = None,
        verifier: Any = None,
    ) -> tuple[str, int, str, str, dict[str, Any]]:
        """Store an image; see the module docstring for the layout on EDF."""
        parts = self._configured()
        settings, client = parts.settings, parts.client
        name = ai_name(image_id)
        size_gib = max(1, math.ceil(image_size / units.Gi)) if image_size else None
        with _glance_errors(image_id):
            start_gib = size_gib or settings.default_image_size_gib
            self._check_capacity(parts, start_gib)
            self._replace_leftover(parts, name, image_id)
            try:
                ai = client.create_app_instance(
                    name,
                    uuid=image_id,
                    size_gib=start_gib,
                    replica_count=settings.replica_count,
                    placement_mode=settings.placement_mode,
                )
            except errors.Conflict as e:
                raise exceptions.Duplicate(image=image_id) from e
        md5 = utils.get_hasher("md5", False)
        multihash = utils.get_hasher(hashing_algo, False)
        upload = _Upload(parts, ai, start_gib)
        try:
            with _glance_errors(image_id):
                written = parts.copier.write_stream(
                    image_file,
                    upload.open(),
                    size=image_size or None,
                    hashers=(md5, multihash),
                    verifier=verifier,
                    skip_zeros=settings.skip_zero_blocks,
                    buffer_size=settings.io_buffer_size,
                    depth=settings.io_depth,
                    grow=None if image_size else upload.grow,
                )
                upload.close()
                # Cinder's Datera driver fast-clones app instances tagged type=image.
                client.put_metadata(
                    ai.id, {"checksum": md5.hexdigest(), "length": str(written), "type": "image"}
                )
        except BaseException:
            upload.rollback()
            raise
        uri = settings.url_prefix + image_id
        metadata = {"store": self.backend_group} if self.backend_group else {}
        LOG.info("Stored image %s (%d bytes) as %s (%s)", image_id, written, name, upload.growth)
        return uri, written, md5.hexdigest(), multihash.hexdigest(), metadata

    def _check_capacity(self, parts: _Parts, size_gib: int) -> None:
        available = parts.client.system().available_capacity
        if available < size_gib * units.Gi:
            raise exceptions.StorageFull(
                message=f"Datera EDF has {available} bytes available, the image needs "
                f"{size_gib} GiB"
            )

    def _replace_leftover(self, parts: _Parts, name: str, image_id: str) -> None:
        """Duplicate for a complete image; delete the leftover of a failed upload."""
        client = parts.client
        existing = client.find_app_instance(name)
        if existing is None:
            return
        if _length(client.get_metadata(existing.id)) is not None:
            raise exceptions.Duplicate(image=image_id)
        LOG.warning("Replacing %s, the leftover of a failed upload", name)
        parts.destroy(existing)

    @capabilities.check
    def delete(self, location: Any, context: Any = None) -> None:
        """Offline and delete the image's app instance; NotFound if it is not there."""
        parts = self._configured()
        loc = self._location(parts, location)
        client = parts.client
        with _glance_errors(loc.image_id):
            ai = client.find_app_instance(loc.ai_name)
            if ai is None:
                raise exceptions.NotFound(image=loc.image_id)
            parts.destroy(ai)
        LOG.info("Deleted image %s (%s)", loc.image_id, ai.name)

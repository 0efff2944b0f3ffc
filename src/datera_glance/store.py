"""Glance image store backed by Datera EDF: one app instance (one volume) per image.

``Store`` is loaded by glance through the entry point ``glance_store.drivers: datera``.
Every method is thin: the EDF client (``datera_glance.edf``) talks to the cluster, the
attacher (``datera_glance.attach``) turns an app instance into a local block device, and the
copier (``datera_glance.chunkio``) moves the bytes with O_DIRECT and hashes them on its own
threads. One ``Store`` serves every thread of a glance-api worker: nothing per request is kept
on ``self``.

App instance names and location URIs are ``datera_glance.naming``'s. Datera's original driver
wrote the tenant-less URI form in every tenant, so a URI without a tenant means the configured
one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import threading
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

from datera_glance import chunkio, compat, naming, options, ownership, upload_state
from datera_glance.attach import (
    Attacher,
    AttachError,
    Attachment,
    AttachSettings,
    ConnectorFactory,
    DeviceOwner,
    TimerFactory,
    thread_timer,
)
from datera_glance.edf import ClientConfig, EdfClient, errors, models, normalize_tenant

LOG = logging.getLogger(__name__)

#: The driver's name: glance_store's entry point (``glance_store.drivers: datera``), the store
#: type in ``enabled_backends = NAME:datera``. Equal to ``naming.SCHEME``, the URI scheme, but
#: another fact: either could change alone.
DRIVER = "datera"
SCHEME = naming.SCHEME
MAX_GROWTH_STEP_GIB = 64
ClientFactory = Callable[[ClientConfig], EdfClient]


class StoreLocation(glance_location.StoreLocation):
    """``datera://HOST:PORT[/root/TENANT...]/app_instances/IMAGE_ID``.

    Host and port say which cluster wrote the image (glance maps URIs to backends by prefix);
    operations use the configured cluster and find the app instance by name. ``tenant`` is
    ``/root`` for a URI without a tenant, which the store reads as "the configured tenant".
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
        self.ai_name = self.specs.get("ai_name") or naming.ai_name(self.image_id)

    def get_uri(self) -> str:
        prefix = naming.location_prefix(self.host, self.port, self.tenant)
        return prefix + naming.uri_leaf(self.image_id, self.ai_name)

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
        head, sep, leaf = parsed.path.rpartition(naming.COLLECTION)
        if not sep or not leaf or "/" in leaf or (head and not head.startswith("/root")):
            raise bad
        names = naming.parse_leaf(leaf)
        if names is None:
            raise bad
        image_id, ai_name = names
        try:
            tenant = normalize_tenant(head)
        except ValueError as e:
            raise bad from e
        self.host, self.port, self.tenant = host, port, tenant
        self.image_id, self.ai_name = image_id, ai_name


@dataclass(frozen=True)
class StoreSettings:
    """The store's configuration, read once by ``configure_add``: one field per option,
    filled and checked by ``options.read`` (``options.SETTINGS`` names each option's field;
    tests/unit/test_option_table.py keeps the two equal), and glance's lock path."""

    san_ip: str
    san_port: int
    login: str
    password: str = field(repr=False)
    tenant: str
    replica_count: int
    placement_mode: str
    growth_step: int  # datera_chunk_size: bytes an upload of unknown size grows by
    ssl: bool | None
    ssl_verify: bool
    ssl_ca_file: str | None
    api_version: str
    connector: str
    initiator_name: str | None
    use_chap: bool
    chap_key: str = field(repr=False)
    use_multipath: bool
    default_image_size_gib: int
    io_buffer_size: int
    io_depth: int
    skip_zero_blocks: bool
    request_timeout: float
    retry_deadline: float
    rootwrap_config: str
    attach_linger: float
    lock_path: str

    @classmethod
    def from_conf(cls, group: Any, lock_path: str, store_name: str) -> StoreSettings:
        """Read and check ``group`` (a backend group or ``conf.glance_store``).

        Any bad value is a ``BadStoreConfiguration`` naming the option and the fix: glance's
        ``create_multi_stores`` catches only that, anything else stops glance-api with every
        other backend.
        """
        try:
            return cls._read(group, lock_path)
        except ValueError as e:  # options.OptionError, ClientConfig's checks
            raise exceptions.BadStoreConfiguration(store_name=store_name, reason=str(e)) from e

    @classmethod
    def _read(cls, group: Any, lock_path: str) -> StoreSettings:
        settings = cls(**options.read(group), lock_path=lock_path)
        settings.client_config()  # ClientConfig's own checks, now rather than at first use
        return settings

    @property
    def growth_step_gib(self) -> int:
        return min(MAX_GROWTH_STEP_GIB, max(1, math.ceil(self.growth_step / units.Gi)))

    @property
    def cluster_prefix(self) -> str:
        """The start of every URI of this cluster, whatever its tenant."""
        return naming.cluster_prefix(self.san_ip, self.san_port)

    @property
    def url_prefix(self) -> str:
        """The start of every URI this store writes: unique per cluster and tenant."""
        return naming.location_prefix(self.san_ip, self.san_port, self.tenant)

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
            chap_key=self.chap_key.encode(),
            use_multipath=self.use_multipath,
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

    tenant_ready: threading.Event = field(default_factory=threading.Event, compare=False)

    def connect(self) -> None:
        """Make sure the tenant exists, once per process, at the first operation: EDF refuses
        any call in a missing tenant. Not at startup, where the cluster may be down."""
        if not self.tenant_ready.is_set():
            self.client.ensure_tenant()
            self.tenant_ready.set()

    def verdict(self, ai: models.AppInstance, judge: upload_state.Judge) -> ownership.Verdict:
        """What ``ai`` is to glance (``ownership.verdict`` on its metadata)."""
        return ownership.verdict(ai, self.client.get_metadata(ai.id), judge)

    def destroy_leftover(self, ai: models.AppInstance, found: ownership.Verdict) -> None:
        """Delete the leftover of a dead upload (``found.leftover``), this host's hold of it
        first: a dead writer of this host leaves its attachment connected until its last user
        releases it, and attaching and releasing through the Attacher, which drops dead users,
        is the one code path that disconnects it."""
        if not found.leftover:
            raise ValueError(f"{ai.name} is not a leftover: {found.state}")
        if found.record is not None and found.record.host == upload_state.host_name():
            with contextlib.suppress(errors.NotFound), self.attacher.attached(ai):
                pass
        self.destroy(ai)

    def destroy(self, ai: models.AppInstance) -> None:
        """Offline and delete ``ai`` (gone already is fine) and forget its attach records;
        ``InUseByStore`` while a reader on this host has it attached."""
        if not self.attacher.unless_attached(ai.uuid, lambda: self._delete(ai)):
            raise exceptions.InUseByStore()

    def _delete(self, ai: models.AppInstance) -> None:
        with contextlib.suppress(errors.NotFound):
            self.client.set_offline(ai.id, force=True)
            try:
                self.client.delete_app_instance(ai.id, force=True)
            except errors.Conflict as exc:
                # The cluster keeps it whole (clones do not hold it on EDF, see
                # tests/unit/test_store_clones.py); glance answers 409 and keeps the image.
                raise exceptions.InUseByStore() from exc


class ClusterUnavailable(exceptions.RemoteServiceUnavailable, compat.StoreTimeoutError):
    """The cluster cannot be reached now; the next operation may work.

    Both glance_store types, so that glance 33 answers 503 (which clients retry) everywhere:
    it maps ``RemoteServiceUnavailable`` to 503 on download (glance/api/v2/image_data.py) but
    only ``TimeoutError`` on upload and delete (image_data.py, images.py); anything else is a
    500 there. glance_store before 5.4.0 has no ``TimeoutError`` (``compat``).
    """


def _translate(exc: BaseException, image_id: str, adding: bool) -> BaseException | None:
    """The glance exception for ``exc``, or None to re-raise it unchanged."""
    if isinstance(exc, errors.NotFound) and adding:
        # glance reads NotFound from add as "the image was deleted during the upload" and
        # deletes the image record (glance/api/v2/image_data.py): not what a 404 means here.
        return exceptions.BackendException(f"Datera EDF, image {image_id}: {exc}")
    if isinstance(exc, chunkio.SizeMismatch):
        return exceptions.Invalid(message=f"Image {image_id}: {exc}")
    if isinstance(exc, chunkio.DeviceFull):
        return exceptions.StorageFull(message=f"Image {image_id}: {exc}")
    if isinstance(exc, errors.InsufficientCapacity):
        return exceptions.StorageFull(message=f"Datera EDF: {exc}")
    if isinstance(exc, errors.NotFound):
        return exceptions.NotFound(image=image_id)
    if isinstance(exc, errors.ConnectionFailed | errors.ServiceUnavailable | errors.Timeout):
        return ClusterUnavailable(message=f"Datera EDF: {exc}")
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
def _glance_errors(image_id: str, *, adding: bool = False) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _translate(exc, image_id, adding)
        if mapped is None:
            raise
        raise mapped from exc


def _size_gib(image_id: str, image_size: int) -> int | None:
    """The volume size for ``image_size`` bytes, None for 0 (unknown). A negative size is
    glance_store's ``Invalid``, which glance answers 400 (tests/unit/test_store_hostile.py)."""
    if image_size < 0:
        raise exceptions.Invalid(message=f"Image {image_id}: size {image_size} is negative")
    return max(1, math.ceil(image_size / units.Gi)) if image_size else None


def _refuse_foreign(ai: models.AppInstance, owner: ownership.Claim, image_id: str) -> None:
    """NotFound for an app instance that is not glance's: it is never read, changed or
    deleted as an image (a Cinder volume named like one, Cinder's image cache)."""
    if not owner.ours:
        LOG.warning(
            "App instance %s has the name of image %s but is not glance's (%s); left alone",
            ai.name,
            image_id,
            owner.why,
        )
        raise exceptions.NotFound(image=image_id)


def _hashers(hashing_algo: str) -> tuple[Any, Any]:
    """md5 and the multihash, known to work before anything exists on the cluster: an
    unknown name, or a hash without a fixed length (``shake_128``, which glance_store's
    ``algorithms_available`` check lets through), would otherwise fail after the upload."""
    try:
        multihash = utils.get_hasher(hashing_algo, False)
        multihash.copy().hexdigest()
    except (ValueError, TypeError) as e:
        raise exceptions.UnknownHashingAlgo(algo=hashing_algo) from e
    return utils.get_hasher("md5", False), multihash


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


class _Download:
    """What ``get`` returns: the chunk read already, then the rest.

    An iterator with ``close()`` rather than a generator: a generator closed before its first
    ``next()`` never runs its ``finally``, so the device would stay attached until garbage
    collection (glance's notifier may close the data unread).
    """

    def __init__(self, first: bytes, rest: Generator[bytes, None, None]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def __iter__(self) -> _Download:
        return self

    def __next__(self) -> bytes:
        first, self._first = self._first, None
        if first is not None:
            return first
        return next(self._rest)

    def close(self) -> None:
        self._first = None
        self._rest.close()


def sharing_backend(conf: Any, backend: str | None, settings: StoreSettings) -> str | None:
    """The first Datera backend before ``backend`` in ``enabled_backends`` on the same cluster
    address and tenant (one whose options cannot be read is not compared), or None.

    Both would name an image's app instance ``OS-IMAGE-<id>`` there, so copying an image from
    one to the other fails (``Duplicate``), and Datera's Cinder driver, which looks an image up
    by ``match(name,.*<id>.*)`` in its tenant and clones the first hit, must find exactly one
    app instance per image.
    """
    try:
        enabled = dict(conf.enabled_backends or {}) if backend else {}
    except cfg.NoSuchOptError:
        return None
    mine = (settings.san_ip, settings.san_port, settings.tenant)
    for name, kind in enabled.items():
        if name == backend:
            return None
        if kind != DRIVER:
            continue
        with contextlib.suppress(ValueError, cfg.Error, AttributeError):
            group = getattr(conf, name)
            compared = ("datera_san_ip", "datera_san_port", "datera_tenant_id")
            theirs = tuple(options.read_one(group, option) for option in compared)
            if theirs == mine:
                return str(name)
    return None


def shared_tenant_problem(backend: str, other: str, settings: StoreSettings) -> str:
    """The error for ``sharing_backend``: it names ``datera_tenant_id`` and the fix."""
    return str(
        options.OptionError(
            "datera_tenant_id",
            f"of backend {backend} is {settings.tenant} on cluster {settings.san_ip}:"
            f"{settings.san_port}, as backend {other}'s: a tenant holds one app instance per "
            "image, which copying images between backends and Cinder's fast clone need",
            f"give [{backend}] a tenant of its own (e.g. {settings.tenant}/{backend}); until "
            "then this backend's images stay readable and adding or deleting is refused",
        )
    )


class Store(driver.Store):
    """Datera EDF image store.

    :param conf: glance's ``ConfigOpts``.
    :param backend: the backend id (multistore) or None (legacy ``[glance_store]``).
    :param copier: the copier to use (tests pick a core); default ``chunkio.get_copier()``.
    :param connector_factory: builds os-brick connectors (tests inject a fake).
    :param device_owner: lends attached devices to glance's user (tests inject a fake).
    :param client_factory: builds the EDF client from a ``ClientConfig``.
    :param timer: schedules the end of lingering attachments (tests fire it by hand).
    :param judge: decides whether another upload of an image is still live (tests give it a
        clock); default ``upload_state.Judge`` with ``upload_state.REPLACE_MAX_AGE``.
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
        device_owner: DeviceOwner | None = None,
        client_factory: ClientFactory | None = None,
        timer: TimerFactory | None = None,
        judge: upload_state.Judge | None = None,
    ) -> None:
        super().__init__(conf, backend=backend)
        self._timer = timer
        self._judge = judge or upload_state.Judge(max_age=upload_state.REPLACE_MAX_AGE)
        self._copier = copier
        self._connector_factory = connector_factory
        self._device_owner = device_owner
        self._client_factory: ClientFactory = client_factory or EdfClient
        self._parts: _Parts | None = None
        if self.backend_group:
            self.store_conf: Any = compat.backend_options(
                self.OPTIONS, self.backend_group, self.conf
            )
        else:
            self.store_conf = self.conf.glance_store

    def get_schemes(self) -> tuple[str, ...]:
        return (SCHEME,)

    @property
    def _name(self) -> str:
        return self.backend_group or DRIVER

    def _lock_path(self) -> str:
        """``[oslo_concurrency] lock_path``; refusing to start without it.

        The attach records kept there feed ``sudo glance-rootwrap chown``: a default under /tmp
        could be made in advance by another local user. oslo.concurrency's external locks need
        the option anyway (glance's cinder store says the same), so ask for it.
        """
        for _group, opts in lock_opts.list_opts():
            with contextlib.suppress(cfg.DuplicateOptError):
                self.conf.register_opts(opts, group="oslo_concurrency")
        path = self.conf.oslo_concurrency.lock_path
        if not path:
            raise exceptions.BadStoreConfiguration(
                store_name=self._name,
                reason="[oslo_concurrency] lock_path is not set: set it to a directory only "
                "the glance user can write (e.g. /var/lib/glance/lock); the store keeps its "
                "attach records there",
            )
        return str(path)

    def configure_add(self) -> None:
        """Check the configuration and build the client, the attacher and the copier.

        No network: glance_store's ``Store.configure`` clears WRITE_ACCESS for good on
        ``BadStoreConfiguration`` and ``capabilities.check`` then refuses add *and* delete, so
        only a configuration error may raise it. The cluster is contacted at the first
        operation; during an outage operations raise ``RemoteServiceUnavailable`` and the
        next one after the cluster is back works.
        """
        settings = StoreSettings.from_conf(self.store_conf, self._lock_path(), self._name)
        client = self._client_factory(settings.client_config())
        try:
            attacher = Attacher(
                client,
                settings.attach_settings(),
                connector_factory=self._connector_factory,
                device_owner=self._device_owner,
                timer=self._timer or thread_timer,
            )
        except (OSError, AttachError) as e:
            client.close()
            raise exceptions.BadStoreConfiguration(
                store_name=self._name,
                reason=f"[oslo_concurrency] lock_path {settings.lock_path}: {e}; use a "
                "directory the glance user owns and can write, not writable by others",
            ) from e
        copier = self._copier or chunkio.get_copier()
        self.READ_CHUNKSIZE = self.WRITE_CHUNKSIZE = settings.io_buffer_size
        self._url_prefix = self._glance_prefix(settings)
        self._parts = _Parts(settings, client, attacher, copier)
        self._reclaim(attacher)
        LOG.info(
            "Datera store %s: cluster %s:%s, tenant %s, %s copier core (the cluster is "
            "contacted at the first operation)",
            self._name,
            settings.san_ip,
            settings.san_port,
            settings.tenant,
            copier.core_name,
        )
        other = sharing_backend(self.conf, self.backend_group, settings)
        if other is not None:
            # After the parts are built: glance_store then refuses this backend's add and
            # delete only, and its images stay readable.
            raise exceptions.BadStoreConfiguration(
                store_name=self._name, reason=shared_tenant_problem(self._name, other, settings)
            )

    def _glance_prefix(self, settings: StoreSettings) -> str:
        """``url_prefix``: glance maps a location without a store to the first backend whose
        prefix starts it (``glance.common.store_utils._get_store_id_from_uri``).

        Datera's original driver wrote tenant-less URIs in every tenant; when this is glance's
        only Datera backend they are this backend's, so it claims the whole cluster. With
        several Datera backends each keeps its own tenant's prefix (tenant-less URIs then
        belong to a ``/root`` backend).
        """
        if settings.tenant == "/root" or not self.backend_group:
            return settings.url_prefix
        try:
            enabled = dict(self.conf.enabled_backends or {})
        except cfg.NoSuchOptError:
            return settings.url_prefix
        datera = [name for name, kind in enabled.items() if kind == DRIVER]
        return settings.cluster_prefix if datera == [self.backend_group] else settings.url_prefix

    def _reclaim(self, attacher: Attacher) -> None:
        """Detach what a crashed glance-api of this host left attached (local work only: no
        cluster call, so an outage cannot fail the start)."""
        try:
            attacher.reclaim()
        except Exception:
            LOG.exception("Datera store %s: cleaning up stale attachments failed", self._name)

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
        """The location, if it is in this store's tenant (a tenant-less URI always is)."""
        loc: StoreLocation = location.store_location
        if loc.tenant not in ("/root", parts.settings.tenant):
            raise exceptions.BadStoreUri(
                message=f"image {loc.image_id} is in tenant {loc.tenant}, this store "
                f"uses {parts.settings.tenant}"
            )
        return loc

    def _find_image(self, parts: _Parts, loc: StoreLocation) -> tuple[models.AppInstance, int]:
        """The image's app instance and length; NotFound unless it is glance's and complete."""
        ai = parts.client.lookup_app_instance(loc.ai_name)
        if ai is None:
            raise exceptions.NotFound(image=loc.image_id)
        metadata = parts.client.get_metadata(ai.id)
        _refuse_foreign(ai, ownership.claim(ai, metadata), loc.image_id)
        length = upload_state.image_length(metadata)
        if length is None:  # an upload in progress or the leftover of a failed one
            raise exceptions.NotFound(image=loc.image_id)
        return ai, length

    @capabilities.check
    def get(
        self, location: Any, offset: int = 0, chunk_size: int | None = None, context: Any = None
    ) -> tuple[Iterator[bytes], int]:
        """Return ``(iterator, size)`` for ``chunk_size`` bytes (or all) from ``offset``.

        ``chunk_size`` is glance's name for the length of the range, not a buffer size: the
        data comes in pieces of ``datera_io_buffer_size`` bytes."""
        parts = self._configured()
        loc = self._location(parts, location)
        with _glance_errors(loc.image_id):
            parts.connect()
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
        return _Download(first, reader), count

    def get_size(self, location: Any, context: Any = None) -> int:
        parts = self._configured()
        loc = self._location(parts, location)
        with _glance_errors(loc.image_id):
            parts.connect()
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
        size_gib = _size_gib(image_id, image_size)  # before anything exists on the cluster
        parts = self._configured()
        settings, client = parts.settings, parts.client
        name = naming.ai_name(image_id)
        md5, multihash = _hashers(hashing_algo)  # before the app instance exists
        with _glance_errors(image_id, adding=True):
            parts.connect()
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
                    descr=ownership.marker(image_id),  # the proof it is ours, from the start
                )
            except errors.Conflict as e:
                raise exceptions.Duplicate(image=image_id) from e
        upload = _Upload(parts, ai, start_gib)
        try:
            # -- upload state (datera_glance.upload_state): lets `datera-glance gc` tell a dead
            # upload from a live one; the multihash lets `verify` work without glance's db.
            with _glance_errors(image_id, adding=True), upload_state.recorded(client, ai.id):
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
                final = {"checksum": md5.hexdigest(), "length": str(written), "type": "image"}
                final.update(upload_state.multihash_metadata(hashing_algo, multihash.hexdigest()))
                client.put_metadata(ai.id, final)
            # -- end of upload state
        except BaseException:
            upload.rollback()
            raise
        uri = settings.url_prefix + naming.uri_leaf(image_id, name)
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
        """Delete the leftover of a failed upload of glance's; ``Duplicate`` for anything
        else: a complete image, an upload of it still in progress (on another host, in another
        process, or in this one), or an app instance that is not glance's.

        The judgement is ``ownership.verdict``, ``datera-glance gc``'s. An app instance of
        glance's without an upload record counts as a leftover: ``add`` writes the record
        (``upload_state.recorded``) in the first request after creating the app instance,
        before anything is attached or written, so it is the leftover of an upload killed
        between the two requests, or an upload inside that one request. The last one has no
        data yet and fails cleanly: EDF gives the new app instance a new id, so its record's
        PUT gets a 404 and it rolls back without touching the new one.
        """
        existing = parts.client.lookup_app_instance(name)
        if existing is None:
            return
        found = parts.verdict(existing, self._judge)
        if not found.ours:
            LOG.warning("Not replacing %s: it is not glance's (%s)", name, found.why)
            raise exceptions.Duplicate(
                message=f"App instance {name} exists and is not glance's ({found.why}); "
                "it is left alone"
            )
        if found.state == ownership.UPLOADING:
            LOG.warning(
                "Not replacing %s of image %s: an upload is in progress (%s)",
                name,
                image_id,
                found.why,
            )
            raise exceptions.Duplicate(
                message=f"Image {image_id} is being uploaded already ({found.why})"
            )
        if not found.leftover:
            raise exceptions.Duplicate(image=image_id)
        LOG.warning(
            "Replacing %s, the leftover of a failed upload of image %s (%s)",
            name,
            image_id,
            found.why,
        )
        parts.destroy_leftover(existing, found)

    @capabilities.check
    def delete(self, location: Any, context: Any = None) -> None:
        """Offline and delete the image's app instance; NotFound if it is not there.

        ``InUseByStore`` (glance answers 409) while a reader on this host has the image
        attached, instead of cutting its device off mid-read. Readers on other hosts are not
        seen: their ACL entries stay after they detach (attach.py), so an ACL entry does not
        mean a reader. EDF lists live iSCSI sessions in a storage instance's
        ``active_initiators``; refusing while it names another host would cover them.

        An app instance of that name that is not glance's (``ownership.claim``) is left alone
        and the image is NotFound: glance then forgets the location (glance/common/
        store_utils.py ``safe_delete_from_backend``).
        """
        parts = self._configured()
        loc = self._location(parts, location)
        client = parts.client
        with _glance_errors(loc.image_id):
            parts.connect()
            ai = client.lookup_app_instance(loc.ai_name)
            if ai is None:
                raise exceptions.NotFound(image=loc.image_id)
            _refuse_foreign(ai, ownership.claim(ai, client.get_metadata(ai.id)), loc.image_id)
            parts.destroy(ai)
        LOG.info("Deleted image %s (%s)", loc.image_id, ai.name)

    def delete_leftover(self, location: Any, judge: upload_state.Judge) -> ownership.Verdict | None:
        """Delete the image's app instance only if it is glance's leftover of a dead upload
        by ``judge`` (``datera-glance gc``); return the verdict it acted on (None: no app
        instance). ``InUseByStore`` while a live process of this host has it attached."""
        parts = self._configured()
        loc = self._location(parts, location)
        with _glance_errors(loc.image_id):
            parts.connect()
            ai = parts.client.lookup_app_instance(loc.ai_name)
            if ai is None:
                return None
            found = parts.verdict(ai, judge)
            if found.leftover:
                parts.destroy_leftover(ai, found)
                LOG.info("Removed %s, the leftover of a dead upload (%s)", ai.name, found.why)
        return found

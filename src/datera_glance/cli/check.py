"""``datera-glance check``: is this host's glance-api configuration going to work?

Each line is ok / warning / error with the fix. The options go through the Store's own
``configure`` (the same validation and cluster checks glance-api runs at startup); the rest
checks what attaching needs on this host. ``--write-test`` adds a small image, reads it back
with O_DIRECT, verifies it and deletes it, all through the Store. Exit 1 on any error.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from glance_store import exceptions as store_exc
from oslo_config import cfg
from oslo_utils import units

from datera_glance import host, upload_state
from datera_glance.cli import cinder, config, images, integrity, output
from datera_glance.cli.errors import explain
from datera_glance.edf import errors as edf
from datera_glance.edf import product
from datera_glance.edf.client import transport_warning

EXAMPLE = """example:
  datera-glance check --config-file /etc/glance/glance-api.conf
  datera-glance check --config-file /etc/glance/glance-api.conf --backend fast --write-test"""

OK, WARNING, ERROR, SKIPPED = "ok", "warning", "error", "skipped"
WRITE_TEST_SIZE = units.Mi + 4097  # not a multiple of any buffer: the tail path runs too


@dataclass(frozen=True)
class Result:
    name: str
    status: str
    detail: str
    fix: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-test",
        action="store_true",
        help="add, read back (O_DIRECT), verify and delete a 1 MiB image; leaves nothing",
    )
    parser.add_argument(
        "--cinder-tenant-id",
        metavar="VALUE",
        help='datera_tenant_id of Cinder\'s Datera driver ("" when unset): does it find these '
        "images for fast clones?",
    )
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def _configure(target: config.BackendTarget) -> Iterator[Result]:
    """The Store's own configure: the same validation glance-api runs at startup."""
    try:
        target.store.configure(re_raise_bsc=True)
    except store_exc.BadStoreConfiguration as exc:
        yield Result("options", ERROR, str(exc), explain(exc).fix)
        return
    except cfg.Error as exc:  # a value of the wrong type, found when the Store reads it
        yield Result("options", ERROR, str(exc), "correct the configuration file")
        return
    yield Result("options", OK, f"backend {target.backend or '[glance_store]'}")


def _transport(target: config.BackendTarget) -> Result:
    """How the password and session key travel (the client logs the same warning)."""
    client_config = target.settings.client_config()
    warning = transport_warning(client_config)
    if not warning:
        verify = client_config.verify
        against = f"against {verify}" if isinstance(verify, str) else "against requests' CAs"
        return Result("transport", OK, f"HTTPS, certificate verified {against}")
    fix = (
        "datera_san_port = 7718 and datera_ssl unset or true"
        if not client_config.use_ssl
        else "datera_ssl_verify = true (datera_ssl_ca_file for a private CA)"
    )
    return Result("transport", WARNING, warning, fix)


def _product_result(sw_version: str, version: tuple[int, ...]) -> Result:
    """Whether this driver supports the cluster's product version: a warning, never an error."""
    verdict = product.support_of(version)
    supported = product.lines(product.SUPPORTED)
    if verdict is product.Support.SUPPORTED:
        return Result("product", OK, f"{sw_version}: {verdict.value}", f"supported: {supported}")
    if verdict is product.Support.TESTED:
        note = f"supported: {supported}; the suite also covers {product.lines(product.TESTED)}"
        return Result("product", OK, f"{sw_version}: {verdict.value}", note)
    fix = f"this driver supports product versions {supported}; others work but are untested"
    return Result("product", WARNING, f"{sw_version}: {verdict.value}", fix)


def _cluster(target: config.BackendTarget) -> Iterator[Result]:
    """Login, tenant and ``/system``: the Store meets the cluster (and makes its tenant) at
    its first operation, not in configure: this is where an unreachable cluster or a refused
    login shows."""
    s = target.settings
    try:
        client = target.client  # logs in and creates the tenant if it is missing
        system = client.system()
    except edf.EdfError as exc:
        problem = explain(exc)
        yield Result("cluster", ERROR, f"{s.san_ip}:{s.san_port}: {problem.message}", problem.fix)
        return
    yield Result(
        "cluster",
        OK,
        f"{s.san_ip}:{s.san_port} {system.name or '-'}: product {system.sw_version}, "
        f"API {client.api_version}",
    )
    yield _product_result(system.sw_version, system.version_tuple)
    yield Result("tenant", OK, f"{s.tenant} exists (created if it was missing)")
    free, total = system.available_capacity, system.total_capacity
    detail = f"{output.human_size(free)} free of {output.human_size(total)}"
    if free < s.default_image_size_gib * units.Gi:
        yield Result("capacity", ERROR, detail, "free capacity: an upload needs at least 1 GiB")
    elif total and free < total // 10:
        yield Result("capacity", WARNING, detail, "less than 10% free")
    else:
        yield Result("capacity", OK, detail)


def _connector(target: config.BackendTarget) -> Iterator[Result]:
    """What the connector strategy needs on this host (the attacher's own strategy)."""
    s = target.settings
    strategy = s.attach_settings().strategy()
    for need in strategy.prerequisites(s.initiator_name):
        yield Result(need.name, OK if need.ok else ERROR, need.detail, need.fix)
    if strategy.needs_root_helper or os.geteuid() != 0:
        yield _rootwrap(s.rootwrap_config)


def _rootwrap(path: str) -> Result:
    if not shutil.which("glance-rootwrap"):
        return Result("rootwrap", ERROR, "glance-rootwrap not on PATH", "install glance")
    if not os.path.isfile(path):
        return Result(
            "rootwrap", ERROR, f"{path} is missing", "install it or set datera_rootwrap_config"
        )
    return Result("rootwrap", OK, path)


def _lock_path(path: str) -> Result:
    """The Store's configure (``options`` above) built its Attacher, whose own check of
    ``lock_path`` refuses what glance-api would refuse; past it, the directory passed."""
    return Result("lock_path", OK, f"{path} (accepted by the attacher's own checks)")


def _image_tags(target: config.BackendTarget) -> Iterator[Result]:
    """Complete images whose metadata lost ``type: image`` (``ownership.UNTAGGED``)."""
    judge = upload_state.Judge(max_age=upload_state.DEFAULT_MAX_AGE)
    inventory = images.Inventory.of(target, judge)
    untagged = inventory.images(lambda image: image.state == images.UNTAGGED)
    if not untagged:
        yield Result("image tags", OK, "every complete image has type: image")
        return
    names = ", ".join(image.ai.name for image in untagged)
    yield Result(
        "image tags",
        ERROR,
        f"{len(untagged)} complete images lack type: image ({names}): Datera's Cinder driver "
        "takes them for its own stale cache and force-deletes them",
        'restore {"type": "image"} in their metadata, or delete and upload them again',
    )


def _huge_pages(mode: str) -> Result:
    """The copier's buffers ask for transparent huge pages: device reads into them ran about
    twice as fast on the loop simulator as into small pages, which ``never`` leaves them."""
    if mode in ("always", "madvise"):
        return Result("huge pages", OK, f"transparent huge pages: {mode}")
    detail = f"transparent huge pages: {mode}" if mode else "no transparent huge pages"
    return Result(
        "huge pages",
        WARNING,
        f"{detail}; image reads and writes run on small pages (about half as fast)",
        f"echo madvise > {host.THP_ENABLED}"
        if mode
        else "a kernel with CONFIG_TRANSPARENT_HUGEPAGE",
    )


def _write_test(target: config.BackendTarget) -> Iterator[Result]:
    image_id = str(uuid.uuid4())
    data = os.urandom(WRITE_TEST_SIZE)
    uri = None
    try:
        uri = target.store.add(image_id, io.BytesIO(data), len(data), target.hash_algo)[0]
        judge = upload_state.Judge(max_age=0.0)
        image = images.Inventory.of(target, judge).find(image_id)
        result = integrity.check_image(target, image) if image else {"status": "not listed"}
    except Exception as exc:
        problem = explain(exc)
        yield Result("write test", ERROR, problem.message, problem.fix)
        return
    finally:
        if uri is not None:
            target.store.delete(target.location(uri))
    if result["status"] != integrity.OK:
        yield Result("write test", ERROR, f"image {image_id}: {result['status']}")
        return
    yield Result("O_DIRECT", OK, "an attached device took O_DIRECT writes and reads")
    yield Result("write test", OK, f"add/get/verify/delete of {len(data)} bytes, nothing left")


def _cinder(tenant: str, cinder_tenant_id: str | None) -> Iterator[Result]:
    """Can Datera's Cinder driver fast-clone images in ``tenant`` (doc/source/cinder.rst)?

    Without Cinder's setting, only a tenant that no setting of it reaches is worth a line.
    """
    fix = "give both drivers the same tenant (doc/source/cinder.rst); else Cinder copies images"
    if cinder_tenant_id is None:
        if cinder.setting_for(tenant) is None:
            detail = f"no datera_tenant_id of Cinder's Datera driver looks in {tenant}"
            yield Result("cinder clones", WARNING, detail, fix)
        return
    fast, why = cinder.agreement(tenant, cinder_tenant_id)
    yield Result("cinder clones", OK if fast else WARNING, why, "" if fast else fix)


def results(
    target: config.BackendTarget, write_test: bool, cinder_tenant_id: str | None = None
) -> Iterator[Result]:
    configured = list(_configure(target))
    yield from configured
    if any(r.status == ERROR for r in configured):
        return
    yield _transport(target)
    cluster = list(_cluster(target))
    yield from cluster
    if not any(r.status == ERROR for r in cluster):
        yield from _image_tags(target)
    yield from _cinder(target.settings.tenant, cinder_tenant_id)
    yield from _connector(target)
    yield _lock_path(target.settings.lock_path)
    yield _huge_pages(host.thp_mode())
    if write_test and not any(r.status == ERROR for r in cluster):
        yield from _write_test(target)
    else:
        yield Result("O_DIRECT", SKIPPED, "needs an attached device", "run with --write-test")


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    conf = config.load_conf(args)
    backend = config.choose_backend(conf, args.backend)
    target = config.BackendTarget(conf, backend, config.build_store(conf, backend))
    try:
        found = list(results(target, args.write_test, args.cinder_tenant_id))
    finally:
        target.close()
    ok = not any(r.status == ERROR for r in found)
    if args.json:
        output.emit_json({"ok": ok, "checks": [asdict(r) for r in found]})
    else:
        output.table(
            ("CHECK", "STATUS", "DETAIL", "FIX"),
            [(r.name, r.status, r.detail, r.fix) for r in found],
        )
    return 0 if ok else 1

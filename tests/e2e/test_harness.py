"""The harness itself, on glance's plain ``file`` store: when this passes and the datera cases
fail, the problem is in the driver, not in glance, uwsgi or PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from oslo_utils import units

from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi, GlanceVenv, PostgreSQL
from tests.plugins.glance import payload

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def file_glance(
    glance_venv: GlanceVenv, postgres: PostgreSQL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GlanceApi, Path]]:
    base = tmp_path_factory.mktemp("e2e-file-glance")
    images_dir = base / "images"
    api = GlanceApi(
        glance_venv,
        base,
        store_type="file",
        backend="fs1",
        store_options={"filesystem_store_datadir": images_dir},
        database_url=postgres.url,
        processes=2,
        threads=4,
    )
    with api:
        yield api, images_dir


def test_parallel_uploads_on_postgresql_with_the_file_store(
    file_glance: tuple[GlanceApi, Path],
) -> None:
    """4 parallel uploads across 2 uwsgi processes: sqlite can fail this ("database is locked"
    under concurrent writers); the harness's PostgreSQL must not."""
    api, images_dir = file_glance
    glance = GlanceClient(api.url)
    datas = [payload(8 * units.Mi + i, seed=200 + i) for i in range(4)]
    ids = [glance.create_image(f"fs-{i}")["id"] for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda p: glance.upload(p[0], p[1], size=len(p[1])).status,
                                 zip(ids, datas, strict=True)))  # fmt: skip
    assert statuses == [204] * 4
    for image_id, data in zip(ids, datas, strict=True):
        image = glance.get_image(image_id)
        assert (image["status"], image["checksum"]) == ("active", hashlib.md5(data).hexdigest())
        assert (images_dir / image_id).read_bytes() == data
        assert glance.download_bytes(image_id, range_header="bytes=-100") == data[-100:]
        assert glance.delete_image(image_id) == 204
        assert not (images_dir / image_id).exists()

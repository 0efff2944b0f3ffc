"""glance 33's ``GET /v2/info/stores/detail`` with the datera backend, stock and patched.

glance/api/v2/discovery.py ``InfoController.get_stores_detail`` maps only its built-in store
types (rbd, file, cinder, swift, s3, http) to property functions and calls
``store_mapper.get(store_type)(store_detail)``: for ``datera`` that calls ``None`` and the API
answers 500. contrib/glance-33-stores-detail-unknown-type.patch returns no properties for such
types; the same request must then answer 200 and list the datera store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi, GlanceVenv, datera_store_options, repo_root
from tests.plugins.glance import E2E_INITIATOR

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LOG = logging.getLogger(__name__)
PATCH = repo_root() / "contrib" / "glance-33-stores-detail-unknown-type.patch"
BACKEND = "datera1"


def _glance_api(venv: GlanceVenv, cluster: Simulator, base: Path) -> GlanceApi:
    """A small glance-api (sqlite, one process): this endpoint needs no concurrency."""
    options = datera_store_options(
        cluster.host, cluster.port, username="admin", password="password",
        initiator_name=E2E_INITIATOR,
    )  # fmt: skip
    return GlanceApi(
        venv, base, backend=BACKEND, store_options=options, processes=1, threads=2, log=LOG.warning
    )


@pytest.fixture(scope="module", params=["stock", "patched"])
def variant(
    request: pytest.FixtureRequest,
    glance_venv: GlanceVenv,
    e2e_cluster: Simulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, GlanceApi]]:
    """glance-api as pip installs it, then with the contrib/ patch applied to a copy of glance."""
    venv = glance_venv
    if request.param == "patched":
        venv = GlanceVenv(repo_root(), log=LOG.warning, glance_patches=[PATCH]).ensure()
    with _glance_api(venv, e2e_cluster, tmp_path_factory.mktemp(f"glance-{request.param}")) as api:
        yield request.param, api


def test_stores_detail(variant: tuple[str, GlanceApi]) -> None:
    name, api = variant
    glance = GlanceClient(api.url)
    assert [s["id"] for s in glance.stores()] == [BACKEND]  # the plain list works either way
    reply = glance.request("GET", "/v2/info/stores/detail")
    if name == "stock":
        assert reply.status == 500, reply.text
        log = api.log_file.read_text(errors="replace")
        assert "'NoneType' object is not callable" in log, "500 for another reason than the bug"
        return
    assert reply.status == 200, reply.text
    [store] = json.loads(reply.text)["stores"]
    assert store == {
        "id": BACKEND,
        "type": "datera",
        "description": "datera backend under test",
        "default": "true",
        "properties": {},
        "weight": 0,
    }

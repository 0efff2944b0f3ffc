"""An image's names (``datera_glance.naming``): the app instance name and the URI's last part
turn back into the image id, in both name forms, and nothing else does."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path

import pytest

from datera_glance import naming, store

IMAGE = str(uuid.uuid4())


@pytest.mark.parametrize("name", naming.ai_names(IMAGE))
def test_a_uri_leaf_gives_back_the_image_and_its_name(name: str) -> None:
    assert naming.named_image_id(name) == IMAGE
    assert naming.parse_leaf(naming.uri_leaf(IMAGE, name)) == (IMAGE, name)


def test_the_current_name_is_written_as_the_bare_id() -> None:
    assert naming.ai_names(IMAGE)[0] == naming.ai_name(IMAGE) == f"OS-IMAGE-{IMAGE}"
    assert naming.uri_leaf(IMAGE, naming.ai_name(IMAGE)) == IMAGE
    assert naming.parse_leaf(IMAGE) == (IMAGE, f"OS-IMAGE-{IMAGE}")


@pytest.mark.parametrize("leaf", ["OS-IMAGE-x", "OS-x", "x", f"OS-VOL-{IMAGE}", f"{IMAGE}-2"])
def test_a_leaf_without_an_image_id_is_refused(leaf: str) -> None:
    assert naming.parse_leaf(leaf) is None


def test_prefixes() -> None:
    assert naming.cluster_prefix("fd00::5", 7718) == "datera://[fd00::5]:7718/"
    assert naming.location_prefix("10.0.0.1", 7718, "/root") == (
        "datera://10.0.0.1:7718/app_instances/"
    )
    assert naming.location_prefix("10.0.0.1", 7718, "/root/g") == (
        "datera://10.0.0.1:7718/root/g/app_instances/"
    )


def test_the_driver_name_is_the_entry_point_glance_loads() -> None:
    """glance_store loads ``enabled_backends = NAME:<type>`` by the ``glance_store.drivers``
    entry point of that name; ``store.DRIVER`` is the type the Store and the CLI look for."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    drivers = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    assert drivers["glance_store.drivers"] == {store.DRIVER: "datera_glance.store:Store"}

"""What the e2e harness writes for glance-api: the interpreter for glance's child processes,
more backends, and options that win over the harness's own."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any, cast

from demo.glance_env import GlanceApi


class _Venv:
    """The parts of a GlanceVenv that writing the configuration reads."""

    def __init__(self, root: Path) -> None:
        self.venv_dir = root
        self.python = root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv_dir / "bin" / name


def _api(tmp_path: Path, **kwargs: Any) -> GlanceApi:
    return GlanceApi(cast(Any, _Venv(tmp_path / "venv")), tmp_path, port=1, **kwargs)


def test_glance_children_run_the_venv_python(tmp_path: Path) -> None:
    """pyuwsgi leaves ``sys.executable`` at the system python: the conversion plugin's
    ``python -m oslo_concurrency.prlimit`` takes ``[wsgi] python_interpreter`` (image_conversion.py)
    and legacy tasks' prlimit takes ``sys.executable``, which uwsgi's ``py-sys-executable`` sets."""
    api = _api(tmp_path)
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    assert api.config_sections()["wsgi"]["python_interpreter"] == Path(venv_python)
    api.etc_dir.mkdir(parents=True)
    cast(Any, api)._write_uwsgi_ini()
    uwsgi = configparser.ConfigParser(strict=False)
    uwsgi.read(api.etc_dir / "uwsgi.ini")
    assert uwsgi["uwsgi"]["py-sys-executable"] == venv_python


def test_extra_backends_and_config(tmp_path: Path) -> None:
    api = _api(
        tmp_path,
        extra_backends={"file1": ("file", {"filesystem_store_datadir": "/x", "weight": 5})},
        extra_config={"DEFAULT": {"hashing_algorithm": "sha256", "debug": False},
                      "image_conversion": {"output_format": "raw"}},
        image_cache=True,
    )  # fmt: skip
    sections = api.config_sections()
    default = sections["DEFAULT"]
    assert default["enabled_backends"] == "datera1:datera, file1:file"
    assert (default["hashing_algorithm"], default["debug"]) == ("sha256", False)
    assert default["worker_self_reference_url"] == api.url
    assert sections["file1"]["weight"] == 5
    assert sections["image_conversion"] == {"output_format": "raw"}
    assert sections["paste_deploy"]["flavor"] == "datera-noauth+cachemanagement"

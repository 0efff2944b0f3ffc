"""Which copier core is loaded, and the environment variables that decide it."""

from __future__ import annotations

import os
import subprocess
import sys

from datera_glance import chunkio

REQUIRE = "DATERA_GLANCE_REQUIRE_EXTENSIONS"
NO_EXT = "DATERA_GLANCE_NO_EXTENSIONS"


def test_compiled_core_loaded_when_required() -> None:
    """Fails when ./dev test requires the compiled core and it did not load."""
    assert chunkio.CORE in ("compiled", "python")
    assert chunkio.get_copier().core_name == chunkio.CORE
    if os.environ.get(REQUIRE) == "1":
        assert "compiled" in chunkio.available_cores(), "compiled core required but missing"
        assert chunkio.get_copier("compiled").core.__name__ == "datera_glance._chunkio"
        if os.environ.get(NO_EXT) != "1":
            assert chunkio.CORE == "compiled"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in (REQUIRE, NO_EXT)}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60
    )


HIDE_COMPILED = "import sys; sys.modules['datera_glance._chunkio'] = None\n"


def test_no_extensions_selects_python_core() -> None:
    out = _run("from datera_glance import chunkio; print(chunkio.CORE)", **{NO_EXT: "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "python"


def test_missing_compiled_core_falls_back_to_python() -> None:
    code = HIDE_COMPILED + (
        "from datera_glance import chunkio\n"
        "print(chunkio.CORE, chunkio.available_cores())\n"
        "try:\n    chunkio.get_copier('compiled')\nexcept ImportError:\n    print('refused')\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["python ('python',)", "refused"]


def test_missing_compiled_core_is_an_import_error_when_required() -> None:
    out = _run(HIDE_COMPILED + "import datera_glance.chunkio", **{REQUIRE: "1"})
    assert out.returncode != 0
    assert "ImportError: DATERA_GLANCE_REQUIRE_EXTENSIONS=1" in out.stderr
    assert "build_ext --inplace" in out.stderr

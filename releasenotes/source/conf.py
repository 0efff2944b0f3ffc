"""Sphinx configuration of the release notes alone (``tox -e releasenotes``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "doc" / "source" / "_ext"))

project = "datera-glance release notes"
copyright = "datera-glance authors"
extensions = ["reno.sphinxext", "reno_untagged"]
html_theme = "alabaster"
exclude_patterns = ["_build"]

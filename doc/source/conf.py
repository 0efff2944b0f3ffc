"""Sphinx configuration of the datera-glance documentation (``tox -e docs``, ``./dev docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import datera_glance

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "datera-glance"
copyright = "datera-glance authors"
release = version = datera_glance.__version__

extensions = [
    "oslo_config.sphinxext",  # .. show-options:: (the configuration reference)
    "reno.sphinxext",  # .. release-notes::
    "reno_untagged",  # ... titled with the version being released before the first tag
    "cli_reference",  # .. cli-reference:: (from the argparse parser)
    "markdown_table",  # .. markdown-table:: (the benchmark results)
]

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "Glance image store for Datera EDF", "fixed_sidebar": True}
html_static_path: list[str] = []
# Option names and command lines keep their "--" (no en dashes).
smartquotes = False
# The reference pages are generated: keep them honest by failing on any warning (sphinx -W).
nitpicky = False

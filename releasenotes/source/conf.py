"""Sphinx configuration of the release notes alone (``tox -e releasenotes``)."""

from __future__ import annotations

project = "datera-glance release notes"
copyright = "datera-glance authors"
extensions = ["reno.sphinxext"]
html_theme = "alabaster"
exclude_patterns = ["_build"]

"""Title the release notes of an untagged history with the version being released.

reno calls the notes of a history without any tag "0.0.0"; before the first tag they are the
release being made, which ``releasenotes/config.yaml`` names (``unreleased_version_title``,
kept equal to ``datera_glance.__version__`` by a test). Used by the docs and by the release
notes built alone.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from docutils import nodes
from sphinx.application import Sphinx

_CONFIG = Path(__file__).resolve().parents[3] / "releasenotes" / "config.yaml"
_UNTAGGED = "0.0.0"


def _title_untagged(app: Sphinx, doctree: nodes.document) -> None:
    title = yaml.safe_load(_CONFIG.read_text())["unreleased_version_title"]
    for node in doctree.findall(nodes.title):
        if node.astext() == _UNTAGGED:
            node.children = [nodes.Text(title)]


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("doctree-read", _title_untagged)
    return {"parallel_read_safe": True}

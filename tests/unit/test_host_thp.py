"""``host.thp_mode`` and the check line built on it (``datera-glance check``'s huge pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datera_glance import host
from datera_glance.cli import check


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always madvise [never]\n", "never"),
        ("garbage\n", ""),
    ],
)
def test_thp_mode_is_the_bracketed_word(tmp_path: Path, text: str, mode: str) -> None:
    path = tmp_path / "enabled"
    path.write_text(text)
    assert host.thp_mode(str(path)) == mode


def test_thp_mode_of_a_kernel_without_it_is_empty(tmp_path: Path) -> None:
    assert host.thp_mode(str(tmp_path / "absent")) == ""


@pytest.mark.parametrize("mode", ["always", "madvise"])
def test_huge_pages_available_is_ok(mode: str) -> None:
    result = check._huge_pages(mode)
    assert (result.status, result.fix) == (check.OK, "")


def test_huge_pages_never_warns_with_the_command_that_fixes_it() -> None:
    """A warning, not an error: everything works on small pages, only slower."""
    result = check._huge_pages("never")
    assert result.status == check.WARNING and "half as fast" in result.detail
    assert result.fix == f"echo madvise > {host.THP_ENABLED}"


def test_no_huge_pages_at_all_warns_too() -> None:
    result = check._huge_pages("")
    assert result.status == check.WARNING and "no transparent huge pages" in result.detail

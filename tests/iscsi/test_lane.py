"""The iSCSI lane on the host: one qemu guest boots (``iscsi_lane``), runs every case of
``tests/iscsi/guest/test_store_iscsi.py`` against real iSCSI targets, and each case is
reported here by the outcome the guest's pytest recorded. A case the guest did not run fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.plugins.iscsi_guest import LANE_TIMEOUT, Lane

GUEST_CASES = Path(__file__).parent / "guest" / "test_store_iscsi.py"

# The first case waits for the whole guest run (the fixture), so the suite's 600 s do not fit.
pytestmark = [pytest.mark.iscsi, pytest.mark.slow, pytest.mark.timeout(LANE_TIMEOUT + 300)]


def guest_case_names() -> list[str]:
    """The guest module's test functions, read from its source (it imports only in the guest)."""
    tree = ast.parse(GUEST_CASES.read_text(encoding="utf-8"))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


@pytest.mark.parametrize("case", guest_case_names())
def test_guest_case(iscsi_lane: Lane, case: str) -> None:
    result = iscsi_lane.cases.get(case)
    assert result is not None, (
        f"the guest did not run {case} (pytest exit status {iscsi_lane.pytest_rc!r});"
        f" guest log:\n{iscsi_lane.log_tail()}"
    )
    assert result.outcome == "passed", f"{case} {result.outcome} in the guest:\n{result.message}"


def test_guest_ran_every_case_and_nothing_else(iscsi_lane: Lane) -> None:
    assert sorted(iscsi_lane.cases) == sorted(guest_case_names()), iscsi_lane.log_tail()
    assert iscsi_lane.pytest_rc == "0", iscsi_lane.log_tail()

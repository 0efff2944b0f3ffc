"""The shipped rootwrap filters (etc/glance/rootwrap.d/images.filters), judged by oslo.rootwrap's
own matcher as glance-rootwrap judges them (issue 22, section 3).

Before: ``datera-disk-chown: ... chown, \\d+, /dev/(?!.*/\\.\\.).*`` let glance's user chown
any file: ``/dev/../tmp/victim`` passed (the lookahead only refused a ``/..`` after another
``/``), and so did a symlink under the world-writable ``/dev/shm``. No filter line may take a
path it cannot judge; the device owner change moved into privsep (tests/unit/
test_attach_privilege.py).
"""

from __future__ import annotations

import pathlib

import pytest
from oslo_rootwrap import wrapper

FILTERS = pathlib.Path(__file__).parents[2] / "etc" / "glance" / "rootwrap.d"


def _matches(argv: list[str]) -> bool:
    """Does a line of the shipped filter file admit ``argv``? (oslo.rootwrap also adds a
    ``privsep-helper`` filter of its own that admits any arguments; it is left out: this
    judges the file, and privsep's daemons check their callers' arguments themselves.)"""
    loaded = [f for f in wrapper.load_filters([str(FILTERS)]) if f.name != "privsep-helper"]
    try:
        wrapper.match_filter(loaded, argv, exec_dirs=["/usr/bin", "/bin"])
    except wrapper.FilterMatchNotExecutable:
        return True  # a filter matched; the command is just not installed here
    except wrapper.NoFilterMatched:
        return False
    return True


def _privsep(context: str, config: str = "/etc/glance/glance-api.conf") -> list[str]:
    return ["privsep-helper", "--config-file", config, "--privsep_context", context,
            "--privsep_sock_path", "/tmp/tmpk2j4_x9a/privsep.sock"]  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["chown", "1001", "/dev/../tmp/victim"],
        ["chown", "1001", "/dev/shm/link-to-anything"],
        ["chown", "1001", "/dev/sda"],
        _privsep("os_brick.privileged.default", "/etc/x/../../tmp/evil.conf"),
        _privsep("datera_glance.privileged.default", "/etc/x/../../tmp/evil.conf"),
        [*_privsep("os_brick.privileged.default")[:-1], "/tmp/../etc/privsep.sock"],
    ],
    ids=["dotdot", "shm-symlink", "any-device", "brick-config", "ours-config", "sock-path"],
)
def test_rootwrap_filters_refuse_paths_they_cannot_judge(argv: list[str]) -> None:
    assert not _matches(argv)


def test_rootwrap_filters_start_the_two_privsep_daemons() -> None:
    assert _matches(_privsep("os_brick.privileged.default"))
    assert _matches(_privsep("datera_glance.privileged.default"))
    assert not _matches(_privsep("datera_glance.privileged.other"))

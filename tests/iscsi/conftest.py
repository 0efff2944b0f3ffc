"""The iSCSI lane: ``test_lane.py`` runs on the host; ``guest/`` only inside the lane's qemu
guest (``guest.sh`` sets ``DATERA_GLANCE_ISCSI_GUEST=1``), never on the host itself."""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("DATERA_GLANCE_ISCSI_GUEST") == "1" else ["guest"]

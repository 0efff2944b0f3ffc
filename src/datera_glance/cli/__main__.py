"""``python -m datera_glance.cli``: the same as the ``datera-glance`` console script."""

import sys

from datera_glance.cli import main

sys.exit(main())

"""``python -m vibexp.cli``: the ``vibexp`` command."""

import sys

from vibexp.cli import main

sys.exit(main())

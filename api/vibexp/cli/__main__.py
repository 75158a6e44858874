"""``python -m vibexp.cli``: the ``vibexp`` command (imported, as a walk over the package does, it runs nothing)."""

import sys

from vibexp.cli import main

if __name__ == "__main__":
    sys.exit(main())

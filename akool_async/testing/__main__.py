"""``python -m akool_async.testing``: run the AKOOL emulator as a process."""

from __future__ import annotations

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())

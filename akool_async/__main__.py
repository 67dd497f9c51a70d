"""``python -m akool_async``: the ``akool-async`` command line."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":  # importing it (documentation tools do) runs nothing
    raise SystemExit(main())

"""``__all__`` and every public signature are what ``tests/data/public_api.json`` records.

The snapshot was taken before the package was restructured (issue 13), so moving code between
modules cannot change the surface unnoticed. A deliberate change regenerates it:
``python -m tests._api_surface > tests/data/public_api.json`` (and says so in CHANGELOG.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._api_surface import surface

SNAPSHOT = Path(__file__).parent / "data" / "public_api.json"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def test_the_public_surface_is_unchanged() -> None:
    """Every exported name, its kind, bases, members and signatures match the snapshot."""
    recorded = _flatten(json.loads(SNAPSHOT.read_text()))
    now = _flatten(json.loads(json.dumps(surface())))
    changed = {
        key: (recorded.get(key, "<absent>"), now.get(key, "<absent>"))
        for key in sorted(set(recorded) | set(now))
        if recorded.get(key) != now.get(key)
    }
    assert changed == {}

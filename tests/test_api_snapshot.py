"""``__all__`` and every public signature are what ``tests/data/public_api.json`` records.

The snapshot was taken before the package was restructured (issue 13), so moving code between
modules cannot change the surface unnoticed. A deliberate change regenerates it:
``python -m tests._api_surface > tests/data/public_api.json`` (and says so in CHANGELOG.md).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import akool_async
from tests._api_surface import PACKAGES, surface

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


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_live_in_their_package(package: str) -> None:
    """Classes and functions of ``__all__`` (and their methods) show the package as their
    module, so reprs, tracebacks and pickles do not name the private module that defines them."""
    module = importlib.import_module(package)
    misplaced = []
    for name in module.__all__:
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if value.__module__.split(".")[0] != "akool_async":
            continue  # a re-export from elsewhere would be the other package's business
        if value.__module__ != package:
            misplaced.append(f"{name}: {value.__module__}")
        for member_name, member in vars(value).items() if inspect.isclass(value) else ():
            ours = inspect.isfunction(member) and member.__module__.startswith("akool_async")
            if ours and member.__module__ != package:
                misplaced.append(f"{name}.{member_name}: {member.__module__}")
    assert misplaced == []


def test_public_values_pickle_by_their_public_names() -> None:
    """A pickle names ``akool_async.X``: it loads after any private move."""
    values = [
        akool_async.RetryPolicy(max_attempts=2),
        akool_async.Timeout(),
        akool_async.SwapStatus.SUCCESS,
        akool_async.SwapResult(
            id="a" * 24, status=akool_async.SwapStatus.SUCCESS, url="https://r/x.png"
        ),
        akool_async.RateLimitError("too frequent", code=1005, status=200),
    ]
    for value in values:
        data = pickle.dumps(value)
        assert b"akool_async._" not in data, type(value)
        again = pickle.loads(data)
        assert type(again) is type(value)
        assert str(again) == str(value)

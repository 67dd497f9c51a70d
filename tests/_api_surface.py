"""The public surface of a package as plain data: names, kinds and every signature.

``tests/test_api_snapshot.py`` compares it with ``tests/data/public_api.json`` (written by
``python -m tests._api_surface > tests/data/public_api.json`` when the surface changes on
purpose), so a refactor cannot change ``__all__`` or a public signature unnoticed.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import sys
from typing import Any

#: The packages whose ``__all__`` is the public surface.
PACKAGES = ("akool_async", "akool_async.testing")


def _stable_repr(value: Any) -> str:
    """``repr`` with sets sorted (their order depends on the hash seed)."""
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(map(_stable_repr, value))})"
    return repr(value)


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "<no signature>"


def _owner(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _ours(owner: type | None) -> bool:
    """Defined by the project, not inherited from the standard library or a builtin.

    What ``int`` or ``enum.Enum`` give a subclass differs between Python versions
    (``int.is_integer`` is new in 3.12, ``Enum.__call__``'s signature changed in 3.12).
    """
    return owner is not None and owner.__module__.split(".")[0] == "akool_async"


def _members(cls: type) -> dict[str, str]:
    members: dict[str, str] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in {"__init__", "__call__", "__aenter__"}:
            continue
        if not _ours(_owner(cls, name)):
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, property):
            members[name] = "property"
        elif isinstance(value, staticmethod | classmethod):
            members[name] = f"{type(value).__name__}{_signature(value.__func__)}"
        elif inspect.isfunction(value):
            members[name] = ("async def" if inspect.iscoroutinefunction(value) else "def") + (
                _signature(value)
            )
        elif isinstance(value, enum.Enum):
            members[name] = f"= {value.value!r}"
        else:  # descriptors: operations, blocking mirrors, attrs slots
            bound = getattr(cls, name, None)
            if callable(bound) and not inspect.isclass(bound):
                members[name] = f"{type(value).__name__}{_signature(bound)}"
    fields = getattr(cls, "__attrs_attrs__", None)
    if fields is not None:
        for field in fields:
            members[f"field {field.name}"] = f"default={_stable_repr(field.default)}"[:120]
    return members


def surface() -> dict[str, Any]:
    """``{package: {name: description}}`` for every name in each package's ``__all__``."""
    result: dict[str, Any] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        names: dict[str, Any] = {}
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                # Public bases only: private mixins are the layout, not the surface.
                bases = [b.__name__ for b in obj.__mro__[1:-1] if not b.__name__.startswith("_")]
                names[name] = {
                    "kind": "class",
                    "bases": bases,
                    # An enum is called as the standard library defines, per version.
                    "signature": "<enum>" if issubclass(obj, enum.Enum) else _signature(obj),
                    "members": _members(obj),
                }
            elif callable(obj):
                names[name] = {"kind": "function", "signature": _signature(obj)}
            else:
                names[name] = {"kind": type(obj).__name__, "value": _stable_repr(obj)[:200]}
        result[package] = names
    return result


if __name__ == "__main__":
    json.dump(surface(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")

"""What a package does to present its public names: ``__module__`` is the package's.

Used by the ``__init__`` of ``akool_async`` and of ``akool_async.testing``.
"""

from __future__ import annotations

import inspect
from typing import cast

import attrs

__all__ = ["present_as_public"]


def present_as_public(namespace: dict[str, object]) -> None:
    """Show each class and function in ``namespace["__all__"]`` as ``package.Name``.

    Reprs, tracebacks, ``help()`` and pickles then name the public path, not the private
    module that defines it, which a refactor may move (httpx does the same in its
    ``__init__``). attrs classes have their annotations resolved first: they name the
    defining module's globals, where ``typing.get_type_hints`` (and so cattrs) would no
    longer look once ``__module__`` is the package.
    """
    package = str(namespace["__name__"])
    for name in cast("list[str]", namespace["__all__"]):
        value = namespace[name]
        if not (isinstance(value, type) or inspect.isfunction(value)):
            continue
        if not value.__module__.startswith(f"{package}._"):
            continue
        if isinstance(value, type):
            if attrs.has(value):
                attrs.resolve_types(value)
            _present_members(value, value.__module__, package)
        value.__module__ = package


def _present_members(cls: type, module: str, package: str) -> None:
    """Give the functions defined in ``cls`` the package's ``__module__`` too.

    A class and its methods then agree on where they live, which tools that import the
    package to document it (griffe's inspection) need: a method still naming the private
    module while its class names the package reads as an alias of itself.
    """
    for member in vars(cls).values():
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) and member.__module__ == module:
            member.__module__ = package

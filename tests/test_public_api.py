"""The public surface of ``akool_async``: explicit, sorted, importable, complete."""

from __future__ import annotations

import importlib

import akool_async
from akool_async import _errors


def test_all_is_sorted() -> None:
    """``__all__`` is sorted, so additions are easy to review."""
    assert sorted(akool_async.__all__) == akool_async.__all__


def test_all_has_no_duplicates() -> None:
    """Every public name appears once."""
    assert len(set(akool_async.__all__)) == len(akool_async.__all__)


def test_every_name_is_importable() -> None:
    """Every name in ``__all__`` can be imported from the package."""
    module = importlib.import_module("akool_async")
    missing = [name for name in akool_async.__all__ if not hasattr(module, name)]
    assert missing == []


def test_every_public_error_is_exported() -> None:
    """Everything public in ``_errors`` is part of the package's surface."""
    assert sorted(set(_errors.__all__) - set(akool_async.__all__)) == []


def test_public_names_are_not_private_modules() -> None:
    """No exported object is a module or a private name."""
    bad = [
        name
        for name in akool_async.__all__
        if name.startswith("_") or type(getattr(akool_async, name)).__name__ == "module"
    ]
    assert bad == []


def test_core_names_exported() -> None:
    """The names the acceptance checks use are exported."""
    expected = {
        "AsyncClient",
        "FaceImage",
        "FaceInfo",
        "FaceMapping",
        "PlusSwap",
        "ProSwap",
        "ImageSwap",
        "VideoSwap",
        "DetectFaces",
        "LegacyDetect",
        "SwapJob",
        "SwapResult",
        "SwapStatus",
        "FaceDetection",
        "DetectedFace",
        "LegacyFaceDetection",
        "ModelStyle",
        "SwapKind",
        "MediaType",
        "Timeout",
        "Limits",
        "RateLimit",
        "RateLimitStatistics",
        "RetryPolicy",
        "ValidationError",
        "ClientStateError",
        "AmbiguousSubmitError",
        "DetectionError",
    }
    assert set() == expected - set(akool_async.__all__)

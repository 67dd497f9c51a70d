"""Fake but deterministic Analyze Frames (``POST /interface/detect-api/faceswap/analyze_frames``).

The frames of one request show one cast of people. How many of them a frame shows comes from
the frame URL's face hint, as for the detectors (``faces=3`` / ``faces-3``; no hint means 1,
``0`` means nobody): person ``i`` is in every frame with more than ``i`` faces, so with
several frames the same person is one entry with several appearances. Persons are numbered
left to right (``index``), their boxes derive from a hash of the cast (the first frame URL's
directory, so the stills of one video share their people) and drift a few pixels per second
of ``timestamps``. ``face_url`` is a fetchable PNG crop under ``/results/faces/``.

Errors are ``{"success": false, "error": ...}``: HTTP 400 for bad input (and for more than
``analyze_max_frames`` frames), HTTP 500 when a frame URL contains the config's
``fail_marker``. Frames without any face give
``success: true`` with an empty ``persons`` list, as the docs say.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ._config import EmulatorConfig
from ._faces import face_count, faces_for, is_http

__all__ = ["DEFAULT_EXPAND_RATIO", "analyze_frames", "error_body"]

#: The documented default of ``expand_ratio``.
DEFAULT_EXPAND_RATIO = 0.3
_FPS = 25
_LONGEST = 86_400.0  # boxes stop drifting after a day of video (and never overflow)


def error_body(message: str) -> dict[str, Any]:
    """The Analyze Frames error envelope."""
    return {"success": False, "error": message}


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, error_body(message)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _cast_key(url: str) -> str:
    """The part of a frame URL that its video's other frames share: its directory."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    return path.rsplit("/", 1)[0] if path.count("/") > 2 else path


def analyze_frames(body: Any, config: EmulatorConfig, base_url: str) -> tuple[int, dict[str, Any]]:
    """``POST .../faceswap/analyze_frames``: (HTTP status, JSON body)."""
    if not isinstance(body, dict):
        return _error(400, "Invalid request body")
    urls = body.get("frame_urls")
    if not isinstance(urls, list) or not urls:
        return _error(400, "frame_urls must be a non-empty list of image URLs")
    limit = config.analyze_max_frames
    if limit is not None and len(urls) > limit:
        return _error(400, f"At most {limit} frames per request, got {len(urls)}")
    for url in urls:
        if not is_http(url):
            return _error(400, f"Invalid URL format: {url!r}")
    timestamps = body.get("timestamps")
    if timestamps is None:
        timestamps = [float(i) for i in range(len(urls))]
    elif (
        not isinstance(timestamps, list)
        or len(timestamps) != len(urls)
        or not all(_is_number(t) and t >= 0 for t in timestamps)
    ):
        return _error(400, "timestamps must be a list of seconds >= 0, one per frame")
    ratio = body.get("expand_ratio", DEFAULT_EXPAND_RATIO)
    if not _is_number(ratio) or not 0 <= ratio <= 1:
        return _error(400, "expand_ratio must be a number between 0 and 1")
    marker = config.fail_marker
    if marker is not None and any(marker in url for url in urls):
        return _error(500, "Failed to process frames")

    cast = _cast_key(urls[0])
    tag = hashlib.sha256(f"{cast}|{float(ratio)}".encode()).hexdigest()[:16]
    counts = [face_count(url) for url in urls]
    persons: list[dict[str, Any]] = []
    for i in range(max(counts)):
        appearances: list[dict[str, Any]] = []
        seen: list[float] = []
        for frame, (count, seconds) in enumerate(zip(counts, timestamps, strict=True)):
            if i >= count:
                continue
            video_frame = round(min(seconds, _LONGEST) * _FPS)
            face = faces_for(cast, i + 1, frame=video_frame)[i]
            bbox = [face.x, face.y, face.x + face.w, face.y + face.h]
            seen.append(float(seconds))
            appearances.append({"timestamp": seen[-1], "frame_idx": frame, "bbox": bbox})
        digest = hashlib.sha256(f"{cast}#{i}".encode()).digest()
        persons.append(
            {
                "person_id": f"person_{i}",
                "index": i,
                "face_url": f"{base_url}/results/faces/person_{tag}_{i}.png",
                "bbox": appearances[0]["bbox"],
                "confidence": round(0.9 + digest[3] % 10 / 100, 2),
                "appearances": appearances,
                "first_seen": min(seen),
                "last_seen": max(seen),
            }
        )
    return 200, {"success": True, "frame_count": len(urls), "persons": persons}

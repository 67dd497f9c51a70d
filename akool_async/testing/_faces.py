"""Fake but deterministic face detection for both detector endpoints.

How many faces a media URL holds comes from a hint in the URL: ``faces=3`` (query) or
``faces-3`` / ``faces_3`` (file name); no hint means 1 face, ``0`` means no face. Base64
``img`` input always holds 1 face. Face boxes and landmarks derive from a hash of the URL, so
the same URL always gives the same faces, and faces never overlap (left to right, growing in
size from a hash so ``single_face`` has a well-defined largest face).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
import uuid
from typing import Any

import attrs

from ._config import EmulatorConfig

__all__ = [
    "Face",
    "decode_img",
    "detect_faces",
    "detect_legacy",
    "face_count",
    "faces_for",
    "is_http",
    "is_video_url",
]

_HINT = re.compile(r"faces[-=_](\d+)")
_FPS = 25
_DATA_URI = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)
_VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm")


def is_video_url(url: str) -> bool:
    """Whether a media URL names a video (by the extension of its path)."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    return path.endswith(_VIDEO_EXTENSIONS)


def face_count(url: str) -> int:
    """Number of faces in the media at ``url``, from its ``faces=N`` / ``faces-N`` hint."""
    match = _HINT.search(url.lower())
    return int(match.group(1)) if match else 1


@attrs.frozen
class Face:
    """One detected face: box ``[x, y, w, h]`` plus 6 landmark points."""

    x: int
    y: int
    w: int
    h: int

    @property
    def points(self) -> list[list[int]]:
        """Left eye, right eye, nose, mouth centre, left and right mouth corners."""
        fx = (0.3, 0.7, 0.5, 0.5, 0.35, 0.65)
        fy = (0.4, 0.4, 0.6, 0.8, 0.8, 0.8)
        return [
            [self.x + int(a * self.w), self.y + int(b * self.h)]
            for a, b in zip(fx, fy, strict=True)
        ]

    @property
    def region(self) -> list[int]:
        """``[x, y, width, height]``."""
        return [self.x, self.y, self.w, self.h]

    @property
    def crop(self) -> list[int]:
        """The expanded crop box ``[x, y, width, height]`` in image coordinates."""
        cx, cy = max(0, self.x - self.w // 4), max(0, self.y - self.h // 4)
        return [cx, cy, self.w + self.w // 2, self.h + self.h // 2]


def _opts(points: list[list[int]], dx: int = 0, dy: int = 0) -> str:
    return ":".join(f"{x - dx},{y - dy}" for x, y in points[:4])


def faces_for(key: str, count: int, frame: int = 0) -> list[Face]:
    """``count`` deterministic faces for the media identified by ``key`` in ``frame``."""
    faces = []
    for i in range(count):
        digest = hashlib.sha256(f"{key}#{i}".encode()).digest()
        w = 90 + digest[0] % 120
        x = 20 + i * 260 + digest[1] % 40 + frame // 5
        y = 30 + digest[2] % 60
        faces.append(Face(x=x, y=y, w=w, h=w * 5 // 4))
    return faces


def _frame_data(
    faces: list[Face],
    *,
    frame_time: float | None,
    face_urls: list[str] | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "landmarks": [f.points for f in faces],
        "landmarks_str": [_opts(f.points) for f in faces],
        "region": [f.region for f in faces],
        "removed": [],
        "frame_time": frame_time,
    }
    if face_urls is not None:
        data["face_urls"] = face_urls
        data["crop_region"] = [f.crop for f in faces]
        data["crop_landmarks"] = [_opts(f.points, f.crop[0], f.crop[1]) for f in faces]
    return data


def decode_img(img: str) -> bytes | None:
    """Decode plain or data-URI Base64; None when it does not decode to something."""
    raw = _DATA_URI.sub("", img.strip(), count=1)
    try:
        data = base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data or None


def is_http(value: object) -> bool:
    """Whether ``value`` is an ``http(s)://host...`` URL string."""
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error_code": 1, "error_msg": message, "faces_obj": {}}


def detect_faces(body: Any, config: EmulatorConfig, base_url: str) -> tuple[int, dict[str, Any]]:
    """``POST /interface/detect-api/detect_faces``: (HTTP status, JSON body)."""
    if not isinstance(body, dict):
        return _error(400, "Invalid request body")
    url, img = body.get("url"), body.get("img")
    if not url and not img:
        return _error(400, "Either 'url' or 'img' parameter must be provided")
    if url:  # url wins over img
        if not is_http(url):
            return _error(400, "Invalid URL format")
        key, count, video = str(url), face_count(str(url)), is_video_url(str(url))
        if config.fail_marker is not None and config.fail_marker in key:
            return _error(500, "Failed to process media")
    else:
        if not isinstance(img, str) or decode_img(img) is None:
            return _error(400, "Failed to process media")
        key, count, video = img, 1, False
    num_frames = body.get("num_frames", 5)
    bad = isinstance(num_frames, bool) or not isinstance(num_frames, int)
    if video and (bad or not 1 <= num_frames <= 100):  # ignored for images (docs)
        return _error(400, "num_frames must be an integer between 1 and 100")
    if count == 0 and config.detector_no_face == "error":
        return _error(400, "No faces detected")
    total = max(1, int(config.video_duration * _FPS))
    frames = sorted({k * total // num_frames for k in range(num_frames)}) if video else [0]
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    faces_obj: dict[str, Any] = {}
    for frame in frames:
        faces = faces_for(key, count, frame)
        if body.get("single_face") is True and faces:
            faces = [max(faces, key=lambda f: f.w * f.h)]
        urls = None
        if body.get("return_face_url") is True:
            urls = [
                f"{base_url}/results/faces/face_{tag}_{frame}_{i}.png" for i in range(len(faces))
            ]
        frame_time = round(frame / _FPS, 3) if video else None
        faces_obj[str(frame)] = _frame_data(faces, frame_time=frame_time, face_urls=urls)
    return 200, {"error_code": 0, "error_msg": "SUCCESS", "faces_obj": faces_obj}


def detect_legacy(
    body: Any, config: EmulatorConfig, base_url: str, rng: random.Random
) -> tuple[int, dict[str, Any]]:
    """``POST /detect`` (legacy): HTTP 200 always, ``error_code`` 1 on errors."""

    def error(message: str) -> tuple[int, dict[str, Any]]:
        return 200, {"error_code": 1, "error_msg": message}

    if not isinstance(body, dict):
        return error("Invalid request body")
    single = body.get("single_face")
    if not isinstance(single, bool):
        return error("single_face is required and must be a boolean")
    url, img = body.get("image_url"), body.get("img")
    extra: dict[str, Any] = {}
    if url:
        if not is_http(url):
            return error("image_url must be an http(s) URL")
        key, count = str(url), face_count(str(url))
        if config.fail_marker is not None and config.fail_marker in key:
            return error("'NoneType' object has no attribute 'shape'")
    elif img:
        if not isinstance(img, str) or decode_img(img) is None:
            return error("img is not valid base64")
        key, count = img, 1
        tag = hashlib.sha256(img.encode()).hexdigest()[:16]
        extra["origin_url"] = f"{base_url}/results/uploads/upload_{tag}.png"
    else:
        return error("one of image_url or img is required")
    if count == 0 and config.detector_no_face == "error":
        return error("No faces detected")
    faces = faces_for(key, count)
    if single and faces:
        faces = [max(faces, key=lambda f: f.w * f.h)]
    points = [[*f.points[:4], [0, 0], [0, 0]] for f in faces]
    return 200, {
        "error_code": 0,
        "error_msg": "SUCCESS",
        "landmarks": points,
        "landmarks_str": [_opts(p) for p in points],
        "region": [f.region for f in faces],
        "seconds": round(rng.uniform(0.01, 0.05), 6),
        "trx_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        **extra,
    }

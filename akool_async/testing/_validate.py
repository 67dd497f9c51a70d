"""Request validation of the four submit endpoints, like the real server.

Field names and JSON types are the documented ones per endpoint; unknown extra fields are
ignored. Problems raise ``Rejected(code, msg)``: 1003 for a missing, empty or mistyped field,
1007 for more than 8 faces. The order is: every 1003 check first, then 1007.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs

from ._config import EmulatorConfig
from ._faces import face_count, is_video_url

__all__ = ["MAX_FACES", "Rejected", "Submission", "validate_submit"]

MAX_FACES = 8
_URL = re.compile(r"^https?://[^\s/?#]+\S*$", re.IGNORECASE)
_NUM = r"-?\d+(?:\.\d+)?"
_OPTS = re.compile(rf"^{_NUM},{_NUM}(?::{_NUM},{_NUM}){{3}}$")
_PLUS_STYLES = frozenset({"realistic", "beautify", "lossless"})
_PRO_MODEL = "akool_faceswap_image_hq"


class Rejected(Exception):
    """A submit the server refuses: ``code`` (1003, 1006, 1007) and ``msg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@attrs.frozen(kw_only=True)
class Submission:
    """What a valid submit asks for."""

    kind: Literal["image", "video"]
    source_urls: tuple[str, ...]
    target_urls: tuple[str, ...]
    webhook_url: str | None


def _bad(msg: str) -> Rejected:
    return Rejected(1003, msg)


def _url(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise _bad(f"{key} is required")
    if not isinstance(value, str) or not _URL.match(value):
        raise _bad(f"{key} must be an http(s) URL")
    return value


def _webhook(body: dict[str, Any]) -> str | None:
    value = body.get("webhookUrl")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _URL.match(value):
        raise _bad("webhookUrl must be an http(s) URL")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"{key} must be a boolean")
    return value


def _face_enhance(body: dict[str, Any], *, want_int: bool, config: EmulatorConfig) -> None:
    if "face_enhance" not in body:
        return
    value = body["face_enhance"]
    is_int = isinstance(value, int) and not isinstance(value, bool) and value in (0, 1)
    is_bool = isinstance(value, bool)
    if config.face_enhance_types == "coerce":
        ok = is_int or is_bool
    else:
        ok = is_int if want_int else is_bool
    if not ok:
        kind = "0 or 1" if want_int else "a boolean"
        raise _bad(f"face_enhance must be {kind}")


def _images(body: dict[str, Any], key: str, *, max_items: int | None) -> list[tuple[str, Any]]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise _bad(f"{key} is required and must be a non-empty array")
    if max_items is not None and len(value) > max_items:
        raise _bad(f"{key} has more than {max_items} items")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(f"{key}[{i}] must be an object")
        path = item.get("path")
        if not isinstance(path, str) or not path:
            raise _bad(f"{key}[{i}].path is required")
        if not _URL.match(path):
            raise _bad(f"{key}[{i}].path must be an http(s) URL")
        opts = item.get("opts")
        if opts is not None and (not isinstance(opts, str) or not _OPTS.match(opts)):
            raise _bad(f"{key}[{i}].opts must look like 'x1,y1:x2,y2:x3,y3:x4,y4'")
        out.append((path, opts))
    return out


def _opts_rule(source: list[tuple[str, Any]], target: list[tuple[str, Any]]) -> None:
    """If either array has more than one element, every element of both needs ``opts``."""
    if len(source) > 1 or len(target) > 1:
        for key, items in (("sourceImage", source), ("targetImage", target)):
            for i, (_, opts) in enumerate(items):
                if opts is None:
                    raise _bad(f"{key}[{i}].opts is required when an array has several items")


def _bbox(info: dict[str, Any], where: str) -> None:
    if "bbox" not in info:
        return
    box = info["bbox"]
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise _bad(f"{where}.bbox must be an array of exactly 4 numbers")


def _mapping(body: dict[str, Any], config: EmulatorConfig) -> list[str]:
    """Validate Plus ``face_mapping``; return its source face URLs."""
    mapping = body.get("face_mapping")
    if mapping is None or mapping == []:
        if config.plus_mapping_required:
            raise _bad("face_mapping is required when single_face_mode is false")
        return []
    if not isinstance(mapping, list):
        raise _bad("face_mapping must be an array")
    sources = []
    for i, item in enumerate(mapping):
        where = f"face_mapping[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object")
        src, tgt = item.get("source_face_info"), item.get("target_face_info")
        if not isinstance(src, dict):
            raise _bad(f"{where}.source_face_info is required")
        face_url = src.get("face_url")
        if not isinstance(face_url, str) or not _URL.match(face_url):
            raise _bad(f"{where}.source_face_info.face_url must be an http(s) URL")
        _bbox(src, f"{where}.source_face_info")
        if not isinstance(tgt, dict):
            raise _bad(f"{where}.target_face_info is required")
        if "face_url" in tgt and (
            not isinstance(tgt["face_url"], str) or not _URL.match(tgt["face_url"])
        ):
            raise _bad(f"{where}.target_face_info.face_url must be an http(s) URL")
        _bbox(tgt, f"{where}.target_face_info")
        sources.append(face_url)
    return sources


def _plus(body: dict[str, Any], config: EmulatorConfig) -> Submission:
    source, target = _url(body, "source_url"), _url(body, "target_url")
    webhook = _webhook(body)
    _face_enhance(body, want_int=False, config=config)
    style = body.get("model_style", "realistic")
    if style not in _PLUS_STYLES:
        raise _bad("model_style must be one of realistic, beautify, lossless")
    single = _bool(body, "single_face_mode", False)
    mapped = [] if single else _mapping(body, config)
    if len(mapped) > MAX_FACES:
        raise Rejected(1007, "More than 8 faces to swap")
    if not single and face_count(target) > MAX_FACES:
        raise Rejected(1007, "More than 8 faces to swap")
    kind: Literal["image", "video"] = "video" if is_video_url(target) else "image"
    sources = tuple(dict.fromkeys([source, *mapped]))
    return Submission(kind=kind, source_urls=sources, target_urls=(target,), webhook_url=webhook)


def _pro(body: dict[str, Any], config: EmulatorConfig) -> Submission:
    source = _images(body, "sourceImage", max_items=50)
    target = _images(body, "targetImage", max_items=50)
    _opts_rule(source, target)
    webhook = _webhook(body)
    _face_enhance(body, want_int=False, config=config)
    _bool(body, "single_face_mode", False)
    if body.get("model_name", _PRO_MODEL) != _PRO_MODEL:
        raise _bad(f"model_name must be {_PRO_MODEL}")
    return Submission(
        kind="image",
        source_urls=tuple(dict.fromkeys(p for p, _ in source)),
        target_urls=tuple(dict.fromkeys(p for p, _ in target)),
        webhook_url=webhook,
    )


def _v3(body: dict[str, Any], config: EmulatorConfig, *, video: bool) -> Submission:
    media_key = "modifyVideo" if video else "modifyImage"
    target = _images(body, "targetImage", max_items=None)
    source = _images(body, "sourceImage", max_items=None)
    media = _url(body, media_key)
    if len(source) != len(target):
        raise _bad("sourceImage and targetImage must have the same length")
    _opts_rule(source, target)
    webhook = _webhook(body)
    _face_enhance(body, want_int=True, config=config)
    if len(source) > MAX_FACES or face_count(media) > MAX_FACES:
        raise Rejected(1007, "More than 8 faces to swap")
    return Submission(
        kind="video" if video else "image",
        source_urls=tuple(dict.fromkeys(p for p, _ in source)),
        target_urls=(media,),
        webhook_url=webhook,
    )


def validate_submit(endpoint: str, body: Any, config: EmulatorConfig) -> Submission:
    """Validate a submit body for ``endpoint``.

    Raises:
        Rejected: 1003 or 1007.
    """
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    if endpoint == "faceswap_plus":
        return _plus(body, config)
    if endpoint == "faceswap_pro":
        return _pro(body, config)
    return _v3(body, config, video=endpoint == "faceswap_video")

"""Request and response models of the AKOOL Face Swap API (contract section 3).

Every model is a frozen, keyword-only attrs class with snake_case attributes. The wire name of
each field is *declared*, never derived, with ``Annotated[T, override(rename=...)]``: AKOOL mixes
``source_url``, ``sourceImage``, ``webhookUrl``, ``model_name`` and ``_id`` in one API. The
single cattrs converter that reads these declarations lives in ``_wire.py``.

Requests validate themselves at construction and raise ``ValidationError`` (with a dotted
``field`` path such as ``"source[3].opts"``) before anything is sent. Sequences are stored as
tuples, so requests are hashable. Responses ignore unknown fields and default every optional
field to None, because the real server's items drift from the docs (section 3.5).
"""

from __future__ import annotations

import enum
import inspect
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final
from urllib.parse import urlsplit

import attrs
from cattrs.gen import override

from ._errors import ValidationError

__all__ = [
    "MAX_FACES",
    "MAX_PRO_PAIRS",
    "Credit",
    "CreditQuery",
    "DeleteQuery",
    "Deleted",
    "DetectFaces",
    "DetectedFace",
    "DetectedFrame",
    "FaceDetection",
    "FaceImage",
    "FaceInfo",
    "FaceMapping",
    "ImageSwap",
    "LegacyDetect",
    "LegacyFaceDetection",
    "MediaType",
    "ModelStyle",
    "PlusSwap",
    "ProSwap",
    "ResultPage",
    "ResultsQuery",
    "SubmitData",
    "SwapJob",
    "SwapKind",
    "SwapRequest",
    "SwapResult",
    "SwapStatus",
    "Token",
    "TokenRequest",
    "VideoSwap",
    "bbox_from_region",
    "is_record_id",
    "validate_ids",
]

#: Most faces one swap may change (code 1007); applied to Plus ``face_mapping`` and V3 arrays.
MAX_FACES = 8
#: Face Swap Pro accepts 1 to 50 source/target images (faceswap.yaml maxItems).
MAX_PRO_PAIRS = 50

_VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm")
_NUMBER = r"-?\d+(?:\.\d+)?"
_POINT = rf"{_NUMBER},{_NUMBER}"
_OPTS_RE = re.compile(rf"{_POINT}(?::{_POINT}){{3}}")
_ID_RE = re.compile(r"[0-9a-fA-F]{24}")


def _wire(
    name: str, *, omit_none: bool = False, hook: Callable[[Any], Any] | None = None
) -> object:
    """Declare a field's wire name, whether a None value is left out, and a custom encoder."""
    return override(rename=name, omit_if_default=omit_none or None, unstruct_hook=hook)


# --------------------------------------------------------------------------------------------
# Enums


class SwapStatus(enum.IntEnum):
    """``faceswap_status`` of a job (contract 4.3)."""

    QUEUED = 1
    PROCESSING = 2
    SUCCESS = 3
    FAILED = 4

    @property
    def is_terminal(self) -> bool:
        """True for SUCCESS and FAILED: the status will not change any more."""
        return self in (SwapStatus.SUCCESS, SwapStatus.FAILED)


class ModelStyle(enum.StrEnum):
    """Face Swap Plus ``model_style``."""

    REALISTIC = "realistic"
    BEAUTIFY = "beautify"
    LOSSLESS = "lossless"


class SwapKind(enum.StrEnum):
    """Which operation created a job."""

    PLUS = "plus"
    PRO = "pro"
    IMAGE = "image"
    VIDEO = "video"


class MediaType(enum.StrEnum):
    """Whether a job produces an image or a video (videos take longer: poll them less often)."""

    IMAGE = "image"
    VIDEO = "video"


# --------------------------------------------------------------------------------------------
# Validation helpers


#: The common case, decided without ``urlsplit`` (~3x faster; a batch checks two URLs per
#: request): ``http(s)://`` + a host of plain characters + optional path, query and fragment,
#: all printable ASCII. ``urlsplit`` accepts every such string with that scheme and netloc;
#: anything else (spaces, brackets, userinfo, non-ASCII...) takes the ``urlsplit`` path.
_PLAIN_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.\-_:~%]+(?P<path>[/?#][!-~]*)?\Z")


def _url_path(url: str) -> str:
    """``urlsplit(url).path`` (the fast way for plain URLs)."""
    match = _PLAIN_URL.match(url)
    if match is None:
        return urlsplit(url).path
    path = match.group("path") or ""
    end = len(path)
    for stop in ("?", "#"):
        found = path.find(stop)
        if found != -1 and found < end:
            end = found
    return path[:end]


def _check_url(value: object, field: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"must be a URL string, got {type(value).__name__}", field=field)
    if _PLAIN_URL.match(value) is not None:
        return
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "http://[::1": an unbalanced IPv6 bracket
        raise ValidationError(
            f"must be an absolute http(s) URL, got {value!r}", field=field
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"must be an absolute http(s) URL, got {value!r}", field=field)


def _url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _check_url(value, attribute.name)


#: URL schemes of object stores a media field takes (resolved by ``_storage`` before the wire).
OBJECT_SCHEMES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
#: attrs metadata of a field that holds media: ``_storage`` resolves local and object-store
#: references in such fields to http(s) URLs before a request goes out.
MEDIA: Final = {"akool_media": True}
_MEDIA_HELP = (
    "must be an http(s) URL, a local file (pathlib.Path or file:// URL) or an object-store "
    "URL (s3://bucket/key, gs://...)"
)


def _media_ref(value: str | os.PathLike[str]) -> str:
    """A ``pathlib.Path`` (or any path-like) becomes its absolute ``file://`` URL."""
    if isinstance(value, os.PathLike):
        try:
            return Path(value).expanduser().absolute().as_uri()
        except (TypeError, ValueError):
            return str(value)  # the validator names the field
    return value


def _optional_media_ref(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else _media_ref(value)


def check_media(value: object, field: str) -> None:
    """An http(s) URL, a ``file://`` URL, or an object-store URL with a bucket and a key.

    Raises:
        ValidationError: anything else, naming ``field``.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{_MEDIA_HELP}, got {type(value).__name__}", field=field)
    if _PLAIN_URL.match(value) is not None:
        return
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValidationError(f"{_MEDIA_HELP}, got {value!r}", field=field) from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.netloc:
        return
    if scheme == "file" and parts.netloc in ("", "localhost") and len(parts.path) > 1:
        return
    if scheme in OBJECT_SCHEMES and parts.netloc and parts.path.strip("/"):
        return
    raise ValidationError(f"{_MEDIA_HELP}, got {value!r}", field=field)


def _media(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    check_media(value, attribute.name)


def _optional_media(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None:
        check_media(value, attribute.name)


def _optional_url(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None:
        _check_url(value, attribute.name)


def _empty_to_none(value: str | None) -> str | None:
    return value or None


def _is_bool(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"must be a bool, got {value!r}", field=attribute.name)


def _optional_bool(
    instance: object, attribute: attrs.Attribute[bool | None], value: object
) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"must be a bool or None, got {value!r}", field=attribute.name)


def _non_empty_str(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string", field=attribute.name)


def bbox_from_region(region: Sequence[float]) -> tuple[float, float, float, float]:
    """Turn a detector box ``[x, y, width, height]`` into a bbox ``[x1, y1, x2, y2]``.

    Use it on a detector ``crop_region`` (or ``region``) to build ``FaceInfo.bbox``.

    Raises:
        ValidationError: ``region`` is not four finite numbers with positive width and height.
    """
    if len(region) != 4:
        raise ValidationError(f"must be [x, y, width, height], got {region!r}", field="region")
    x, y, w, h = (float(v) for v in region)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValidationError(
            f"needs finite numbers and a positive size, got {region!r}", field="region"
        )
    return (x, y, x + w, y + h)


def is_record_id(value: object) -> bool:
    """Whether ``value`` is a record ``_id``: 24 hex digits (a MongoDB ObjectId)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def validate_ids(ids: Iterable[str], *, field: str = "ids") -> tuple[str, ...]:
    """Check that every id is a 24-hex-digit record ``_id``; return them deduplicated, in order.

    Raises:
        ValidationError: an id is malformed (or ``ids`` is a bare string).
    """
    if isinstance(ids, str | bytes):
        raise ValidationError("must be a list of ids, not a single string", field=field)
    seen: dict[str, None] = {}
    for index, job_id in enumerate(ids):
        if not isinstance(job_id, str) or not _ID_RE.fullmatch(job_id):
            raise ValidationError(
                f"must be a 24-hex-digit _id, got {job_id!r}", field=f"{field}[{index}]"
            )
        seen.setdefault(job_id, None)
    return tuple(seen)


# --------------------------------------------------------------------------------------------
# Face swap requests


def _bbox(value: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        count = -1 if isinstance(value, str | bytes) else len(value)
    except TypeError:  # not a sequence at all (a number, a generator...)
        count = -1
    if count != 4:
        raise ValidationError(f"must be four numbers [x1, y1, x2, y2], got {value!r}", field="bbox")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ValidationError(f"must be four finite numbers, got {value!r}", field="bbox")
        numbers.append(float(item))
    x1, y1, x2, y2 = numbers
    if x2 <= x1 or y2 <= y1:
        raise ValidationError(f"needs x2 > x1 and y2 > y1, got {value!r}", field="bbox")
    return (x1, y1, x2, y2)


def _bbox_json(bbox: tuple[float, float, float, float]) -> list[float | int]:
    return [int(v) if v.is_integer() else v for v in bbox]


@attrs.frozen(kw_only=True)
class FaceInfo:
    """One face for Face Swap Plus ``face_mapping``: a cropped face URL, or an image URL + bbox.

    Args:
        face_url: A detector crop (``face_urls`` entry; no bbox needed) or an original image.
        bbox: ``(x1, y1, x2, y2)`` of the face in ``face_url``; needed for uncropped images.
            Build it from a detector ``crop_region`` with ``FaceInfo.from_region``.
    """

    face_url: Annotated[str | None, _wire("face_url", omit_none=True)] = attrs.field(
        default=None, converter=_optional_media_ref, validator=_optional_media, metadata=MEDIA
    )
    bbox: Annotated[
        tuple[float, float, float, float] | None, _wire("bbox", omit_none=True, hook=_bbox_json)
    ] = attrs.field(default=None, converter=_bbox)

    @classmethod
    def from_region(cls, face_url: str, region: Sequence[float]) -> FaceInfo:
        """A face in an uncropped image, from a detector box ``[x, y, width, height]``."""
        return cls(face_url=face_url, bbox=bbox_from_region(region))


def _face_info(instance: object, attribute: attrs.Attribute[FaceInfo], value: object) -> None:
    if not isinstance(value, FaceInfo):
        raise ValidationError(
            f"must be a FaceInfo, got {type(value).__name__}", field=attribute.name
        )


@attrs.frozen(kw_only=True)
class FaceMapping:
    """Which source face replaces which target face (Plus multi-face mode)."""

    source: Annotated[FaceInfo, _wire("source_face_info")] = attrs.field(validator=_face_info)
    target: Annotated[FaceInfo, _wire("target_face_info")] = attrs.field(validator=_face_info)

    def __attrs_post_init__(self) -> None:
        if self.source.face_url is None:
            raise ValidationError("is required for the source face", field="source.face_url")


def _check_opts(value: object, field: str) -> None:
    if not isinstance(value, str) or not _OPTS_RE.fullmatch(value):
        raise ValidationError(
            f"must be 4 landmark points 'x,y:x,y:x,y:x,y', got {value!r}", field=field
        )


def _opts(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        _check_opts(value, attribute.name)


@attrs.frozen(kw_only=True)
class FaceImage:
    """One face image for Pro and V3 swaps: a URL plus its 4-point landmark string.

    Args:
        path: http(s) URL of the face (a detector crop, or an image with ``opts`` in it).
        opts: Landmarks ``"x1,y1:x2,y2:x3,y3:x4,y4"`` (``crop_landmarks`` for a crop,
            ``landmarks_str`` for an uncropped image). Required on every item as soon as
            either list has more than one item.
    """

    path: Annotated[str, _wire("path")] = attrs.field(
        converter=_media_ref, validator=_media, metadata=MEDIA
    )
    opts: Annotated[str | None, _wire("opts", omit_none=True)] = attrs.field(
        default=None, validator=_opts
    )


def _faces(value: Iterable[FaceImage], field: str) -> tuple[FaceImage, ...]:
    if not isinstance(value, FaceImage | str | bytes):
        try:
            return tuple(value)
        except TypeError:  # not iterable: same error as a single item
            pass
    raise ValidationError(f"must be a list of FaceImage, got {type(value).__name__}", field=field)


def _source_faces(value: Iterable[FaceImage]) -> tuple[FaceImage, ...]:
    return _faces(value, "source")


def _target_faces(value: Iterable[FaceImage]) -> tuple[FaceImage, ...]:
    return _faces(value, "target")


def _mappings(value: Iterable[FaceMapping] | None) -> tuple[FaceMapping, ...] | None:
    if value is None:
        return None
    if not isinstance(value, FaceMapping | str | bytes):
        try:
            return tuple(value)
        except TypeError:  # not iterable
            pass
    raise ValidationError(
        f"must be a list of FaceMapping, got {type(value).__name__}", field="face_mapping"
    )


def _model_style(value: ModelStyle | str) -> ModelStyle:
    try:
        return ModelStyle(value)
    except ValueError:
        choices = ", ".join(style.value for style in ModelStyle)
        raise ValidationError(
            f"must be one of {choices}; got {value!r}", field="model_style"
        ) from None


def _check_face_list(
    name: str, faces: tuple[FaceImage, ...], *, maximum: int, limit_text: str
) -> None:
    if not faces:
        raise ValidationError("must contain at least one FaceImage", field=name)
    if len(faces) > maximum:
        raise ValidationError(f"has {len(faces)} items; {limit_text}", field=name)
    for index, face in enumerate(faces):
        if not isinstance(face, FaceImage):
            raise ValidationError(
                f"must be a FaceImage, got {type(face).__name__}", field=f"{name}[{index}]"
            )


def _check_opts_rule(source: tuple[FaceImage, ...], target: tuple[FaceImage, ...]) -> None:
    """Contract 3.2: once either list has more than one item, every item of both needs opts."""
    if len(source) == 1 and len(target) == 1:
        return
    for name, faces in (("source", source), ("target", target)):
        for index, face in enumerate(faces):
            if face.opts is None:
                raise ValidationError(
                    "is required on every face when either list has more than one item",
                    field=f"{name}[{index}].opts",
                )


@attrs.frozen(kw_only=True)
class PlusSwap:
    """Face Swap Plus (``faceswapPlusByImage``): image or video target, one or many faces.

    Args:
        source_url: URL of the new face.
        target_url: URL of the image or video (.mp4/.mov/.avi/.webm) to change.
        single_face_mode: Swap the single (largest) face without detection. None picks the
            documented pairing: True without ``face_mapping``, False with one. Always sent.
        face_enhance: Enhance the swapped faces.
        model_style: ``"realistic"``, ``"beautify"`` or ``"lossless"``.
        face_mapping: Up to 8 source→target face pairs (multi-face mode).
        webhook_url: Where AKOOL POSTs the signed, encrypted status callbacks.
    """

    kind: ClassVar[SwapKind] = SwapKind.PLUS

    source_url: Annotated[str, _wire("source_url")] = attrs.field(
        converter=_media_ref, validator=_media, metadata=MEDIA
    )
    target_url: Annotated[str, _wire("target_url")] = attrs.field(
        converter=_media_ref, validator=_media, metadata=MEDIA
    )
    single_face_mode: Annotated[bool | None, _wire("single_face_mode")] = attrs.field(
        default=None, validator=_optional_bool
    )
    face_enhance: Annotated[bool, _wire("face_enhance")] = attrs.field(
        default=False, validator=_is_bool
    )
    model_style: Annotated[ModelStyle, _wire("model_style")] = attrs.field(
        default=ModelStyle.REALISTIC, converter=_model_style
    )
    face_mapping: Annotated[
        tuple[FaceMapping, ...] | None, _wire("face_mapping", omit_none=True)
    ] = attrs.field(default=None, converter=_mappings)
    webhook_url: Annotated[str | None, _wire("webhookUrl", omit_none=True)] = attrs.field(
        default=None, converter=_empty_to_none, validator=_optional_url
    )

    def __attrs_post_init__(self) -> None:
        mapping = self.face_mapping
        if mapping is None:
            return
        if not mapping:
            raise ValidationError(
                "must not be empty (pass None for single-face mode)", field="face_mapping"
            )
        if len(mapping) > MAX_FACES:
            raise ValidationError(
                f"has {len(mapping)} pairs; at most {MAX_FACES} faces can be swapped",
                field="face_mapping",
            )
        for index, item in enumerate(mapping):
            if not isinstance(item, FaceMapping):
                raise ValidationError(
                    f"must be a FaceMapping, got {type(item).__name__}",
                    field=f"face_mapping[{index}]",
                )
        if self.single_face_mode is True:
            raise ValidationError("needs single_face_mode=False (or None)", field="face_mapping")

    @property
    def resolved_single_face_mode(self) -> bool:
        """The ``single_face_mode`` actually sent: as given, else True without a mapping."""
        if self.single_face_mode is not None:
            return self.single_face_mode
        return self.face_mapping is None

    @property
    def media(self) -> MediaType:
        """VIDEO when ``target_url``'s path ends in .mp4/.mov/.avi/.webm, else IMAGE."""
        path = _url_path(self.target_url).lower()
        return MediaType.VIDEO if path.endswith(_VIDEO_SUFFIXES) else MediaType.IMAGE


@attrs.frozen(kw_only=True)
class ProSwap:
    """Face Swap Pro (``faceswapByImage``): highest-quality image swap, 1 to 50 images each.

    Args:
        source: The new faces (``sourceImage``); ``source[i]`` pairs with ``target[i]``.
        target: The faces to replace (``targetImage``).
        face_enhance: Enhance the swapped faces (sent as a JSON boolean).
        single_face_mode: Sent when not None; its effect is undocumented.
        model_name: The model; ``"akool_faceswap_image_hq"`` is the only documented one.
        webhook_url: Where AKOOL POSTs the status callbacks.
    """

    kind: ClassVar[SwapKind] = SwapKind.PRO
    media: ClassVar[MediaType] = MediaType.IMAGE

    source: Annotated[tuple[FaceImage, ...], _wire("sourceImage")] = attrs.field(
        converter=_source_faces
    )
    target: Annotated[tuple[FaceImage, ...], _wire("targetImage")] = attrs.field(
        converter=_target_faces
    )
    face_enhance: Annotated[bool, _wire("face_enhance")] = attrs.field(
        default=False, validator=_is_bool
    )
    single_face_mode: Annotated[bool | None, _wire("single_face_mode", omit_none=True)] = (
        attrs.field(default=None, validator=_optional_bool)
    )
    model_name: Annotated[str, _wire("model_name")] = attrs.field(
        default="akool_faceswap_image_hq", validator=_non_empty_str
    )
    webhook_url: Annotated[str | None, _wire("webhookUrl", omit_none=True)] = attrs.field(
        default=None, converter=_empty_to_none, validator=_optional_url
    )

    def __attrs_post_init__(self) -> None:
        limit = f"Face Swap Pro takes 1 to {MAX_PRO_PAIRS}"
        _check_face_list("source", self.source, maximum=MAX_PRO_PAIRS, limit_text=limit)
        _check_face_list("target", self.target, maximum=MAX_PRO_PAIRS, limit_text=limit)
        _check_opts_rule(self.source, self.target)


def _check_v3(source: tuple[FaceImage, ...], target: tuple[FaceImage, ...]) -> None:
    limit = f"at most {MAX_FACES} faces can be swapped"
    _check_face_list("source", source, maximum=MAX_FACES, limit_text=limit)
    _check_face_list("target", target, maximum=MAX_FACES, limit_text=limit)
    if len(source) != len(target):
        raise ValidationError(
            f"has {len(target)} items but source has {len(source)}; they pair up by index",
            field="target",
        )
    _check_opts_rule(source, target)


@attrs.frozen(kw_only=True)
class ImageSwap:
    """Image Faceswap V3 (``specifyimage``): replace faces in ``modify_image``.

    Args:
        source: The new faces (``sourceImage``), paired by index with ``target``.
        target: The faces found in ``modify_image`` to replace (``targetImage``).
        modify_image: URL of the image to change.
        face_enhance: The "HD Optimized" model (sent as the integer 1) instead of "Classic" (0).
        webhook_url: Where AKOOL POSTs the status callbacks.
    """

    kind: ClassVar[SwapKind] = SwapKind.IMAGE
    media: ClassVar[MediaType] = MediaType.IMAGE

    source: Annotated[tuple[FaceImage, ...], _wire("sourceImage")] = attrs.field(
        converter=_source_faces
    )
    target: Annotated[tuple[FaceImage, ...], _wire("targetImage")] = attrs.field(
        converter=_target_faces
    )
    modify_image: Annotated[str, _wire("modifyImage")] = attrs.field(
        converter=_media_ref, validator=_media, metadata=MEDIA
    )
    face_enhance: Annotated[bool, _wire("face_enhance", hook=int)] = attrs.field(
        default=False, validator=_is_bool
    )
    webhook_url: Annotated[str | None, _wire("webhookUrl", omit_none=True)] = attrs.field(
        default=None, converter=_empty_to_none, validator=_optional_url
    )

    def __attrs_post_init__(self) -> None:
        _check_v3(self.source, self.target)


@attrs.frozen(kw_only=True)
class VideoSwap:
    """Video Faceswap V3 (``specifyvideo``, legacy): replace faces in ``modify_video``.

    Args:
        source: The new faces (``sourceImage``), one single-face image each.
        target: The faces found in the video (``targetImage``), paired by index.
        modify_video: URL of the video to change.
        face_enhance: Sent as the integer 0 or 1.
        webhook_url: Where AKOOL POSTs the status callbacks.
    """

    kind: ClassVar[SwapKind] = SwapKind.VIDEO
    media: ClassVar[MediaType] = MediaType.VIDEO

    source: Annotated[tuple[FaceImage, ...], _wire("sourceImage")] = attrs.field(
        converter=_source_faces
    )
    target: Annotated[tuple[FaceImage, ...], _wire("targetImage")] = attrs.field(
        converter=_target_faces
    )
    modify_video: Annotated[str, _wire("modifyVideo")] = attrs.field(
        converter=_media_ref, validator=_media, metadata=MEDIA
    )
    face_enhance: Annotated[bool, _wire("face_enhance", hook=int)] = attrs.field(
        default=False, validator=_is_bool
    )
    webhook_url: Annotated[str | None, _wire("webhookUrl", omit_none=True)] = attrs.field(
        default=None, converter=_empty_to_none, validator=_optional_url
    )

    def __attrs_post_init__(self) -> None:
        _check_v3(self.source, self.target)


#: Any job-creating request (what a batch and a manifest line take).
SwapRequest = PlusSwap | ProSwap | ImageSwap | VideoSwap


# --------------------------------------------------------------------------------------------
# Face detection requests


def _image_source(value: bytes | str | os.PathLike[str] | None) -> bytes | Path | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise ValidationError(f"must be bytes or a file path, got {type(value).__name__}", field="img")


def _check_image(value: bytes | Path | None) -> None:
    if isinstance(value, bytes) and not value:
        raise ValidationError("must not be empty", field="img")
    if isinstance(value, Path) and not value.is_file():
        raise ValidationError(f"is not an existing file: {str(value)!r}", field="img")


def _frames(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValidationError(
            f"must be an integer from 1 to 100, got {value!r}", field=attribute.name
        )


@attrs.frozen(kw_only=True)
class DetectFaces:
    """Detect Faces (``detect_faces``, the current detector): exactly one of ``url`` / ``img``.

    Args:
        url: http(s) URL of an image or video.
        img: Image bytes, or the path of an image file; sent base64-encoded.
        num_frames: Video frames to sample, 1 to 100.
        return_face_url: Also return face crops (``face_url``, ``crop_region``, ``crop_landmarks``).
        single_face: Only the largest face of each frame.
    """

    url: Annotated[str | None, _wire("url", omit_none=True)] = attrs.field(
        default=None, converter=_optional_media_ref, validator=_optional_media, metadata=MEDIA
    )
    img: Annotated[bytes | Path | None, _wire("img", omit_none=True)] = attrs.field(
        default=None, converter=_image_source
    )
    num_frames: Annotated[int, _wire("num_frames")] = attrs.field(default=5, validator=_frames)
    return_face_url: Annotated[bool, _wire("return_face_url")] = attrs.field(
        default=False, validator=_is_bool
    )
    single_face: Annotated[bool, _wire("single_face")] = attrs.field(
        default=False, validator=_is_bool
    )

    def __attrs_post_init__(self) -> None:
        if (self.url is None) == (self.img is None):
            raise ValidationError("pass exactly one of url or img", field="url")
        _check_image(self.img)


@attrs.frozen(kw_only=True)
class LegacyDetect:
    """The legacy detector (``sg3.akool.com/detect``, deprecated): ``image_url`` or ``img``.

    Args:
        image_url: http(s) URL of the image.
        img: Image bytes, or the path of an image file; sent as a base64 data URI.
        single_face: Only the largest face (the API's only required field; True by default).
    """

    image_url: Annotated[str | None, _wire("image_url", omit_none=True)] = attrs.field(
        default=None, converter=_optional_media_ref, validator=_optional_media, metadata=MEDIA
    )
    img: Annotated[bytes | Path | None, _wire("img", omit_none=True)] = attrs.field(
        default=None, converter=_image_source
    )
    single_face: Annotated[bool, _wire("single_face")] = attrs.field(
        default=True, validator=_is_bool
    )

    def __attrs_post_init__(self) -> None:
        if (self.image_url is None) == (self.img is None):
            raise ValidationError("pass exactly one of image_url or img", field="image_url")
        _check_image(self.img)


# --------------------------------------------------------------------------------------------
# Internal requests (built by the client's convenience methods)


def _hidden_repr(value: object) -> str:
    return "'***'"


@attrs.frozen(kw_only=True)
class TokenRequest:
    """getToken's body; the secret never appears in a repr."""

    client_id: Annotated[str, _wire("clientId")]
    client_secret: Annotated[str, _wire("clientSecret")] = attrs.field(repr=_hidden_repr)


def _join_ids(ids: tuple[str, ...]) -> str:
    return ",".join(ids)


def _id_tuple(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(ids)


@attrs.frozen(kw_only=True)
class ResultsQuery:
    """listbyids' query: ``_ids=a,b,c``."""

    ids: Annotated[tuple[str, ...], _wire("_ids", hook=_join_ids)] = attrs.field(
        converter=_id_tuple
    )


@attrs.frozen(kw_only=True)
class DeleteQuery:
    """delbyids' body: ``{"_ids": "a,b,c"}``."""

    ids: Annotated[tuple[str, ...], _wire("_ids", hook=_join_ids)] = attrs.field(
        converter=_id_tuple
    )


@attrs.frozen(kw_only=True)
class CreditQuery:
    """quota/info takes no parameters."""


# --------------------------------------------------------------------------------------------
# Responses


@attrs.frozen(kw_only=True)
class SwapJob:
    """A submitted job: poll it with ``get_results([job.id])`` or wait for its webhook.

    Attributes:
        id: The record ``_id`` (for listbyids / delbyids).
        job_id: The processing job id (``YYYYMMDDhhmmssSSS-NNNN``).
        url: The predicted result URL V3 returns at submit; None when the server sent none.
            Do not trust it before the job reports SUCCESS.
        kind: Which operation created the job.
        media: IMAGE or VIDEO (videos take longer).
    """

    id: str
    job_id: str | None = None
    url: str | None = attrs.field(default=None, converter=_empty_to_none)
    kind: SwapKind
    media: MediaType


@attrs.frozen(kw_only=True)
class SubmitData:
    """A submit's ``data``: ``{_id, job_id}`` (V4) or ``{_id, url, job_id}`` (V3)."""

    id: Annotated[str, _wire("_id")]
    job_id: Annotated[str | None, _wire("job_id")] = None
    url: Annotated[str | None, _wire("url")] = None


@attrs.frozen(kw_only=True)
class SwapResult:
    """One listbyids item: a job's current state.

    Only ``id`` and ``status`` are guaranteed; every other field is None when the server left
    it out (a real item lacked five documented fields and carried an undocumented ``job_id``).
    """

    id: Annotated[str, _wire("_id")]
    status: Annotated[SwapStatus, _wire("faceswap_status")]
    url: Annotated[str | None, _wire("url")] = attrs.field(default=None, converter=_empty_to_none)
    job_id: Annotated[str | None, _wire("job_id")] = None
    created_at: Annotated[datetime | None, _wire("createdAt")] = None
    faceswap_type: Annotated[int | None, _wire("faceswap_type")] = None
    faceswap_quality: Annotated[int | None, _wire("faceswap_quality")] = None
    deduction_status: Annotated[int | None, _wire("deduction_status")] = None
    image: Annotated[int | None, _wire("image")] = None
    video_duration: Annotated[float | None, _wire("video_duration")] = None
    deduction_duration: Annotated[float | None, _wire("deduction_duration")] = None
    update_time: Annotated[float | None, _wire("update_time")] = None
    user_id: Annotated[str | None, _wire("userId")] = None
    uid: Annotated[int | None, _wire("uid")] = None


@attrs.frozen(kw_only=True)
class ResultPage:
    """listbyids' ``data``."""

    result: Annotated[tuple[SwapResult, ...], _wire("result")] = ()


@attrs.frozen(kw_only=True)
class Credit:
    """quota/info's ``data``."""

    credit: Annotated[float, _wire("credit")]


@attrs.frozen(kw_only=True)
class Deleted:
    """delbyids answers only ``{code, msg}``."""


@attrs.frozen(kw_only=True)
class Token:
    """getToken's top-level ``token``; never shown in a repr."""

    token: str = attrs.field(repr=_hidden_repr)


Box = tuple[int, int, int, int]


@attrs.frozen(kw_only=True)
class DetectedFace:
    """One face found by ``detect_faces``.

    Attributes:
        frame: Index of the video frame (0 for an image).
        index: Position of the face within its frame.
        region: ``(x, y, width, height)`` in the original media.
        landmarks: The points ``(x, y)`` (6 from the current detector).
        opts: The 4-point landmark string for the uncropped image (``landmarks_str``).
        face_url: URL of the face crop (with ``return_face_url=True``).
        crop_region: ``(x, y, width, height)`` of the crop in the original media.
        crop_landmarks: The 4-point landmark string relative to the crop.
    """

    frame: int
    index: int
    region: Box
    landmarks: tuple[tuple[int, int], ...] = ()
    opts: str | None = None
    face_url: str | None = None
    crop_region: Box | None = None
    crop_landmarks: str | None = None

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``region`` as ``(x1, y1, x2, y2)``."""
        return bbox_from_region(self.region)

    def to_face_image(self, image_url: str | None = None) -> FaceImage:
        """This face as a Pro/V3 ``FaceImage``.

        The crop (``face_url`` + ``crop_landmarks``) when the detector returned one, else
        ``image_url`` (the media that was analysed) with ``opts``.

        Raises:
            ValidationError: no crop was returned and no ``image_url`` was given.
        """
        if self.face_url is not None and self.crop_landmarks is not None:
            return FaceImage(path=self.face_url, opts=self.crop_landmarks)
        if image_url is None:
            raise ValidationError(
                "no face crop was returned; pass the analysed image's URL", field="image_url"
            )
        return FaceImage(path=image_url, opts=self.opts)

    def to_face_info(self, image_url: str | None = None) -> FaceInfo:
        """This face as a Plus ``FaceInfo``: the crop URL, else ``image_url`` plus a bbox.

        Raises:
            ValidationError: no crop was returned and no ``image_url`` was given.
        """
        if self.face_url is not None:
            return FaceInfo(face_url=self.face_url)
        if image_url is None:
            raise ValidationError(
                "no face crop was returned; pass the analysed image's URL", field="image_url"
            )
        return FaceInfo(face_url=image_url, bbox=self.bbox)


@attrs.frozen(kw_only=True)
class DetectedFrame:
    """The faces of one analysed frame (an image has only frame 0)."""

    frame: int
    frame_time: float | None = None
    faces: tuple[DetectedFace, ...] = ()
    removed: tuple[Box, ...] = ()


@attrs.frozen(kw_only=True)
class FaceDetection:
    """What ``detect_faces`` found.

    Attributes:
        frames: Frames by index (``faces_obj`` keys are strings on the wire).
        faces: Every face of every frame, in frame order: the flat list most callers want.
    """

    frames: Mapping[int, DetectedFrame] = attrs.field(factory=dict)
    faces: tuple[DetectedFace, ...] = ()


@attrs.frozen(kw_only=True)
class LegacyFaceDetection:
    """What the legacy detector found: parallel per-face tuples.

    Attributes:
        landmarks: Per face, 6 points ``(x, y)`` (the last two are ``(0, 0)``).
        opts: Per face, the 4-point landmark string (``landmarks_str``): use it as ``opts``.
        regions: Per face, ``(x, y, width, height)``.
        origin_url: An URL of the uploaded image when ``img`` was sent (undocumented field).
        trx_id: The server's transaction id.
        seconds: Processing time.
    """

    landmarks: tuple[tuple[tuple[int, int], ...], ...] = ()
    opts: tuple[str, ...] = ()
    regions: tuple[Box, ...] = ()
    origin_url: str | None = None
    trx_id: str | None = None
    seconds: float | None = None

    def face_image(self, index: int = 0, *, image_url: str | None = None) -> FaceImage:
        """Face ``index`` as a ``FaceImage`` on ``image_url`` (default: ``origin_url``).

        Raises:
            ValidationError: no such face, or no image URL is known.
        """
        if not 0 <= index < len(self.opts):
            raise ValidationError(f"no face {index}; {len(self.opts)} found", field="index")
        url = image_url if image_url is not None else self.origin_url
        if url is None:
            raise ValidationError("pass the analysed image's URL", field="image_url")
        return FaceImage(path=url, opts=self.opts[index])


_WIRE_ANNOTATION = re.compile(r"Annotated\[(.*), _wire\(.*\)\]")


def _readable_signatures(namespace: dict[str, Any] | None = None) -> None:
    """Give each model a signature without its wire names: what help(), inspect and IDEs show.

    ``source_url: str`` instead of ``source_url: Annotated[str, _wire('source_url')]``; the
    wire names stay where the converter reads them (the field annotations). ``namespace`` is
    the ``globals()`` of the module whose models to fix (default: this one's).
    """
    if namespace is None:
        namespace = globals()
    module = namespace["__name__"]

    def plain(annotation: Any) -> Any:
        if isinstance(annotation, str) and (match := _WIRE_ANNOTATION.fullmatch(annotation)):
            return match.group(1)
        return annotation

    for value in list(namespace.values()):
        if isinstance(value, type) and attrs.has(value) and value.__module__ == module:
            signature = inspect.signature(value)
            parameters = [
                p.replace(annotation=plain(p.annotation)) for p in signature.parameters.values()
            ]
            setattr(value, "__signature__", signature.replace(parameters=parameters))  # noqa: B010


_readable_signatures()

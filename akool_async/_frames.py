"""Analyze Frames (contract 3.10): the request, its typed answer, and Plus face mappings.

``POST /interface/detect-api/faceswap/analyze_frames`` takes frame images (say, stills of a
video), finds the faces in each and matches them across frames: the answer lists *persons*,
one per person however many frames show them, with a cropped face URL and a bbox
``[x1, y1, x2, y2]`` that Face Swap Plus accepts as they are. That is what a multi-face video
swap needs: one ``face_mapping`` entry per person, not per frame. ``map_faces`` builds that
mapping (from persons, or from ``detect_faces`` faces of one image), so a multi-face video
swap is three calls::

    analysis = await client.analyze_frames(frame_urls=stills)
    mapping = map_faces(analysis, ["https://cdn.example/new-a.jpg", "https://cdn.example/new-b.jpg"])
    job = await client.faceswap_plus(source_url=..., target_url=video, face_mapping=mapping)

Its envelope is its own (quirk 5): ``{success: true, frame_count, persons}``, and
``{success: false, error}`` with HTTP 400 or 500 on failure; ``_wire`` decodes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import attrs

from ._errors import ValidationError
from ._models import (
    MAX_FACES,
    MEDIA,
    DetectedFace,
    DetectedFrame,
    FaceDetection,
    FaceInfo,
    FaceMapping,
    _check_url,
    _empty_to_none,
    _media_ref,
    _readable_signatures,
    _wire,
    check_media,
)

__all__ = [
    "AnalyzeFrames",
    "Appearance",
    "FrameAnalysis",
    "Person",
    "map_faces",
]

#: ``(x1, y1, x2, y2)``: the corners of a face box, as Plus ``face_mapping`` takes it.
BBox = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# The request


def _frame_urls(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str | bytes):
        raise ValidationError(
            "must be a list of frame URLs, not a single string", field="frame_urls"
        )
    try:
        urls = tuple(_media_ref(url) if isinstance(url, os.PathLike) else url for url in value)
    except TypeError:
        raise ValidationError(
            f"must be a list of frame URLs, got {type(value).__name__}", field="frame_urls"
        ) from None
    if not urls:
        raise ValidationError("must contain at least one frame URL", field="frame_urls")
    for index, url in enumerate(urls):
        check_media(url, f"frame_urls[{index}]")  # local and s3:// frames: see _storage
    return urls


def _number(value: object, field: str) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValidationError(f"must be a finite number, got {value!r}", field=field)


def _timestamps(value: Iterable[float] | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise ValidationError("must be a list of seconds, one per frame", field="timestamps")
    try:
        items = tuple(value)
    except TypeError:
        raise ValidationError(
            f"must be a list of seconds, got {type(value).__name__}", field="timestamps"
        ) from None
    seconds = tuple(_number(item, f"timestamps[{index}]") for index, item in enumerate(items))
    for index, second in enumerate(seconds):
        if second < 0:
            raise ValidationError(
                f"must be >= 0, got {items[index]!r}", field=f"timestamps[{index}]"
            )
    return seconds


def _expand_ratio(value: float | None) -> float | None:
    if value is None:
        return None
    ratio = _number(value, "expand_ratio")
    if not 0 <= ratio <= 1:
        raise ValidationError(f"must be from 0 to 1, got {value!r}", field="expand_ratio")
    return ratio


@attrs.frozen(kw_only=True)
class AnalyzeFrames:
    """Analyze Frames (``faceswap/analyze_frames``): the people in frames, matched across them.

    Args:
        frame_urls: http(s) URLs of the frame images, at least one, in order.
        timestamps: Seconds of each frame in the video, one per frame; None lets the server
            number them 0.0, 1.0, 2.0, ...
        expand_ratio: How far each face crop extends around the face, 0 to 1; None keeps the
            server's default (0.3).
    """

    frame_urls: Annotated[tuple[str, ...], _wire("frame_urls", hook=list)] = attrs.field(
        converter=_frame_urls, metadata=MEDIA
    )
    timestamps: Annotated[
        tuple[float, ...] | None, _wire("timestamps", omit_none=True, hook=list)
    ] = attrs.field(default=None, converter=_timestamps)
    expand_ratio: Annotated[float | None, _wire("expand_ratio", omit_none=True)] = attrs.field(
        default=None, converter=_expand_ratio
    )

    def __attrs_post_init__(self) -> None:
        if self.timestamps is not None and len(self.timestamps) != len(self.frame_urls):
            raise ValidationError(
                f"has {len(self.timestamps)} items for {len(self.frame_urls)} frames; "
                "give one timestamp per frame (or none)",
                field="timestamps",
            )


# --------------------------------------------------------------------------------------------
# The answer


@attrs.frozen(kw_only=True)
class Appearance:
    """One sighting of a person.

    Attributes:
        frame_index: Which frame (0-based, in ``frame_urls`` order; ``frame_idx`` on the wire).
        timestamp: The frame's time in seconds (None when the server left it out).
        bbox: ``(x1, y1, x2, y2)`` of the face in that frame.
    """

    frame_index: Annotated[int, _wire("frame_idx")]
    timestamp: Annotated[float | None, _wire("timestamp")] = None
    bbox: Annotated[BBox | None, _wire("bbox")] = None


@attrs.frozen(kw_only=True)
class Person:
    """One person, merged across every frame that shows them.

    Only ``person_id`` and ``index`` are guaranteed; every other field is None (or empty) when
    the server left it out.

    Attributes:
        person_id: The server's id of the person (``"person_0"``).
        index: Position among the persons, left to right.
        face_url: URL of the cropped face (a Plus ``face_url`` that needs no bbox).
        bbox: ``(x1, y1, x2, y2)`` of the face, ready for Plus ``face_mapping``.
        confidence: Detection confidence, 0 to 1.
        appearances: Every frame the person was seen in.
        first_seen: Seconds of the first appearance.
        last_seen: Seconds of the last appearance.
    """

    person_id: Annotated[str, _wire("person_id")]
    index: Annotated[int, _wire("index")]
    face_url: Annotated[str | None, _wire("face_url")] = attrs.field(
        default=None, converter=_empty_to_none
    )
    bbox: Annotated[BBox | None, _wire("bbox")] = None
    confidence: Annotated[float | None, _wire("confidence")] = None
    appearances: Annotated[tuple[Appearance, ...], _wire("appearances")] = ()
    first_seen: Annotated[float | None, _wire("first_seen")] = None
    last_seen: Annotated[float | None, _wire("last_seen")] = None

    @property
    def frames(self) -> tuple[int, ...]:
        """The indexes of the frames the person appears in, in order."""
        return tuple(sorted({appearance.frame_index for appearance in self.appearances}))

    def to_face_info(self, image_url: str | None = None) -> FaceInfo:
        """This person as a Plus ``FaceInfo``: the cropped face, else ``image_url`` + bbox.

        Raises:
            ValidationError: the server returned no face URL and no ``image_url`` (with a bbox)
                was given.
        """
        if self.face_url is not None:
            return FaceInfo(face_url=self.face_url)
        if self.bbox is None:
            raise ValidationError(
                f"{self.person_id} has neither a face crop nor a bbox", field="image_url"
            )
        if image_url is None:
            raise ValidationError(
                f"{self.person_id} has no face crop; pass the analysed image's URL",
                field="image_url",
            )
        return FaceInfo(face_url=image_url, bbox=self.bbox)


@attrs.frozen(kw_only=True)
class FrameAnalysis:
    """What ``analyze_frames`` found.

    Attributes:
        frame_count: How many frames the server analysed.
        persons: The people, sorted by ``index`` (left to right); empty when no frame shows a
            face (that is a success, not an error).
    """

    frame_count: Annotated[int | None, _wire("frame_count")] = None
    persons: Annotated[tuple[Person, ...], _wire("persons")] = ()

    def person(self, person_id: str) -> Person:
        """The person with this ``person_id``.

        Raises:
            KeyError: no such person.
        """
        for person in self.persons:
            if person.person_id == person_id:
                return person
        raise KeyError(person_id)


# --------------------------------------------------------------------------------------------
# Face mappings for Face Swap Plus

_Target = Person | DetectedFace
_Source = str | FaceInfo


def _targets(
    targets: FrameAnalysis | FaceDetection | DetectedFrame | Iterable[_Target],
) -> tuple[_Target, ...]:
    if isinstance(targets, FrameAnalysis):
        return targets.persons
    if isinstance(targets, DetectedFrame):
        return targets.faces
    if isinstance(targets, FaceDetection):
        if len(targets.frames) > 1:
            raise ValidationError(
                f"has {len(targets.frames)} frames, so one face per frame and not per person: "
                "pass one frame's faces (detection.frames[n].faces), or use analyze_frames",
                field="targets",
            )
        return targets.faces
    if isinstance(targets, str | bytes | Person | DetectedFace):
        raise ValidationError(
            f"must be a list of faces, got {type(targets).__name__}", field="targets"
        )
    try:
        found = tuple(targets)
    except TypeError:
        raise ValidationError(
            f"must be a list of faces, got {type(targets).__name__}", field="targets"
        ) from None
    for index, target in enumerate(found):
        if not isinstance(target, Person | DetectedFace):
            raise ValidationError(
                f"must be a Person or a DetectedFace, got {type(target).__name__}",
                field=f"targets[{index}]",
            )
    return found


def _source(value: object, field: str) -> FaceInfo:
    if isinstance(value, FaceInfo):
        if value.face_url is None:
            raise ValidationError("needs a face_url", field=field)
        return value
    if isinstance(value, str):
        _check_url(value, field)
        return FaceInfo(face_url=value)
    raise ValidationError(
        f"must be a face image URL or a FaceInfo, got {type(value).__name__}", field=field
    )


def _name(target: _Target) -> str:
    return target.person_id if isinstance(target, Person) else f"face {target.index}"


def _target_info(target: _Target, target_url: str | None) -> FaceInfo:
    has_box = not isinstance(target, Person) or target.bbox is not None
    if target.face_url is None and (target_url is None or not has_box):
        raise ValidationError(
            f"{_name(target)} has no face crop: pass the analysed image as target_url",
            field="target_url",
        )
    return target.to_face_info(target_url)


def _pairs_from_mapping(
    found: tuple[_Target, ...], sources: Mapping[Any, object]
) -> list[tuple[_Target, FaceInfo]]:
    by_id = {target.person_id: target for target in found if isinstance(target, Person)}
    by_index: dict[int, list[_Target]] = {}
    for target in found:
        by_index.setdefault(target.index, []).append(target)
    pairs: list[tuple[_Target, FaceInfo]] = []
    for key, value in sources.items():
        field = f"sources[{key!r}]"
        if isinstance(key, str):
            if key not in by_id:
                known = ", ".join(sorted(by_id)) or "none"
                raise ValidationError(f"no person {key!r} (found: {known})", field=field)
            target = by_id[key]
        elif isinstance(key, int) and not isinstance(key, bool):
            matches = by_index.get(key, [])
            if not matches:
                known = ", ".join(str(i) for i in sorted(by_index)) or "none"
                raise ValidationError(f"no face with index {key} (found: {known})", field=field)
            if len(matches) > 1:
                raise ValidationError(
                    f"{len(matches)} faces have index {key} (faces of several frames?)",
                    field=field,
                )
            [target] = matches
        else:
            raise ValidationError(
                f"keys are person_id strings or int indexes, got {key!r}", field=field
            )
        if any(target is done for done, _ in pairs):
            raise ValidationError(f"maps {_name(target)} a second time", field=field)
        pairs.append((target, _source(value, field)))
    return pairs


def map_faces(
    targets: FrameAnalysis | FaceDetection | DetectedFrame | Iterable[Person | DetectedFace],
    sources: Sequence[str | FaceInfo | None]
    | Mapping[str, str | FaceInfo]
    | Mapping[int, str | FaceInfo],
    *,
    target_url: str | None = None,
) -> tuple[FaceMapping, ...]:
    """Pair new faces with the faces of a target: a Face Swap Plus ``face_mapping``.

    Args:
        targets: The faces to replace: an ``analyze_frames`` answer (one entry per person
            across all its frames: the way to map a video), a ``detect_faces`` answer of one
            image or one of its frames (``return_face_url=True`` gives crops that need no
            bbox), or a list of ``Person`` / ``DetectedFace``.
        sources: The new faces, each the URL of a single-face image or a ``FaceInfo``. Either
            a list with one entry per target in order (persons left to right; None leaves that
            face as it is), or a mapping from ``person_id`` (or ``index``) to a new face, for
            some targets only.
        target_url: The analysed image; used with a face's bbox when the detector returned
            no crop of it.

    Returns:
        The pairs, in target order, for ``faceswap_plus(..., face_mapping=...)``.

    Raises:
        ValidationError: a list of the wrong length, an unknown key, a source that is not an
            http(s) URL, a target without a crop and no ``target_url``, nothing to swap, or
            more than 8 pairs.
    """
    found = _targets(targets)
    if target_url is not None:
        _check_url(target_url, "target_url")
    pairs: list[tuple[_Target, FaceInfo]]
    if isinstance(sources, Mapping):
        pairs = _pairs_from_mapping(found, sources)
        position = {id(target): n for n, target in enumerate(found)}
        pairs.sort(key=lambda pair: position[id(pair[0])])
    elif isinstance(sources, str | bytes | FaceInfo):
        raise ValidationError(
            "must be a list of new faces (one per target) or a mapping, not a single face",
            field="sources",
        )
    else:
        try:
            items = list(sources)
        except TypeError:
            raise ValidationError(
                f"must be a list or a mapping of new faces, got {type(sources).__name__}",
                field="sources",
            ) from None
        if len(items) != len(found):
            names = ", ".join(_name(target) for target in found) or "none"
            raise ValidationError(
                f"has {len(items)} faces for {len(found)} targets ({names}); give one per "
                "target (None keeps a face), or a mapping to swap only some",
                field="sources",
            )
        pairs = [
            (target, _source(item, f"sources[{n}]"))
            for n, (target, item) in enumerate(zip(found, items, strict=True))
            if item is not None
        ]
    if not pairs:
        raise ValidationError("maps no face: nothing to swap", field="sources")
    if len(pairs) > MAX_FACES:
        raise ValidationError(
            f"maps {len(pairs)} faces; at most {MAX_FACES} faces can be swapped", field="sources"
        )
    return tuple(
        FaceMapping(source=source, target=_target_info(target, target_url))
        for target, source in pairs
    )


_readable_signatures(globals())

"""Request validation and response model helpers (``akool_async._models``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akool_async import (
    DetectedFace,
    DetectFaces,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    LegacyDetect,
    LegacyFaceDetection,
    MediaType,
    ModelStyle,
    PlusSwap,
    ProSwap,
    SwapKind,
    SwapStatus,
    ValidationError,
    VideoSwap,
    bbox_from_region,
)
from akool_async._models import _PLAIN_URL, TokenRequest, _url_path, validate_ids

OPTS = "1,2:3,4:5,6:7,8"
SRC = "https://example.com/source.jpg"
TGT = "https://example.com/target.jpg"


def face(n: int = 0, *, opts: str | None = OPTS) -> FaceImage:
    return FaceImage(path=f"https://example.com/face-{n}.jpg", opts=opts)


def mapping(n: int = 0) -> FaceMapping:
    return FaceMapping(
        source=FaceInfo(face_url=f"https://example.com/s{n}.jpg"),
        target=FaceInfo(face_url=f"https://example.com/t{n}.jpg"),
    )


def field_of(call: Any) -> str | None:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.field


# --- enums -----------------------------------------------------------------------------------


def test_swap_status_values() -> None:
    """SwapStatus follows the documented 1..4 codes."""
    assert [
        SwapStatus.QUEUED,
        SwapStatus.PROCESSING,
        SwapStatus.SUCCESS,
        SwapStatus.FAILED,
    ] == [1, 2, 3, 4]


def test_swap_status_is_terminal() -> None:
    """Only SUCCESS and FAILED are terminal."""
    assert [s.is_terminal for s in SwapStatus] == [False, False, True, True]


def test_model_style_accepts_strings() -> None:
    """model_style takes a plain string and stores the enum."""
    assert (
        PlusSwap(source_url=SRC, target_url=TGT, model_style="lossless").model_style
        == ModelStyle.LOSSLESS
    )


def test_model_style_rejects_unknown() -> None:
    """An unknown model_style is a ValidationError on that field."""
    assert (
        field_of(lambda: PlusSwap(source_url=SRC, target_url=TGT, model_style="cartoon"))
        == "model_style"
    )


# --- Plus ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"source_url": "ftp://example.com/a.jpg", "target_url": TGT}, "source_url"),
        ({"source_url": SRC, "target_url": "example.com/b.jpg"}, "target_url"),
        ({"source_url": SRC, "target_url": TGT, "webhook_url": "file:///x"}, "webhook_url"),
        ({"source_url": SRC, "target_url": TGT, "face_mapping": []}, "face_mapping"),
        ({"source_url": SRC, "target_url": TGT, "face_enhance": 1}, "face_enhance"),
        ({"source_url": SRC, "target_url": TGT, "single_face_mode": "yes"}, "single_face_mode"),
    ],
)
def test_plus_rejects_bad_fields(kwargs: dict[str, Any], expected: str) -> None:
    """Bad Plus fields raise ValidationError naming the field."""
    assert expected == field_of(lambda: PlusSwap(**kwargs))


def test_plus_face_mapping_limit() -> None:
    """More than 8 face_mapping pairs is rejected before sending (code 1007 otherwise)."""
    pairs = [mapping(n) for n in range(9)]
    assert (
        field_of(lambda: PlusSwap(source_url=SRC, target_url=TGT, face_mapping=pairs))
        == "face_mapping"
    )


def test_plus_eight_faces_allowed() -> None:
    """Exactly 8 face_mapping pairs is accepted, stored as a tuple."""
    request = PlusSwap(source_url=SRC, target_url=TGT, face_mapping=[mapping(n) for n in range(8)])
    assert (tuple, 8) == (type(request.face_mapping), len(request.face_mapping or ()))


def test_plus_mapping_with_single_face_mode_rejected() -> None:
    """A face_mapping with single_face_mode=True would be ignored, so it is rejected."""
    assert (
        field_of(
            lambda: PlusSwap(
                source_url=SRC, target_url=TGT, single_face_mode=True, face_mapping=[mapping()]
            )
        )
        == "face_mapping"
    )


@pytest.mark.parametrize(
    ("single_face_mode", "with_mapping", "expected"),
    [(None, False, True), (None, True, False), (False, False, False), (False, True, False)],
)
def test_plus_resolved_single_face_mode(
    single_face_mode: bool | None, with_mapping: bool, expected: bool
) -> None:
    """None resolves to True without a mapping and False with one; explicit values win."""
    request = PlusSwap(
        source_url=SRC,
        target_url=TGT,
        single_face_mode=single_face_mode,
        face_mapping=[mapping()] if with_mapping else None,
    )
    assert expected == request.resolved_single_face_mode


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("https://example.com/a.jpg", MediaType.IMAGE),
        ("https://example.com/a.MP4", MediaType.VIDEO),
        ("https://example.com/a.mov?sig=1", MediaType.VIDEO),
        ("https://example.com/a.avi#t=3", MediaType.VIDEO),
        ("https://example.com/a.webm", MediaType.VIDEO),
        ("https://example.com/video.mp4.jpg", MediaType.IMAGE),
        ("https://example.com/a.png?name=b.mp4", MediaType.IMAGE),
    ],
)
def test_plus_media_from_target_path(target: str, expected: MediaType) -> None:
    """Plus is a video job when target_url's path ends in a video extension."""
    assert expected == PlusSwap(source_url=SRC, target_url=target).media


def test_operation_kinds_and_media() -> None:
    """Each request class records which operation and media its job is."""
    f = [face()]
    kinds = [
        (ProSwap(source=f, target=f).kind, ProSwap.media),
        (ImageSwap(source=f, target=f, modify_image=TGT).kind, ImageSwap.media),
        (VideoSwap(source=f, target=f, modify_video=TGT).kind, VideoSwap.media),
        (PlusSwap.kind, MediaType.IMAGE),
    ]
    assert kinds == [
        (SwapKind.PRO, "image"),
        (SwapKind.IMAGE, "image"),
        (SwapKind.VIDEO, "video"),
        (SwapKind.PLUS, "image"),
    ]


def test_empty_webhook_url_is_none() -> None:
    """An empty webhook_url (as the docs' samples send) means no webhook."""
    assert None is PlusSwap(source_url=SRC, target_url=TGT, webhook_url="").webhook_url


# --- FaceInfo / FaceMapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bbox",
    [
        (1, 2, 3),
        (1, 2, 3, 4, 5),
        (1, 2, math.nan, 4),
        (1, 2, math.inf, 4),
        (5, 2, 3, 4),
        (1, 5, 3, 4),
        ("1", 2, 3, 4),
        (True, 2, 3, 4),
    ],
)
def test_bbox_rejects_bad_boxes(bbox: Any) -> None:
    """bbox must be four finite numbers with x2 > x1 and y2 > y1."""
    assert field_of(lambda: FaceInfo(face_url=SRC, bbox=bbox)) == "bbox"


def test_bbox_stored_as_float_tuple() -> None:
    """A list bbox becomes a hashable float tuple."""
    assert FaceInfo(bbox=[1, 2, 3, 4]).bbox == (1.0, 2.0, 3.0, 4.0)


def test_bbox_from_region() -> None:
    """A detector [x, y, w, h] box converts to [x1, y1, x2, y2]."""
    assert bbox_from_region([30, 0, 250, 280]) == (30.0, 0.0, 280.0, 280.0)


def test_bbox_from_region_rejects_empty_box() -> None:
    """A zero-size region cannot become a bbox."""
    assert field_of(lambda: bbox_from_region([1, 2, 0, 4])) == "region"


def test_face_info_from_region() -> None:
    """FaceInfo.from_region builds an uncropped face with its bbox."""
    assert FaceInfo(face_url=SRC, bbox=(10, 20, 40, 60)) == FaceInfo.from_region(
        SRC, [10, 20, 30, 40]
    )


def test_face_mapping_needs_source_face_url() -> None:
    """The source face needs a face_url (the docs mark it required)."""
    assert (
        field_of(
            lambda: FaceMapping(source=FaceInfo(bbox=(1, 2, 3, 4)), target=FaceInfo(face_url=TGT))
        )
        == "source.face_url"
    )


def test_face_mapping_target_may_be_a_bbox_only() -> None:
    """A target face given only by bbox is accepted (the yaml requires none of its fields)."""
    item = FaceMapping(source=FaceInfo(face_url=SRC), target=FaceInfo(bbox=(1, 2, 3, 4)))
    assert item.target.bbox == (1.0, 2.0, 3.0, 4.0)


# --- FaceImage / Pro / V3 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "opts", ["1,2:3,4:5,6", "1,2:3,4:5,6:7,8:9,10", "a,b:c,d:e,f:g,h", "1,2;3,4;5,6;7,8", ""]
)
def test_face_image_rejects_bad_opts(opts: str) -> None:
    """opts must be exactly four x,y points joined by colons."""
    assert field_of(lambda: FaceImage(path=SRC, opts=opts)) == "opts"


def test_face_image_accepts_decimal_and_negative_opts() -> None:
    """Landmarks may be negative (faces cut by a crop) or decimal."""
    assert FaceImage(path=SRC, opts="-1.5,2:3,4:5,6:7,8.25").opts == "-1.5,2:3,4:5,6:7,8.25"


def test_pro_converts_lists_to_tuples() -> None:
    """Pro's face lists become tuples, so the request is hashable."""
    request = ProSwap(source=[face()], target=[face()])
    assert hash(request) == hash(ProSwap(source=(face(),), target=(face(),)))


def test_pro_single_pair_needs_no_opts() -> None:
    """With one item in each list, opts is optional."""
    request = ProSwap(source=[face(opts=None)], target=[face(opts=None)])
    assert (request.source[0].opts, request.target[0].opts) == (None, None)


def test_pro_opts_rule_names_the_item() -> None:
    """With more than one item anywhere, every item of both lists needs opts."""
    source = [face(0), face(1), face(2), face(3, opts=None)]
    assert field_of(lambda: ProSwap(source=source, target=[face()])) == "source[3].opts"


def test_pro_opts_rule_checks_target_too() -> None:
    """A target item without opts is named when the source list has several items."""
    assert (
        field_of(lambda: ProSwap(source=[face(0), face(1)], target=[face(opts=None)]))
        == "target[0].opts"
    )


@pytest.mark.parametrize(("n", "ok"), [(0, False), (1, True), (50, True), (51, False)])
def test_pro_pair_limits(n: int, ok: bool) -> None:
    """Face Swap Pro takes 1 to 50 images per list."""
    faces = [face(i) for i in range(n)]
    if ok:
        assert n == len(ProSwap(source=faces, target=[face()]).source)
    else:
        assert field_of(lambda: ProSwap(source=faces, target=[face()])) == "source"


def test_pro_rejects_non_face_items() -> None:
    """Items that are not FaceImage are named by index."""
    assert (
        field_of(
            lambda: ProSwap(source=[face()], target=[face(), "https://x/y.jpg"])  # type: ignore[list-item]
        )
        == "target[1]"
    )


def test_pro_rejects_a_bare_face() -> None:
    """A single FaceImage instead of a list is a ValidationError, not a TypeError."""
    with pytest.raises(ValidationError):
        ProSwap(source=face(), target=[face()])  # type: ignore[arg-type]


def test_v3_lengths_must_match() -> None:
    """V3 source and target pair up by index, so their lengths must match."""
    assert (
        field_of(lambda: ImageSwap(source=[face(0), face(1)], target=[face(0)], modify_image=TGT))
        == "target"
    )


def test_v3_face_limit() -> None:
    """V3 swaps more than 8 faces are rejected before sending."""
    faces = [face(i) for i in range(9)]
    assert (
        field_of(lambda: VideoSwap(source=faces, target=faces, modify_video="https://x/v.mp4"))
        == "source"
    )


def test_v3_needs_media_url() -> None:
    """modify_image must be an http(s) URL."""
    assert (
        field_of(lambda: ImageSwap(source=[face()], target=[face()], modify_image="/tmp/a.jpg"))
        == "modify_image"
    )


def test_v3_empty_lists_rejected() -> None:
    """Empty face lists are rejected."""
    assert (
        field_of(lambda: VideoSwap(source=[], target=[], modify_video="https://x/v.mp4"))
        == "source"
    )


def test_requests_are_frozen() -> None:
    """Requests are immutable; use attrs.evolve for variants."""
    request = PlusSwap(source_url=SRC, target_url=TGT)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.source_url = TGT  # type: ignore[misc]
    assert attrs.evolve(request, source_url=TGT).source_url == TGT


def test_requests_are_keyword_only() -> None:
    """Positional construction is refused."""
    with pytest.raises(TypeError):
        FaceImage(SRC)  # type: ignore[misc]


# --- detectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "url"),
        ({"url": TGT, "img": b"x"}, "url"),
        ({"url": "nope"}, "url"),
        ({"img": b""}, "img"),
        ({"img": "/definitely/not/here.jpg"}, "img"),
        ({"url": TGT, "num_frames": 0}, "num_frames"),
        ({"url": TGT, "num_frames": 101}, "num_frames"),
        ({"url": TGT, "num_frames": 2.5}, "num_frames"),
        ({"url": TGT, "single_face": 1}, "single_face"),
    ],
)
def test_detect_faces_rejects(kwargs: dict[str, Any], expected: str) -> None:
    """DetectFaces needs exactly one of url/img, an existing file, and 1..100 frames."""
    assert expected == field_of(lambda: DetectFaces(**kwargs))


def test_detect_faces_img_path(tmp_path: Path) -> None:
    """A str path to an existing file is kept as a Path (read when sent)."""
    image = tmp_path / "face.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    assert image == DetectFaces(img=str(image)).img


def test_detect_faces_img_bytes() -> None:
    """bytearray input is stored as bytes."""
    assert DetectFaces(img=bytearray(b"abc")).img == b"abc"


def test_legacy_detect_needs_one_source() -> None:
    """LegacyDetect needs exactly one of image_url / img."""
    assert field_of(lambda: LegacyDetect()) == "image_url"


def test_legacy_detect_single_face_default() -> None:
    """The legacy detector's required single_face defaults to True."""
    assert True is LegacyDetect(image_url=TGT).single_face


# --- ids and secrets -------------------------------------------------------------------------


def test_validate_ids_dedupes_in_order() -> None:
    """Ids are checked and deduplicated, first occurrence first."""
    a, b = "6593c94c0ef703e8c055e3c8", "667d2284dca9e468ba8ead23"
    assert (a, b) == validate_ids([a, b, a])


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["6593c94c0ef703e8c055e3c"], "ids[0]"),
        (["6593c94c0ef703e8c055e3c8", "zz"], "ids[1]"),
        ("6593c94c0ef703e8c055e3c8", "ids"),
    ],
)
def test_validate_ids_rejects(ids: Any, expected: str) -> None:
    """Malformed ids (and a bare string) are rejected, naming the position."""
    assert expected == field_of(lambda: validate_ids(ids))


def test_token_request_repr_hides_secret() -> None:
    """The getToken body's repr never shows the client secret."""
    assert "s3cr3t" not in repr(TokenRequest(client_id="id", client_secret="s3cr3t"))


# --- detection results -----------------------------------------------------------------------


def test_detected_face_to_face_image_prefers_crop() -> None:
    """A face with a crop becomes the crop URL with its crop landmarks."""
    detected = DetectedFace(
        frame=0,
        index=0,
        region=(80, 50, 150, 180),
        opts=OPTS,
        face_url="https://x/crop.jpg",
        crop_region=(30, 0, 250, 280),
        crop_landmarks="9,9:8,8:7,7:6,6",
    )
    assert FaceImage(path="https://x/crop.jpg", opts="9,9:8,8:7,7:6,6") == detected.to_face_image()


def test_detected_face_without_crop_uses_image_url() -> None:
    """Without a crop, the analysed image plus the face's opts is used."""
    detected = DetectedFace(frame=0, index=0, region=(80, 50, 150, 180), opts=OPTS)
    assert FaceImage(path=TGT, opts=OPTS) == detected.to_face_image(TGT)


def test_detected_face_without_crop_needs_image_url() -> None:
    """Without a crop and without the image URL there is nothing to point at."""
    detected = DetectedFace(frame=0, index=0, region=(80, 50, 150, 180), opts=OPTS)
    assert field_of(detected.to_face_info) == "image_url"


def test_detected_face_to_face_info() -> None:
    """A crop maps to a bare face_url; an uncropped face to image URL + bbox of its region."""
    crop = DetectedFace(frame=0, index=0, region=(80, 50, 150, 180), face_url="https://x/c.jpg")
    plain = DetectedFace(frame=0, index=0, region=(80, 50, 150, 180))
    assert [
        FaceInfo(face_url="https://x/c.jpg"),
        FaceInfo(face_url=TGT, bbox=(80, 50, 230, 230)),
    ] == [
        crop.to_face_info(),
        plain.to_face_info(TGT),
    ]


def test_legacy_face_image_uses_origin_url() -> None:
    """A legacy detection of an uploaded image points at its origin_url."""
    detection = LegacyFaceDetection(opts=(OPTS,), origin_url="https://x/upload.png")
    assert FaceImage(path="https://x/upload.png", opts=OPTS) == detection.face_image(0)


def test_legacy_face_image_bad_index() -> None:
    """Asking for a face that was not found is a ValidationError."""
    assert field_of(lambda: LegacyFaceDetection().face_image(0, image_url=TGT)) == "index"


_URL_ALPHABET = st.sampled_from([*"aZ09.-_:~%/?#@[] \tHhTtPpSs&=+", "é"])


@settings(max_examples=500, deadline=None)
@given(
    rest=st.text(_URL_ALPHABET, max_size=30),
    scheme=st.sampled_from(["http://", "https://", "HTTP://", "HtTpS://", "ftp://", "http:/", ""]),
)
def test_url_fast_path_agrees_with_urlsplit(rest: str, scheme: str) -> None:
    """The regex fast path accepts only what ``urlsplit`` accepts and finds the same path."""
    url = scheme + rest
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if _PLAIN_URL.match(url) is not None:
        assert parts is not None
        assert parts.scheme.lower() in ("http", "https")
        assert parts.netloc
    if parts is not None:
        assert parts.path == _url_path(url)
    accepted = parts is not None and parts.scheme.lower() in ("http", "https") and parts.netloc
    if accepted:
        PlusSwap(source_url=url, target_url=TGT)
    else:
        with pytest.raises(ValidationError):
            PlusSwap(source_url=url, target_url=TGT)

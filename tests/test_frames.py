"""Analyze Frames without a server: the request's validation and wire form, the decoding of
its documented answers from ``tests/samples/``, and ``map_faces``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akool_async import (
    AnalyzeFrames,
    Appearance,
    AuthenticationError,
    DetectedFace,
    DetectionError,
    FaceDetection,
    FaceInfo,
    FaceMapping,
    FrameAnalysis,
    PermissionDeniedError,
    Person,
    PlusSwap,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    map_faces,
)
from akool_async._endpoints import ANALYZE_FRAMES, DETECT_FACES, ENDPOINTS, Host
from akool_async._models import DetectedFrame
from akool_async._wire import build_request, decode

SAMPLES = Path(__file__).parent / "samples"
FRAME = "https://example.com/video/frame_000.jpg"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def person(index: int, **changes: Any) -> Person:
    """A person with a crop, as analyze_frames returns them."""
    fields: dict[str, Any] = {
        "person_id": f"person_{index}",
        "index": index,
        "face_url": f"https://s3.example.com/faces/person_{index}.jpg",
        "bbox": (10.0 + 100 * index, 20.0, 90.0 + 100 * index, 120.0),
    }
    fields.update(changes)
    return Person(**fields)


def analysis(count: int) -> FrameAnalysis:
    return FrameAnalysis(frame_count=1, persons=tuple(person(i) for i in range(count)))


# --- the request -------------------------------------------------------------------------------


def test_request_wire_form() -> None:
    """Frames, timestamps and expand_ratio are sent under their documented names."""
    request = AnalyzeFrames(
        frame_urls=[
            "https://example.com/video/frame_000.jpg",
            "https://example.com/video/frame_025.jpg",
            "https://example.com/video/frame_050.jpg",
        ],
        timestamps=[0, 1, 2.0],
        expand_ratio=0.3,
    )
    wire = build_request(ANALYZE_FRAMES, request)
    assert (wire.method, wire.host, wire.path, wire.json) == (
        "POST",
        Host.API,
        "/interface/detect-api/faceswap/analyze_frames",
        sample("request_analyze_frames.json"),
    )


def test_request_leaves_out_the_server_defaults() -> None:
    """Without timestamps and expand_ratio only frame_urls is sent (the server's defaults)."""
    wire = build_request(ANALYZE_FRAMES, AnalyzeFrames(frame_urls=(FRAME,)))
    assert wire.json == {"frame_urls": [FRAME]}


def test_endpoint_is_in_the_table() -> None:
    """analyze_frames is one read endpoint of the table, with its own envelope."""
    endpoint = ENDPOINTS["analyze_frames"]
    assert (endpoint is ANALYZE_FRAMES, endpoint.creates_job, endpoint.envelope.value) == (
        True,
        False,
        "analysis",
    )


def test_request_is_frozen_and_hashable() -> None:
    """Requests are values: equal when equal, hashable, immutable."""
    one = AnalyzeFrames(frame_urls=[FRAME], timestamps=[0.5])
    two = AnalyzeFrames(frame_urls=(FRAME,), timestamps=(0.5,))
    assert (one == two, hash(one) == hash(two), one.timestamps) == (True, True, (0.5,))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frame_urls": []}, "frame_urls"),
        ({"frame_urls": FRAME}, "frame_urls"),
        ({"frame_urls": 3}, "frame_urls"),
        ({"frame_urls": [FRAME, "ftp://example.com/f.jpg"]}, "frame_urls[1]"),
        ({"frame_urls": ["/tmp/frame.jpg"]}, "frame_urls[0]"),
        ({"frame_urls": [None]}, "frame_urls[0]"),
        ({"frame_urls": [FRAME], "timestamps": [0.0, 1.0]}, "timestamps"),
        ({"frame_urls": [FRAME, FRAME], "timestamps": [0.0]}, "timestamps"),
        ({"frame_urls": [FRAME], "timestamps": "0"}, "timestamps"),
        ({"frame_urls": [FRAME], "timestamps": 0.0}, "timestamps"),
        ({"frame_urls": [FRAME], "timestamps": [-1]}, "timestamps[0]"),
        ({"frame_urls": [FRAME], "timestamps": [float("nan")]}, "timestamps[0]"),
        ({"frame_urls": [FRAME], "timestamps": [True]}, "timestamps[0]"),
        ({"frame_urls": [FRAME], "expand_ratio": 1.5}, "expand_ratio"),
        ({"frame_urls": [FRAME], "expand_ratio": -0.1}, "expand_ratio"),
        ({"frame_urls": [FRAME], "expand_ratio": "0.3"}, "expand_ratio"),
        ({"frame_urls": [FRAME], "expand_ratio": True}, "expand_ratio"),
        ({"frame_urls": [FRAME], "expand_ratio": 10**400}, "expand_ratio"),
        ({"frame_urls": [FRAME], "timestamps": [10**400]}, "timestamps[0]"),
    ],
)
def test_request_validation(fields: dict[str, Any], field: str) -> None:
    """Bad input is a ValidationError naming the field, before anything is sent."""
    with pytest.raises(ValidationError) as info:
        AnalyzeFrames(**fields)
    assert field == info.value.field


def test_expand_ratio_bounds_are_allowed() -> None:
    """0 and 1 are inside the documented range."""
    ratios = [AnalyzeFrames(frame_urls=[FRAME], expand_ratio=r).expand_ratio for r in (0, 1)]
    assert ratios == [0.0, 1.0]


# --- the answer --------------------------------------------------------------------------------


def test_decode_one_frame() -> None:
    """The docs' one-frame answer decodes into a FrameAnalysis with one typed Person."""
    found = decode(ANALYZE_FRAMES, 200, {}, raw("response_analyze_frames.json"))
    expected = FrameAnalysis(
        frame_count=1,
        persons=(
            Person(
                person_id="person_0",
                index=0,
                face_url="https://s3.example.com/faces/person_0.jpg",
                bbox=(100, 50, 200, 180),
                confidence=0.95,
                appearances=(Appearance(frame_index=0, timestamp=0.0, bbox=(100, 50, 200, 180)),),
                first_seen=0.0,
                last_seen=0.0,
            ),
        ),
    )
    assert expected == found


def test_decode_several_frames() -> None:
    """With several frames each person is one entry, sorted left to right by index."""
    found = decode(ANALYZE_FRAMES, 200, {}, raw("response_analyze_frames_multi.json"))
    assert (
        found.frame_count,
        [p.person_id for p in found.persons],
        [p.frames for p in found.persons],
        [(p.first_seen, p.last_seen) for p in found.persons],
        found.person("person_1").bbox,
        found.persons[1].appearances[1],
    ) == (
        3,
        ["person_0", "person_1"],
        [(0, 1, 2), (1, 2)],
        [(0.0, 2.0), (1.0, 2.0)],
        (420.5, 60.0, 540.5, 210.0),
        Appearance(frame_index=2, timestamp=2.0, bbox=(430, 62, 550, 212)),
    )


def test_unknown_person_is_a_key_error() -> None:
    """FrameAnalysis.person() raises KeyError for an id it does not hold."""
    with pytest.raises(KeyError):
        analysis(1).person("person_9")


def test_decode_no_face_is_an_empty_success() -> None:
    """No face in any frame is success with no persons, not an error (documented)."""
    found = decode(ANALYZE_FRAMES, 200, {}, raw("response_analyze_frames_empty.json"))
    assert FrameAnalysis(frame_count=2, persons=()) == found


def test_decode_tolerates_drift() -> None:
    """Unknown fields are ignored and missing optional ones are None."""
    data = {
        "success": True,
        "extra": {"anything": 1},
        "persons": [{"person_id": "p", "index": 0, "face_url": "", "new_field": [1]}],
    }
    assert FrameAnalysis(persons=(Person(person_id="p", index=0),)) == decode(
        ANALYZE_FRAMES, 200, {}, body(data)
    )


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "response_analyze_frames_error_400.json"),
        (500, "response_analyze_frames_error_500.json"),
    ],
)
def test_decode_documented_errors(status: int, name: str) -> None:
    """The 400 and 500 bodies are DetectionErrors with the status and the server's text."""
    with pytest.raises(DetectionError) as info:
        decode(ANALYZE_FRAMES, status, {}, raw(name))
    error = info.value
    assert (error.status, error.code, error.message, error.body) == (
        status,
        None,
        sample(name)["error"],
        sample(name),
    )


def test_decode_success_false_on_200_is_an_error() -> None:
    """success: false is a failure whatever the HTTP status."""
    with pytest.raises(DetectionError) as info:
        decode(ANALYZE_FRAMES, 200, {}, body({"success": False, "error": "bad frame"}))
    assert (info.value.status, info.value.message) == (200, "bad frame")


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (403, PermissionDeniedError)]
)
def test_decode_native_auth_failures(status: int, error: type[Exception]) -> None:
    """A {success: false} refusal on HTTP 401/403 is an auth error, not a DetectionError."""
    with pytest.raises(error) as info:
        decode(ANALYZE_FRAMES, status, {}, body({"success": False, "error": "Authorization"}))
    assert not isinstance(info.value, DetectionError)


def test_decode_native_auth_failure_of_detect_faces() -> None:
    """The new detector's envelope on HTTP 401 is an AuthenticationError too."""
    data = {"error_code": 1, "error_msg": "Authorization invalid", "faces_obj": {}}
    with pytest.raises(AuthenticationError) as info:
        decode(DETECT_FACES, 401, {}, body(data))
    assert (info.value.status, info.value.message) == (401, "Authorization invalid")


def test_decode_gateway_auth_failure() -> None:
    """The standard {code: 1101, msg} envelope on this path is an AuthenticationError."""
    with pytest.raises(AuthenticationError) as info:
        decode(ANALYZE_FRAMES, 200, {}, body({"code": 1101, "msg": "Authorization invalid"}))
    assert info.value.code == 1101


def test_decode_rate_limit() -> None:
    """HTTP 429 is a RateLimitError with the server's Retry-After."""
    with pytest.raises(RateLimitError) as info:
        decode(ANALYZE_FRAMES, 429, {"Retry-After": "2"}, body({"success": False, "error": "slow"}))
    assert info.value.retry_after == 2.0


def test_decode_5xx_without_envelope_is_a_server_error() -> None:
    """A JSON 5xx without ``success`` is a ServerError; an HTML one a TransportError."""
    with pytest.raises(ServerError):
        decode(ANALYZE_FRAMES, 502, {}, body({"message": "bad gateway"}))
    with pytest.raises(TransportError) as info:
        decode(ANALYZE_FRAMES, 502, {}, b"<html>502 Bad Gateway</html>")
    assert info.value.status == 502


@pytest.mark.parametrize(
    "payload",
    [
        {"frame_count": 1, "persons": []},
        {"success": "true", "persons": []},
        {"success": True, "persons": [{"index": 0}]},
        {"success": True, "persons": [{"person_id": "p", "index": "0"}]},
        {"success": True, "persons": [{"person_id": "p", "index": 0, "bbox": [1, 2, 3]}]},
        {"success": True, "persons": [{"person_id": "p", "index": 0, "appearances": [{}]}]},
        {"success": True, "persons": None},
        {"success": True, "frame_count": "one"},
    ],
)
def test_decode_malformed_success_is_a_transport_error(payload: dict[str, Any]) -> None:
    """A 200 of the wrong shape is a TransportError naming the problem, never a cattrs error."""
    with pytest.raises(TransportError) as info:
        decode(ANALYZE_FRAMES, 200, {}, body(payload))
    assert info.value.status == 200


# --- Person -> FaceInfo ------------------------------------------------------------------------


def test_person_face_info_is_the_crop() -> None:
    """A person with a crop maps to that crop, no bbox needed."""
    assert FaceInfo(face_url="https://s3.example.com/faces/person_0.jpg") == (
        person(0).to_face_info()
    )


def test_person_without_crop_uses_the_image_and_bbox() -> None:
    """Without a crop, the analysed image plus the person's bbox."""
    info = person(0, face_url=None).to_face_info("https://example.com/still.jpg")
    assert FaceInfo(face_url="https://example.com/still.jpg", bbox=(10, 20, 90, 120)) == info


@pytest.mark.parametrize(
    ("changes", "image_url"),
    [({"face_url": None}, None), ({"face_url": None, "bbox": None}, "https://e.com/a.jpg")],
)
def test_person_without_crop_or_image_is_refused(
    changes: dict[str, Any], image_url: str | None
) -> None:
    """Without a crop, an image URL and a bbox are both needed to point at the face."""
    with pytest.raises(ValidationError) as info:
        person(0, **changes).to_face_info(image_url)
    assert info.value.field == "image_url"


# --- map_faces ---------------------------------------------------------------------------------


def test_map_faces_pairs_persons_in_order() -> None:
    """A list of new faces pairs with the persons left to right."""
    mapping = map_faces(analysis(2), ["https://new.example/a.jpg", "https://new.example/b.jpg"])
    assert (
        FaceMapping(
            source=FaceInfo(face_url="https://new.example/a.jpg"),
            target=FaceInfo(face_url="https://s3.example.com/faces/person_0.jpg"),
        ),
        FaceMapping(
            source=FaceInfo(face_url="https://new.example/b.jpg"),
            target=FaceInfo(face_url="https://s3.example.com/faces/person_1.jpg"),
        ),
    ) == mapping


def test_map_faces_none_keeps_a_face() -> None:
    """None in the list leaves that person's face unchanged."""
    mapping = map_faces(analysis(3), [None, "https://new.example/b.jpg", None])
    assert [m.target.face_url for m in mapping] == ["https://s3.example.com/faces/person_1.jpg"]


def test_map_faces_by_person_id_and_index() -> None:
    """A mapping swaps only the persons it names (by person_id or index), in target order."""
    by_id = map_faces(
        analysis(3),
        {"person_2": "https://new.example/c.jpg", "person_0": "https://new.example/a.jpg"},
    )
    by_index = map_faces(analysis(3), {1: FaceInfo(face_url="https://new.example/b.jpg")})
    assert (
        [(m.source.face_url, m.target.face_url) for m in by_id],
        [m.target.face_url for m in by_index],
    ) == (
        [
            ("https://new.example/a.jpg", "https://s3.example.com/faces/person_0.jpg"),
            ("https://new.example/c.jpg", "https://s3.example.com/faces/person_2.jpg"),
        ],
        ["https://s3.example.com/faces/person_1.jpg"],
    )


def test_map_faces_from_detect_faces() -> None:
    """detect_faces crops of one image map like persons; without crops, target_url + bbox."""
    crops = tuple(
        DetectedFace(
            frame=0,
            index=i,
            region=(10 + 100 * i, 20, 50, 60),
            face_url=f"https://s3.example.com/c{i}.jpg",
        )
        for i in range(2)
    )
    detection = FaceDetection(frames={0: DetectedFrame(frame=0, faces=crops)}, faces=crops)
    bare = tuple(
        DetectedFace(frame=0, index=i, region=(10 + 100 * i, 20, 50, 60)) for i in range(2)
    )
    with_crops = map_faces(detection, ["https://new.example/a.jpg", None])
    assert with_crops == map_faces(detection.frames[0], ["https://new.example/a.jpg", None])
    without = map_faces(
        bare, {1: "https://new.example/b.jpg"}, target_url="https://example.com/group.jpg"
    )
    assert (with_crops[0].target, without[0].target) == (
        FaceInfo(face_url="https://s3.example.com/c0.jpg"),
        FaceInfo(face_url="https://example.com/group.jpg", bbox=(110, 20, 160, 80)),
    )


def test_map_faces_result_is_a_plus_face_mapping() -> None:
    """What map_faces returns is accepted by PlusSwap as face_mapping."""
    mapping = map_faces(analysis(2), ["https://new.example/a.jpg", "https://new.example/b.jpg"])
    request = PlusSwap(
        source_url="https://new.example/a.jpg",
        target_url="https://example.com/clip.mp4",
        face_mapping=mapping,
    )
    assert (request.resolved_single_face_mode, len(request.face_mapping or ())) == (False, 2)


def _video_detection() -> FaceDetection:
    faces = tuple(
        DetectedFace(frame=f, index=0, region=(1, 2, 3, 4), face_url="https://s/c.jpg")
        for f in (0, 5)
    )
    frames = {
        f: DetectedFrame(frame=f, faces=(face,)) for f, face in zip((0, 5), faces, strict=True)
    }
    return FaceDetection(frames=frames, faces=faces)


@pytest.mark.parametrize(
    ("targets", "sources", "kwargs", "field"),
    [
        (analysis(2), ["https://new.example/a.jpg"], {}, "sources"),
        (analysis(1), ["https://new.example/a.jpg", "https://new.example/b.jpg"], {}, "sources"),
        (analysis(2), [None, None], {}, "sources"),
        (analysis(0), [], {}, "sources"),
        (analysis(1), "https://new.example/a.jpg", {}, "sources"),
        (analysis(1), ["ftp://new.example/a.jpg"], {}, "sources[0]"),
        (analysis(1), [FaceInfo(bbox=(1, 2, 3, 4))], {}, "sources[0]"),
        (analysis(1), [3], {}, "sources[0]"),
        (analysis(2), {"person_7": "https://new.example/a.jpg"}, {}, "sources['person_7']"),
        (analysis(2), {5: "https://new.example/a.jpg"}, {}, "sources[5]"),
        (analysis(2), {1.0: "https://new.example/a.jpg"}, {}, "sources[1.0]"),
        (analysis(2), {"person_0": "https://n/a.jpg", 0: "https://n/b.jpg"}, {}, "sources[0]"),
        (analysis(9), [f"https://new.example/{i}.jpg" for i in range(9)], {}, "sources"),
        (_video_detection(), ["https://new.example/a.jpg"], {}, "targets"),
        (list(_video_detection().faces), {0: "https://new.example/a.jpg"}, {}, "sources[0]"),
        (person(0), ["https://new.example/a.jpg"], {}, "targets"),
        (["person_0"], ["https://new.example/a.jpg"], {}, "targets[0]"),
        (42, ["https://new.example/a.jpg"], {}, "targets"),
        ([person(0, face_url=None)], ["https://new.example/a.jpg"], {}, "target_url"),
        (analysis(1), ["https://new.example/a.jpg"], {"target_url": "ftp://x/y"}, "target_url"),
        (analysis(1), None, {}, "sources"),
    ],
)
def test_map_faces_refuses_what_cannot_be_right(
    targets: Any, sources: Any, kwargs: dict[str, Any], field: str
) -> None:
    """Mismatched lists, unknown keys, bad sources and crop-less targets name the culprit."""
    with pytest.raises(ValidationError) as info:
        map_faces(targets, sources, **kwargs)
    assert field == info.value.field


# --- properties --------------------------------------------------------------------------------

PROPERTY = settings(max_examples=200, deadline=None, database=None)
junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**1100), max_value=2**1100)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=6)
    | st.sampled_from(["", "https://", "ftp://x/y", FRAME, "person_0"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), children, max_size=3)
        | st.tuples(children, children)
    ),
    max_leaves=6,
)


def outcome(func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(...)``, or the ValidationError it raised (any other exception propagates)."""
    try:
        return func(*args, **kwargs)
    except ValidationError as exc:
        return exc


def field_root(error: ValidationError) -> str:
    """``"timestamps[2]"`` -> ``"timestamps"``."""
    return (error.field or "").split("[", 1)[0]


frame_lists = st.lists(st.sampled_from([FRAME, "https://example.com/b.jpg"]), max_size=3)
maybe = st.one_of


@PROPERTY
@given(
    frame_urls=maybe(frame_lists, junk),
    timestamps=maybe(st.none(), st.lists(st.floats(min_value=0, max_value=1e6), max_size=3), junk),
    expand_ratio=maybe(st.none(), st.floats(min_value=0, max_value=1), junk),
)
def test_any_input_builds_or_names_a_field(
    frame_urls: Any, timestamps: Any, expand_ratio: Any
) -> None:
    """Whatever it is given, AnalyzeFrames builds or raises a ValidationError naming a field."""
    result = outcome(
        AnalyzeFrames, frame_urls=frame_urls, timestamps=timestamps, expand_ratio=expand_ratio
    )
    if isinstance(result, ValidationError):
        assert field_root(result) in {"frame_urls", "timestamps", "expand_ratio"}
    else:
        assert build_request(ANALYZE_FRAMES, result).json is not None


@PROPERTY
@given(sources=junk, target_url=maybe(st.none(), st.sampled_from([FRAME]), junk))
def test_map_faces_raises_only_validation_errors(sources: Any, target_url: Any) -> None:
    """Whatever the sources, map_faces gives FaceMappings or a ValidationError naming one."""
    targets = FrameAnalysis(persons=(person(0), person(1, face_url=None)))
    result = outcome(map_faces, targets, sources, target_url=target_url)
    if isinstance(result, ValidationError):
        assert field_root(result) in {"sources", "target_url"}
    else:
        assert all(isinstance(pair, FaceMapping) for pair in result)

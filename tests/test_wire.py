"""Sans-I/O request building and response decoding, from recorded JSON in ``tests/samples/``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from akool_async import (
    AccountBannedError,
    APIError,
    AuthenticationError,
    DetectFaces,
    DetectionError,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    InsufficientCreditError,
    LegacyDetect,
    MediaError,
    MediaType,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    PlusSwap,
    ProSwap,
    RateLimitError,
    ServerError,
    SwapJob,
    SwapKind,
    SwapStatus,
    TooManyFacesError,
    TransportError,
    VideoSwap,
)
from akool_async._endpoints import (
    DELETE_RESULTS,
    DETECT_FACES,
    ENDPOINTS,
    FACESWAP_IMAGE,
    FACESWAP_PLUS,
    FACESWAP_PRO,
    FACESWAP_VIDEO,
    GET_CREDIT,
    GET_TOKEN,
    LEGACY_DETECT,
    LIST_RESULTS,
    Host,
)
from akool_async._models import (
    Credit,
    CreditQuery,
    Deleted,
    DeleteQuery,
    ResultsQuery,
    Token,
    TokenRequest,
)
from akool_async._wire import BODY_LIMIT, WireRequest, build_request, decode, parse_retry_after

SAMPLES = Path(__file__).parent / "samples"
ID_A = "6593c94c0ef703e8c055e3c8"
ID_B = "667d2284dca9e468ba8ead23"
PLUS = PlusSwap(source_url="https://example.com/s.jpg", target_url="https://example.com/t.jpg")


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- requests: the docs' examples ------------------------------------------------------------


def test_plus_single_face_example() -> None:
    """The docs' single-face Plus example is what a default PlusSwap sends."""
    request = PlusSwap(
        source_url="https://example.com/new-face.jpg", target_url="https://example.com/original.jpg"
    )
    assert sample("request_plus_single_face.json") == build_request(FACESWAP_PLUS, request).json


def test_plus_multi_face_crops_example() -> None:
    """The docs' multi-face example with detector crops (no bbox)."""
    pairs = [
        FaceMapping(
            source=FaceInfo(face_url=f"https://example.com/detected-source-face-{n}.jpg"),
            target=FaceInfo(face_url=f"https://example.com/detected-target-face-{n}.jpg"),
        )
        for n in (1, 2)
    ]
    request = PlusSwap(
        source_url="https://example.com/new-face.jpg",
        target_url="https://example.com/group-photo.jpg",
        face_mapping=pairs,
    )
    assert (
        sample("request_plus_multi_face_crops.json") == build_request(FACESWAP_PLUS, request).json
    )


def test_plus_multi_face_bbox_example() -> None:
    """The docs' multi-face example on original images with bboxes."""
    request = PlusSwap(
        source_url="https://example.com/new-face.jpg",
        target_url="https://example.com/group-photo.jpg",
        single_face_mode=False,
        face_mapping=[
            FaceMapping(
                source=FaceInfo(
                    face_url="https://example.com/source-original.jpg", bbox=(120, 80, 280, 320)
                ),
                target=FaceInfo(
                    face_url="https://example.com/target-original.jpg", bbox=(150, 60, 350, 340)
                ),
            )
        ],
    )
    assert sample("request_plus_multi_face_bbox.json") == build_request(FACESWAP_PLUS, request).json


def test_plus_video_webhook_example() -> None:
    """The docs' video-with-webhook example: camelCase webhookUrl, boolean face_enhance."""
    request = PlusSwap(
        source_url="https://example.com/new-face.jpg",
        target_url="https://example.com/video.mp4",
        webhook_url="https://your-server.com/webhook/faceswap-callback",
        face_enhance=True,
    )
    assert sample("request_plus_video_webhook.json") == build_request(FACESWAP_PLUS, request).json


def test_pro_example() -> None:
    """The docs' Pro example: sourceImage/targetImage arrays, model_name, boolean flags."""
    request = ProSwap(
        source=[FaceImage(path="https://example.com/new-face.jpg")],
        target=[FaceImage(path="https://example.com/original.jpg")],
        single_face_mode=False,
    )
    assert sample("request_pro.json") == build_request(FACESWAP_PRO, request).json


def test_v3_image_example() -> None:
    """The docs' V3 image example: face_enhance is the integer 0; no empty webhookUrl."""
    expected = sample("request_v3_image.json")
    del expected["webhookUrl"]
    request = ImageSwap(
        source=[
            FaceImage(
                path=expected["sourceImage"][0]["path"], opts=expected["sourceImage"][0]["opts"]
            )
        ],
        target=[
            FaceImage(
                path=expected["targetImage"][0]["path"], opts=expected["targetImage"][0]["opts"]
            )
        ],
        modify_image=expected["modifyImage"],
        webhook_url="",
    )
    assert expected == build_request(FACESWAP_IMAGE, request).json


def test_v3_video_example() -> None:
    """The docs' V3 video example with modifyVideo."""
    expected = sample("request_v3_video.json")
    del expected["webhookUrl"]
    request = VideoSwap(
        source=[FaceImage(**expected["sourceImage"][0])],
        target=[FaceImage(**expected["targetImage"][0])],
        modify_video=expected["modifyVideo"],
    )
    assert expected == build_request(FACESWAP_VIDEO, request).json


def test_v3_face_enhance_is_integer_one() -> None:
    """V3 sends face_enhance as the integer 1, never a JSON boolean."""
    f = [FaceImage(path="https://x/f.jpg")]
    sent = build_request(
        FACESWAP_IMAGE,
        ImageSwap(source=f, target=f, modify_image="https://x/m.jpg", face_enhance=True),
    ).json
    assert (1, int) == (sent["face_enhance"], type(sent["face_enhance"])) if sent else None


def test_pro_face_enhance_is_boolean() -> None:
    """Pro sends face_enhance as a JSON boolean."""
    f = [FaceImage(path="https://x/f.jpg")]
    sent = build_request(FACESWAP_PRO, ProSwap(source=f, target=f, face_enhance=True)).json or {}
    assert True is sent["face_enhance"]


def test_pro_omits_unset_single_face_mode() -> None:
    """Pro leaves single_face_mode out unless it was given."""
    f = [FaceImage(path="https://x/f.jpg")]
    sent = build_request(FACESWAP_PRO, ProSwap(source=f, target=f)).json or {}
    assert "single_face_mode" not in sent


def test_plus_always_sends_single_face_mode() -> None:
    """Plus sends single_face_mode explicitly even when left to its default."""
    sent = build_request(FACESWAP_PLUS, PLUS).json or {}
    assert True is sent["single_face_mode"]


def test_list_results_is_a_get_with_ids() -> None:
    """listbyids is a GET with comma-joined _ids in the query string."""
    expected = WireRequest(
        method="GET",
        host=Host.API,
        path="/api/open/v3/faceswap/result/listbyids",
        params={"_ids": f"{ID_A},{ID_B}"},
    )
    assert expected == build_request(LIST_RESULTS, ResultsQuery(ids=(ID_A, ID_B)))


def test_delete_results_body() -> None:
    """delbyids POSTs {"_ids": "a,b"}."""
    assert {"_ids": f"{ID_A},{ID_B}"} == build_request(
        DELETE_RESULTS, DeleteQuery(ids=[ID_A, ID_B])
    ).json


def test_quota_has_no_parameters() -> None:
    """quota/info is a bare GET."""
    assert build_request(GET_CREDIT, CreditQuery()).params == {}


def test_get_token_body() -> None:
    """getToken sends clientId/clientSecret."""
    sent = build_request(GET_TOKEN, TokenRequest(client_id="cid", client_secret="sec")).json
    assert sent == {"clientId": "cid", "clientSecret": "sec"}


def test_detect_faces_img_is_plain_base64() -> None:
    """The new detector receives the image bytes as plain base64 (the client reads a path's
    file before the wire layer: ``test_client_operations.test_detect_faces_img_path``)."""
    sent = build_request(DETECT_FACES, DetectFaces(img=b"\x89PNG-data")).json
    expected = {
        "img": base64.b64encode(b"\x89PNG-data").decode(),
        "num_frames": 5,
        "return_face_url": False,
        "single_face": False,
    }
    assert expected == sent


def test_legacy_detect_img_is_a_data_uri() -> None:
    """The legacy detector receives a data URI, as the docs' samples send."""
    sent = build_request(LEGACY_DETECT, LegacyDetect(img=b"\x89PNG-data")).json
    expected = {
        "img": "data:image/png;base64," + base64.b64encode(b"\x89PNG-data").decode(),
        "single_face": True,
    }
    assert expected == sent


def test_img_still_a_path_is_a_programming_error(tmp_path: Path) -> None:
    """The wire layer does no I/O: an ``img`` path must have been read by the client."""
    image = tmp_path / "f.png"
    image.write_bytes(b"\x89PNG-data")
    with pytest.raises(TypeError, match="img must be bytes"):
        build_request(DETECT_FACES, DetectFaces(img=image))


def test_legacy_detect_lives_on_its_host() -> None:
    """The legacy detector's path is relative to the detector host."""
    request = build_request(LEGACY_DETECT, LegacyDetect(image_url="https://x/a.jpg"))
    assert (request.host, request.path) == (Host.LEGACY_DETECTOR, "/detect")


def test_build_request_rejects_wrong_type() -> None:
    """Passing another endpoint's request is a programming error."""
    with pytest.raises(TypeError):
        build_request(FACESWAP_PRO, PLUS)


def test_endpoint_table_paths() -> None:
    """The table holds every documented path exactly once."""
    expected = {
        "get_token": ("POST", "/api/open/v3/getToken"),
        "faceswap_plus": ("POST", "/api/open/v4/faceswap/faceswapPlusByImage"),
        "faceswap_pro": ("POST", "/api/open/v4/faceswap/faceswapByImage"),
        "faceswap_image": ("POST", "/api/open/v3/faceswap/highquality/specifyimage"),
        "faceswap_video": ("POST", "/api/open/v3/faceswap/highquality/specifyvideo"),
        "list_results": ("GET", "/api/open/v3/faceswap/result/listbyids"),
        "delete_results": ("POST", "/api/open/v3/faceswap/result/delbyids"),
        "quota": ("GET", "/api/open/v3/faceswap/quota/info"),
        "detect_faces": ("POST", "/interface/detect-api/detect_faces"),
        "analyze_frames": ("POST", "/interface/detect-api/faceswap/analyze_frames"),
        "detect_legacy": ("POST", "/detect"),
    }
    assert expected == {name: (e.method, e.path) for name, e in ENDPOINTS.items()}


def test_only_submits_create_jobs() -> None:
    """Exactly the four submits are job-creating (not blindly retried)."""
    expected = {"faceswap_plus", "faceswap_pro", "faceswap_image", "faceswap_video"}
    assert expected == {name for name, e in ENDPOINTS.items() if e.creates_job}


def test_request_quirks_are_table_fields() -> None:
    """What differs between endpoints' requests is declared in the table, per endpoint."""
    quirks = {
        name: (e.explicit_fields, e.image_encoding and e.image_encoding.value, e.status_poll)
        for name, e in ENDPOINTS.items()
        if e.explicit_fields or e.image_encoding or e.status_poll
    }
    assert quirks == {
        "faceswap_plus": ((("single_face_mode", "resolved_single_face_mode"),), None, False),
        "list_results": ((), None, True),
        "detect_faces": ((), "base64", False),
        "detect_legacy": ((), "data_uri", False),
    }


# --- responses: success ----------------------------------------------------------------------


def test_decode_v4_submit() -> None:
    """A V4 submit has no url: SwapJob.url is None, and kind/media come from the request."""
    job = decode(FACESWAP_PLUS, 200, {}, raw("response_v4_submit.json"), request=PLUS)
    expected = SwapJob(
        id=ID_A,
        job_id="20240102082900592-5653",
        url=None,
        kind=SwapKind.PLUS,
        media=MediaType.IMAGE,
    )
    assert expected == job


def test_decode_v3_submit_real() -> None:
    """The real logged V3 image submit decodes, url included."""
    f = [FaceImage(path="https://x/f.jpg")]
    request = ImageSwap(source=f, target=f, modify_image="https://x/m.jpg")
    job = decode(
        FACESWAP_IMAGE, 200, {}, raw("response_v3_image_submit_real.json"), request=request
    )
    assert (job.id, job.kind, (job.url or "").endswith("2272.jpeg")) == (ID_B, SwapKind.IMAGE, True)


def test_decode_v3_video_submit() -> None:
    """A V3 video submit is a video job."""
    f = [FaceImage(path="https://x/f.jpg")]
    request = VideoSwap(source=f, target=f, modify_video="https://x/m.mp4")
    job = decode(FACESWAP_VIDEO, 200, {}, raw("response_v3_video_submit_doc.json"), request=request)
    assert (
        job.id,
        job.kind,
        job.media,
    ) == ("6582bf774e47940151d8fa1e", SwapKind.VIDEO, MediaType.VIDEO)


def test_decode_submit_empty_url_is_none() -> None:
    """An empty url string at submit is reported as None."""
    data = {"code": 1000, "msg": "OK", "data": {"_id": ID_A, "job_id": "j", "url": ""}}
    assert None is decode(FACESWAP_PLUS, 200, {}, body(data), request=PLUS).url


def test_decode_documented_result_item() -> None:
    """The documented listbyids item decodes every field, userId as user_id."""
    [item] = decode(LIST_RESULTS, 200, {}, raw("response_listbyids_documented.json")).result
    expected = (
        "64dae65af6e250d4fb2bca63",
        SwapStatus.QUEUED,
        1,
        2,
        1,
        1,
        0.0,
        0.0,
        0.0,
        "64d985c5571729d3e2999477",
        378337,
        datetime(2023, 8, 15, 2, 43, 38, 536000, tzinfo=UTC),
    )
    actual = (
        item.id,
        item.status,
        item.faceswap_type,
        item.faceswap_quality,
        item.deduction_status,
        item.image,
        item.video_duration,
        item.deduction_duration,
        item.update_time,
        item.user_id,
        item.uid,
        item.created_at,
    )
    assert expected == actual


def test_decode_real_result_item() -> None:
    """The real item (undocumented job_id; five documented fields missing) decodes."""
    [item] = decode(LIST_RESULTS, 200, {}, raw("response_listbyids_real.json")).result
    expected = (
        ID_B,
        SwapStatus.SUCCESS,
        "20240627082748003-5746",
        2839571,
        datetime(2024, 6, 27, 8, 27, 48, 6000, tzinfo=UTC),
        None,
        None,
        None,
        None,
        None,
        True,
    )
    actual = (
        item.id,
        item.status,
        item.job_id,
        item.uid,
        item.created_at,
        item.faceswap_type,
        item.faceswap_quality,
        item.deduction_status,
        item.update_time,
        item.user_id,
        (item.url or "").startswith("https://d2qf6ukcym4kn9.cloudfront.net/"),
    )
    assert expected == actual


def test_decode_result_tolerates_drift() -> None:
    """Unknown fields are ignored, "" url is None, a float uid and a junk date are tolerated."""
    data = {
        "code": 1000,
        "msg": "OK",
        "data": {
            "result": [
                {
                    "_id": ID_A,
                    "faceswap_status": 2,
                    "url": "",
                    "uid": 12.0,
                    "createdAt": "soon",
                    "new": 1,
                }
            ]
        },
    }
    [item] = decode(LIST_RESULTS, 200, {}, body(data)).result
    assert (
        item.status,
        item.url,
        item.uid,
        item.created_at,
    ) == (SwapStatus.PROCESSING, None, 12, None)


def test_decode_empty_result() -> None:
    """Unknown ids simply give an empty result."""
    data = {"code": 1000, "msg": "OK", "data": {"result": []}}
    assert decode(LIST_RESULTS, 200, {}, body(data)).result == ()


def test_decode_credit() -> None:
    """quota/info decodes data.credit."""
    assert Credit(credit=0.0) == decode(GET_CREDIT, 200, {}, raw("response_quota.json"))


def test_decode_delete() -> None:
    """delbyids answers only {code, msg}."""
    assert Deleted() == decode(DELETE_RESULTS, 200, {}, raw("response_delbyids.json"))


def test_decode_token() -> None:
    """getToken's token is read at the top level, not under data."""
    assert Token(token="xxxxxxxxxxxxxxxx") == decode(
        GET_TOKEN, 200, {}, raw("response_get_token.json")
    )


def test_decode_detect_faces() -> None:
    """The new detector's faces_obj decodes into frames keyed by int and a flat face list."""
    detection = decode(DETECT_FACES, 200, {}, raw("response_detect_faces.json"))
    [found] = detection.faces
    expected = (
        [0],
        0,
        (80, 50, 150, 180),
        ((120, 85), (180, 88), (150, 130), (150, 165), (125, 165), (175, 168)),
        "120,85:180,88:150,130:150,165",
        "https://s3.example.com/faces/face_detect_0.jpg",
        (30, 0, 250, 280),
        "90,85:150,88:120,130:120,165",
        None,
    )
    actual = (
        list(detection.frames),
        found.frame,
        found.region,
        found.landmarks,
        found.opts,
        found.face_url,
        found.crop_region,
        found.crop_landmarks,
        detection.frames[0].frame_time,
    )
    assert expected == actual


def test_decode_detect_faces_without_crops() -> None:
    """Without return_face_url the crop fields are None."""
    data = sample("response_detect_faces.json")
    for key in ("face_urls", "crop_region", "crop_landmarks"):
        del data["faces_obj"]["0"][key]
    [found] = decode(DETECT_FACES, 200, {}, body(data)).faces
    assert (found.face_url, found.crop_region, found.crop_landmarks) == (None, None, None)


def test_decode_detect_faces_video_frames() -> None:
    """Video frames are sorted numerically and flattened in frame order."""
    frame = {
        "landmarks": [],
        "region": [[1, 2, 3, 4]],
        "removed": [[5, 6, 7, 8]],
        "frame_time": 0.4,
    }
    data = {
        "error_code": 0,
        "error_msg": "SUCCESS",
        "faces_obj": {"10": frame, "5": frame, "0": frame},
    }
    detection = decode(DETECT_FACES, 200, {}, body(data))
    assert (
        list(detection.frames),
        [f.frame for f in detection.faces],
        detection.frames[5].removed,
    ) == ([0, 5, 10], [0, 5, 10], ((5, 6, 7, 8),))


def test_decode_detect_faces_empty_is_valid() -> None:
    """Success with empty arrays is an empty result, not an error."""
    empty = {"landmarks": [], "landmarks_str": [], "region": [], "removed": [], "frame_time": None}
    data = {"error_code": 0, "error_msg": "SUCCESS", "faces_obj": {"0": empty}}
    assert decode(DETECT_FACES, 200, {}, body(data)).faces == ()


def test_decode_legacy_detect() -> None:
    """The legacy detector's parallel arrays decode."""
    detection = decode(LEGACY_DETECT, 200, {}, raw("response_legacy_detect_doc.json"))
    expected = (
        ("238,365:386,363:318,470:267,539",),
        ((150, 195, 317, 429),),
        6,
        "74178dc5-199a-479a-89d0-4b0e1c161219",
        None,
    )
    actual = (
        detection.opts,
        detection.regions,
        len(detection.landmarks[0]),
        detection.trx_id,
        detection.origin_url,
    )
    assert expected == actual


# --- responses: errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1003, ParameterError),
        (1005, RateLimitError),
        (1006, InsufficientCreditError),
        (1104, InsufficientCreditError),
        (1007, TooManyFacesError),
        (1008, NotFoundError),
        (1014, NotFoundError),
        (1009, PermissionDeniedError),
        (1101, AuthenticationError),
        (1102, AuthenticationError),
        (1200, AccountBannedError),
        (1204, MediaError),
        (2001, ServerError),
        (4242, APIError),
    ],
)
def test_error_codes_map_to_classes(code: int, error: type[APIError]) -> None:
    """Each business code raises its class, with code, status and message kept."""
    with pytest.raises(APIError) as info:
        decode(FACESWAP_PLUS, 200, {}, body({"code": code, "msg": "nope"}), request=PLUS)
    assert (error, code, 200, "nope") == (
        type(info.value),
        info.value.code,
        info.value.status,
        info.value.message,
    )


def test_error_code_wins_over_http_status() -> None:
    """A JSON code decides the error whatever the HTTP status (1003 on a 500)."""
    with pytest.raises(ParameterError) as info:
        decode(LIST_RESULTS, 500, {}, body({"code": 1003, "msg": "bad", "data": None}))
    assert info.value.status == 500


def test_error_with_empty_data() -> None:
    """Error bodies with data null or {} decode the same."""
    with pytest.raises(InsufficientCreditError):
        decode(FACESWAP_PLUS, 200, {}, body({"code": 1006, "msg": "q", "data": {}}), request=PLUS)


def test_get_token_error_message_key() -> None:
    """getToken errors may carry 'message' instead of 'msg'."""
    with pytest.raises(AuthenticationError) as info:
        decode(GET_TOKEN, 200, {}, body({"code": 1101, "message": "Authorization invalid"}))
    assert info.value.message == "Authorization invalid"


def test_http_429_html_is_rate_limit_with_retry_after() -> None:
    """HTTP 429 is a RateLimitError even without JSON, with Retry-After honoured."""
    with pytest.raises(RateLimitError) as info:
        decode(LIST_RESULTS, 429, {"retry-after": "3"}, b"<html>Too Many Requests</html>")
    assert (info.value.code, info.value.status, info.value.retry_after) == (None, 429, 3.0)


def test_http_5xx_html_is_transport_error() -> None:
    """A non-JSON 5xx (an HTML error page) is a TransportError with status and body."""
    page = b"<html><head><title>502 Bad Gateway</title></head></html>"
    with pytest.raises(TransportError) as info:
        decode(FACESWAP_PLUS, 502, {}, page, request=PLUS)
    assert (502, page.decode()) == (info.value.status, info.value.body)


def test_http_5xx_json_without_code_is_server_error() -> None:
    """A JSON 5xx without a code is a ServerError with code None."""
    with pytest.raises(ServerError) as info:
        decode(GET_CREDIT, 503, {}, body({"error": "maintenance"}))
    assert (info.value.code, info.value.status) == (None, 503)


def test_http_4xx_json_without_code_is_api_error() -> None:
    """A JSON 4xx without a code is a plain APIError."""
    with pytest.raises(APIError) as info:
        decode(GET_CREDIT, 404, {}, body({"error": "not here"}))
    assert (APIError, 404) == (type(info.value), info.value.status)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"code": 1000, "msg": "OK", "data": {"_id": "65',
        b"[1, 2, 3]",
        b'{"msg": "OK"}',
        b'{"code": "1000", "msg": "OK", "data": {"_id": "x", "job_id": "y"}}',
        b'{"code": 1000, "msg": "OK", "data": []}',
        b'{"code": 1000, "msg": "OK", "data": {"job_id": "no id"}}',
        b'{"code": 1000, "msg": "OK", "data": {"_id": 12, "job_id": "j"}}',
        b"\xff\xfe not utf-8",
        b"",
    ],
)
def test_malformed_success_is_transport_error(payload: bytes) -> None:
    """A 200 whose body is not the API's JSON is a TransportError, never a cattrs/Key/TypeError."""
    with pytest.raises(TransportError) as info:
        decode(FACESWAP_PLUS, 200, {}, payload, request=PLUS)
    assert info.value.status == 200


@pytest.mark.parametrize(
    "item",
    [
        {"faceswap_status": 3},
        {"_id": ID_A, "faceswap_status": 9},
        {"_id": ID_A, "faceswap_status": "3"},
        {"_id": ID_A, "faceswap_status": 3, "uid": "many"},
        {"_id": ID_A, "faceswap_status": 3, "video_duration": "long"},
    ],
)
def test_malformed_result_item_is_transport_error(item: dict[str, Any]) -> None:
    """Items without _id, with an unknown status or wrong types are a TransportError."""
    with pytest.raises(TransportError):
        decode(LIST_RESULTS, 200, {}, body({"code": 1000, "msg": "OK", "data": {"result": [item]}}))


@pytest.mark.parametrize(
    "record_id",
    ["../../.akool-journal", "6593c94c0ef703e8c055e3c", "6593c94c0ef703e8c055e3c8/x", ""],
)
def test_an_id_that_is_not_24_hex_digits_is_transport_error(record_id: str) -> None:
    """A submit's or a listbyids item's ``_id`` that could not be a record id is refused."""
    submit = {"code": 1000, "msg": "OK", "data": {"_id": record_id, "job_id": "j"}}
    item = {"_id": record_id, "faceswap_status": 3}
    page = {"code": 1000, "msg": "OK", "data": {"result": [item]}}
    with pytest.raises(TransportError) as submitted:
        decode(FACESWAP_PLUS, 200, {}, body(submit), request=PLUS)
    with pytest.raises(TransportError) as listed:
        decode(LIST_RESULTS, 200, {}, body(page))
    why = "is not 24 hex digits"
    assert (why in str(submitted.value), why in str(listed.value)) == (True, True)


def test_huge_body_is_capped() -> None:
    """At most 2 KiB of a huge unusable body is kept in the exception."""
    with pytest.raises(TransportError) as info:
        decode(LIST_RESULTS, 500, {}, b"<html>" + b"x" * 1_000_000)
    assert len(info.value.body or "") == BODY_LIMIT


def test_detector_error_envelope_400() -> None:
    """The new detector's error envelope is a DetectionError with error_code and HTTP status."""
    with pytest.raises(DetectionError) as info:
        decode(DETECT_FACES, 400, {}, raw("response_detect_faces_error.json"))
    assert (info.value.code, info.value.status, info.value.message) == (1, 400, "No faces detected")


def test_detector_error_envelope_500() -> None:
    """A detector's 500 with its envelope is also a DetectionError."""
    data = {"error_code": 1, "error_msg": "Failed to process media", "faces_obj": {}}
    with pytest.raises(DetectionError) as info:
        decode(DETECT_FACES, 500, {}, body(data))
    assert info.value.status == 500


def test_legacy_detector_error_on_200() -> None:
    """The legacy detector reports errors on HTTP 200 with error_code != 0."""
    data = {"error_code": 1, "error_msg": "'NoneType' object has no attribute 'shape'"}
    with pytest.raises(DetectionError) as info:
        decode(LEGACY_DETECT, 200, {}, body(data))
    assert (info.value.code, info.value.status) == (1, 200)


def test_detector_gateway_auth_error() -> None:
    """A standard {code: 1101} envelope on a detector path is an AuthenticationError."""
    with pytest.raises(AuthenticationError):
        decode(DETECT_FACES, 200, {}, body({"code": 1101, "msg": "Authorization invalid"}))


def test_detector_malformed_arrays() -> None:
    """Wrong types inside a detector answer are a TransportError."""
    data = {
        "error_code": 0,
        "error_msg": "SUCCESS",
        "faces_obj": {"0": {"region": [["a", 2, 3, 4]]}},
    }
    with pytest.raises(TransportError):
        decode(DETECT_FACES, 200, {}, body(data))


# --- Retry-After -----------------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    """Retry-After in delta-seconds."""
    assert parse_retry_after({"Retry-After": "1.5"}) == 1.5


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date in the future gives the seconds until then."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after({"Retry-After": format_datetime(when, usegmt=True)}) or 0.0
    assert True is (100 < seconds <= 120)


def test_retry_after_garbage() -> None:
    """An unparseable Retry-After is ignored."""
    assert None is parse_retry_after({"Retry-After": "soon"})

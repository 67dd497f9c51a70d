"""The emulator's endpoints, auth, validation, credits, results and detectors (plain aiohttp)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import aiohttp
import pytest

from akool_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
)

pytestmark = pytest.mark.anyio

KEY = {"x-api-key": DEFAULT_API_KEY}
TOKEN = "/api/open/v3/getToken"
PLUS = "/api/open/v4/faceswap/faceswapPlusByImage"
PRO = "/api/open/v4/faceswap/faceswapByImage"
V3_IMAGE = "/api/open/v3/faceswap/highquality/specifyimage"
V3_VIDEO = "/api/open/v3/faceswap/highquality/specifyvideo"
LIST = "/api/open/v3/faceswap/result/listbyids"
DELETE = "/api/open/v3/faceswap/result/delbyids"
QUOTA = "/api/open/v3/faceswap/quota/info"
DETECT = "/interface/detect-api/detect_faces"
LEGACY = "/detect"
OPTS = "239,364:386,366:317,472:266,539"


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Deterministic emulator: manual clock, 1 s queue and 2 s image / 10 s video work."""
    return EmulatorConfig(
        clock="manual",
        start_time=1_719_476_868.0,
        queue_seconds=(1, 1),
        image_seconds=(2, 2),
        video_seconds=(10, 10),
        video_size=300_000,
    )


async def call(
    http: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
    params: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """One request; returns (HTTP status, decoded JSON body)."""
    async with http.request(
        method,
        emu.base_url + path,
        headers=KEY if headers is None else headers,
        json=json,
        params=params,
        data=data,
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def plus(**changes: Any) -> dict[str, Any]:
    """A valid single-face Plus body."""
    body = {
        "source_url": "https://example.com/new-face.jpg",
        "target_url": "https://example.com/original.jpg",
        "single_face_mode": True,
        "face_enhance": False,
        "model_style": "realistic",
    }
    return body | changes


def pro(**changes: Any) -> dict[str, Any]:
    """A valid one-pair Pro body."""
    body = {
        "sourceImage": [{"path": "https://example.com/new-face.jpg"}],
        "targetImage": [{"path": "https://example.com/original.jpg"}],
        "model_name": "akool_faceswap_image_hq",
        "face_enhance": False,
    }
    return body | changes


def v3(video: bool = False, pairs: int = 1, **changes: Any) -> dict[str, Any]:
    """A valid V3 image (or video) body with ``pairs`` face pairs."""
    body: dict[str, Any] = {
        "targetImage": [
            {"path": f"https://example.com/t{i}.png", "opts": OPTS} for i in range(pairs)
        ],
        "sourceImage": [
            {"path": f"https://example.com/s{i}.png", "opts": OPTS} for i in range(pairs)
        ],
        "face_enhance": 0,
        "webhookUrl": "",
    }
    body["modifyVideo" if video else "modifyImage"] = (
        "https://example.com/clip.mp4" if video else "https://example.com/photo.jpeg"
    )
    return body | changes


async def submit(http: aiohttp.ClientSession, emu: Emulator, path: str, body: Any) -> Any:
    """Submit and return the body (asserting success)."""
    status, out = await call(http, emu, "POST", path, json=body)
    expected = (200, 1000)
    assert expected == (status, out["code"]), out
    return out


async def listing(http: aiohttp.ClientSession, emu: Emulator, *ids: str) -> list[dict[str, Any]]:
    """listbyids for ``ids``; returns the result items."""
    status, out = await call(http, emu, "GET", LIST, params={"_ids": ",".join(ids)})
    expected = (200, 1000)
    assert expected == (status, out["code"]), out
    result: list[dict[str, Any]] = out["data"]["result"]
    return result


# --- getToken and auth ------------------------------------------------------------------------


async def test_get_token_returns_token_at_top_level(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """getToken answers {code: 1000, token} and the token authorises as a Bearer."""
    creds = {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
    status, out = await call(http, akool_emulator, "POST", TOKEN, headers={}, json=creds)
    expected = (200, ["code", "token"], 3)
    assert expected == (status, sorted(out), len(out["token"].split(".")))
    auth = {"Authorization": f"Bearer {out['token']}"}
    _, quota = await call(http, akool_emulator, "GET", QUOTA, headers=auth)
    expected = {"code": 1000, "msg": "OK", "data": {"credit": 10_000}}
    assert expected == quota


@pytest.mark.parametrize(
    ("creds", "code"),
    [
        ({"clientId": DEFAULT_CLIENT_ID, "clientSecret": "x" * 32}, 1101),
        ({"clientId": "someone-else", "clientSecret": DEFAULT_CLIENT_SECRET}, 1101),
        ({"clientId": DEFAULT_CLIENT_ID}, 1102),
        ({"clientId": "", "clientSecret": ""}, 1102),
        ([], 1003),
    ],
)
async def test_get_token_errors(
    akool_emulator: Emulator, http: aiohttp.ClientSession, creds: Any, code: int
) -> None:
    """Wrong credentials give 1101, missing ones 1102, a non-object body 1003."""
    status, out = await call(http, akool_emulator, "POST", TOKEN, headers={}, json=creds)
    assert (200, code, "msg") == (status, out["code"], sorted(out)[1])


async def test_get_token_error_text_key_is_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """token_error_key="message" puts getToken's error text under "message"."""
    akool_emulator.configure(token_error_key="message")
    _, out = await call(http, akool_emulator, "POST", TOKEN, headers={}, json={"clientId": "a"})
    expected = ["code", "message"]
    assert expected == sorted(out)


async def test_expired_tokens_get_1101(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """expire_tokens() and the token TTL on the emulator clock both invalidate tokens."""
    akool_emulator.configure(token_ttl=60)
    revoked, aging = akool_emulator.issue_token(), None
    akool_emulator.expire_tokens()
    aging = akool_emulator.issue_token()
    _, first = await call(
        http, akool_emulator, "GET", QUOTA, headers={"Authorization": f"Bearer {revoked}"}
    )
    _, fresh = await call(
        http, akool_emulator, "GET", QUOTA, headers={"Authorization": f"Bearer {aging}"}
    )
    await akool_emulator.advance(61)
    _, old = await call(
        http, akool_emulator, "GET", QUOTA, headers={"Authorization": f"Bearer {aging}"}
    )
    expected = (1101, 1000, 1101)
    assert expected == (first["code"], fresh["code"], old["code"])


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 1102),
        ({"x-api-key": ""}, 1102),
        ({"x-api-key": "wrong"}, 1101),
        ({"Authorization": "Bearer"}, 1102),
        ({"Authorization": "Bearer not-a-token"}, 1101),
        ({"Authorization": f"Basic {DEFAULT_API_KEY}"}, 1101),
        ({"Authorization": "", "x-api-key": DEFAULT_API_KEY}, 1000),
        ({"x-api-key": DEFAULT_API_KEY}, 1000),
    ],
)
async def test_auth_header_rules(
    akool_emulator: Emulator, http: aiohttp.ClientSession, headers: dict[str, str], code: int
) -> None:
    """Missing or empty credentials give 1102, wrong ones 1101; a blank Authorization is absent."""
    _, out = await call(http, akool_emulator, "GET", QUOTA, headers=headers)
    assert code == out["code"]


async def test_authorization_wins_over_api_key(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """With both headers, Authorization decides: a stale Bearer plus a valid key gives 1101."""
    token = akool_emulator.issue_token()
    akool_emulator.expire_tokens()
    stale = {"Authorization": f"Bearer {token}", "x-api-key": DEFAULT_API_KEY}
    good = {"Authorization": f"Bearer {akool_emulator.issue_token()}", "x-api-key": "wrong"}
    _, with_stale = await call(http, akool_emulator, "GET", QUOTA, headers=stale)
    _, with_good = await call(http, akool_emulator, "GET", QUOTA, headers=good)
    expected = (1101, 1000)
    assert expected == (with_stale["code"], with_good["code"])


async def test_raw_api_key_as_bearer_is_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A raw API key sent as a Bearer value is refused by default and accepted when configured."""
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    _, refused = await call(http, akool_emulator, "GET", QUOTA, headers=headers)
    akool_emulator.configure(accept_api_key_as_bearer=True)
    _, accepted = await call(http, akool_emulator, "GET", QUOTA, headers=headers)
    expected = (1101, 1000)
    assert expected == (refused["code"], accepted["code"])


async def test_ban_answers_1200(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A banned account gets 1200 from getToken and every authenticated endpoint."""
    akool_emulator.ban()
    creds = {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
    codes = [
        (await call(http, akool_emulator, "POST", TOKEN, headers={}, json=creds))[1]["code"],
        (await call(http, akool_emulator, "GET", QUOTA))[1]["code"],
        (await call(http, akool_emulator, "POST", PLUS, json=plus()))[1]["code"],
        (await call(http, akool_emulator, "POST", DETECT, json={"url": "https://e.com/a.jpg"}))[1][
            "code"
        ],
    ]
    akool_emulator.ban(False)
    _, after = await call(http, akool_emulator, "GET", QUOTA)
    expected = ([1200] * 4, 1000)
    assert expected == (codes, after["code"])


async def test_error_wire_shape_is_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """error_status maps a code to an HTTP status and error_data adds "data": null."""
    _, default = await call(http, akool_emulator, "GET", QUOTA, headers={})
    akool_emulator.configure(error_status={1102: 401}, error_data="null")
    status, custom = await call(http, akool_emulator, "GET", QUOTA, headers={})
    assert ({"code", "msg"}, 401, None) == (set(default), status, custom["data"])


# --- submits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "kind", "has_url"),
    [
        (PLUS, plus(), "image", False),
        (PLUS, plus(target_url="https://example.com/clip.MOV?x=1"), "video", False),
        (PRO, pro(), "image", False),
        (V3_IMAGE, v3(), "image", True),
        (V3_VIDEO, v3(video=True), "video", True),
    ],
)
async def test_submit_happy_paths(
    akool_emulator: Emulator,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    kind: str,
    has_url: bool,
) -> None:
    """Each submit returns _id (ObjectId of the creation second), job_id and V3's url."""
    out = await submit(http, akool_emulator, path, body)
    data = out["data"]
    job = akool_emulator.jobs[data["_id"]]
    expected_keys = {"_id", "job_id", "url"} if has_url else {"_id", "job_id"}
    assert (expected_keys, kind, "667d2284") == (set(data), job.kind, data["_id"][:8])
    assert re.fullmatch(r"20240627082748000-\d{4}", data["job_id"])
    patient = "Please be patient! If your results are not generated in three hours, please check"
    expected_msg = f"{patient} your input {kind}." if has_url else "OK"
    assert expected_msg == out["msg"]


async def test_v4_url_at_submit_is_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """v4_returns_url=True adds the predicted url to Plus and Pro submits."""
    akool_emulator.configure(v4_returns_url=True)
    out = await submit(http, akool_emulator, PRO, pro())
    assert akool_emulator.result_url(akool_emulator.jobs[out["data"]["_id"]]) == out["data"]["url"]


async def test_job_goes_through_statuses_on_the_clock(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Status 1 while queued, 2 while processing, then 3; the final url is the submit url."""
    out = await submit(http, akool_emulator, V3_IMAGE, v3())
    _id, seen = out["data"]["_id"], []
    for step in (0, 1.5, 2):
        await akool_emulator.advance(step)
        seen.append((await listing(http, akool_emulator, _id))[0])
    expected = [1, 2, 3]
    assert expected == [item["faceswap_status"] for item in seen]
    assert [out["data"]["url"]] * 3 == [item["url"] for item in seen]


async def test_listbyids_item_fields(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Items have the documented fields plus job_id; image is 1 for images and 0 for videos."""
    image = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]
    video = (await submit(http, akool_emulator, V3_VIDEO, v3(video=True)))["data"]
    akool_emulator.configure(result_order="request")
    first, second = await listing(http, akool_emulator, image["_id"], video["_id"])
    documented = {
        "_id", "createdAt", "faceswap_status", "image", "job_id", "uid", "url", "video_duration",
        "deduction_duration", "faceswap_type", "faceswap_quality", "deduction_status",
        "update_time", "userId",
    }  # fmt: skip
    assert (documented, "2024-06-27T08:27:48.000Z", image["job_id"]) == (
        set(first),
        first["createdAt"],
        first["job_id"],
    )
    expected = ((1, 0), (0, 10.0))
    assert expected == (
        (first["image"], second["image"]),
        (first["video_duration"], second["video_duration"]),
    )


async def test_listbyids_observed_item_shape(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """item_shape="observed" emits exactly the fields of the real logged item."""
    akool_emulator.configure(item_shape="observed", url_before_success="empty")
    _id = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]["_id"]
    (item,) = await listing(http, akool_emulator, _id)
    observed = {
        "_id", "createdAt", "deduction_duration", "faceswap_status", "image", "job_id", "uid",
        "url", "video_duration",
    }  # fmt: skip
    assert (observed, "") == (set(item), item["url"])


async def test_listbyids_unknown_and_malformed_ids(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Unknown and malformed ids are left out by default, or give 1003 when configured."""
    _id = (await submit(http, akool_emulator, PLUS, plus()))["data"]["_id"]
    ids = {"_ids": f"{_id},{'0' * 24},nope"}
    items = await listing(http, akool_emulator, _id, "0" * 24, "nope")
    akool_emulator.configure(unknown_ids="error")
    _, unknown = await call(http, akool_emulator, "GET", LIST, params={"_ids": f"{_id},{'0' * 24}"})
    akool_emulator.configure(unknown_ids="omit", malformed_ids="error")
    _, malformed = await call(http, akool_emulator, "GET", LIST, params=ids)
    _, empty = await call(http, akool_emulator, "GET", LIST, params={"_ids": ""})
    assert ([_id], 1003, 1003, 1003) == (
        [i["_id"] for i in items],
        unknown["code"],
        malformed["code"],
        empty["code"],
    )


async def test_listbyids_max_ids_and_order(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """max_ids caps the id count with 1003; result_order="request" keeps the _ids order."""
    ids = [(await submit(http, akool_emulator, PLUS, plus()))["data"]["_id"] for _ in range(4)]
    akool_emulator.configure(max_ids=3, result_order="request")
    _, too_many = await call(http, akool_emulator, "GET", LIST, params={"_ids": ",".join(ids)})
    ordered = await listing(http, akool_emulator, *reversed(ids[:3]))
    assert (1003, ids[2::-1]) == (too_many["code"], [i["_id"] for i in ordered])


async def test_delbyids_removes_jobs_and_files(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Deleted jobs vanish from listbyids and their result files answer 404."""
    data = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]
    await akool_emulator.advance(5)
    async with http.get(data["url"]) as before:
        expected = 200
        assert expected == before.status
    status, out = await call(
        http, akool_emulator, "POST", DELETE, json={"_ids": f"{data['_id']},{'f' * 24}"}
    )
    async with http.get(data["url"]) as after:
        file_status = after.status
    expected = ((200, {"code": 1000, "msg": "OK"}), [], 404)
    assert expected == (
        (status, out),
        await listing(http, akool_emulator, data["_id"]),
        file_status,
    )


async def test_delbyids_needs_ids_string(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """delbyids without an _ids string is a 1003."""
    _, out = await call(http, akool_emulator, "POST", DELETE, json={"_ids": ["a"]})
    expected = 1003
    assert expected == out["code"]


# --- validation -------------------------------------------------------------------------------

_MAPPING = {
    "source_face_info": {"face_url": "https://example.com/s.jpg", "bbox": [1, 2, 3, 4]},
    "target_face_info": {"face_url": "https://example.com/t.jpg"},
}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (PLUS, plus(source_url=None), 1003),
        (PLUS, plus(target_url=""), 1003),
        (PLUS, plus(target_url="ftp://example.com/a.jpg"), 1003),
        (PLUS, plus(face_enhance=1), 1003),
        (PLUS, plus(model_style="anime"), 1003),
        (PLUS, plus(single_face_mode="yes"), 1003),
        (PLUS, plus(single_face_mode=False), 1003),
        (PLUS, plus(single_face_mode=False, face_mapping=[{"source_face_info": {}}]), 1003),
        (
            PLUS,
            plus(single_face_mode=False, face_mapping=[{**_MAPPING, "target_face_info": None}]),
            1003,
        ),
        (
            PLUS,
            plus(
                single_face_mode=False,
                face_mapping=[
                    {
                        **_MAPPING,
                        "source_face_info": {"face_url": "https://e.com/a", "bbox": [1, 2, 3]},
                    }
                ],
            ),
            1003,
        ),
        (PLUS, plus(webhookUrl="not a url"), 1003),
        (PLUS, plus(single_face_mode=False, face_mapping=[_MAPPING] * 9), 1007),
        (
            PLUS,
            plus(
                single_face_mode=False,
                face_mapping=[_MAPPING],
                target_url="https://e.com/faces-9.jpg",
            ),
            1007,
        ),
        (PLUS, plus(single_face_mode=False, face_mapping=[_MAPPING] * 8, unknown_field=1), 1000),
        (PRO, pro(sourceImage=[]), 1003),
        (PRO, pro(sourceImage=[{"path": "https://e.com/a.jpg", "opts": OPTS}] * 51), 1003),
        (PRO, pro(targetImage=[{"path": "file:///etc/passwd"}]), 1003),
        (PRO, pro(sourceImage=[{"path": "https://e.com/a.jpg"}] * 2), 1003),
        (PRO, pro(sourceImage=[{"path": "https://e.com/a.jpg", "opts": OPTS}] * 2), 1003),
        (
            PRO,
            pro(
                sourceImage=[{"path": "https://e.com/a.jpg", "opts": OPTS}] * 2,
                targetImage=[{"path": "https://e.com/b.jpg", "opts": OPTS}],
            ),
            1000,
        ),
        (PRO, pro(sourceImage=[{"path": "https://e.com/a.jpg", "opts": "1,2:3,4"}]), 1003),
        (PRO, pro(face_enhance=0), 1003),
        (PRO, pro(model_name="other"), 1003),
        (V3_IMAGE, v3(face_enhance=True), 1003),
        (V3_IMAGE, v3(face_enhance=2), 1003),
        (V3_IMAGE, v3(modifyImage=None), 1003),
        (V3_IMAGE, {**v3(), "sourceImage": v3(pairs=2)["sourceImage"]}, 1003),
        (V3_IMAGE, v3(pairs=9), 1007),
        (V3_IMAGE, v3(modifyImage="https://e.com/a.jpg?faces=9"), 1007),
        (V3_VIDEO, v3(video=True, modifyVideo=""), 1003),
        (V3_VIDEO, v3(video=True, pairs=8), 1000),
        (V3_VIDEO, "not an object", 1003),
    ],
)
async def test_submit_validation(
    akool_emulator: Emulator, http: aiohttp.ClientSession, path: str, body: Any, code: int
) -> None:
    """Documented field names and types are enforced with 1003, face counts over 8 with 1007."""
    body = {k: v for k, v in body.items() if v is not None} if isinstance(body, dict) else body
    _, out = await call(http, akool_emulator, "POST", path, json=body)
    assert code == out["code"], out


async def test_invalid_json_body_is_1003(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON gives 1003 and creates nothing."""
    _, out = await call(http, akool_emulator, "POST", PLUS, data=b"{oops", headers=KEY)
    expected = (1003, 0)
    assert expected == (out["code"], len(akool_emulator.jobs))


async def test_face_enhance_coercion_and_mapping_quirk_are_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """face_enhance_types="coerce" and plus_mapping_required=False accept what strict rejects."""
    akool_emulator.configure(face_enhance_types="coerce", plus_mapping_required=False)
    codes = [
        (await call(http, akool_emulator, "POST", V3_IMAGE, json=v3(face_enhance=True)))[1]["code"],
        (await call(http, akool_emulator, "POST", PLUS, json=plus(face_enhance=1)))[1]["code"],
        (await call(http, akool_emulator, "POST", PLUS, json=plus(single_face_mode=False)))[1][
            "code"
        ],
    ]
    expected = [1000, 1000, 1000]
    assert expected == codes


# --- credits ----------------------------------------------------------------------------------


async def test_credit_is_charged_at_submit_and_1006_when_short(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Images cost 1 and videos 5 at submit; a job that cannot be paid is 1006 and not created."""
    akool_emulator.set_credit(7)
    await submit(http, akool_emulator, PLUS, plus())
    await submit(http, akool_emulator, V3_VIDEO, v3(video=True))
    _, short = await call(http, akool_emulator, "POST", V3_VIDEO, json=v3(video=True))
    _, quota = await call(http, akool_emulator, "GET", QUOTA)
    expected = (1006, {"credit": 1}, 2)
    assert expected == (short["code"], quota["data"], len(akool_emulator.jobs))


# --- result files -----------------------------------------------------------------------------


async def test_image_result_file(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """An image result is 404 until success, then a real PNG with an MD5 ETag."""
    data = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]
    async with http.get(data["url"]) as early:
        early_status = early.status
    await akool_emulator.advance(3)
    async with http.get(data["url"]) as resp:
        body = await resp.read()
        headers = resp.headers
    expected = (404, b"\x89PNG\r\n\x1a\n", "image/png")
    assert expected == (
        early_status,
        body[:8],
        headers["Content-Type"],
    )
    assert (f'"{hashlib.md5(body).hexdigest()}"', str(len(body))) == (
        headers["ETag"],
        headers["Content-Length"],
    )
    assert data["_id"].encode() in body


async def test_video_result_file_is_streamed_mp4(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A video result is an ISO-BMFF file of video_size bytes, distinct per job, with an ETag."""
    first = (await submit(http, akool_emulator, V3_VIDEO, v3(video=True)))["data"]
    second = (await submit(http, akool_emulator, V3_VIDEO, v3(video=True)))["data"]
    await akool_emulator.advance(11)
    bodies = []
    for data in (first, second):
        async with http.get(data["url"]) as resp:
            chunks = [chunk async for chunk in resp.content.iter_chunked(65_536)]
            bodies.append((b"".join(chunks), resp.headers))
    (one, headers), (two, _) = bodies
    expected = (300_000, b"ftyp", b"moov", "video/mp4")
    assert expected == (
        len(one),
        one[4:8],
        one[36:40],
        headers["Content-Type"],
    )
    assert (f'"{hashlib.md5(one).hexdigest()}"', True, True) == (
        headers["ETag"],
        one != two,
        first["_id"].encode() in one,
    )


async def test_head_on_result_files(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """HEAD gives the status, Content-Length and ETag of a result without its body."""
    data = (await submit(http, akool_emulator, V3_VIDEO, v3(video=True)))["data"]
    await akool_emulator.advance(11)
    async with http.head(data["url"]) as head:
        got = (head.status, head.headers["Content-Length"], await head.read())
        etag = head.headers["ETag"]
    async with http.get(data["url"]) as resp:
        full = await resp.read()
    expected = (200, "300000", b"", f'"{hashlib.md5(full).hexdigest()}"')
    assert expected == (*got, etag)


async def test_result_files_expire_after_ttl(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Result files disappear 7 days (emulator clock) after success; 403 when configured."""
    data = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]
    await akool_emulator.advance(3 + 7 * 86_400 - 1)
    async with http.get(data["url"]) as fresh:
        fresh_status = fresh.status
    await akool_emulator.advance(1)
    async with http.get(data["url"]) as gone:
        gone_status = gone.status
    akool_emulator.configure(missing_file_status=403)
    async with http.get(data["url"]) as denied:
        denied_status = denied.status
    expected = (200, 404, 403)
    assert expected == (fresh_status, gone_status, denied_status)


async def test_failed_jobs_by_marker_and_fail_next(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A target URL containing "fail", fail_next_jobs() and a faces=0 target end in status 4."""
    marked = await submit(http, akool_emulator, PLUS, plus(target_url="https://e.com/fail.jpg"))
    akool_emulator.fail_next_jobs(1)
    forced = await submit(http, akool_emulator, PLUS, plus())
    faceless = await submit(
        http, akool_emulator, PLUS, plus(target_url="https://e.com/x.jpg?faces=0")
    )
    fine = await submit(http, akool_emulator, PLUS, plus())
    await akool_emulator.advance(10)
    ids = [out["data"]["_id"] for out in (marked, forced, faceless, fine)]
    expected = [4, 4, 4, 3]
    assert expected == [akool_emulator.status(i) for i in ids]


async def test_force_status_pins_a_job(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """force_status() overrides the plan: 2 stays 2 forever, 3 makes the file available now."""
    stuck = (await submit(http, akool_emulator, PLUS, plus()))["data"]["_id"]
    done = (await submit(http, akool_emulator, V3_IMAGE, v3()))["data"]
    akool_emulator.force_status(stuck, 2)
    akool_emulator.force_status(done["_id"], 3)
    async with http.get(done["url"]) as resp:
        file_status = resp.status
    await akool_emulator.advance(1000)
    expected = (2, 3, 200)
    assert expected == (
        akool_emulator.status(stuck),
        akool_emulator.status(done["_id"]),
        file_status,
    )


# --- detectors --------------------------------------------------------------------------------


async def test_detect_faces_image_with_face_urls(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The new detector returns frame "0" with 2 faces, crops and fetchable face URLs."""
    body = {"url": "https://e.com/group.jpg?faces=2", "return_face_url": True}
    status, out = await call(http, akool_emulator, "POST", DETECT, json=body)
    frame = out["faces_obj"]["0"]
    expected = (200, 0, "SUCCESS", ["0"])
    assert expected == (
        status,
        out["error_code"],
        out["error_msg"],
        list(out["faces_obj"]),
    )
    expected = ([6, 6], 2, None, [])
    assert expected == (
        [len(p) for p in frame["landmarks"]],
        len(frame["crop_region"]),
        frame["frame_time"],
        frame["removed"],
    )
    assert all(
        re.fullmatch(r"(\d+,\d+:){3}\d+,\d+", s)
        for s in frame["landmarks_str"] + frame["crop_landmarks"]
    )
    async with http.get(frame["face_urls"][1]) as resp:
        expected = (200, b"\x89PNG")
        assert expected == (resp.status, (await resp.read())[:4])


async def test_detect_faces_video_frames_and_single_face(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A video gives num_frames frame keys with frame_time; single_face keeps the largest face."""
    body = {"url": "https://e.com/clip.webm?faces=3", "num_frames": 3, "single_face": True}
    _, out = await call(http, akool_emulator, "POST", DETECT, json=body)
    _, full = await call(http, akool_emulator, "POST", DETECT, json=body | {"single_face": False})
    frames = out["faces_obj"]
    regions = full["faces_obj"]["0"]["region"]
    largest = max(regions, key=lambda r: r[2] * r[3])
    expected = (["0", "83", "166"], [1, 1, 1], 3)
    assert expected == (
        list(frames),
        [len(f["region"]) for f in frames.values()],
        len(regions),
    )
    assert ([largest], 3.32) == (
        frames["0"]["region"],
        frames["83"]["frame_time"],
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "Either 'url' or 'img' parameter must be provided"),
        ({"url": "notaurl"}, 400, "Invalid URL format"),
        ({"img": "!!!not base64!!!"}, 400, "Failed to process media"),
        ({"url": "https://e.com/a.mp4", "num_frames": 101}, 400, None),
        ({"url": "https://e.com/a.jpg?faces=0"}, 400, "No faces detected"),
        ({"url": "https://e.com/fail.jpg"}, 500, "Failed to process media"),
    ],
)
async def test_detect_faces_errors(
    akool_emulator: Emulator,
    http: aiohttp.ClientSession,
    body: Any,
    status: int,
    message: str | None,
) -> None:
    """New-detector errors: error_code 1, faces_obj {}, HTTP 400 or 500, documented texts."""
    got_status, out = await call(http, akool_emulator, "POST", DETECT, json=body)
    assert (status, 1, {}) == (got_status, out["error_code"], out["faces_obj"])
    assert message in (None, out["error_msg"])


async def test_detect_faces_base64_and_no_face_option(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Plain and data-URI base64 both decode; detector_no_face="empty" succeeds with no faces."""
    raw = base64.b64encode(b"\xff\xd8\xff fake jpeg").decode()
    _, plain = await call(http, akool_emulator, "POST", DETECT, json={"img": raw})
    _, uri = await call(
        http, akool_emulator, "POST", DETECT, json={"img": f"data:image/jpeg;base64,{raw}"}
    )
    akool_emulator.configure(detector_no_face="empty")
    _, empty = await call(
        http, akool_emulator, "POST", DETECT, json={"url": "https://e.com/a.png?faces=0"}
    )
    expected = (1, 1, (0, []))
    assert expected == (
        len(plain["faces_obj"]["0"]["region"]),
        len(uri["faces_obj"]["0"]["region"]),
        (empty["error_code"], empty["faces_obj"]["0"]["landmarks"]),
    )


async def test_legacy_detect(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Legacy detector: 6 points ending [0,0],[0,0], landmarks_str, region, trx_id, origin_url."""
    _, out = await call(
        http,
        akool_emulator,
        "POST",
        LEGACY,
        json={"single_face": False, "image_url": "https://e.com/faces-2.jpg"},
    )
    img = base64.b64encode(b"png").decode()
    _, b64 = await call(
        http, akool_emulator, "POST", LEGACY, json={"single_face": True, "img": img}
    )
    expected = (0, "SUCCESS", 2, [[0, 0], [0, 0]])
    assert expected == (
        out["error_code"],
        out["error_msg"],
        len(out["region"]),
        out["landmarks"][0][4:],
    )
    assert {
        "error_code",
        "error_msg",
        "landmarks",
        "landmarks_str",
        "region",
        "seconds",
        "trx_id",
    } == set(out)
    async with http.get(b64["origin_url"]) as resp:
        expected = 200
        assert expected == resp.status


async def test_legacy_detect_errors_and_auth_option(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """single_face is required (error_code 1); legacy auth can be switched off."""
    _, missing = await call(
        http, akool_emulator, "POST", LEGACY, json={"image_url": "https://e.com/a.jpg"}
    )
    _, unauth = await call(
        http,
        akool_emulator,
        "POST",
        LEGACY,
        headers={},
        json={"single_face": True, "image_url": "https://e.com/a.jpg"},
    )
    akool_emulator.configure(legacy_detect_requires_auth=False)
    _, open_ = await call(
        http,
        akool_emulator,
        "POST",
        LEGACY,
        headers={},
        json={"single_face": True, "image_url": "https://e.com/a.jpg"},
    )
    expected = (1, 1102, 0)
    assert expected == (missing["error_code"], unauth["code"], open_["error_code"])

"""The emulator's Analyze Frames endpoint, with plain aiohttp: the documented answers for one
and several frames, its error bodies, and the option for the detectors' auth failures.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from akool_async.testing import DEFAULT_API_KEY, Emulator, EmulatorConfig
from akool_async.testing._main import build_parser, config_from_args

pytestmark = pytest.mark.anyio

KEY = {"x-api-key": DEFAULT_API_KEY}
ANALYZE = "/interface/detect-api/faceswap/analyze_frames"
DETECT = "/interface/detect-api/detect_faces"
LEGACY = "/detect"
#: Three stills of one video: two people, the second off screen in the middle one.
STILLS = [
    "https://cdn.example/clip-7/f000-faces-2.jpg",
    "https://cdn.example/clip-7/f025-faces-1.jpg",
    "https://cdn.example/clip-7/f050-faces-2.jpg",
]
PERSON_KEYS = {
    "person_id",
    "index",
    "face_url",
    "bbox",
    "confidence",
    "appearances",
    "first_seen",
    "last_seen",
}


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """The manual clock: nothing here depends on time."""
    return EmulatorConfig(clock="manual")


async def analyze(
    http: aiohttp.ClientSession,
    emu: Emulator,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    path: str = ANALYZE,
) -> tuple[int, Any]:
    """POST ``body`` as JSON; returns (HTTP status, decoded JSON body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(KEY if headers is None else headers)}
    async with http.post(emu.base_url + path, data=data, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_one_frame_has_the_documented_shape(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """One frame: success, frame_count 1, one person with every documented field."""
    status, out = await analyze(http, akool_emulator, {"frame_urls": ["https://e.com/me.jpg"]})
    [person] = out["persons"]
    [seen] = person["appearances"]
    x1, y1, x2, y2 = person["bbox"]
    expected = (200, True, 1, PERSON_KEYS, "person_0", 0, 0.0, 0.0, (0.0, 0, person["bbox"]))
    assert expected == (
        status,
        out["success"],
        out["frame_count"],
        set(person),
        person["person_id"],
        person["index"],
        person["first_seen"],
        person["last_seen"],
        (seen["timestamp"], seen["frame_idx"], seen["bbox"]),
    )
    assert (x1 < x2 and y1 < y2, 0 < person["confidence"] <= 1) == (True, True)


async def test_face_url_is_a_fetchable_crop(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A person's face_url serves a PNG from the emulator."""
    _, out = await analyze(http, akool_emulator, {"frame_urls": ["https://e.com/me.jpg"]})
    async with http.get(out["persons"][0]["face_url"]) as resp:
        expected = (200, b"\x89PNG")
        assert expected == (resp.status, (await resp.read())[:4])


async def test_several_frames_merge_each_person(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Across frames each person is one entry, listing only the frames that show them."""
    status, out = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    persons = out["persons"]
    expected = (
        200,
        3,
        ["person_0", "person_1"],
        [[0, 1, 2], [0, 2]],
        [[0.0, 1.0, 2.0], [0.0, 2.0]],
        [(0.0, 2.0), (0.0, 2.0)],
    )
    assert expected == (
        status,
        out["frame_count"],
        [p["person_id"] for p in persons],
        [[a["frame_idx"] for a in p["appearances"]] for p in persons],
        [[a["timestamp"] for a in p["appearances"]] for p in persons],
        [(p["first_seen"], p["last_seen"]) for p in persons],
    )


async def test_persons_are_ordered_left_to_right(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """index follows the faces from left to right, in every frame."""
    _, out = await analyze(http, akool_emulator, {"frame_urls": ["https://e.com/g-faces-4.jpg"]})
    lefts = [p["bbox"][0] for p in out["persons"]]
    expected = ([0, 1, 2, 3], sorted(lefts))
    assert expected == ([p["index"] for p in out["persons"]], lefts)


async def test_timestamps_are_used_and_move_the_boxes(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Given timestamps are reported; a person's box drifts with time, and its bbox is the first."""
    body = {"frame_urls": STILLS[:1] * 2, "timestamps": [3.5, 60]}
    _, out = await analyze(http, akool_emulator, body)
    person = out["persons"][0]
    first, last = person["appearances"]
    expected = ([3.5, 60.0], 3.5, 60.0, True, first["bbox"])
    assert expected == (
        [first["timestamp"], last["timestamp"]],
        person["first_seen"],
        person["last_seen"],
        last["bbox"][0] > first["bbox"][0],
        person["bbox"],
    )


async def test_answers_are_deterministic(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The same frames give the same persons; the stills of one video share their people."""
    _, one = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    _, two = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    _, alone = await analyze(http, akool_emulator, {"frame_urls": STILLS[2:], "timestamps": [2]})
    expected = (one, one["persons"][1]["appearances"][1]["bbox"])
    assert expected == (two, alone["persons"][1]["appearances"][0]["bbox"])


async def test_expand_ratio_changes_the_crops(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Another expand_ratio gives other crop URLs; the documented default is 0.3."""
    frames = {"frame_urls": STILLS[:1]}
    _, default = await analyze(http, akool_emulator, frames)
    _, same = await analyze(http, akool_emulator, frames | {"expand_ratio": 0.3})
    _, wide = await analyze(http, akool_emulator, frames | {"expand_ratio": 1})
    urls = [out["persons"][0]["face_url"] for out in (default, same, wide)]
    expected = (True, False)
    assert expected == (urls[0] == urls[1], urls[0] == urls[2])


async def test_no_face_is_success_with_no_persons(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Frames without faces are a success with an empty persons list (documented)."""
    body = {"frame_urls": ["https://e.com/a-faces-0.jpg", "https://e.com/b.jpg?faces=0"]}
    expected = (200, {"success": True, "frame_count": 2, "persons": []})
    assert expected == await analyze(http, akool_emulator, body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"frame_urls": []},
        {"frame_urls": "https://e.com/a.jpg"},
        {"frame_urls": ["https://e.com/a.jpg", "notaurl"]},
        {"frame_urls": [7]},
        {"frame_urls": ["https://e.com/a.jpg"], "timestamps": [0, 1]},
        {"frame_urls": ["https://e.com/a.jpg"], "timestamps": ["0"]},
        {"frame_urls": ["https://e.com/a.jpg"], "timestamps": [-1]},
        {"frame_urls": ["https://e.com/a.jpg"], "expand_ratio": 2},
        {"frame_urls": ["https://e.com/a.jpg"], "expand_ratio": True},
        [1, 2],
        b"{not json",
    ],
)
async def test_bad_input_is_a_400_error_body(
    akool_emulator: Emulator, http: aiohttp.ClientSession, body: Any
) -> None:
    """Bad input: HTTP 400 and exactly {success: false, error: text}."""
    status, out = await analyze(http, akool_emulator, body)
    expected = (400, {"success", "error"}, False, str)
    assert expected == (status, set(out), out["success"], type(out["error"]))


async def test_frame_limit_option(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """analyze_max_frames turns longer frame lists into a 400 error body."""
    akool_emulator.configure(analyze_max_frames=2)
    ok = await analyze(http, akool_emulator, {"frame_urls": STILLS[:2]})
    refused = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    expected = (200, 400, False)
    assert expected == (ok[0], refused[0], refused[1]["success"])


async def test_processing_failure_is_a_500_error_body(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A frame URL with the fail marker: HTTP 500 {success: false, error}; counted as 1."""
    body = {"frame_urls": ["https://e.com/ok.jpg", "https://e.com/fail.jpg"]}
    status, out = await analyze(http, akool_emulator, body)
    stats = akool_emulator.stats
    expected = (500, {"success": False, "error": "Failed to process frames"}, 1, 1)
    assert expected == (
        status,
        out,
        stats.requests["analyze_frames"],
        stats.codes[("analyze_frames", 1)],
    )


async def test_auth_failures_use_the_standard_envelope_by_default(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """By default a refused key gets {code, msg} on HTTP 200, as on every other endpoint."""
    missing = await analyze(http, akool_emulator, {"frame_urls": STILLS}, headers={})
    wrong = await analyze(http, akool_emulator, {"frame_urls": STILLS}, headers={"x-api-key": "x"})
    expected = ((200, 1102), (200, 1101))
    assert expected == ((missing[0], missing[1]["code"]), (wrong[0], wrong[1]["code"]))


@pytest.mark.parametrize(
    ("path", "body", "refusal"),
    [
        (ANALYZE, {"frame_urls": STILLS}, {"success": False, "error": "Authorization invalid"}),
        (
            DETECT,
            {"url": "https://e.com/a.jpg"},
            {"error_code": 1, "error_msg": "Authorization invalid", "faces_obj": {}},
        ),
        (
            LEGACY,
            {"single_face": True, "image_url": "https://e.com/a.jpg"},
            {"error_code": 1, "error_msg": "Authorization invalid"},
        ),
    ],
)
async def test_native_auth_failures_use_each_detectors_envelope(
    akool_emulator: Emulator,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    refusal: dict[str, Any],
) -> None:
    """detector_auth_errors="native": HTTP 401 in the endpoint's own error envelope."""
    akool_emulator.configure(detector_auth_errors="native")
    expected = (401, refusal)
    assert expected == await analyze(
        http, akool_emulator, body, headers={"x-api-key": "wrong"}, path=path
    )


async def test_native_ban_is_a_403(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A banned account in native mode: HTTP 403 {success: false}; face swaps keep {code}."""
    akool_emulator.configure(detector_auth_errors="native")
    akool_emulator.ban()
    analyzed = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    async with http.get(
        akool_emulator.base_url + "/api/open/v3/faceswap/quota/info", headers=KEY
    ) as r:
        quota = (r.status, (await r.json())["code"])
    expected = ((403, {"success": False, "error": "Account banned"}), (200, 1200))
    assert expected == (analyzed, quota)


async def test_rate_limits_and_faults_apply(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """analyze_frames is an endpoint name for per-endpoint rate limits and injected faults."""
    akool_emulator.configure(endpoint_rate_limits={"analyze_frames": 0.001}, rate_burst=1)
    first = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    second = await analyze(http, akool_emulator, {"frame_urls": STILLS})
    akool_emulator.configure(endpoint_rate_limits={})
    akool_emulator.faults.inject("analyze_frames", "http_503")
    async with http.post(
        akool_emulator.base_url + ANALYZE, json={"frame_urls": STILLS}, headers=KEY
    ) as resp:
        faulted = resp.status
    expected = (200, 1005, 503)
    assert expected == (first[0], second[1]["code"], faulted)


def test_process_option_for_the_auth_envelope() -> None:
    """``python -m akool_async.testing --detector-auth-errors native`` sets the option."""
    default = config_from_args(build_parser().parse_args([]))
    native = config_from_args(build_parser().parse_args(["--detector-auth-errors", "native"]))
    expected = ("standard", "native")
    assert expected == (default.detector_auth_errors, native.detector_auth_errors)

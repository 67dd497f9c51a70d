"""The emulator's rate limiting, fault injection and webhook deliveries (plain aiohttp)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from akool_async import _crypto
from akool_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
)

pytestmark = pytest.mark.anyio

KEY = {"x-api-key": DEFAULT_API_KEY}
PLUS = "/api/open/v4/faceswap/faceswapPlusByImage"
LIST = "/api/open/v3/faceswap/result/listbyids"
QUOTA = "/api/open/v3/faceswap/quota/info"
SOURCE = "https://example.com/new-face.jpg"
START = 1_719_476_868.0  # the job is created here; queue 1 s + work 2 s: done at START + 3


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Manual clock; every image job is queued 1 s and processed 2 s."""
    return EmulatorConfig(
        clock="manual", start_time=START, queue_seconds=(1, 1), image_seconds=(2, 2)
    )


@attrs.define
class Receiver:
    """A tiny webhook receiver: records bodies, answers queued statuses (then 200)."""

    url: str = ""
    bodies: list[dict[str, Any]] = attrs.Factory(list)
    answers: list[int] = attrs.Factory(list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running webhook receiver on 127.0.0.1."""
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.bodies.append(await request.json())
        return web.json_response({}, status=rec.answers.pop(0) if rec.answers else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


def plus(**changes: Any) -> dict[str, Any]:
    """A valid single-face Plus body."""
    body = {
        "source_url": SOURCE,
        "target_url": "https://example.com/t.jpg",
        "single_face_mode": True,
    }
    return body | changes


async def submit(http: aiohttp.ClientSession, emu: Emulator, **changes: Any) -> str:
    """Submit a Plus job and return its _id."""
    async with http.post(emu.base_url + PLUS, headers=KEY, json=plus(**changes)) as resp:
        out = await resp.json()
    expected = 1000
    assert expected == out["code"], out
    _id: str = out["data"]["_id"]
    return _id


async def quota_code(http: aiohttp.ClientSession, emu: Emulator) -> int:
    """The business code of one quota/info call."""
    async with http.get(emu.base_url + QUOTA, headers=KEY) as resp:
        code: int = (await resp.json())["code"]
    return code


def opened(body: dict[str, Any], client_id: str, client_secret: str) -> dict[str, Any]:
    """Verify a webhook body's signature and return its decrypted payload."""
    expected = _crypto.sign(client_id, body["timestamp"], body["nonce"], body["dataEncrypt"])
    assert expected == body["signature"]
    payload: dict[str, Any] = json.loads(
        _crypto.decrypt(body["dataEncrypt"], client_id, client_secret)
    )
    return payload


# --- rate limiting ----------------------------------------------------------------------------


async def test_global_rate_limit_answers_1005(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Past the bucket the answer is 1005; the bucket refills on the emulator clock."""
    akool_emulator.configure(rate_limit=2)
    codes = [await quota_code(http, akool_emulator) for _ in range(3)]
    await akool_emulator.advance(0.5)
    codes += [await quota_code(http, akool_emulator) for _ in range(2)]
    expected = [1000, 1000, 1005, 1000, 1005]
    assert expected == codes


async def test_rate_limit_can_send_retry_after(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """With ``rate_limit_retry_after``, the limiter's 1005 says when a token is back."""
    akool_emulator.configure(rate_limit=0.5, rate_burst=1, rate_limit_retry_after=True)
    answers = []
    for _ in range(2):
        async with http.get(akool_emulator.base_url + QUOTA, headers=KEY) as resp:
            answers.append(((await resp.json())["code"], resp.headers.get("Retry-After")))
    expected = [(1000, None), (1005, "2")]
    assert expected == answers


async def test_endpoint_burst_overrides_the_shared_one(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """``endpoint_rate_bursts`` sizes that endpoint's bucket; the others keep ``rate_burst``."""
    akool_emulator.configure(
        rate_burst=1,
        endpoint_rate_limits={"quota": 0.01, "list_results": 0.01},
        endpoint_rate_bursts={"quota": 3},
    )
    quota = [await quota_code(http, akool_emulator) for _ in range(4)]
    listed = []
    for _ in range(2):
        async with http.get(akool_emulator.base_url + LIST, headers=KEY, params={"_ids": "a"}) as r:
            listed.append((await r.json())["code"])
    expected = ([1000, 1000, 1000, 1005], [1000, 1005])
    assert expected == (quota, listed)


@pytest.mark.parametrize(
    "changes",
    [
        {"rate_limit": 0},
        {"rate_burst": 0},
        {"endpoint_rate_limits": {"quota": -1}},
        {"endpoint_rate_bursts": {"nope": 2}},
    ],
    ids=repr,
)
def test_bad_rate_limit_settings_are_rejected(changes: dict[str, Any]) -> None:
    """Rate limits and bursts must be positive, on known endpoints."""
    with pytest.raises(ValueError, match="rate"):
        EmulatorConfig(**changes)


async def test_endpoint_rate_limit_only_hits_that_endpoint(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A per-endpoint limit throttles that endpoint and leaves the others alone."""
    akool_emulator.configure(endpoint_rate_limits={"list_results": 1})
    codes = []
    for _ in range(2):
        async with http.get(akool_emulator.base_url + LIST, headers=KEY, params={"_ids": "a"}) as r:
            codes.append((await r.json())["code"])
    codes.append(await quota_code(http, akool_emulator))
    expected = [1000, 1005, 1000]
    assert expected == codes


# --- HTTP faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_http_error_faults_send_html_and_process_nothing(
    akool_emulator: Emulator, http: aiohttp.ClientSession, status: int
) -> None:
    """http_5xx/http_429 answer that status with an HTML body; no job is created."""
    akool_emulator.faults.inject("faceswap_plus", f"http_{status}")
    async with http.post(akool_emulator.base_url + PLUS, headers=KEY, json=plus()) as resp:
        got = (resp.status, resp.content_type, resp.headers.get("Retry-After"))
        text = await resp.text()
    await submit(http, akool_emulator)
    expected = (status, "text/html", "1" if status == 429 else None, 1)
    assert expected == (*got, len(akool_emulator.jobs))
    assert str(status) in text


async def test_rate_limited_fault_is_business_1005(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The rate_limited fault answers HTTP 200 with code 1005."""
    akool_emulator.faults.inject("quota", "rate_limited")
    expected = [1005, 1000]
    assert expected == [await quota_code(http, akool_emulator) for _ in range(2)]


async def test_drop_before_closes_the_connection_without_a_job(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """drop_before closes the TCP connection unanswered; nothing is created or charged."""
    akool_emulator.faults.inject("faceswap_plus", "drop_before")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        async with http.post(akool_emulator.base_url + PLUS, headers=KEY, json=plus()):
            pass
    expected = (0, 10_000.0, Counter({("faceswap_plus", "drop_before"): 1}))
    assert expected == (
        len(akool_emulator.jobs),
        akool_emulator.credit,
        akool_emulator.stats.faults,
    )


async def test_drop_after_creates_and_charges_the_job(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """drop_after is the ambiguous submit: the job exists and was charged, no response came."""
    akool_emulator.faults.inject("faceswap_plus", "drop_after")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        async with http.post(akool_emulator.base_url + PLUS, headers=KEY, json=plus()):
            pass
    expected = (1, 9_999.0, 1)
    assert expected == (
        len(akool_emulator.jobs),
        akool_emulator.credit,
        akool_emulator.stats.jobs_by_source[SOURCE],
    )


async def test_slow_fault_delays_the_response(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """slow holds the response for its delay, long enough to trip a short client timeout."""
    akool_emulator.faults.inject("quota", "slow", delay=0.3)
    with pytest.raises(TimeoutError):
        async with http.get(
            akool_emulator.base_url + QUOTA, headers=KEY, timeout=aiohttp.ClientTimeout(total=0.05)
        ):
            pass
    akool_emulator.faults.inject("quota", "slow", delay=0.01)
    expected = 1000
    assert expected == await quota_code(http, akool_emulator)


async def test_malformed_json_fault_truncates_a_processed_response(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """malformed_json answers 200 with a cut JSON body after processing (the job exists)."""
    akool_emulator.faults.inject("faceswap_plus", "malformed_json")
    async with http.post(akool_emulator.base_url + PLUS, headers=KEY, json=plus()) as resp:
        status, raw = resp.status, await resp.text()
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        json.loads(raw)
    expected = (200, 1)
    assert expected == (status, len(akool_emulator.jobs))


async def test_wildcard_faults_and_queue_order(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Endpoint faults are used before "*" faults, each once, in injection order."""
    akool_emulator.faults.inject("*", "http_503")
    akool_emulator.faults.inject("quota", "rate_limited", times=2)
    statuses = []
    for _ in range(4):
        async with http.get(akool_emulator.base_url + QUOTA, headers=KEY) as resp:
            body = await resp.text()
            statuses.append((resp.status, json.loads(body)["code"] if resp.status == 200 else None))
    expected = ([(200, 1005), (200, 1005), (503, None), (200, 1000)], 0)
    assert expected == (statuses, akool_emulator.faults.pending())


async def test_result_file_faults(akool_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Downloads can be faulted; aiohttp retries a dropped GET once, so it takes two drops."""
    _id = await submit(http, akool_emulator)
    await akool_emulator.advance(3)
    akool_emulator.faults.inject("result_file", "drop_before", times=2)
    url = akool_emulator.result_url(akool_emulator.jobs[_id])
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        async with http.get(url) as resp:
            await resp.read()
    async with http.get(url) as resp:
        status = resp.status
    expected = (200, Counter({("result_file", "drop_before"): 2}))
    assert expected == (status, akool_emulator.stats.faults)


async def test_drop_after_cuts_a_video_download_in_half(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """drop_after on a video result sends half of the announced body, then cuts the connection."""
    _id = await submit(http, akool_emulator, target_url="https://example.com/clip.mp4")
    await akool_emulator.advance(100)
    akool_emulator.faults.inject("result_file", "drop_after")
    received, length, cut = 0, None, False
    try:
        async with http.get(akool_emulator.result_url(akool_emulator.jobs[_id])) as resp:
            length = resp.content_length
            async for chunk in resp.content.iter_chunked(65_536):
                received += len(chunk)
    except aiohttp.ClientPayloadError:
        cut = True
    expected = (2 * 1024 * 1024, 1024 * 1024, True)
    assert expected == (length, received, cut)


async def test_random_fault_rates_are_seeded(http: aiohttp.ClientSession) -> None:
    """Random faults follow the seed: two emulators with one seed fault the same requests."""
    config = EmulatorConfig(clock="manual", fault_rates={"quota": {"http_503": 0.5}}, seed=7)
    runs = []
    for _ in range(2):
        async with Emulator(config=config) as emu:
            statuses = []
            for _ in range(20):
                async with http.get(emu.base_url + QUOTA, headers=KEY) as resp:
                    await resp.read()
                    statuses.append(resp.status)
            runs.append((statuses, emu.stats.faults_by_kind["http_503"]))
    (first, faulted), (second, _) = runs
    expected = (first, faulted, True)
    assert expected == (second, first.count(503), 0 < faulted < 20)


def test_bad_fault_names_are_refused() -> None:
    """Unknown endpoints and fault kinds raise ValueError, in inject() and in the config."""
    emu = Emulator()
    with pytest.raises(ValueError, match="unknown endpoint"):
        emu.faults.inject("nope", "http_500")
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.faults.inject("webhook", "http_500")
    with pytest.raises(ValueError, match="unknown fault kind"):
        EmulatorConfig(fault_rates={"*": {"explode": 0.1}})


# --- webhooks ---------------------------------------------------------------------------------

VECTOR_ID = "AKDEMOclientId0123456789"
VECTOR_SECRET = "demoSecretKey0123456789abcdefXYZ"


async def test_webhook_matches_the_contract_vector(receiver: Receiver) -> None:
    """send_webhook with the 5.6 inputs POSTs exactly the 5.6 body, which verifies and decrypts."""
    payload = {
        "_id": "6593c94c0ef703e8c055e3c8",
        "status": 3,
        "type": "faceswap",
        "url": "https://example.com/result.jpg",
    }
    config = EmulatorConfig(clock="manual")
    async with Emulator(client_id=VECTOR_ID, client_secret=VECTOR_SECRET, config=config) as emu:
        attempt = await emu.send_webhook(
            receiver.url, payload, timestamp=1710757981609, nonce="1529"
        )
    expected = {
        "signature": "1f1d205bb3bb38718b63df79953350ec3803af47",
        "dataEncrypt": "Wu2he/ZGjn6xw2t0lD0dv+LLJ+g+7VaxRjQ4qZfpx/tzjr0e69Ol0M0NPQIf/hOiIia1Znj/"
        "Pby2BPspcZggKYHBuX+Lwo/c33PLEGzvtMABE3MJ9Wz6aul1kTl5+l2VTHQX0blc3h7XbvLXLa93/w==",
        "timestamp": 1710757981609,
        "nonce": "1529",
    }
    assert expected == receiver.bodies[0]
    assert (payload, "delivered") == (
        opened(receiver.bodies[0], VECTOR_ID, VECTOR_SECRET),
        attempt.outcome,
    )


async def test_job_webhook_round_trip(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """A finished job POSTs one signed, encrypted callback {_id, status 3, type, url} when due."""
    _id = await submit(http, akool_emulator, webhookUrl=receiver.url)
    await akool_emulator.advance(2.9)
    early = len(receiver.bodies)
    await akool_emulator.advance(0.1)
    (body,) = receiver.bodies
    expected_payload = {
        "_id": _id,
        "status": 3,
        "type": "faceswap",
        "url": akool_emulator.result_url(akool_emulator.jobs[_id]),
    }
    assert expected_payload == opened(body, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    attempt = akool_emulator.webhook_attempts[0]
    expected = (0, START + 3, int((START + 3) * 1000), True)
    assert expected == (early, attempt.at, body["timestamp"], body["nonce"].isdigit())


async def test_webhook_statuses_type_and_nonce_are_configurable(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """webhook_statuses=(2, 3, 4) also reports processing; type and nonce type are options."""
    akool_emulator.configure(
        webhook_statuses=(2, 3, 4), webhook_type="image", webhook_nonce_as_number=True
    )
    await submit(http, akool_emulator, webhookUrl=receiver.url)
    await akool_emulator.advance(3)
    payloads = [opened(b, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET) for b in receiver.bodies]
    expected = ([2, 3], ["image", "image"], [int, int])
    assert expected == (
        [p["status"] for p in payloads],
        [p["type"] for p in payloads],
        [type(b["nonce"]) for b in receiver.bodies],
    )


async def test_failed_job_webhook_reports_status_4(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """A failed job's callback carries status 4 and an empty url."""
    await submit(http, akool_emulator, webhookUrl=receiver.url, target_url="https://e.com/fail.jpg")
    await akool_emulator.advance(3)
    expected = (4, "")
    payload = opened(receiver.bodies[0], DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    assert expected == (payload["status"], payload["url"])


async def test_webhook_retries_non_200_on_schedule(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """Non-200 answers are retried after 1 s then 2 s (emulator clock) until a 200."""
    receiver.answers = [500, 503]
    await submit(http, akool_emulator, webhookUrl=receiver.url)
    await akool_emulator.advance(3 + 1 + 2)
    expected = [
        (1, "rejected", 500, START + 3),
        (2, "rejected", 503, START + 4),
        (3, "delivered", 200, START + 6),
    ]
    assert expected == [
        (a.attempt, a.outcome, a.http_status, a.at) for a in akool_emulator.webhook_attempts
    ]


async def test_webhook_gives_up_after_the_last_retry(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """After len(webhook_retry_delays) retries the callback is abandoned."""
    receiver.answers = [500] * 10
    await submit(http, akool_emulator, webhookUrl=receiver.url)
    await akool_emulator.advance(1000)
    expected = ["rejected"] * 4
    assert expected == [a.outcome for a in akool_emulator.webhook_attempts]


async def test_webhook_connection_errors_are_recorded(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """An unreachable receiver is an "error" attempt (no retries configured here)."""
    akool_emulator.configure(webhook_retry_delays=())
    await submit(http, akool_emulator, webhookUrl="http://127.0.0.1:9/hook")
    await akool_emulator.advance(3)
    (attempt,) = akool_emulator.webhook_attempts
    expected = ("error", None, True)
    assert expected == (attempt.outcome, attempt.http_status, attempt.error is not None)


async def test_webhook_duplicate_lost_and_late_faults(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """duplicate sends the payload twice, lost sends nothing, late sends it 30 s later."""
    akool_emulator.faults.inject("webhook", "duplicate")
    akool_emulator.faults.inject("webhook", "lost")
    akool_emulator.faults.inject("webhook", "late", delay=30)
    ids = [await submit(http, akool_emulator, webhookUrl=receiver.url) for _ in range(3)]
    await akool_emulator.advance(3)
    on_time = [opened(b, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)["_id"] for b in receiver.bodies]
    await akool_emulator.advance(30)
    late = opened(receiver.bodies[-1], DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)["_id"]
    attempts = akool_emulator.webhook_attempts
    expected = ([ids[0], ids[0]], ids[2], ["delivered", "delivered", "lost", "delivered"])
    assert expected == (on_time, late, [a.outcome for a in attempts])
    expected = ([False, True], START + 33)
    assert expected == ([a.duplicate for a in attempts[:2]], attempts[3].at)


async def test_force_status_fires_its_webhook_once(
    akool_emulator: Emulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """force_status(3) sends the callback at the next advance and never again at the plan's end."""
    _id = await submit(http, akool_emulator, webhookUrl=receiver.url)
    akool_emulator.force_status(_id, 3)
    await akool_emulator.advance()
    await akool_emulator.advance(100)
    expected = [3]
    assert expected == [
        opened(b, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)["status"] for b in receiver.bodies
    ]


async def test_real_clock_delivers_webhooks_in_the_background(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """With a real clock the emulator delivers due callbacks itself; tests await them."""
    config = EmulatorConfig(latency_scale=0.0)
    async with Emulator(config=config) as emu:
        _id = await submit(http, emu, webhookUrl=receiver.url)
        (attempt,) = await emu.wait_for_webhooks(1, timeout=10)
        await emu.drain_webhooks()
    expected = (_id, "delivered", 3)
    assert expected == (attempt.job_id, attempt.outcome, attempt.status)


async def test_client_vanishing_mid_body_is_not_a_server_error(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A client killed while sending its body creates nothing and logs no server error."""
    host, port = emu.base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {PLUS} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {DEFAULT_API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        '{"source_url": '.encode()
    )
    await writer.drain()
    for _ in range(100):  # until the emulator has started reading the body
        if emu.stats.requests["faceswap_plus"]:
            break
        await asyncio.sleep(0.01)
    writer.transport.abort()
    await asyncio.sleep(0.1)
    assert emu.stats.requests["faceswap_plus"] == 1
    assert sum(emu.stats.jobs_by_endpoint.values()) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

"""Retries, throttles and ambiguous submits, with the emulator's fault injection."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from akool_async import (
    AmbiguousSubmitError,
    APIError,
    AsyncClient,
    DetectionError,
    FaceImage,
    ParameterError,
    PlusSwap,
    RateLimit,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeout,
    TransportError,
)
from akool_async._endpoints import FACESWAP_PLUS, LIST_RESULTS
from akool_async._requester import _Delivery
from akool_async.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
)
from tests._support import FAST_RETRY

pytestmark = pytest.mark.anyio

SRC = "https://example.com/source.jpg"
TGT = "https://example.com/target.jpg"
PLUS = PlusSwap(source_url=SRC, target_url=TGT)
FACE = FaceImage(path=SRC)


class Events:
    """Records on_event calls."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, **data: Any) -> None:
        self.seen.append((name, data))

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """A manual clock: nothing moves on its own."""
    return EmulatorConfig(clock="manual")


@pytest.fixture
def events() -> Events:
    """An on_event recorder."""
    return Events()


@pytest.fixture
async def client(emu: Emulator, events: Events) -> AsyncIterator[AsyncClient]:
    """An API-key client with tiny retry delays and an event recorder."""
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, on_event=events
    ) as c:
        yield c


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- reads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_500", "http_502", "http_503", "malformed_json"])
async def test_read_retried_to_success(client: AsyncClient, emu: Emulator, kind: str) -> None:
    """A read hit by a 5xx or a bad body is retried to success."""
    emu.faults.inject("quota", kind)
    credit = await client.get_credit()
    assert (
        credit,
        emu.stats.requests["quota"],
        client.statistics().retries,
    ) == (10000.0, 2, {"quota": 1})


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
async def test_dropped_post_read_is_retried(client: AsyncClient, emu: Emulator, kind: str) -> None:
    """A POST read (the detector) whose connection drops is retried by the SDK."""
    emu.faults.inject("detect_faces", kind)
    detection = await client.detect_faces(url=TGT)
    assert (
        len(detection.faces),
        emu.stats.requests["detect_faces"],
        client.statistics().retries,
    ) == (1, 2, {"detect_faces": 1})


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
async def test_dropped_get_is_retried(client: AsyncClient, emu: Emulator, kind: str) -> None:
    """A GET whose connection drops succeeds on a second request (aiohttp retries idempotent
    methods once itself; the SDK would otherwise)."""
    emu.faults.inject("quota", kind)
    assert (await client.get_credit(), emu.stats.requests["quota"]) == (10000.0, 2)


async def test_read_rate_limited_is_retried(
    client: AsyncClient, emu: Emulator, events: Events
) -> None:
    """A 1005 on a read is retried, counted and announced as throttled."""
    emu.faults.inject("list_results", "rate_limited")
    results = await client.get_results(["0123456789abcdef01234567"])
    stats = client.statistics()
    assert (
        results,
        emu.stats.requests["list_results"],
        stats.throttled,
        events.names(),
    ) == ([], 2, 1, ["throttled", "retried"])


async def test_read_gives_up_after_max_attempts(client: AsyncClient, emu: Emulator) -> None:
    """After max_attempts the last error is raised: a non-JSON 500 is a TransportError."""
    emu.faults.inject("quota", "http_500", times=3)
    with pytest.raises(TransportError) as info:
        await client.get_credit()
    assert (
        isinstance(info.value, AmbiguousSubmitError),
        info.value.status,
        emu.stats.requests["quota"],
    ) == (False, 500, 3)


async def test_read_gives_up_with_rate_limit_error(client: AsyncClient, emu: Emulator) -> None:
    """1005 (here on HTTP 503) on every attempt ends in a RateLimitError."""
    emu.configure(error_status={1005: 503})
    emu.faults.inject("quota", "rate_limited", times=3)
    with pytest.raises(RateLimitError) as info:
        await client.get_credit()
    assert (info.value.code, info.value.status, emu.stats.requests["quota"]) == (1005, 503, 3)


async def test_read_timeout_is_retried(emu: Emulator) -> None:
    """A read that times out is retried (it cannot create anything)."""
    emu.faults.inject("quota", "slow", delay=0.3)
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, timeout=Timeout(read=0.05)
    ) as client:
        credit = await client.get_credit()
    assert (credit, emu.stats.requests["quota"]) == (10000.0, 2)


async def test_no_retry_policy(client: AsyncClient, emu: Emulator) -> None:
    """with_options(retry=RetryPolicy.none()) makes a single attempt."""
    emu.faults.inject("quota", "http_502")
    with pytest.raises(TransportError):
        await client.with_options(retry=RetryPolicy.none()).get_credit()
    assert emu.stats.requests["quota"] == 1


async def test_max_elapsed_stops_retries(client: AsyncClient, emu: Emulator) -> None:
    """max_elapsed=0 leaves no time for a second attempt."""
    emu.faults.inject("quota", "http_502", times=2)
    policy = RetryPolicy(max_attempts=10, initial_delay=0.001, max_elapsed=0)
    with pytest.raises(TransportError):
        await client.with_options(retry=policy).get_credit()
    assert emu.stats.requests["quota"] == 1


async def test_retried_event_data(client: AsyncClient, emu: Emulator, events: Events) -> None:
    """The "retried" event names the endpoint, attempt, delay and error."""
    emu.faults.inject("quota", "http_502")
    await client.get_credit()
    [(name, data)] = events.seen
    assert ("retried", "quota", 1, 0.001, TransportError) == (
        name,
        data["endpoint"],
        data["attempt"],
        data["delay"],
        type(data["error"]),
    )


async def test_get_token_failure_retried(emu: Emulator) -> None:
    """getToken is a read: a 5xx on it is retried."""
    emu.faults.inject("get_token", "http_503")
    async with AsyncClient(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        base_url=emu.base_url,
        retry=FAST_RETRY,
    ) as client:
        await client.get_credit()
    assert (emu.stats.requests["get_token"], emu.stats.requests["quota"]) == (2, 1)


# --- creates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_503", "rate_limited"])
async def test_create_refused_without_action_is_retried(
    client: AsyncClient, emu: Emulator, kind: str
) -> None:
    """A submit refused without action (503, 1005) is retried and creates exactly one job."""
    emu.faults.inject("faceswap_plus", kind)
    job = await client.faceswap_plus(PLUS)
    assert ([job.id], 2) == (list(emu.jobs), emu.stats.requests["faceswap_plus"])


async def test_create_http_429_honours_retry_after(
    client: AsyncClient, emu: Emulator, events: Events
) -> None:
    """A submit answered 429 waits at least Retry-After, then creates one job."""
    emu.faults.inject("faceswap_plus", "http_429")
    job = await client.faceswap_plus(PLUS)
    delays = [data["delay"] for name, data in events.seen if name == "retried"]
    assert ([job.id], [1.0]) == (list(emu.jobs), delays)


@pytest.mark.parametrize(
    ("kind", "jobs_created"),
    [
        ("drop_before", 0),
        ("drop_after", 1),
        ("malformed_json", 1),
        ("http_500", 0),
        ("http_502", 0),
    ],
)
async def test_create_that_may_have_been_accepted_is_ambiguous(
    client: AsyncClient, emu: Emulator, events: Events, kind: str, jobs_created: int
) -> None:
    """A submit that may have reached the server raises AmbiguousSubmitError, never retried."""
    emu.faults.inject("faceswap_plus", kind)
    with pytest.raises(AmbiguousSubmitError) as info:
        await client.faceswap_plus(PLUS)
    assert (PLUS, 1, jobs_created, 1, ["ambiguous_submit"]) == (
        info.value.request,
        emu.stats.requests["faceswap_plus"],
        len(emu.jobs),
        client.statistics().ambiguous_submits,
        events.names(),
    )


async def test_create_read_timeout_is_ambiguous(emu: Emulator) -> None:
    """A submit whose answer times out is ambiguous and not retried."""
    emu.faults.inject("faceswap_pro", "slow", delay=0.3)
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, timeout=Timeout(read=0.05)
    ) as client:
        with pytest.raises(AmbiguousSubmitError) as info:
            await client.faceswap_pro(source=[FACE], target=[FACE])
    assert (
        emu.stats.requests["faceswap_pro"],
        isinstance(info.value.__cause__, TransportError),
    ) == (1, True)


async def test_create_1005_with_http_500_is_retried(client: AsyncClient, emu: Emulator) -> None:
    """1005 is a refusal whatever HTTP status carries it: the submit is retried, one job."""
    emu.configure(error_status={1005: 500})
    emu.faults.inject("faceswap_plus", "rate_limited")
    job = await client.faceswap_plus(PLUS)
    assert [job.id] == list(emu.jobs)


async def test_create_not_connected_is_retried_then_transport_error() -> None:
    """A submit that cannot connect is retried (never sent) and ends in a TransportError."""
    events = Events()
    async with AsyncClient(
        api_key="k", base_url=f"http://127.0.0.1:{closed_port()}", retry=FAST_RETRY, on_event=events
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.faceswap_plus(PLUS)
    assert (
        isinstance(info.value, AmbiguousSubmitError),
        events.names(),
        isinstance(info.value.__cause__, aiohttp.ClientConnectorError),
    ) == (False, ["retried", "retried"], True)


class FlakyResolver(AbstractResolver):
    """Fails the first lookup, then resolves every name to 127.0.0.1."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        if self.calls == 1:
            raise OSError("temporary failure in name resolution")
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


async def test_create_retried_after_connect_failure(emu: Emulator) -> None:
    """A connection that could not be made is retried for a submit: exactly one job."""
    port = emu.base_url.rsplit(":", 1)[1]
    resolver = FlakyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        AsyncClient(
            api_key=emu.api_key,
            base_url=f"http://akool.test:{port}",
            retry=FAST_RETRY,
            session=session,
        ) as client,
    ):
        job = await client.faceswap_plus(PLUS)
    assert ([job.id], 2, {"faceswap_plus": 1}) == (
        list(emu.jobs),
        resolver.calls,
        client.statistics().retries,
    )


async def test_create_gives_up_on_repeated_refusals(client: AsyncClient, emu: Emulator) -> None:
    """Refusals on every attempt end in the refusal's own error, not an ambiguous one."""
    emu.faults.inject("faceswap_plus", "http_503", times=3)
    with pytest.raises(TransportError) as info:
        await client.faceswap_plus(PLUS)
    assert (
        isinstance(info.value, AmbiguousSubmitError),
        info.value.status,
        emu.stats.requests["faceswap_plus"],
        len(emu.jobs),
    ) == (False, 503, 3, 0)


async def test_create_with_failing_get_token_is_not_ambiguous(emu: Emulator) -> None:
    """When getToken fails, the submit was never sent: a plain TransportError."""
    emu.faults.inject("get_token", "http_502", times=3)
    async with AsyncClient(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        base_url=emu.base_url,
        retry=FAST_RETRY,
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.faceswap_plus(PLUS)
    assert (
        isinstance(info.value, AmbiguousSubmitError),
        emu.stats.requests["get_token"],
        emu.stats.requests["faceswap_plus"],
    ) == (False, 3, 0)


async def test_detection_error_is_not_retried(client: AsyncClient, emu: Emulator) -> None:
    """A detector's own error answer is final, even on HTTP 500."""
    with pytest.raises(Exception, match="Failed to process media"):
        await client.detect_faces(url="https://example.com/fail.jpg")
    assert emu.stats.requests["detect_faces"] == 1


async def test_two_different_faults_on_a_read(client: AsyncClient, emu: Emulator) -> None:
    """A read survives a 500 then a 503 within its three attempts."""
    emu.faults.inject("quota", "http_500")
    emu.faults.inject("quota", "http_503")
    assert (await client.get_credit(), emu.stats.requests["quota"]) == (10000.0, 3)


@pytest.mark.parametrize(
    ("error", "status", "endpoint", "expected"),
    [
        (ServerError("x", code=2001, status=200), 200, FACESWAP_PLUS, (_Delivery.AMBIGUOUS, False)),
        (ServerError("x", code=2001, status=200), 200, LIST_RESULTS, (_Delivery.AMBIGUOUS, True)),
        (ServerError("x", code=None, status=500), 500, FACESWAP_PLUS, (_Delivery.AMBIGUOUS, False)),
        (ServerError("x", code=None, status=503), 503, FACESWAP_PLUS, (_Delivery.REFUSED, True)),
        (TransportError("x", status=503), 503, FACESWAP_PLUS, (_Delivery.REFUSED, True)),
        (TransportError("x", status=200), 200, FACESWAP_PLUS, (_Delivery.AMBIGUOUS, False)),
        (TransportError("x", status=200), 200, LIST_RESULTS, (_Delivery.AMBIGUOUS, True)),
        (RateLimitError("x", code=None, status=429), 429, FACESWAP_PLUS, (_Delivery.REFUSED, True)),
        (RateLimitError("x", code=1005, status=200), 200, FACESWAP_PLUS, (_Delivery.REFUSED, True)),
        (
            ParameterError("x", code=1003, status=500),
            500,
            FACESWAP_PLUS,
            (_Delivery.ANSWERED, False),
        ),
        (ParameterError("x", code=1003, status=500), 500, LIST_RESULTS, (_Delivery.ANSWERED, True)),
        (
            ParameterError("x", code=1003, status=200),
            200,
            LIST_RESULTS,
            (_Delivery.ANSWERED, False),
        ),
        (APIError("x", code=None, status=404), 404, LIST_RESULTS, (_Delivery.ANSWERED, False)),
        (DetectionError("x", code=1, status=500), 500, LIST_RESULTS, (_Delivery.ANSWERED, False)),
    ],
)
def test_failure_classification(
    error: APIError | TransportError, status: int, endpoint: Any, expected: tuple[_Delivery, bool]
) -> None:
    """How far an answered request got, and whether it may be retried, per endpoint kind."""
    client = AsyncClient(api_key="k")
    failure = client._shared.requester._classify(endpoint, error, status, FAST_RETRY)
    assert expected == (failure.delivery, failure.retryable)


# --- throttles and the rate controller --------------------------------------------------------


async def test_throttle_paces_other_requests(emu: Emulator) -> None:
    """After a 1005, the refused request's retry and another task's request wait their turn."""
    throttled = anyio.Event()

    def on_event(name: str, **data: Any) -> None:
        if name == "throttled":
            throttled.set()

    policy = RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=0.2, jitter=False)
    emu.faults.inject("list_results", "rate_limited")
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=policy, on_event=on_event
    ) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get_results, ["0123456789abcdef01234567"])
            await throttled.wait()
            await client.get_credit()  # another task's request, issued just after the 1005
        stats = client.statistics()
    assert (stats.throttled, stats.throttle_waits, stats.throttle_wait_seconds > 0) == (1, 2, True)


async def test_throttles_of_one_burst_are_one_episode(emu: Emulator) -> None:
    """Concurrent requests refused together lower the rate once, however many were refused."""
    emu.faults.inject("quota", "rate_limited", times=8)
    burst = RateLimit(rate=1000, burst=8)  # all eight leave at once
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, rate_limit=burst, retry=FAST_RETRY
    ) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(client.get_credit)
        limit = client.statistics().rate_limit
    assert (limit.refused, limit.throttle_episodes, limit.phase) == (8, 1, "limited")


async def test_throttle_event_data(client: AsyncClient, emu: Emulator, events: Events) -> None:
    """The "throttled" event carries endpoint, delay, HTTP status and code."""
    emu.faults.inject("quota", "rate_limited")
    await client.get_credit()
    [(_, data)] = [(n, d) for n, d in events.seen if n == "throttled"]
    delay = data.pop("delay")
    assert (data, 0 < delay < 1) == ({"endpoint": "quota", "status": 200, "code": 1005}, True)


async def test_emulator_rate_limit_is_survived(emu: Emulator) -> None:
    """Under the emulator's own 1005 rate limit, concurrent reads all finish."""
    emu.configure(rate_limit=2.0, rate_burst=2)

    def on_event(name: str, **data: Any) -> None:
        if name == "throttled":
            emu.clock.advance(1.0)  # the server's bucket refills while the client backs off

    policy = RetryPolicy(max_attempts=10, initial_delay=0.001, max_delay=0.01)
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=policy, on_event=on_event
    ) as client:
        results: list[float] = []

        async def one() -> None:
            results.append(await client.get_credit())

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
        stats = client.statistics()
    assert (results, stats.throttled >= 1) == ([10000.0] * 6, True)

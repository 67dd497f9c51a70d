"""AsyncClient configuration, lifecycle, authentication and secrecy, against the emulator."""

from __future__ import annotations

import gc
import logging
from typing import Any

import aiohttp
import anyio
import pytest

from akool_async import (
    AccountBannedError,
    AsyncClient,
    AuthenticationError,
    ClientStateError,
    Limits,
    RetryPolicy,
    Timeout,
    ValidationError,
)
from akool_async.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
)
from tests._support import FAST_RETRY

pytestmark = pytest.mark.anyio

ENV = (
    "AKOOL_API_KEY",
    "AKOOL_CLIENT_ID",
    "AKOOL_CLIENT_SECRET",
    "AKOOL_BASE_URL",
    "AKOOL_DETECTOR_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AKOOL_* variable leaks in from the machine running the tests."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """A manual clock: jobs never progress on their own."""
    return EmulatorConfig(clock="manual")


def token_client(emu: Emulator, **kwargs: Any) -> AsyncClient:
    return AsyncClient(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        base_url=emu.base_url,
        retry=FAST_RETRY,
        **kwargs,
    )


class HeaderRecorder:
    """Records the headers of every request a caller-owned session sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._start)

    async def _start(self, session: object, context: object, params: Any) -> None:
        self.sent.append((params.url.path, {k.lower(): v for k, v in params.headers.items()}))


# --- configuration ---------------------------------------------------------------------------


def test_no_credentials_is_a_validation_error() -> None:
    """Without any credential the constructor refuses, before anything is sent."""
    with pytest.raises(ValidationError) as info:
        AsyncClient()
    assert info.value.field == "api_key"


def test_client_id_without_secret_is_a_validation_error() -> None:
    """client_id alone is not enough."""
    with pytest.raises(ValidationError):
        AsyncClient(client_id="id")


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AKOOL_API_KEY and AKOOL_BASE_URL configure a client without arguments."""
    monkeypatch.setenv("AKOOL_API_KEY", "k")
    monkeypatch.setenv("AKOOL_BASE_URL", "http://127.0.0.1:9/")
    client = AsyncClient()
    assert (client.base_url, client.client_secret) == ("http://127.0.0.1:9", "k")


def test_explicit_credentials_ignore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passing client credentials ignores AKOOL_API_KEY, so no x-api-key is sent."""
    monkeypatch.setenv("AKOOL_API_KEY", "env-key")
    client = AsyncClient(client_id="id", client_secret="secret")
    assert (client.client_id, client.client_secret) == ("id", "secret")


@pytest.mark.parametrize(
    ("base_url", "detector", "expected"),
    [
        (None, None, "https://sg3.akool.com"),
        ("http://127.0.0.1:8765", None, "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:9999/", "http://127.0.0.1:9999"),
    ],
)
def test_detector_base_url_default(
    base_url: str | None, detector: str | None, expected: str
) -> None:
    """The legacy detector defaults to sg3 with the default host, else to base_url."""
    client = AsyncClient(api_key="k", base_url=base_url, detector_base_url=detector)
    assert expected == client.detector_base_url


def test_detector_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AKOOL_DETECTOR_BASE_URL sets the legacy detector's host."""
    monkeypatch.setenv("AKOOL_DETECTOR_BASE_URL", "http://127.0.0.1:7")
    assert AsyncClient(api_key="k").detector_base_url == "http://127.0.0.1:7"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base_url": "openapi.akool.com"}, "base_url"),
        ({"detector_base_url": "ftp://sg3.akool.com"}, "detector_base_url"),
        ({"max_ids_per_request": 0}, "max_ids_per_request"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], field: str) -> None:
    """Bad URLs and options are ValidationErrors naming the option."""
    kwargs.setdefault("api_key", "k")
    with pytest.raises(ValidationError) as info:
        AsyncClient(**kwargs)
    assert field == info.value.field


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Timeout(read=0), "read"),
        (lambda: Timeout(connect=-1), "connect"),
        (lambda: Limits(max_connections=-1), "max_connections"),
        (lambda: RetryPolicy(max_attempts=0), "max_attempts"),
        (lambda: RetryPolicy(multiplier=0.5), "multiplier"),
        (lambda: RetryPolicy(initial_delay=float("nan")), "initial_delay"),
    ],
)
def test_bad_config_objects(factory: Any, field: str) -> None:
    """Timeout, Limits and RetryPolicy validate their fields."""
    with pytest.raises(ValidationError) as info:
        factory()
    assert field == info.value.field


def test_retry_policy_delays_without_jitter() -> None:
    """Without jitter, waits grow by the multiplier up to max_delay."""
    policy = RetryPolicy(initial_delay=1, multiplier=3, max_delay=10, jitter=False)
    assert [policy.delay(n) for n in range(5)] == [1, 3, 9, 10, 10]


def test_retry_policy_full_jitter_bounds() -> None:
    """Full jitter draws each wait from [0, step]."""
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=4)
    waits = [policy.delay(3) for _ in range(200)]
    assert True is all(0 <= w <= 4 for w in waits)


def test_retry_policy_honours_retry_after() -> None:
    """A server's retry_after is a floor for the wait."""
    assert RetryPolicy(jitter=False).delay(0, retry_after=7.0) == 7.0


def test_retry_policy_none() -> None:
    """RetryPolicy.none() makes one attempt."""
    assert RetryPolicy.none().max_attempts == 1


# --- lifecycle -------------------------------------------------------------------------------


async def test_unopened_client_raises_client_state_error(emu: Emulator) -> None:
    """Calling an operation before `async with` is a ClientStateError, nothing is sent."""
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
    with pytest.raises(ClientStateError, match="not open"):
        await client.get_credit()
    assert emu.stats.requests["quota"] == 0


async def test_closed_client_raises_client_state_error(emu: Emulator) -> None:
    """Calling an operation after close is a ClientStateError, not an aiohttp error."""
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        pass
    with pytest.raises(ClientStateError, match="closed"):
        await client.faceswap_plus(source_url="https://x/s.jpg", target_url="https://x/t.jpg")
    assert (client.is_closed, emu.stats.requests["faceswap_plus"]) == (True, 0)


async def test_aclose_is_idempotent(emu: Emulator) -> None:
    """aclose() may be called any number of times."""
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
    await client.__aenter__()
    await client.aclose()
    await client.aclose()
    assert True is client.is_closed


async def test_closed_client_cannot_reopen(emu: Emulator) -> None:
    """A closed client cannot be entered again."""
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        pass
    with pytest.raises(ClientStateError, match="closed"):
        await client.__aenter__()


async def test_open_client_cannot_be_entered_twice(client: AsyncClient) -> None:
    """Entering an open client again is refused."""
    with pytest.raises(ClientStateError, match="already open"):
        await client.__aenter__()


async def test_unclosed_client_warns(emu: Emulator) -> None:
    """A client garbage-collected while open emits a ResourceWarning."""
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
    await client.__aenter__()
    with pytest.warns(ResourceWarning) as record:  # aiohttp's own session warning too
        del client  # the last reference: CPython finalizes it right here
    ours = [str(w.message) for w in record if str(w.message).startswith("unclosed <AsyncClient")]
    assert len(ours) == 1


async def test_closed_client_does_not_warn(emu: Emulator) -> None:
    """A client that was closed is collected silently (warnings are errors here)."""
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        await client.get_credit()
    del client
    gc.collect()


async def test_caller_owned_session_is_used_and_not_closed(emu: Emulator) -> None:
    """A caller-owned session carries the requests and stays open after aclose()."""
    recorder = HeaderRecorder()
    async with aiohttp.ClientSession(trace_configs=[recorder.trace]) as session:
        async with AsyncClient(
            api_key=emu.api_key, base_url=emu.base_url, session=session
        ) as client:
            await client.get_credit()
        assert (
            session.closed,
            [path for path, _ in recorder.sent],
        ) == (False, ["/api/open/v3/faceswap/quota/info"])


async def test_closed_caller_session_is_refused(emu: Emulator) -> None:
    """A caller-owned session that is already closed cannot be used."""
    session = aiohttp.ClientSession()
    await session.close()
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, session=session)
    with pytest.raises(ClientStateError, match="already closed"):
        await client.__aenter__()


async def test_with_options_view_shares_the_session(client: AsyncClient, emu: Emulator) -> None:
    """A with_options view works on the parent's session and counters."""
    view = client.with_options(retry=RetryPolicy.none(), timeout=Timeout(read=5))
    await view.get_credit()
    assert (1, RetryPolicy.none(), 5) == (
        client.statistics().requests["quota"],
        view.retry,
        view.timeout.read,
    )


async def test_with_options_view_cannot_be_entered(client: AsyncClient) -> None:
    """A view is not a context manager of its own."""
    with pytest.raises(ClientStateError, match="view"):
        await client.with_options().__aenter__()


async def test_closing_a_view_leaves_the_parent_open(client: AsyncClient) -> None:
    """aclose() on a view does nothing; the parent stays usable."""
    await client.with_options().aclose()
    assert await client.get_credit() == 10000.0


# --- authentication --------------------------------------------------------------------------


async def test_api_key_sends_only_x_api_key(emu: Emulator) -> None:
    """API-key auth sends x-api-key and never an Authorization header."""
    recorder = HeaderRecorder()
    async with (
        aiohttp.ClientSession(trace_configs=[recorder.trace]) as session,
        AsyncClient(api_key=emu.api_key, base_url=emu.base_url, session=session) as client,
    ):
        await client.get_credit()
    [(_, headers)] = recorder.sent
    assert (emu.api_key, False) == (headers.get("x-api-key"), "authorization" in headers)


async def test_token_auth_sends_only_bearer(emu: Emulator) -> None:
    """Client-credential auth fetches a token, then sends only Authorization: Bearer."""
    recorder = HeaderRecorder()
    async with (
        aiohttp.ClientSession(trace_configs=[recorder.trace]) as session,
        token_client(emu, session=session) as client,
    ):
        await client.get_credit()
    [(token_path, token_headers), (_, headers)] = recorder.sent
    expected = ("/api/open/v3/getToken", False, False, True, False)
    actual = (
        token_path,
        "authorization" in token_headers,
        "x-api-key" in token_headers,
        headers["authorization"].startswith("Bearer ey"),
        "x-api-key" in headers,
    )
    assert expected == actual


async def test_token_fetched_once_for_concurrent_first_calls(emu: Emulator) -> None:
    """Twenty concurrent first calls share one getToken request."""
    async with token_client(emu) as client, anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(client.get_credit)
    assert (
        emu.stats.requests["get_token"],
        emu.stats.requests["quota"],
        client.statistics().token_fetches,
    ) == (1, 20, 1)


async def test_expired_token_is_refetched_once_and_replayed(emu: Emulator) -> None:
    """A 1101 with a cached token fetches a new token once and replays the request once."""
    async with token_client(emu) as client:
        await client.get_credit()
        emu.expire_tokens()
        credit = await client.get_credit()
    assert (
        credit,
        emu.stats.requests["get_token"],
        emu.stats.requests["quota"],
        client.statistics().token_refreshes,
    ) == (10000.0, 2, 3, 1)


async def test_expired_token_refetched_once_for_concurrent_calls(emu: Emulator) -> None:
    """Concurrent requests refused with the same stale token share one new token."""
    async with token_client(emu) as client:
        await client.get_credit()
        emu.expire_tokens()
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(client.get_credit)
    assert emu.stats.requests["get_token"] == 2


async def test_expired_token_replays_a_create_once(emu: Emulator) -> None:
    """A submit refused with 1101 is replayed with the new token and creates one job."""
    async with token_client(emu) as client:
        await client.get_credit()
        emu.expire_tokens()
        job = await client.faceswap_plus(source_url="https://x/s.jpg", target_url="https://x/t.jpg")
    assert ([job.id], 2) == (list(emu.jobs), emu.stats.requests["faceswap_plus"])


async def test_bad_client_secret_is_an_authentication_error(emu: Emulator) -> None:
    """getToken's 1101 surfaces as AuthenticationError and the request is never sent."""
    async with AsyncClient(
        client_id=DEFAULT_CLIENT_ID, client_secret="wrong", base_url=emu.base_url, retry=FAST_RETRY
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_credit()
    assert (
        info.value.code,
        emu.stats.requests["get_token"],
        emu.stats.requests["quota"],
    ) == (1101, 1, 0)


async def test_bad_api_key_is_not_retried(emu: Emulator) -> None:
    """A 1101 in API-key mode is raised at once (there is no token to refresh)."""
    async with AsyncClient(api_key="wrong", base_url=emu.base_url, retry=FAST_RETRY) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_credit()
    assert (info.value.code, emu.stats.requests["quota"]) == (1101, 1)


async def test_banned_account(client: AsyncClient, emu: Emulator) -> None:
    """1200 is an AccountBannedError."""
    emu.ban()
    with pytest.raises(AccountBannedError) as info:
        await client.get_credit()
    assert info.value.code == 1200


async def test_banned_account_at_get_token(emu: Emulator) -> None:
    """A ban answered by getToken is raised from the first call."""
    emu.ban()
    async with token_client(emu) as client:
        with pytest.raises(AccountBannedError):
            await client.get_credit()
    assert emu.stats.requests["quota"] == 0


# --- secrets ---------------------------------------------------------------------------------


async def test_secrets_never_in_repr_logs_or_errors(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """API key, client secret and token appear in no repr, log line or exception text."""
    caplog.set_level(logging.DEBUG, logger="akool_async")
    texts: list[str] = []
    async with token_client(emu) as client:
        await client.get_credit()
        token = client._shared.auth.token or "missing"
        emu.expire_tokens()
        await client.get_credit()
        emu.ban()
        with pytest.raises(AccountBannedError) as info:
            await client.get_credit()
        texts += [repr(client), str(client._shared), str(info.value), repr(info.value)]
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY
    ) as key_client:
        with pytest.raises(AccountBannedError) as key_info:
            await key_client.get_credit()
        texts += [repr(key_client), str(key_client._shared), str(key_info.value)]
    everything = "\n".join([*texts, caplog.text])
    leaked = [s for s in (DEFAULT_CLIENT_SECRET, emu.api_key, token) if s in everything]
    assert (leaked, "quota" in caplog.text or "quota/info" in caplog.text) == ([], True)


async def test_debug_log_per_request(client: AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """Each request logs method, path, status, elapsed time and attempt at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="akool_async")
    await client.get_credit()
    [record] = [r for r in caplog.records if r.name == "akool_async"]
    assert (
        record.args[0],  # type: ignore[index]
        record.args[1],  # type: ignore[index]
        record.args[2],  # type: ignore[index]
        record.args[4],  # type: ignore[index]
    ) == ("GET", "/api/open/v3/faceswap/quota/info", 200, 1)


# --- instrumentation -------------------------------------------------------------------------


async def test_statistics_count_requests_per_endpoint(client: AsyncClient) -> None:
    """statistics() counts HTTP attempts per endpoint name."""
    await client.get_credit()
    await client.get_credit()
    await client.get_results(["6593c94c0ef703e8c055e3c8"])
    assert client.statistics().requests == {"quota": 2, "list_results": 1}


async def test_statistics_is_a_snapshot(client: AsyncClient) -> None:
    """A statistics() snapshot does not change afterwards."""
    before = client.statistics()
    await client.get_credit()
    assert before.requests == {}


async def test_failing_event_hook_is_logged_not_raised(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in on_event is logged and the request still succeeds."""

    def hook(name: str, **data: Any) -> None:
        raise RuntimeError("hook bug")

    async with token_client(emu, on_event=hook) as client:
        credit = await client.get_credit()
    assert (credit, "on_event hook raised" in caplog.text) == (10000.0, True)


async def test_token_fetched_event(emu: Emulator) -> None:
    """The hook hears "token_fetched" once per token."""
    events: list[str] = []
    async with token_client(emu, on_event=lambda name, **data: events.append(name)) as client:
        await client.get_credit()
        await client.get_credit()
    assert events == ["token_fetched"]

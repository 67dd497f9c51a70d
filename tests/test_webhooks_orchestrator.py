"""use_webhooks: verified callbacks finish wait and swap_many jobs; polling is the safety net.

Everything goes through the real aiohttp stack: the emulator POSTs signed, encrypted callbacks
to a running ``WebhookReceiver``, with its webhook faults (duplicate, late, lost) switched on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import anyio.from_thread
import attrs
import pytest

from akool_async import (
    AsyncClient,
    Client,
    ClientStateError,
    JobFailedError,
    JobTimeoutError,
    Outcome,
    PlusSwap,
    PollConfig,
    SwapResult,
    SwapStatus,
    ValidationError,
    WebhookReceiver,
    WebhookVerifier,
)
from akool_async._crypto import encrypt
from akool_async.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
)
from tests._support import FAST_RETRY, swap

pytestmark = pytest.mark.anyio

#: The same pacing with webhooks off and on; the safety net (1 s) is far above a job's ~40 ms.
POLL = PollConfig(
    image_first=0.1,
    image_max=0.3,
    jitter=0.1,
    retry_delay=0.02,
    miss_limit=2,
    miss_grace=0.05,
    safety_net_interval=1.0,
)


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-35 ms; a late callback comes 0.3 s after its time (below the safety net)."""
    return EmulatorConfig(
        latency_scale=0.01, queue_seconds=(0.0, 0.5), webhook_late_seconds=0.3, credit=100_000
    )


@pytest.fixture
async def receiver(emu: Emulator) -> AsyncIterator[WebhookReceiver]:
    """A standalone receiver verifying with the emulator's key pair and clock."""
    verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=emu.clock.now)
    async with WebhookReceiver(verifier) as receiver:
        yield receiver


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client uses the shared pacing."""
    return POLL


Row = tuple[int, str, SwapStatus | None, str | None, str | None]


def rows(outcomes: list[Outcome[PlusSwap]]) -> list[Row]:
    """(index, target, status, url, error type) of each outcome, by index."""
    return sorted(
        (
            o.index,
            o.request.target_url,
            o.result.status if o.result else None,
            o.result.url if o.result else None,
            type(o.error).__name__ if o.error else None,
        )
        for o in outcomes
    )


def truth(emu: Emulator, n: int) -> list[Row]:
    """What each of ``swap(0..n-1)`` really became, according to the emulator."""
    jobs = {job.target_urls[0]: job for job in emu.jobs.values()}
    expected: list[Row] = []
    for i in range(n):
        job = jobs[swap(i).target_url]
        expected.append((i, swap(i).target_url, SwapStatus.SUCCESS, emu.result_url(job), None))
    return expected


async def run(client: AsyncClient, n: int) -> list[Outcome[PlusSwap]]:
    """Every outcome of a batch of ``swap(0..n-1)``."""
    async with client.swap_many((swap(i) for i in range(n)), concurrency=32) as batch:
        return [outcome async for outcome in batch]


async def test_webhooks_cut_listbyids_calls_at_least_fivefold(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """The same 300-job batch ends identically with webhooks, with <= 1/5 of the polls."""
    n = 300
    polled = await run(client, n)
    polled_rows, polls_off = rows(polled), emu.stats.requests["list_results"]
    expected_off, attempts_off = truth(emu, n), len(emu.webhook_attempts)
    emu.reset()
    detach = client.use_webhooks(receiver, url=receiver.url)
    pushed = await run(client, n)
    detach()
    polls_on = emu.stats.requests["list_results"]

    assert (polled_rows, attempts_off) == (expected_off, 0)
    assert rows(pushed) == truth(emu, n)
    assert Counter(a.outcome for a in emu.webhook_attempts) == Counter(delivered=n)
    assert (polls_on * 5 <= polls_off, polls_off > 0) == (True, True), (polls_on, polls_off)


async def test_duplicate_deliveries_are_handled_once(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """Every callback delivered twice still gives one outcome and one handled event per job."""
    emu.configure(fault_rates={"webhook": {"duplicate": 1.0}})
    handled: Counter[tuple[str, int]] = Counter()
    receiver.subscribe(lambda event: handled.update([(event.id, int(event.status))]))
    client.use_webhooks(receiver, url=receiver.url)
    n = 60
    outcomes = await run(client, n)
    attempts = await emu.wait_for_webhooks(2 * n)

    assert rows(outcomes) == truth(emu, n)
    assert Counter((a.duplicate, a.http_status) for a in attempts) == {
        (False, 200): n,
        (True, 200): n,
    }
    assert (len(handled), set(handled.values())) == (n, {1})


async def test_late_deliveries_give_one_outcome_each(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """Callbacks 0.3 s late (or the safety-net poll, whichever is first) finish every job once."""
    emu.configure(fault_rates={"webhook": {"late": 1.0}})
    client.use_webhooks(receiver, url=receiver.url)
    n = 60
    outcomes = await run(client, n)
    attempts = await emu.wait_for_webhooks(n)

    assert rows(outcomes) == truth(emu, n)
    assert (emu.stats.faults[("webhook", "late")], len(attempts)) == (n, n)
    assert {a.http_status for a in attempts} == {200}


async def test_lost_deliveries_are_caught_by_the_safety_net(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """Jobs whose callback is lost (20 of 100) are finished by the safety-net poll."""
    emu.faults.inject("webhook", "lost", times=20)
    client.use_webhooks(receiver, url=receiver.url)
    n = 100
    outcomes = await run(client, n)

    assert rows(outcomes) == truth(emu, n)
    assert Counter(a.outcome for a in emu.webhook_attempts) == Counter(delivered=80, lost=20)
    assert emu.stats.requests["list_results"] > 0


async def test_failed_job_delivered_by_webhook_raises(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """A status-4 callback makes ``wait`` raise JobFailedError without any listbyids call."""
    client.poll_config = attrs.evolve(POLL, safety_net_interval=60.0)
    client.use_webhooks(receiver, url=receiver.url)
    job = await client.faceswap_plus(swap(0, target="https://example.com/fail.jpg"))
    with pytest.raises(JobFailedError) as info:
        await client.wait(job, timeout=10)

    result = info.value.result
    assert isinstance(result, SwapResult)
    assert (info.value.job_id, result.status) == (job.id, SwapStatus.FAILED)
    assert (emu.jobs[job.id].webhook_url, emu.stats.requests["list_results"]) == (receiver.url, 0)


def forged_bodies(job_id: str, timestamp: int) -> list[dict[str, Any]]:
    """A success callback for ``job_id``: unsigned, and encrypted right but signed wrong."""
    plaintext = json.dumps({"_id": job_id, "status": 3, "type": "faceswap", "url": "https://x/y"})
    data = encrypt(plaintext.encode(), DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    unsigned = {"dataEncrypt": data, "timestamp": timestamp, "nonce": "1"}
    return [unsigned, {**unsigned, "signature": "0" * 40}]


async def test_forged_callback_does_not_finish_a_job(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """Unsigned or badly signed callbacks get 400 and leave the job waiting; a real one ends it."""
    client.poll_config = attrs.evolve(POLL, safety_net_interval=60.0)
    client.use_webhooks(receiver, url=receiver.url)
    job = await client.faceswap_plus(swap(0))
    emu.force_status(job.id, 1)  # never finishes (nor calls back) on its own
    async with aiohttp.ClientSession() as session:
        statuses = []
        for body in forged_bodies(job.id, int(emu.clock.now() * 1000)):
            async with session.post(receiver.url, json=body) as response:
                statuses.append(response.status)
    with pytest.raises(JobTimeoutError):
        await client.wait(job, timeout=0.3)
    payload = {"_id": job.id, "status": 3, "type": "faceswap", "url": "https://x/y"}
    genuine = await emu.send_webhook(receiver.url, payload)
    result = await client.wait(job, timeout=1)

    assert (statuses, genuine.http_status) == ([400, 400], 200)
    assert (result.status, result.url) == (SwapStatus.SUCCESS, "https://x/y")


async def test_a_callback_before_the_wait_is_remembered(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """A verified callback for a job nobody waits on yet completes the wait that follows."""
    client.poll_config = attrs.evolve(POLL, safety_net_interval=60.0)
    client.use_webhooks(receiver, url=receiver.url)
    job = await client.faceswap_plus(swap(0))
    [attempt] = await emu.wait_for_webhooks(1)
    result = await client.wait(job, timeout=1)

    assert (attempt.http_status, result.status, result.url) == (
        200,
        SwapStatus.SUCCESS,
        emu.result_url(emu.jobs[job.id]),
    )
    assert emu.stats.requests["list_results"] == 0


async def test_own_webhook_url_wins_and_detach_restores_polling(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver
) -> None:
    """A request's own webhook_url is kept; after detach, submits carry none and polling resumes."""
    detach = client.use_webhooks(receiver, url=receiver.url)
    mine = await client.faceswap_plus(
        attrs.evolve(swap(0), webhook_url="https://mine.example/hook")
    )
    ours = await client.faceswap_plus(swap(1))
    attached = client.poller_statistics().webhooks_attached
    detach()
    detach()
    plain = await client.faceswap_plus(swap(2))
    result = await client.wait(plain, timeout=5)

    assert [emu.jobs[j.id].webhook_url for j in (mine, ours, plain)] == [
        "https://mine.example/hook",
        receiver.url,
        None,
    ]
    assert (attached, client.poller_statistics().webhooks_attached) == (True, False)
    assert result.status == SwapStatus.SUCCESS


async def test_use_webhooks_refuses_a_second_receiver_and_a_bad_url(
    client: AsyncClient, receiver: WebhookReceiver
) -> None:
    """Only one receiver at a time, and the URL must be absolute http(s)."""
    with pytest.raises(ValidationError) as bad:
        client.use_webhooks(receiver, url="/akool/webhook")
    client.use_webhooks(receiver, url=receiver.url)
    with pytest.raises(ClientStateError):
        client.use_webhooks(receiver, url=receiver.url)

    assert bad.value.field == "url"


async def test_closing_the_client_unsubscribes_it(emu: Emulator, receiver: WebhookReceiver) -> None:
    """Once the client is closed the receiver has no listener: 503, so AKOOL retries later."""
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        client.use_webhooks(receiver, url=receiver.url)
    payload = {"_id": "0" * 24, "status": 3, "type": "faceswap", "url": "https://x/y"}
    attempt = await emu.send_webhook(receiver.url, payload)

    assert attempt.http_status == 503


# -- the blocking Client ----------------------------------------------------------------------


@pytest.fixture
def blocking_receiver(akool_emulator_thread: EmulatorThread) -> Iterator[WebhookReceiver]:
    """A receiver running on its own event loop thread (not the client's)."""
    clock = akool_emulator_thread.emulator.clock
    verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=clock.now)
    receiver = WebhookReceiver(verifier)
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        portal.call(receiver.start)
        try:
            yield receiver
        finally:
            portal.call(receiver.aclose)


def test_blocking_client_uses_webhooks(
    akool_emulator_thread: EmulatorThread, blocking_receiver: WebhookReceiver
) -> None:
    """The blocking Client finishes a batch and a failed wait from a receiver on another loop."""
    emu = akool_emulator_thread.emulator
    with Client(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY) as client:
        client.poll_config = attrs.evolve(POLL, safety_net_interval=60.0)
        detach = client.use_webhooks(blocking_receiver, url=blocking_receiver.url)
        n = 40
        with client.swap_many(swap(i) for i in range(n)) as batch:
            outcomes = list(batch)
        failed = client.faceswap_plus(swap(n, target="https://example.com/fail.jpg"))
        with pytest.raises(JobFailedError):
            client.wait(failed, timeout=10)
        detach()
        attached = client.poller_statistics().webhooks_attached

    assert rows(outcomes) == truth(emu, n)
    assert (attached, emu.stats.requests["list_results"]) == (False, 0)

"""The blocking Client: the same surface as AsyncClient, every operation against the emulator.

Lifetime, threads, loops, forks and interrupts are in ``test_sync_lifecycle.py``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from akool_async import (
    AsyncClient,
    Client,
    ClientStateError,
    DetectionError,
    FaceDetection,
    FaceImage,
    JobFailedError,
    JobTimeoutError,
    LegacyFaceDetection,
    MediaType,
    PlusSwap,
    RetryPolicy,
    SwapJob,
    SwapKind,
    SwapResult,
    SwapStatus,
    ValidationError,
    VideoSwap,
)
from akool_async._jobs._events import BatchEvent
from akool_async._jobs._orchestrator import Batch
from akool_async._jobs._poller import PollConfig
from akool_async._sync import BlockingBatch, BlockingIterator, IteratorMirror
from akool_async.testing import DEFAULT_API_KEY, EmulatorConfig, EmulatorThread
from tests import _support as support
from tests._support import FAST_POLL, FAST_RETRY, QUICK_JOBS, on_emulator

T = TypeVar("T")

SRC = "https://example.com/face.jpg"
OPTS = "239,364:386,366:317,472:266,539"


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms (images) and 50-150 ms (videos)."""
    return QUICK_JOBS


@pytest.fixture
def client(runner: EmulatorThread) -> Iterator[Client]:
    """An open blocking client of the emulator, polling every few tens of milliseconds."""
    with Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url, retry=FAST_RETRY) as client:
        client.poll_config = FAST_POLL
        yield client


def swap(i: int, *, target: str | None = None) -> PlusSwap:
    """A distinct single-face Plus request."""
    return support.swap(i, target=target, single_face_mode=True)


def faces(n: int = 1) -> list[FaceImage]:
    """``n`` face images with opts."""
    return [FaceImage(path=f"https://example.com/f{i}.jpg", opts=OPTS) for i in range(n)]


# --- the surface ------------------------------------------------------------------------------

_RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
_RETURNS = {"AsyncClient": "Client", "Batch[R]": "BlockingBatch"}


def public(cls: type[Any]) -> set[str]:
    """The public attribute names of a class."""
    return {name for name in dir(cls) if not name.startswith("_")}


def blocking_signature(signature: inspect.Signature) -> inspect.Signature:
    """An async signature as its blocking twin shows it (no Awaitable, blocking types)."""
    returns = signature.return_annotation
    if isinstance(returns, str):
        returns = re.sub(r"^Awaitable\[(.*)\]$", r"\1", returns)
        returns = _RETURNS.get(returns, returns)
    return signature.replace(return_annotation=returns)


@pytest.fixture
def offline() -> Iterator[tuple[AsyncClient, Client]]:
    """An AsyncClient and an open Client with the same arguments (nothing is sent)."""
    kwargs: dict[str, Any] = {"api_key": "k", "base_url": "http://127.0.0.1:9"}
    with Client(**kwargs) as client:
        yield AsyncClient(**kwargs), client


def test_public_names_match_the_async_client() -> None:
    """Client has exactly AsyncClient's public names (``aclose`` is ``close``)."""
    assert public(Client) == {_RENAMED.get(name, name) for name in public(AsyncClient)}


def test_signatures_match_the_async_client(offline: tuple[AsyncClient, Client]) -> None:
    """Every public method has AsyncClient's parameters, and its return type without await."""
    aclient, client = offline
    drift = {}
    for name in sorted(public(AsyncClient)):
        if isinstance(inspect.getattr_static(AsyncClient, name), property):
            continue
        expected = blocking_signature(inspect.signature(getattr(aclient, name)))
        actual = inspect.signature(getattr(client, _RENAMED.get(name, name)))
        if actual != expected:
            drift[name] = (str(expected), str(actual))
    assert drift == {}


def test_properties_match_the_async_client(offline: tuple[AsyncClient, Client]) -> None:
    """Every property reads the same value, and is settable exactly when AsyncClient's is."""
    aclient, client = offline
    properties = {
        name: prop
        for name in public(AsyncClient)
        if isinstance(prop := inspect.getattr_static(AsyncClient, name), property)
    }
    assert {name: getattr(client, name) for name in properties} == {
        name: getattr(aclient, name) for name in properties
    }
    settable = set()
    for name in properties:
        try:
            setattr(client, name, getattr(client, name))
        except AttributeError:
            continue
        settable.add(name)
    assert settable == {name for name, prop in properties.items() if prop.fset is not None}


def test_constructor_takes_the_same_arguments() -> None:
    """Client(...) has AsyncClient(...)'s signature (derived, not copied)."""
    assert inspect.signature(Client) == inspect.signature(AsyncClient)


def test_operations_are_the_async_clients_descriptors() -> None:
    """Endpoint operations are AsyncClient's own Operation objects, shared."""
    for name in ("faceswap_plus", "faceswap_pro", "faceswap_image", "faceswap_video"):
        assert inspect.getattr_static(Client, name) is inspect.getattr_static(AsyncClient, name)


def test_blocking_batch_mirrors_batch() -> None:
    """BlockingBatch has Batch's public names (``aclose`` is ``close``) and signatures."""
    assert public(BlockingBatch) == {_RENAMED.get(name, name) for name in public(Batch)}
    assert inspect.signature(BlockingBatch.statistics) == inspect.signature(Batch.statistics)


def test_constructor_errors_are_the_async_clients() -> None:
    """Bad arguments raise AsyncClient's ValidationError from the constructor."""
    with pytest.raises(ValidationError) as info:
        Client(api_key="k", base_url="ftp://nowhere")
    assert info.value.field == "base_url"


def test_a_caller_owned_session_is_refused() -> None:
    """session= raises ValidationError: no caller's aiohttp session can run on the portal."""
    with pytest.raises(ValidationError) as info:
        Client(api_key="k", session=object())  # type: ignore[arg-type]
    assert info.value.field == "session"


# --- every operation through the blocking client ----------------------------------------------


def test_submits_return_jobs(client: Client, runner: EmulatorThread) -> None:
    """Each submit returns the SwapJob AsyncClient would, and reaches the emulator."""
    jobs = [
        client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg"),
        client.faceswap_plus(PlusSwap(source_url=SRC, target_url="https://example.com/c.mp4")),
        client.faceswap_pro(source=faces(2), target=faces(2)),
        client.faceswap_image(
            source=faces(), target=faces(), modify_image="https://example.com/m.jpg"
        ),
        client.faceswap_video(
            VideoSwap(source=faces(), target=faces(), modify_video="https://example.com/v.mp4")
        ),
    ]
    assert [(type(job), job.kind, job.media) for job in jobs] == [
        (SwapJob, SwapKind.PLUS, MediaType.IMAGE),
        (SwapJob, SwapKind.PLUS, MediaType.VIDEO),
        (SwapJob, SwapKind.PRO, MediaType.IMAGE),
        (SwapJob, SwapKind.IMAGE, MediaType.IMAGE),
        (SwapJob, SwapKind.VIDEO, MediaType.VIDEO),
    ]
    assert [runner.emulator.jobs[job.id].endpoint for job in jobs] == [
        "faceswap_plus",
        "faceswap_plus",
        "faceswap_pro",
        "faceswap_image",
        "faceswap_video",
    ]


def test_wait_get_results_and_delete(client: Client) -> None:
    """wait() returns the success, get_results() reports it, delete_results() removes it."""
    job = client.faceswap_plus(swap(0))
    result = client.wait(job, timeout=10)
    [listed] = client.get_results([job.id])
    assert client.delete_results([job.id]) is None
    assert (type(result), result.status, listed.id, listed.status) == (
        SwapResult,
        SwapStatus.SUCCESS,
        job.id,
        SwapStatus.SUCCESS,
    )
    assert client.get_results([job.id]) == []


def test_detectors(client: Client) -> None:
    """detect_faces (URL, bytes) and detect_faces_legacy return the detector models."""
    by_url = client.detect_faces(url="https://example.com/p-faces-3.jpg", return_face_url=True)
    by_bytes = client.detect_faces(img=b"\xff\xd8\xff\xe0 jpeg bytes")
    legacy = client.detect_faces_legacy(
        image_url="https://example.com/faces-2.jpg", single_face=False
    )
    assert (type(by_url), len(by_url.faces), len(by_bytes.faces)) == (FaceDetection, 3, 1)
    assert (type(legacy), len(legacy.opts)) == (LegacyFaceDetection, 2)


def test_credit_and_statistics(client: Client, runner: EmulatorThread) -> None:
    """get_credit() is the balance; statistics() counts the requests made."""
    on_emulator(runner, runner.emulator.set_credit, 1234.5)
    assert client.get_credit() == 1234.5
    assert client.statistics().requests["quota"] == 1
    assert client.poller_statistics().tracked == 0


def test_errors_are_the_async_clients(client: Client, runner: EmulatorThread) -> None:
    """Failures raise exactly the exceptions AsyncClient raises."""
    with pytest.raises(ValidationError):
        client.get_results(["not-an-id"])
    with pytest.raises(DetectionError) as detection:
        client.detect_faces(url="https://example.com/faces-0.jpg")
    failed = client.faceswap_plus(swap(1, target="https://example.com/fail-me.jpg"))
    with pytest.raises(JobFailedError) as job_failed:
        client.wait(failed, timeout=10)
    stuck = client.faceswap_plus(swap(2))
    on_emulator(runner, runner.emulator.force_status, stuck.id, 2)
    with pytest.raises(JobTimeoutError) as timed_out:
        client.wait(stuck, timeout=0.2)
    assert (detection.value.code, job_failed.value.job_id, timed_out.value.job_id) == (
        1,
        failed.id,
        stuck.id,
    )
    assert runner.emulator.stats.requests["list_results"] > 0


def test_webhook_integration(client: Client) -> None:
    """notify_job feeds waiters; attach_webhooks' detach function runs on the portal too."""
    job_id = "0123456789abcdef01234567"
    url = "https://example.com/result.png"
    assert client.notify_job(job_id, SwapStatus.SUCCESS, url) is False  # kept for a waiter
    result = client.wait(job_id, timeout=5)
    detach = client.attach_webhooks()
    attached = client.poller_statistics().webhooks_attached
    detach()
    assert (result.url, attached, client.poller_statistics().webhooks_attached) == (
        url,
        True,
        False,
    )


def test_poll_config_is_set_on_the_portal(client: Client) -> None:
    """Setting poll_config reaches the running poller; read-only properties refuse."""
    config = PollConfig(image_first=0.5)
    client.poll_config = config
    assert client.poll_config == config
    with pytest.raises(AttributeError):
        client.retry = RetryPolicy()  # type: ignore[assignment]


def test_with_options_view(client: Client) -> None:
    """A view has its own options, shares the portal, and closes with its client only."""
    patient = RetryPolicy(max_attempts=8)
    view = client.with_options(retry=patient)
    view.close()  # a view's close does nothing
    assert (view.retry, client.retry, view.get_credit(), view.is_closed) == (
        patient,
        FAST_RETRY,
        client.get_credit(),
        False,
    )
    with pytest.raises(ClientStateError), view:
        pass
    client.close()
    with pytest.raises(ClientStateError):
        view.get_credit()


def test_repr_hides_the_key(client: Client) -> None:
    """repr shows state and host, never the API key."""
    text = repr(client)
    assert ("open" in text, client.base_url in text, DEFAULT_API_KEY in text) == (
        True,
        True,
        False,
    )


# --- swap_many: a blocking iterator over the batch ---------------------------------------------


def test_swap_many_outcomes_and_statistics(client: Client) -> None:
    """One outcome per request, failures as values; statistics() mirrors the batch's."""
    requests = [swap(i) for i in range(30)]
    requests[7] = swap(7, target="https://example.com/fail-7.jpg")
    with client.swap_many(requests, concurrency=8) as batch:
        outcomes = {outcome.index: outcome for outcome in batch}
    stats = batch.statistics()
    assert sorted(outcomes) == list(range(30))
    assert isinstance(outcomes[7].error, JobFailedError)
    assert (stats.succeeded, stats.failed, stats.finished) == (29, 1, True)


def test_swap_many_streams_outcomes_as_they_complete(
    client: Client, runner: EmulatorThread
) -> None:
    """The first outcome arrives while another job of the batch is still running."""
    stuck: list[str] = []

    def pin_first(event: BatchEvent) -> None:  # runs on the client's portal thread
        if event.kind == "submitted" and event.index == 0 and event.job_id:
            stuck.append(event.job_id)
            on_emulator(runner, runner.emulator.force_status, event.job_id, 2)

    order = []
    with client.swap_many([swap(i) for i in range(4)], on_event=pin_first) as batch:
        for outcome in batch:
            order.append(outcome.index)
            if len(order) == 3:
                # Job 0 is still processing: these outcomes were handed over as they came.
                assert runner.emulator.status(stuck[0]) == 2
                on_emulator(runner, runner.emulator.force_status, stuck[0], 3)
    assert (sorted(order[:3]), order[3]) == ([1, 2, 3], 0)


def test_break_out_of_a_bare_loop_stops_the_batch(client: Client, runner: EmulatorThread) -> None:
    """Breaking out of a bare ``for`` cancels the batch before the next statement runs."""
    on_emulator(runner, runner.emulator.configure, image_seconds=(10.0, 20.0))
    for outcome in client.swap_many((swap(i) for i in range(1000)), concurrency=8):
        assert outcome.ok
        break
    submits = client.statistics().requests["faceswap_plus"]
    poller = client.poller_statistics()
    assert (poller.tracked, poller.waiters, submits < 1000) == (0, 0, True)
    anyio.run(anyio.sleep, 0.3)  # several poll intervals: nothing may be sent any more
    assert (client.statistics().requests["faceswap_plus"], client.poller_statistics().requests) == (
        submits,
        poller.requests,
    )
    assert runner.emulator.stats.requests["faceswap_plus"] == submits


def test_break_inside_with_stops_the_batch(client: Client, runner: EmulatorThread) -> None:
    """Leaving ``with`` early cancels the batch; its statistics show it finished."""
    on_emulator(runner, runner.emulator.configure, image_seconds=(10.0, 20.0))
    with client.swap_many((swap(i) for i in range(1000)), concurrency=8) as batch:
        for _ in batch:
            break
    stats = batch.statistics()
    assert (stats.finished, stats.pending, stats.submitting) == (True, 0, 0)
    assert (client.poller_statistics().tracked, stats.submits < 1000) == (0, True)
    assert list(batch) == []  # a closed batch yields nothing more


def test_close_without_iterating(client: Client, runner: EmulatorThread) -> None:
    """A batch entered and closed without iterating is stopped; one never entered never ran."""
    on_emulator(runner, runner.emulator.configure, image_seconds=(10.0, 20.0))
    never = client.swap_many([swap(i) for i in range(5)])
    never.close()
    with client.swap_many((swap(i) for i in range(1000)), concurrency=8) as entered:
        pass
    assert (never.statistics().read, entered.statistics().finished) == (0, True)
    assert client.poller_statistics().tracked == 0


def test_an_input_error_is_raised_from_the_loop(client: Client) -> None:
    """An exception from the input iterable is raised by the blocking loop."""

    def broken() -> Iterator[PlusSwap]:
        yield swap(0)
        raise LookupError("bad manifest")

    with pytest.raises(LookupError, match="bad manifest"):
        for _ in client.swap_many(broken()):
            pass
    assert client.get_credit() > 0  # the client is still usable


def test_hooks_cannot_call_the_client_from_its_portal(client: Client) -> None:
    """Calling the client from its own portal thread raises instead of deadlocking."""

    def hook(event: BatchEvent) -> None:
        client.get_credit()

    with pytest.raises(ClientStateError, match="own event loop thread"):
        list(client.swap_many([swap(0)], on_event=hook))


# --- any other async iterator gets the same treatment ----------------------------------------


class _StreamingAsyncClient(AsyncClient):
    """An AsyncClient with an async-generator method, as a future one might have."""

    log: list[str] = []  # noqa: RUF012 - shared on purpose, reset by the test

    async def count(self, n: int) -> AsyncIterator[int]:
        """Yield 0..n-1 inside one cancel scope (which only works if one task iterates)."""
        self.log.append("start")
        try:
            with anyio.CancelScope():
                for i in range(n):
                    await anyio.lowlevel.checkpoint()
                    if i == 13:
                        raise ArithmeticError("unlucky")
                    yield i
        finally:
            self.log.append("finally")


class _StreamingClient(Client):
    _async_client_type = _StreamingAsyncClient
    count = IteratorMirror(_StreamingAsyncClient.count)


@pytest.fixture
def streaming(runner: EmulatorThread) -> Iterator[_StreamingClient]:
    """A blocking client of the streaming AsyncClient."""
    _StreamingAsyncClient.log.clear()
    with _StreamingClient(api_key=DEFAULT_API_KEY, base_url=runner.base_url) as client:
        yield client


def test_async_generator_methods_become_blocking_iterators(streaming: _StreamingClient) -> None:
    """An async generator is iterated to its end in one task, then closed."""
    iterator = streaming.count(5)
    assert (type(iterator), list(iterator)) == (BlockingIterator, [0, 1, 2, 3, 4])
    assert _StreamingAsyncClient.log == ["start", "finally"]


def test_breaking_out_closes_the_async_generator(streaming: _StreamingClient) -> None:
    """A break closes the async generator (its finally runs) before the loop is left."""
    for i in streaming.count(1000):
        if i == 2:
            break
    assert _StreamingAsyncClient.log == ["start", "finally"]


def test_async_generator_errors_propagate(streaming: _StreamingClient) -> None:
    """An exception raised by the async generator comes out of the blocking loop."""
    with pytest.raises(ArithmeticError, match="unlucky"):
        list(streaming.count(1000))
    assert _StreamingAsyncClient.log == ["start", "finally"]

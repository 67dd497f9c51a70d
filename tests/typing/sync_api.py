"""Type-checked by mypy (``files`` in pyproject), never run: the blocking Client's static types.

Every member of ``Client`` is derived from ``AsyncClient``'s definitions (shared ``Operation``
descriptors and mirrors), so each ``assert_type`` below checks that a type checker still sees
the async signature, minus ``await``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

from akool_async import (
    Client,
    ClientStatistics,
    FaceDetection,
    FaceImage,
    FrameAnalysis,
    LegacyFaceDetection,
    Limits,
    PlusSwap,
    RateLimit,
    RetryPolicy,
    SwapJob,
    SwapResult,
    Timeout,
)
from akool_async._jobs._events import BatchStatistics, Outcome
from akool_async._jobs._poller import PollConfig, PollerStatistics
from akool_async._sync import BlockingBatch


def operations(client: Client, job: SwapJob) -> None:
    face = FaceImage(path="https://example.com/face.jpg", opts="1,2:3,4:5,6:7,8")
    plus = PlusSwap(source_url="https://a/s.jpg", target_url="https://a/t.jpg")

    assert_type(
        client.faceswap_plus(source_url="https://a/s.jpg", target_url="https://a/t.jpg"), SwapJob
    )
    assert_type(client.faceswap_plus(plus), SwapJob)
    assert_type(client.faceswap_pro(source=[face], target=[face]), SwapJob)
    assert_type(
        client.faceswap_image(source=[face], target=[face], modify_image="https://a/m.jpg"),
        SwapJob,
    )
    assert_type(
        client.faceswap_video(source=[face], target=[face], modify_video="https://a/v.mp4"),
        SwapJob,
    )
    assert_type(client.detect_faces(url="https://a/t.jpg"), FaceDetection)
    assert_type(client.detect_faces_legacy(image_url="https://a/t.jpg"), LegacyFaceDetection)
    assert_type(client.analyze_frames(frame_urls=["https://a/f0.jpg"]), FrameAnalysis)
    assert_type(client.get_results([job.id]), list[SwapResult])
    assert_type(client.delete_results([job.id]), None)
    assert_type(client.get_credit(), float)
    assert_type(client.wait(job, timeout=600), SwapResult)
    assert_type(client.wait(job.id, timeout=None, media="video"), SwapResult)

    # Keyword arguments are checked against the async definitions.
    client.faceswap_plus(source_url="https://a/s.jpg")  # type: ignore[call-overload]
    client.wait(job, timeout="soon")  # type: ignore[arg-type]
    client.get_results(1)  # type: ignore[arg-type]


def batches(client: Client, requests: list[PlusSwap]) -> None:
    batch = client.swap_many(requests, concurrency=64, job_timeout=None)
    assert_type(batch, BlockingBatch[PlusSwap])
    with batch:
        for outcome in batch:
            assert_type(outcome, Outcome[PlusSwap])
            assert_type(outcome.request, PlusSwap)
    assert_type(batch.statistics(), BatchStatistics)
    client.swap_many(requests, concurrency="many")  # type: ignore[arg-type]
    client.swap_many(requests, cancel_grace=2.0, download_timeout=None, ambiguous_wait=None)
    assert_type(batch.statistics().resolved, int)


def webhooks_and_statistics(client: Client) -> None:
    assert_type(client.notify_job("6593c94c0ef703e8c055e3c8", 3), bool)
    assert_type(client.attach_webhooks(), Callable[[], None])
    assert_type(client.statistics(), ClientStatistics)
    assert_type(client.poller_statistics(), PollerStatistics)


def configuration(client: Client) -> None:
    assert_type(client.retry, RetryPolicy)
    assert_type(client.timeout, Timeout)
    assert_type(client.limits, Limits)
    assert_type(client.rate_limit, RateLimit)
    assert_type(client.max_ids_per_request, int)
    assert_type(client.client_id, str | None)
    assert_type(client.base_url, str)
    assert_type(client.poll_config, PollConfig)
    assert_type(client.is_closed, bool)
    client.poll_config = PollConfig()
    client.retry = RetryPolicy()  # type: ignore[assignment]
    assert_type(client.with_options(retry=RetryPolicy(max_attempts=8)), Client)
    client.with_options(retries=3)  # type: ignore[call-arg]


def lifetime() -> None:
    with Client(api_key="k", base_url="http://127.0.0.1:8765", timeout=Timeout(read=5)) as c:
        assert_type(c, Client)
    client = Client()
    client.close()
    Client(api_key=1)  # type: ignore[arg-type]
    Client("positional")  # type: ignore[call-arg]


def storage(client: Client, result: SwapResult) -> None:
    from pathlib import Path

    from akool_async import SavedFile

    assert_type(client.download(result, "s3://bucket/results/"), SavedFile)
    assert_type(client.download(result, Path("results")), SavedFile)
    local = PlusSwap(source_url=Path("me.jpg"), target_url="s3://bucket/them.jpg")
    assert_type(client.faceswap_plus(local), SwapJob)
    assert_type(client.faceswap_plus(source_url=Path("me.jpg"), target_url=Path("t.jpg")), SwapJob)

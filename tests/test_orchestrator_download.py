"""Result downloads: streamed, verified (length, ETag MD5), retried, atomic, and resumable."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from akool_async import (
    AsyncClient,
    BatchEvent,
    DownloadError,
    Outcome,
    PlusSwap,
    PollConfig,
    RetryPolicy,
)
from akool_async._jobs._download import download, file_name
from akool_async._jobs._journal import read_journal
from akool_async.testing import Emulator, EmulatorConfig
from tests._support import FAST_RETRY

pytestmark = pytest.mark.anyio

FAST_POLL = PollConfig(image_first=0.02, image_max=0.1, video_first=0.02, video_max=0.1)
BODY = bytes(range(256)) * 40  # 10 KiB


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms (images) and 50-150 ms (videos); 300 KB videos (several chunks)."""
    return EmulatorConfig(latency_scale=0.01, video_size=300_000)


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client polls every few tens of milliseconds."""
    return FAST_POLL


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A file server with good, corrupted, truncated, flaky and missing files; its base URL."""
    hits: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        good_etag = f'"{hashlib.md5(BODY, usedforsecurity=False).hexdigest()}"'
        if name == "good.png" or (name == "flaky.png" and hits[name] > 1):
            return web.Response(body=BODY, headers={"ETag": good_etag})
        if name == "flaky.png":
            return web.Response(status=503)
        if name == "corrupt.png":  # the bytes changed on the way: the ETag does not match
            return web.Response(body=BODY[::-1], headers={"ETag": good_etag})
        if name == "short.mp4":  # announces the whole body, sends half, hangs up
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.content_length = len(BODY)
            await response.prepare(request)
            await response.write(BODY[: len(BODY) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def swap(i: int, suffix: str = "jpg") -> PlusSwap:
    """A distinct request; ``suffix="mp4"`` makes a video job."""
    return PlusSwap(
        source_url=f"https://example.com/face-{i}.jpg",
        target_url=f"https://example.com/target-{i}.{suffix}",
    )


async def run(client: AsyncClient, requests: Any, **options: Any) -> dict[int, Outcome[Any]]:
    """Run a batch to the end; its outcomes by input index."""
    async with client.swap_many(requests, **options) as batch:
        return {outcome.index: outcome async for outcome in batch}


def listing(directory: Path) -> list[str]:
    """The names in a directory, sorted."""
    return sorted(path.name for path in directory.iterdir())


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_results_are_downloaded_and_verified(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """Each result lands as <job id><ext> with the recorded SHA-256; no temp file is left."""
    outcomes = await run(client, [swap(0), swap(1, "mp4")], download_dir=tmp_path / "out")
    for outcome in outcomes.values():
        assert outcome.ok
        assert outcome.path is not None
        assert outcome.job is not None
        assert outcome.result is not None
        assert outcome.result.url is not None
        assert outcome.path.name == file_name(outcome.job.id, outcome.result.url)
        assert outcome.sha256 == sha256(outcome.path)
    video = outcomes[1].path
    assert video is not None
    assert (video.suffix, video.stat().st_size) == (".mp4", 300_000)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".mp4", ".png"]


async def test_a_failed_download_is_retried(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """An HTTP 500 on the result file is retried, reported as a 'retried' event."""
    emu.faults.inject("result_file", "http_500")
    events: list[BatchEvent] = []
    outcomes = await run(
        client, [swap(0)], download_dir=tmp_path, download_retry=FAST_RETRY, on_event=events.append
    )
    assert outcomes[0].ok
    assert [e.kind for e in events if e.kind == "retried"] == ["retried"]
    assert emu.stats.requests["result_file"] == 2


async def test_download_failure_is_an_outcome_and_resumes(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A download that keeps failing is a DownloadError outcome; a resume downloads it."""
    journal = tmp_path / "batch.sqlite"
    emu.faults.inject("result_file", "http_500", times=3)
    first = await run(
        client, [swap(0)], journal=journal, download_dir=tmp_path, download_retry=FAST_RETRY
    )
    error = first[0].error
    assert isinstance(error, DownloadError)
    assert (error.status, error.attempts) == (500, 3)
    assert first[0].result is not None
    assert [r.state for r in read_journal(journal)] == ["download_failed"]
    again = await run(client, [swap(0)], journal=journal, download_dir=tmp_path)
    assert (again[0].ok, again[0].resumed) == (True, True)
    assert again[0].path is not None
    assert again[0].sha256 == sha256(again[0].path)
    assert emu.stats.requests["faceswap_plus"] == 1


async def test_resume_downloads_only_missing_files(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """On resume a file still on disk is not fetched again; a deleted one is."""
    journal = tmp_path / "batch.sqlite"
    first = await run(client, [swap(0), swap(1)], journal=journal, download_dir=tmp_path)
    gone = first[1].path
    assert gone is not None
    gone.unlink()
    fetched = emu.stats.requests["result_file"]
    again = await run(client, [swap(0), swap(1)], journal=journal, download_dir=tmp_path)
    assert emu.stats.requests["result_file"] == fetched + 1
    assert [(again[i].path, again[i].sha256) for i in (0, 1)] == [
        (first[i].path, first[i].sha256) for i in (0, 1)
    ]
    assert gone.is_file()


async def test_download_verifies_the_etag(files: str, tmp_path: Path) -> None:
    """A body that does not match its MD5 ETag fails after the retries; nothing is kept."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="MD5") as info:
            await download(session, f"{files}/corrupt.png", tmp_path / "x.png", retry=FAST_RETRY)
    assert info.value.attempts == 3
    assert listing(tmp_path) == []


async def test_download_detects_a_short_body(files: str, tmp_path: Path) -> None:
    """A body cut short of its Content-Length fails after the retries; nothing is kept."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError) as info:
            await download(session, f"{files}/short.mp4", tmp_path / "x.mp4", retry=FAST_RETRY)
    assert info.value.attempts == 3
    assert listing(tmp_path) == []


async def test_download_retries_a_5xx(files: str, tmp_path: Path) -> None:
    """A 503 then a good answer gives the verified file, after one retry."""
    retries: list[int] = []
    async with aiohttp.ClientSession() as session:
        done = await download(
            session,
            f"{files}/flaky.png",
            tmp_path / "x.png",
            retry=FAST_RETRY,
            on_retry=lambda attempt, delay, error: retries.append(attempt),
        )
    assert (retries, done.size, done.path.read_bytes()) == ([1], len(BODY), BODY)
    assert done.sha256 == hashlib.sha256(BODY).hexdigest()


async def test_download_retries_stop_at_max_elapsed(files: str, tmp_path: Path) -> None:
    """The policy's max_elapsed bounds a download's retries, as it does an API call's."""
    patient = RetryPolicy(
        max_attempts=1000, initial_delay=0.05, max_delay=0.05, jitter=False, max_elapsed=0.3
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="MD5") as info:
            await download(session, f"{files}/corrupt.png", tmp_path / "x.png", retry=patient)
    # About 0.3 s of 0.05 s waits: a handful of attempts, far from the 1000 allowed.
    assert 2 <= info.value.attempts <= 10
    assert listing(tmp_path) == []


async def test_download_does_not_retry_a_404(files: str, tmp_path: Path) -> None:
    """A missing file (expired link) fails at once with its status."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError) as info:
            await download(session, f"{files}/gone.png", tmp_path / "x.png", retry=FAST_RETRY)
    assert (info.value.status, info.value.attempts) == (404, 1)


async def test_download_into_a_missing_directory_fails_cleanly(files: str, tmp_path: Path) -> None:
    """A destination that cannot be written is a DownloadError about local I/O."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="cannot write") as info:
            await download(session, f"{files}/good.png", tmp_path / "no" / "x.png")
    assert info.value.reason.startswith("local I/O")


def test_file_names_come_from_the_job_id_and_url() -> None:
    """The file name is the job id plus the URL path's extension, sanitised."""
    assert file_name("abc", "https://cdn.example.com/final/x-1.MP4?sig=1") == "abc.mp4"
    assert file_name("abc", "https://cdn.example.com/final/noext") == "abc"
    assert file_name("a/b", "https://cdn.example.com/x.weird-ext!") == "a_b"

"""A batch that tells the truth after stops, full disks, bans, hangs and tampered files (#16).

Each test counts the emulator's jobs per input: no input is paid twice, no paid job goes
unreported, a graceful stop leaves no false ambiguity, and a resume finishes every
recoverable input. Small local aiohttp servers stand in for result hosts that misbehave in
ways the emulator cannot (a trickle, an HTML page served with 200).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from akool_async import (
    AccountBannedError,
    AmbiguousSubmitError,
    AsyncClient,
    AuthenticationError,
    DownloadError,
    JournalError,
    Outcome,
    PollConfig,
    RetryPolicy,
    SwapResult,
    SwapStatus,
    ValidationError,
    WebhookReceiver,
    WebhookVerifier,
)
from akool_async._jobs._download import download, save_result, sweep_parts
from akool_async._jobs._journal import Journal, read_journal
from akool_async.cli._manifest import read_manifest
from akool_async.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig
from tests._support import FAST_POLL, FAST_RETRY, QUICK_JOBS, swap

pytestmark = pytest.mark.anyio

ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms."""
    return QUICK_JOBS


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client polls every few tens of milliseconds."""
    return FAST_POLL


async def run(client: AsyncClient, n: int, **options: Any) -> dict[int, Outcome[Any]]:
    """Run inputs 0..n-1 to the end; their outcomes by index (exactly one each)."""
    async with client.swap_many([swap(i) for i in range(n)], **options) as batch:
        outcomes = [outcome async for outcome in batch]
    by_index = {outcome.index: outcome for outcome in outcomes}
    assert len(by_index) == len(outcomes) == n
    return by_index


def jobs_per_input(emu: Emulator, n: int) -> list[int]:
    """How many jobs the emulator created for each input."""
    return [emu.stats.jobs_by_target[swap(i).target_url] for i in range(n)]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until something happening in the emulator's handlers is true.

    The emulator has no event for "a request arrived" (it counts them), so this polls.
    """
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def stopped_batch(
    client: AsyncClient, n: int, ready: Callable[[], Awaitable[None]], **options: Any
) -> None:
    """Start a batch of n inputs, wait for ``ready``, then cancel it as Ctrl-C would."""

    async def stop() -> None:
        await ready()
        scope.cancel()

    with anyio.CancelScope() as scope:
        batch = client.swap_many([swap(i) for i in range(n)], **options)
        async with batch, anyio.create_task_group() as tg:
            tg.start_soon(stop)
            async for _ in batch:
                pass


# -- 1. a graceful stop ------------------------------------------------------------------------


async def test_stop_with_submits_in_flight_leaves_no_ambiguity(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """8 submits sent and slow to answer get their grace: the resume re-attaches all 8."""
    journal = tmp_path / "batch.sqlite"
    emu.faults.inject("faceswap_plus", "slow", times=8, delay=0.3)

    async def eight_sent() -> None:
        await until(lambda: emu.stats.requests["faceswap_plus"] >= 8)

    await stopped_batch(client, 8, eight_sent, journal=journal, concurrency=8)
    states = Counter(record.state for record in read_journal(journal))
    outcomes = await run(client, 8, journal=journal)
    # Paced sends answer a few ms apart: a job polled done within the grace is journaled so.
    assert (set(states) <= {"submitted", "succeeded"}, states.total()) == (True, 8)
    assert jobs_per_input(emu, 8) == [1] * 8
    assert [(o.ok, o.resumed) for o in outcomes.values()] == [(True, True)] * 8


async def test_stop_without_grace_is_honestly_ambiguous(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """With cancel_grace=0, submits sent without an answer are ambiguous on resume (<= 1 job)."""
    journal = tmp_path / "batch.sqlite"
    emu.faults.inject("faceswap_plus", "slow", times=4, delay=0.3)

    async def four_sent() -> None:
        await until(lambda: emu.stats.requests["faceswap_plus"] >= 4)

    await stopped_batch(client, 4, four_sent, journal=journal, concurrency=4, cancel_grace=0)
    outcomes = await run(client, 4, journal=journal)
    assert [type(o.error) for o in outcomes.values()] == [AmbiguousSubmitError] * 4
    assert max(jobs_per_input(emu, 4)) <= 1


async def test_stop_while_throttled_marks_submits_unsent(emu: Emulator, tmp_path: Path) -> None:
    """Submits refused with 1005 and waiting in backoff (at the gate) when stopped are unsent."""
    journal = tmp_path / "batch.sqlite"
    slow_gate = RetryPolicy(max_attempts=5, initial_delay=30.0, max_delay=30.0, jitter=False)
    emu.faults.inject("faceswap_plus", "rate_limited", times=8)
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=slow_gate)
    client.poll_config = FAST_POLL
    async with client:

        async def throttled() -> None:
            await until(lambda: client.statistics().throttled >= 8)

        await stopped_batch(client, 8, throttled, journal=journal, concurrency=8)
    states = Counter(record.state for record in read_journal(journal))
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY) as again:
        again.poll_config = FAST_POLL
        outcomes = await run(again, 8, journal=journal)
    assert states == {"unsent": 8}
    assert [o.ok for o in outcomes.values()] == [True] * 8
    assert jobs_per_input(emu, 8) == [1] * 8


async def test_client_closing_mid_submit_gives_the_grace_too(emu: Emulator, tmp_path: Path) -> None:
    """Closing the client while 4 submits await their answer still journals their jobs."""
    journal = tmp_path / "batch.sqlite"
    emu.faults.inject("faceswap_plus", "slow", times=4, delay=0.3)
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY)
    async with client:
        batch = client.swap_many([swap(i) for i in range(4)], journal=journal, concurrency=4)
        await batch.__aenter__()
        await until(lambda: emu.stats.requests["faceswap_plus"] >= 4)
    states = Counter(record.state for record in read_journal(journal))
    await batch.aclose()
    assert (states, jobs_per_input(emu, 4)) == ({"submitted": 4}, [1] * 4)


@pytest.mark.parametrize(
    ("option", "value"),
    [("cancel_grace", -1), ("cancel_grace", float("inf")), ("download_timeout", 0),
     ("ambiguous_wait", "soon")],
)  # fmt: skip
async def test_bad_new_options_are_refused(client: AsyncClient, option: str, value: Any) -> None:
    """A bad cancel_grace, download_timeout or ambiguous_wait is a ValidationError up front."""
    with pytest.raises(ValidationError) as info:
        client.swap_many([swap(0)], **{option: value})
    assert info.value.field == option


# -- 2. a journal that cannot be written --------------------------------------------------------


async def test_journal_failure_after_submit_still_reports_the_job(
    client: AsyncClient,
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk after the submits: each outcome carries its job and a JournalError, logged."""
    update = Journal.update

    async def full_disk(self: Journal, key: str, occurrence: int, state: str, **f: Any) -> None:
        if state == "submitted":
            raise JournalError("journal write failed: database or disk is full")
        await update(self, key, occurrence, state, **f)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "update", full_disk)
    with caplog.at_level(logging.WARNING, logger="akool_async"):
        outcomes = await run(client, 6, journal=tmp_path / "batch.sqlite")
    jobs = {o.job.id for o in outcomes.values() if o.job is not None}
    assert [type(o.error) for o in outcomes.values()] == [JournalError] * 6
    assert (jobs, jobs_per_input(emu, 6)) == (set(emu.jobs), [1] * 6)
    assert all(job in caplog.text for job in jobs)


# -- 3. account-level refusals ------------------------------------------------------------------


async def test_a_ban_stops_admission_and_a_resume_retries(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """After a 1200 nothing more is sent; after the unban a resume submits every input once."""
    journal = tmp_path / "batch.sqlite"
    emu.ban()
    first = await run(client, 10, journal=journal, concurrency=1)
    sent_while_banned = emu.stats.requests["faceswap_plus"]
    emu.ban(False)
    again = await run(client, 10, journal=journal)
    assert [type(o.error) for o in first.values()] == [AccountBannedError] * 10
    assert sent_while_banned == 1
    assert [(o.ok, o.resumed) for o in again.values()] == [(True, False)] * 10
    assert jobs_per_input(emu, 10) == [1] * 10


async def test_a_refused_api_key_stops_admission(emu: Emulator, tmp_path: Path) -> None:
    """With an API key, a 1101 is the account's answer: one submit, the rest never sent."""
    async with AsyncClient(api_key="not-the-key", base_url=emu.base_url, retry=FAST_RETRY) as bad:
        outcomes = await run(bad, 6, journal=tmp_path / "batch.sqlite", concurrency=1)
    states = Counter(record.state for record in read_journal(tmp_path / "batch.sqlite"))
    assert [type(o.error) for o in outcomes.values()] == [AuthenticationError] * 6
    assert (emu.stats.requests["faceswap_plus"], states) == (1, {"unsent": 6})


# -- 4. states that are not final are asked again ------------------------------------------------


def set_rows(journal: Path, sql: str, *args: Any) -> None:
    """Rewrite journal rows as an earlier run that saw a transient state would have left them."""
    with sqlite3.connect(journal) as conn:
        conn.execute(sql, args)
    conn.close()


async def test_not_found_and_url_less_success_are_asked_again(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """Rows left 'not_found' or 'succeeded' without a URL are re-attached, not replayed."""
    journal = tmp_path / "batch.sqlite"
    await run(client, 4, journal=journal)
    set_rows(
        journal,
        "UPDATE intents SET state='not_found', error_type='JobNotFoundError', "
        "error_message='left out' WHERE idx IN (0, 1)",
    )
    set_rows(
        journal,
        "UPDATE intents SET state='download_failed', error_type='DownloadError', "
        "result=json_set(result, '$.url', '') WHERE idx IN (2, 3)",
    )
    polls = emu.stats.requests["list_results"]
    again = await run(client, 4, journal=journal, download_dir=tmp_path / "out")
    assert [(o.ok, o.resumed) for o in again.values()] == [(True, True)] * 4
    assert (jobs_per_input(emu, 4), emu.stats.requests["list_results"] > polls) == ([1] * 4, True)
    assert Counter(r.state for r in read_journal(journal)) == {"succeeded": 4}


# -- 5. result files are verified on resume ------------------------------------------------------


async def test_tampered_files_are_downloaded_again(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A truncated and a zeroed result file are not trusted: downloaded again, verified."""
    journal, out = tmp_path / "batch.sqlite", tmp_path / "out"
    first = await run(client, 3, journal=journal, download_dir=out)
    paths = [first[i].path for i in range(3)]
    assert all(path is not None for path in paths)
    originals = [path.read_bytes() for path in paths if path is not None]
    assert paths[0] is not None
    assert paths[1] is not None
    paths[0].write_bytes(originals[0][:10])
    paths[1].write_bytes(bytes(len(originals[1])))
    downloads = emu.stats.requests["result_file"]
    again = await run(client, 3, journal=journal, download_dir=out)
    assert [o.ok for o in again.values()] == [True] * 3
    assert [p.read_bytes() for p in paths if p is not None] == originals
    assert emu.stats.requests["result_file"] - downloads == 2


async def test_tampered_file_with_an_expired_url_is_a_download_error(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A damaged file whose URL no longer works is a DownloadError, never ok."""
    journal, out = tmp_path / "batch.sqlite", tmp_path / "out"
    first = await run(client, 1, journal=journal, download_dir=out)
    path = first[0].path
    assert path is not None
    path.write_bytes(b"")
    emu.configure(result_ttl=0.0)
    again = await run(client, 1, journal=journal, download_dir=out, download_retry=ONE_TRY)
    assert type(again[0].error) is DownloadError


# -- 6-8. result hosts that misbehave ------------------------------------------------------------


@pytest.fixture
async def bad_host() -> AsyncIterator[str]:
    """A result host that trickles, hangs, or serves an HTML error page with HTTP 200."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] += 1
        if name == "trickle.png":  # one byte every 50 ms, forever
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            while True:
                await response.write(b"x")
                await anyio.sleep(0.05)
        if name == "hang.png":
            await anyio.sleep_forever()
        if name == "page.png" or (name == "page-once.png" and hits[name] == 1):
            return web.Response(text="<html>Access denied</html>", content_type="text/html")
        return web.Response(body=b"\x89PNG result", content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_trickling_host_trips_the_throughput_floor(
    bad_host: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """One byte every 50 ms is below a 100 B/s floor: a DownloadError, no file left behind."""
    with pytest.raises(DownloadError) as info:
        await download(
            http, f"{bad_host}/trickle.png", tmp_path / "r.png", retry=ONE_TRY, min_rate=(100, 0.3)
        )
    assert info.value.reason.startswith("too slow")
    assert sorted([p.name async for p in anyio.Path(tmp_path).iterdir()]) == []


async def test_a_download_has_a_total_timeout(
    bad_host: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A host that never answers ends in a DownloadError once download_timeout passes."""
    result = SwapResult(id="a" * 24, status=SwapStatus.SUCCESS, url=f"{bad_host}/hang.png")
    with pytest.raises(DownloadError) as info:
        await save_result(http, result, tmp_path, total_timeout=0.2)
    assert info.value.reason == "timeout"


async def test_a_hanging_result_host_ends_in_the_batch_and_resumes(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A result download held past download_timeout is a DownloadError; a resume finishes it."""
    journal, out = tmp_path / "batch.sqlite", tmp_path / "out"
    emu.faults.inject("result_file", "slow", times=1, delay=1.0)
    first = await run(client, 1, journal=journal, download_dir=out, download_timeout=0.2)
    again = await run(client, 1, journal=journal, download_dir=out)
    error = first[0].error
    assert (type(error), getattr(error, "reason", None)) == (DownloadError, "timeout")
    assert (again[0].ok, again[0].resumed, jobs_per_input(emu, 1)) == (True, True, [1])


async def test_an_html_page_is_not_a_result(
    bad_host: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """An HTML page served with 200 is retried, then a DownloadError; a later good answer wins."""
    fast = RetryPolicy(max_attempts=2, initial_delay=0.001, jitter=False)
    with pytest.raises(DownloadError) as info:
        await download(http, f"{bad_host}/page.png", tmp_path / "a.png", retry=fast)
    done = await download(http, f"{bad_host}/page-once.png", tmp_path / "b.png", retry=fast)
    reason = "not a media file: Content-Type text/html"
    assert (info.value.reason, info.value.attempts) == (reason, 2)
    assert (done.path.read_bytes(), (tmp_path / "a.png").exists()) == (b"\x89PNG result", False)


async def test_stale_part_files_of_the_batch_are_swept(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A resume removes the .part files a killed run left for its jobs, and only those."""
    journal, out = tmp_path / "batch.sqlite", tmp_path / "out"
    first = await run(client, 2, journal=journal, download_dir=out)
    ids = [o.job.id for o in first.values() if o.job is not None]
    stale = [out / f".{job_id}.png.0badcafe.part" for job_id in ids]
    other = out / f".{'f' * 24}.png.0badcafe.part"
    for path in [*stale, other]:
        path.write_bytes(b"partial")
    await run(client, 2, journal=journal, download_dir=out)
    assert [path.exists() for path in [*stale, other]] == [False, False, True]
    assert sweep_parts(out, ["f" * 24]) == 1


# -- 9. manifests ----------------------------------------------------------------------------------


def test_manifest_lines_split_on_newline_only(tmp_path: Path) -> None:
    """U+2028 and U+0085 inside a JSON string and a form feed line keep every line number."""
    rows = [
        '{"kind": "plus", "source_url": "https://e.com/a.jpg", '
        '"target_url": "https://e.com/t.jpg", "ref": "x\u2028y"}',
        "\f",
        '{"kind": "plus", "source_url": "https://e.com/b.jpg", '
        '"target_url": "https://e.com/u.jpg", "ref": "p\u0085q"}\r',
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    entries = read_manifest(path)
    assert [(e.line, e.ref) for e in entries] == [(1, "x\u2028y"), (3, "p\u0085q")]


# -- webhooks resolve ambiguity --------------------------------------------------------------------


@pytest.fixture
async def receiver(emu: Emulator) -> AsyncIterator[WebhookReceiver]:
    """A receiver verifying with the emulator's key pair and clock."""
    verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=emu.clock.now)
    async with WebhookReceiver(verifier) as receiver:
        yield receiver


async def test_webhook_reference_binds_an_ambiguous_submit_to_its_job(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A submit whose answer was cut after the job was made is bound to it by its callback."""
    journal = tmp_path / "batch.sqlite"
    client.use_webhooks(receiver, url=receiver.url)
    emu.faults.inject("faceswap_plus", "drop_after", times=2)
    async with client.swap_many([swap(i) for i in range(5)], journal=journal) as batch:
        outcomes = {o.index: o async for o in batch}
    stats = batch.statistics()
    records = read_journal(journal)
    assert [o.ok for o in outcomes.values()] == [True] * 5
    assert (stats.resolved, stats.ambiguous, jobs_per_input(emu, 5)) == (2, 0, [1] * 5)
    assert {r.job_id for r in records} == set(emu.jobs)
    assert all("akool_ref=" in (job.webhook_url or "") for job in emu.jobs.values())


async def test_ambiguous_submit_without_a_job_is_reported_after_the_wait(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """An ambiguous submit that made no job stays ambiguous once ambiguous_wait has passed."""
    client.use_webhooks(receiver, url=receiver.url)
    emu.faults.inject("faceswap_plus", "http_500", times=1)
    async with client.swap_many([swap(i) for i in range(3)], ambiguous_wait=0.1) as batch:
        outcomes = {o.index: o async for o in batch}
    errors = Counter(type(o.error).__name__ for o in outcomes.values())
    expected = {"AmbiguousSubmitError": 1, "NoneType": 2}
    assert (errors, jobs_per_input(emu, 3).count(1)) == (expected, 2)


# -- plumbing -----------------------------------------------------------------------------------


def test_a_reference_joins_the_webhook_query() -> None:
    """The reference is added to the URL's query, replacing an earlier one, keeping the rest."""
    from akool_async._ambiguity import with_reference

    url = "https://hooks.example.com/akool?tenant=7&akool_ref=old"
    assert with_reference(url, "abc") == "https://hooks.example.com/akool?tenant=7&akool_ref=abc"


async def test_a_journal_from_before_gains_the_new_columns(tmp_path: Path) -> None:
    """A journal written without the size and ref columns opens, and its rows read back."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "PRAGMA application_id=1095453233; PRAGMA user_version=1;"
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('base_url', 'http://127.0.0.1:1');"
        "CREATE TABLE intents (key TEXT NOT NULL, occurrence INTEGER NOT NULL, idx INTEGER"
        " NOT NULL, kind TEXT NOT NULL, request TEXT NOT NULL, state TEXT NOT NULL, attempts"
        " INTEGER NOT NULL DEFAULT 0, job_id TEXT, job_ref TEXT, media TEXT, job_url TEXT,"
        " status INTEGER, result TEXT, error_type TEXT, error_message TEXT, error_code"
        " INTEGER, path TEXT, sha256 TEXT, updated_at REAL NOT NULL,"
        " PRIMARY KEY (key, occurrence)) WITHOUT ROWID;"
        "INSERT INTO intents (key, occurrence, idx, kind, request, state, updated_at)"
        " VALUES ('k', 0, 0, 'PlusSwap', '{}', 'unsent', 0);"
    )
    conn.close()
    async with Journal(path, base_url="http://127.0.0.1:1") as journal:
        await journal.update("k", 0, "unsent", size=5, ref="r")
    [record] = read_journal(path)
    assert (record.state, record.size, record.ref) == ("unsent", 5, "r")


async def test_a_resume_binds_an_ambiguous_row_by_its_reference(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A callback that came after its batch reported the submit ambiguous binds it on resume."""
    journal = tmp_path / "batch.sqlite"
    client.use_webhooks(receiver, url=receiver.url)
    emu.faults.inject("faceswap_plus", "drop_after", times=1)
    first = await run(client, 2, journal=journal, ambiguous_wait=None)
    await emu.wait_for_webhooks(2)
    again = await run(client, 2, journal=journal)
    assert sorted(type(o.error).__name__ for o in first.values()) == [
        "AmbiguousSubmitError",
        "NoneType",
    ]
    assert [(o.ok, o.resumed) for o in again.values()] == [(True, True)] * 2, [
        repr(o.error) for o in again.values()
    ]
    assert jobs_per_input(emu, 2) == [1, 1]
    assert {r.state for r in read_journal(journal)} == {"succeeded"}

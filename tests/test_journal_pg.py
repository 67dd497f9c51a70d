"""The shared PostgreSQL journal: one batch, many workers, claims under leases, shared throttles."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from akool_async import AsyncClient, JournalError, ValidationError
from akool_async._jobs._journal_pg import PgJournal, read_batch_status
from akool_async._jobs._records import request_key
from akool_async._ratelimit import RateController, RateLimit
from akool_async.testing import Emulator
from tests._support import FAST_POLL, FAST_RETRY, QUICK_JOBS, Cli, swap

pytestmark = pytest.mark.anyio

BASE = "https://openapi.akool.com"


def keys(n: int, start: int = 0) -> list[tuple[str, str, str]]:
    """``(key, text, kind)`` of ``n`` distinct requests, as a batch loads them."""
    return [(*request_key(swap(i)), "PlusSwap") for i in range(start, start + n)]


@pytest.fixture
def batch_id() -> str:
    """A batch name of its own for each test (the server is shared by the session)."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def akool_emulator_config() -> Any:
    """Quick jobs."""
    return QUICK_JOBS


async def drain(journal: PgJournal) -> list[int]:
    """Every index this worker is leased, until the batch needs nobody."""
    got = []
    while (claim := await journal.claim()) is not None:
        got.append(claim.index)
    return got


async def expire(url: str, batch_id: str, worker_id: str) -> None:
    """End a worker's lease now, as if it had died a lease ago."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE akool_journal_workers SET lease_until=0 WHERE batch_id=$1 AND worker_id=$2",
            batch_id,
            worker_id,
        )
    finally:
        await conn.close()


async def rows(url: str, batch_id: str) -> list[Any]:
    """Every intent row of the batch, in input order."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(
            await conn.fetch(
                "SELECT * FROM akool_journal_intents WHERE batch_id=$1 ORDER BY idx", batch_id
            )
        )
    finally:
        await conn.close()


async def test_two_workers_claim_disjoint_inputs(postgres_url: str, batch_id: str) -> None:
    """Two workers on one batch are leased every input exactly once between them."""
    loaded = keys(100)
    async with (
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a,
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as b,
    ):
        await a.load(loaded)
        await b.load(loaded)
        got: dict[str, list[int]] = {}

        async def take(name: str, journal: PgJournal) -> None:
            # Claimed rows stay 'queued' (in flight): mark each one final so the batch ends.
            got[name] = []
            while (claim := await journal.claim()) is not None:
                got[name].append(claim.index)
                key, _, _ = loaded[claim.index]
                await journal.begin_submit(key, 0, index=claim.index, kind="PlusSwap", request="{}")
                await journal.update(key, 0, "succeeded")
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "a", a)
            tg.start_soon(take, "b", b)
    assert list(range(100)) == sorted(got["a"] + got["b"])
    assert dict(Counter(row["state"] for row in await rows(postgres_url, batch_id))) == {
        "succeeded": 100
    }


async def test_a_different_input_is_refused(postgres_url: str, batch_id: str) -> None:
    """A worker whose input differs from the batch's (by digest) gets a JournalError naming it."""
    async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a:
        await a.load(keys(10))
    async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as b:
        with pytest.raises(JournalError, match="different input") as info:
            await b.load(keys(10, start=1))
    assert "same manifest" in str(info.value)


async def test_another_server_is_refused(postgres_url: str, batch_id: str) -> None:
    """A batch started against one API server is refused to a worker against another."""
    async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a:
        await a.load(keys(3))
    async with PgJournal(postgres_url, base_url="http://127.0.0.1:1", batch_id=batch_id) as b:
        with pytest.raises(JournalError, match="runs against"):
            await b.load(keys(3))


async def test_a_dead_workers_requests_go_to_the_survivor(postgres_url: str, batch_id: str) -> None:
    """When a lease expires: unsent requests are resubmittable, sent ones re-attached, and the
    one whose send was in flight is ambiguous, naming the dead worker."""
    loaded = keys(4)
    async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a:
        await a.load(loaded)
        claims = [await a.claim() for _ in range(4)]
        assert [c.index for c in claims if c is not None] == [0, 1, 2, 3]
        k = [key for key, _, _ in loaded]
        await a.begin_submit(k[1], 0, index=1, kind="PlusSwap", request="{}")  # in flight
        await a.begin_submit(k[2], 0, index=2, kind="PlusSwap", request="{}")
        await a.update(k[2], 0, "submitted", job_id="a" * 24, media="image")
        await a.begin_submit(k[3], 0, index=3, kind="PlusSwap", request="{}")
        await a.update(k[3], 0, "succeeded")
        async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as b:
            await b.load(loaded)
            with anyio.fail_after(5):
                assert (await b._claim_some()) == []  # a is alive: nothing to take
            await expire(postgres_url, batch_id, a.worker_id)
            taken = await b._claim_some()
            # a's lease is over: it can no longer start a send for what it held.
            with pytest.raises(JournalError, match="lease"):
                await a.begin_submit(k[0], 0, index=0, kind="PlusSwap", request="{}")
    states = {c.index: (c.record.state if c.record else "queued") for c in taken}
    assert states == {0: "queued", 1: "ambiguous", 2: "submitted"}
    ambiguous = next(c.record for c in taken if c.index == 1)
    assert ambiguous is not None
    assert ambiguous.error_type == "AmbiguousSubmitError"
    assert a.worker_id in (ambiguous.error_message or "")
    by_index = {row["idx"]: row for row in await rows(postgres_url, batch_id)}
    assert a.worker_id == by_index[1]["previous_owner"]
    assert b.worker_id == by_index[1]["owner"]


async def test_a_worker_waits_while_another_holds_work(postgres_url: str, batch_id: str) -> None:
    """A worker with nothing to claim waits while another's requests are in flight, and takes
    them over once that worker's lease ends."""
    loaded = keys(2)
    async with (
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id, lease=0.4) as a,
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id, lease=0.4) as b,
    ):
        await a.load(loaded)
        await b.load(loaded)
        assert [(await a.claim()).index, (await a.claim()).index] == [0, 1]  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            result: list[int] = []

            async def survivor() -> None:
                result.extend(await drain_finishing(b, loaded))

            tg.start_soon(survivor)
            await anyio.sleep(0.3)  # b polls meanwhile: a is alive and holds both
            assert result == []
            a.heartbeat_scope.cancel()  # a's heartbeat stops: "a died"
    assert sorted(result) == [0, 1]


async def drain_finishing(journal: PgJournal, loaded: list[tuple[str, str, str]]) -> list[int]:
    """Claim and finish (state succeeded) every request this worker gets."""
    got = []
    while (claim := await journal.claim()) is not None:
        got.append(claim.index)
        key = loaded[claim.index][0]
        await journal.begin_submit(key, 0, index=claim.index, kind="PlusSwap", request="{}")
        await journal.update(key, 0, "succeeded")
    return got


async def test_throttles_are_shared(postgres_url: str, batch_id: str) -> None:
    """A throttle episode in one worker's rate controller is one in every other worker's: it
    lowers their rates too, without counting as their refusal or being published again."""
    async with (
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a,
        PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as b,
    ):
        await a.load(keys(1))
        await b.load(keys(1))
        shared = anyio.Event()

        class Controller(RateController):
            def throttled_elsewhere(self) -> bool:
                began = super().throttled_elsewhere()
                shared.set()
                return began

        rate_a, rate_b = RateController(RateLimit(rate=50)), Controller(RateLimit(rate=50))
        a.attach_gate(rate_a)
        b.attach_gate(rate_b)
        assert rate_a.refused(rate_a._clock())  # a's own 1005: an episode
        with anyio.fail_after(5):
            await shared.wait()
        status = await read_batch_status(postgres_url, batch_id)
    assert (a.throttles_published, a.throttles_received, b.throttles_received) == (1, 0, 1)
    assert (rate_b.episodes, rate_b.refusals, rate_b.shared_episodes) == (1, 0, 1)
    assert rate_b.rate() < 50
    assert status.throttles == 1


async def test_swap_many_with_two_workers(emu: Emulator, postgres_url: str, batch_id: str) -> None:
    """Two clients running one shared batch give one outcome per request between them, and
    the journal holds every outcome."""
    requests = [swap(i) for i in range(60)]

    async def worker() -> list[int]:
        client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY)
        client.poll_config = FAST_POLL
        async with client:
            batch = client.swap_many(
                requests, journal=postgres_url, batch_id=batch_id, concurrency=8
            )
            async with batch:
                return [outcome.index async for outcome in batch if outcome.ok]

    results: list[list[int]] = []

    async def run() -> None:
        results.append(await worker())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        tg.start_soon(run)
    assert list(range(60)) == sorted(results[0] + results[1])
    assert len(emu.jobs) == 60
    status = await read_batch_status(postgres_url, batch_id)
    assert (dict(status.states), status.finished, len(status.workers)) == ({"succeeded": 60}, 60, 2)
    assert not any(worker.alive for worker in status.workers)  # clean exits end the leases


async def test_an_invalid_request_is_journaled_rejected(
    emu: Emulator, postgres_url: str, batch_id: str
) -> None:
    """Something that is not a swap request gets a ValidationError outcome, journaled rejected."""
    requests: list[Any] = [swap(0), "not a request"]
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY) as c:
        c.poll_config = FAST_POLL
        async with c.swap_many(requests, journal=postgres_url, batch_id=batch_id) as batch:
            outcomes = {o.index: o async for o in batch}
    assert isinstance(outcomes[1].error, ValidationError)
    assert [row["state"] for row in await rows(postgres_url, batch_id)] == ["succeeded", "rejected"]


def test_batch_id_and_journal_go_together() -> None:
    """A shared journal without a batch id, or a batch id without one, is a ValidationError."""
    client = AsyncClient(api_key="k")
    with pytest.raises(ValidationError, match="batch_id"):
        client.swap_many([], journal="postgresql://localhost/x")
    with pytest.raises(ValidationError, match="postgresql"):
        client.swap_many([], journal="journal.sqlite", batch_id="b")
    with pytest.raises(ValidationError, match="unsupported journal URL"):
        client.swap_many([], journal="mysql://localhost/x")


async def test_an_unreachable_database_is_a_journal_error() -> None:
    """A journal URL nobody answers at is a JournalError that does not show the password."""
    journal = PgJournal("postgresql://u:hunter2@127.0.0.1:1/x", base_url=BASE, batch_id="b")
    with pytest.raises(JournalError) as info:
        async with journal:
            pass
    assert "hunter2" not in str(info.value)


def test_cli_refuses_sharing_options_without_a_shared_journal(cli: Cli, tmp_path: Path) -> None:
    """--batch-id without a postgresql:// journal, or one without --batch-id, is a usage error."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"kind": "plus", "source_url": "https://x/a.jpg", "target_url": "https://x/b.jpg"}\n'
    )
    no_db = cli("--api-key", "k", "batch", str(manifest), "--out", str(tmp_path), "--batch-id", "b")
    no_id = cli(
        "--api-key", "k", "batch", str(manifest), "--out", str(tmp_path),
        "--journal", "postgresql://127.0.0.1:1/x",
    )  # fmt: skip
    status = cli("batch", "--status", "--journal", str(tmp_path / "j.sqlite"))
    assert (no_db.code, no_id.code, status.code) == (2, 2, 2)
    assert "needs --journal postgresql://" in no_db.err
    assert "needs --batch-id" in no_id.err
    assert "--status needs" in status.err


async def test_status_of_an_unknown_batch_is_a_journal_error(
    postgres_url: str, batch_id: str
) -> None:
    """Asking for a batch the journal never saw is a JournalError naming it."""
    async with PgJournal(postgres_url, base_url=BASE, batch_id="other-" + batch_id) as journal:
        await journal.load(keys(1))  # the tables exist
    with pytest.raises(JournalError, match=batch_id):
        await read_batch_status(postgres_url, batch_id)


def test_cli_status_shows_the_whole_batch(cli: Cli, postgres_url: str, batch_id: str) -> None:
    """batch --status prints the batch's states and its workers (table and JSON)."""

    async def make() -> None:
        async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id, worker_id="w1") as j:
            await j.load(keys(3))
            claim = await j.claim()
            assert claim is not None
            key = keys(3)[claim.index][0]
            await j.begin_submit(key, 0, index=claim.index, kind="PlusSwap", request="{}")
            await j.update(key, 0, "succeeded")

    anyio.run(make)
    table = cli("batch", "--status", "--journal", postgres_url, "--batch-id", batch_id)
    data = cli("--json", "batch", "--status", "--journal", postgres_url, "--batch-id", batch_id)
    document = json.loads(data.out)
    assert (table.code, data.code) == (0, 0)
    assert (
        document["states"],
        document["total"],
        document["finished"],
    ) == ({"queued": 2, "succeeded": 1}, 3, 1)
    assert [worker["worker_id"] for worker in document["workers"]] == ["w1"]
    assert "w1" in table.out
    assert "succeeded" in table.out


async def test_known_jobs_leave_out_what_live_workers_hold(
    postgres_url: str, batch_id: str
) -> None:
    """Only jobs no live worker holds count as this batch's leftovers (a shared directory's
    downloads in progress are not)."""
    loaded = keys(2)
    async with PgJournal(postgres_url, base_url=BASE, batch_id=batch_id) as a:
        await a.load(loaded)
        for _ in range(2):
            claim = await a.claim()
            assert claim is not None
            key = loaded[claim.index][0]
            await a.begin_submit(key, 0, index=claim.index, kind="PlusSwap", request="{}")
            await a.update(key, 0, "submitted", job_id=f"{claim.index:024x}")
        ids = {f"{n:024x}" for n in range(2)} | {"f" * 24}
        held = await a.known_jobs(ids)
        await expire(postgres_url, batch_id, a.worker_id)
        left = await a.known_jobs(ids)
    assert (set(), {f"{n:024x}" for n in range(2)}) == (held, left)


async def test_a_password_in_the_query_string_is_not_shown() -> None:
    """A DSN's ``?password=`` is masked in the journal's repr and in its errors like user-info's."""
    url = "postgresql://u@127.0.0.1:1/x?sslmode=disable&password=hunter2query"
    journal = PgJournal(url, base_url=BASE, batch_id="b")
    with pytest.raises(JournalError) as info:
        async with journal:
            pass
    with pytest.raises(JournalError) as status:
        await read_batch_status(url, "b")
    shown = [repr(journal), str(info.value), str(status.value)]
    assert ["hunter2query" in text for text in shown] == [False, False, False]


def test_cli_never_prints_a_journal_password(cli: Cli, tmp_path: Path) -> None:
    """A short DSN password (user-info or query) is masked in everything the CLI writes."""
    runs = [
        cli("batch", "--status", "--journal", url, "--batch-id", "b")
        for url in ("postgresql://u:pw9x@127.0.0.1:1/x", "postgresql://127.0.0.1:1/x?password=pw9x")
    ]
    assert [(run.code, "pw9x" in run.out + run.err) for run in runs] == [(1, False), (1, False)]

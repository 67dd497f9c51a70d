"""The SQLite batch journal: durability settings, identity, crash states, locking, refusals."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from akool_async import JournalError, PlusSwap, ValidationError
from akool_async._jobs._journal import APPLICATION_ID, Journal, read_journal
from akool_async._jobs._records import request_key

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
BASE = "https://openapi.akool.com"

#: A process that records a submit intent, says so, and waits to be killed.
CHILD = r"""
import sys, anyio
from akool_async._jobs._journal import Journal

async def main():
    async with Journal(sys.argv[1], base_url="https://openapi.akool.com") as journal:
        await journal.begin_submit("k", 0, index=0, kind="PlusSwap", request="{}")
        print("recorded", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def begin(journal: Journal, key: str, occurrence: int = 0) -> None:
    """Record a submit intent for ``key``."""
    await journal.begin_submit(key, occurrence, index=0, kind="PlusSwap", request="{}")


async def test_new_journal_is_a_wal_database_with_our_id(tmp_path: Path) -> None:
    """A new journal is an SQLite file in WAL mode carrying the journal's application id."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()


async def test_occurrences_count_identical_requests(tmp_path: Path) -> None:
    """admit() numbers identical keys 0, 1, 2... and finds the rows recorded under them."""
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        assert [(await journal.admit("a"))[0] for _ in range(3)] == [0, 1, 2]
        await begin(journal, "a", 1)
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        found = [await journal.admit("a") for _ in range(3)]
    assert [(occurrence, record is not None) for occurrence, record in found] == [
        (0, False),
        (1, True),
        (2, False),
    ]


async def test_interrupted_submit_becomes_ambiguous(tmp_path: Path) -> None:
    """A row left 'submitting' by a previous holder is 'ambiguous' when the journal reopens."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE) as journal:
        await begin(journal, "a")
        await begin(journal, "b")
        await journal.update("b", 0, "submitted", job_id="0" * 24)
    assert {r.key: r.state for r in read_journal(path)} == {"a": "submitting", "b": "submitted"}
    async with Journal(path, base_url=BASE):
        pass
    assert {r.key: r.state for r in read_journal(path)} == {"a": "ambiguous", "b": "submitted"}


async def test_intent_survives_sigkill(tmp_path: Path) -> None:
    """An intent recorded by a process killed with SIGKILL is there (ambiguous) afterwards."""
    path = tmp_path / "j.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with await anyio.open_process([sys.executable, "-c", CHILD, str(path)], env=env) as child:
        assert child.stdout is not None
        with anyio.fail_after(30):
            line = await BufferedByteReceiveStream(child.stdout).receive_until(b"\n", 100)
        assert line == b"recorded"
        with pytest.raises(JournalError, match="in use"):
            async with Journal(path, base_url=BASE):
                pass
        child.kill()
        assert await child.wait() == -9
    async with Journal(path, base_url=BASE) as journal:
        occurrence, record = await journal.admit("k")
    assert record is not None
    assert (occurrence, record.state, record.attempts) == (0, "ambiguous", 1)


async def test_writes_are_group_committed(tmp_path: Path) -> None:
    """Concurrent writes share transactions: far fewer commits than writes."""
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(begin, journal, f"k{i}")
        assert journal.writes == 200
        assert journal.commits < 50
        assert await journal.counts() == {"submitting": 200}


async def test_resubmitting_counts_attempts(tmp_path: Path) -> None:
    """A row submitted again after 'unsent' counts its attempts and forgets the old error."""
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        await journal.record_unsubmitted(
            "k", 0, index=3, kind="PlusSwap", request="{}", state="unsent",
            error_type="RateLimitError", error_message="slow down", error_code=1005,
        )  # fmt: skip
        await begin(journal, "k")
        await journal.update("k", 0, "unsent", error_type="TransportError")
        await begin(journal, "k")
        _, record = await journal.admit("k")
    assert record is not None
    assert (record.state, record.attempts, record.error_type) == ("submitting", 2, None)


async def test_bad_updates_are_refused(tmp_path: Path) -> None:
    """Updating an unknown column or a missing row raises JournalError."""
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        with pytest.raises(JournalError, match="unknown journal columns"):
            await journal.update("k", 0, "submitted", nonsense=1)
        with pytest.raises(JournalError, match="no journal row"):
            await journal.update("k", 0, "submitted", job_id="x")
        await begin(journal, "k")  # the journal still works after a failed transaction


async def test_closed_journal_refuses_work(tmp_path: Path) -> None:
    """A journal used after it was closed raises JournalError."""
    journal = Journal(tmp_path / "j.sqlite", base_url=BASE)
    async with journal:
        pass
    with pytest.raises(JournalError, match="closed"):
        await journal.admit("k")
    with pytest.raises(JournalError, match="only once"):
        await journal.__aenter__()


async def test_second_user_is_refused(tmp_path: Path) -> None:
    """A journal in use by another batch cannot be opened."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE):
        with pytest.raises(JournalError, match="in use"):
            async with Journal(path, base_url=BASE):
                pass
        with pytest.raises(JournalError):
            read_journal(path)


async def test_garbage_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite is refused."""
    path = tmp_path / "j.sqlite"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(JournalError, match="not a usable SQLite database"):
        async with Journal(path, base_url=BASE):
            pass


async def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    """Another application's SQLite database is refused and left untouched."""
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an akool_async journal"):
        async with Journal(path, base_url=BASE):
            pass
    with pytest.raises(JournalError):
        read_journal(path)


async def test_other_server_or_schema_is_refused(tmp_path: Path) -> None:
    """A journal of another base URL, or of another schema version, is refused."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE):
        pass
    with pytest.raises(JournalError, match="belongs to a batch against"):
        async with Journal(path, base_url="http://127.0.0.1:1"):
            pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="schema 99"):
        async with Journal(path, base_url=BASE):
            pass


def test_missing_journal_cannot_be_read(tmp_path: Path) -> None:
    """read_journal on a missing file raises JournalError."""
    with pytest.raises(JournalError, match="no journal"):
        read_journal(tmp_path / "nope.sqlite")


def test_request_key_is_stable_and_ignores_the_webhook() -> None:
    """Equal requests share a key, other requests do not, and webhookUrl does not count."""
    make = functools.partial(PlusSwap, source_url="https://e.com/a.jpg")
    a = request_key(make(target_url="https://e.com/t.jpg"))
    b = request_key(make(target_url="https://e.com/t.jpg", webhook_url="https://h.example.com/"))
    c = request_key(make(target_url="https://e.com/u.jpg"))
    assert a == b != c
    assert a[1].startswith('{"body":{')
    with pytest.raises(ValidationError):
        request_key("not a request")

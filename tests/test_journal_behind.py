"""The journal's cheap paths: admission in memory, rows written behind in order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from akool_async import JournalError
from akool_async._jobs._journal import Journal, JournalState, read_journal

pytestmark = pytest.mark.anyio

BASE = "https://openapi.akool.com"


async def begin(journal: Journal, key: str, occurrence: int = 0) -> None:
    """Record a submit intent for ``key``."""
    await journal.begin_submit(key, occurrence, index=0, kind="PlusSwap", request="{}")


async def test_admitting_new_requests_asks_sqlite_nothing(tmp_path: Path) -> None:
    """A first run's admissions are answered in memory: no operation reaches the writer."""
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        found = [await journal.admit(key) for key in ("a" * 64, "b" * 64, "a" * 64)]
        ops = (journal.writes, journal.commits)
    assert (found, ops) == ([(0, None), (0, None), (1, None)], (0, 0))


async def test_a_row_in_the_file_is_read_at_admission(tmp_path: Path) -> None:
    """A request whose key has a row in the file at open gets that row from admit()."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE) as journal:
        await begin(journal, "c" * 64, 1)
    async with Journal(path, base_url=BASE) as journal:
        found = [await journal.admit("c" * 64) for _ in range(3)]
    states = [
        (occurrence, None if record is None else record.state) for occurrence, record in found
    ]
    assert states == [(0, None), (1, "ambiguous"), (2, None)]


async def test_written_behind_rows_are_applied_in_order(tmp_path: Path) -> None:
    """update_soon() is not waited for, yet its rows are committed in order by close."""
    path = tmp_path / "j.sqlite"
    errors: list[JournalError] = []
    states: tuple[JournalState, ...] = ("submitted", "succeeded")
    async with Journal(path, base_url=BASE) as journal:
        for key in ("k1", "k2"):
            await begin(journal, key)
            for state in states:
                journal.update_soon(key, 0, state, on_error=errors.append, status=3)
    rows = {(r.key, r.state, r.status) for r in read_journal(path)}
    assert (rows, errors) == ({("k1", "succeeded", 3), ("k2", "succeeded", 3)}, [])


async def test_a_written_behind_failure_goes_to_on_error(tmp_path: Path) -> None:
    """A write-behind that fails (no such row) reports a JournalError to its on_error."""
    errors: list[JournalError] = []
    async with Journal(tmp_path / "j.sqlite", base_url=BASE) as journal:
        journal.update_soon("missing", 0, "succeeded", on_error=errors.append)
        await journal.counts()  # queued after it: done once this is
    assert [("no journal row" in str(e), type(e)) for e in errors] == [(True, JournalError)]


async def test_write_behind_refuses_bad_columns_and_a_closed_journal(tmp_path: Path) -> None:
    """Unknown columns and a closed journal raise at once, before anything is queued."""
    journal = Journal(tmp_path / "j.sqlite", base_url=BASE)
    async with journal:
        with pytest.raises(JournalError, match="unknown journal columns"):
            journal.update_soon("k", 0, "succeeded", on_error=print, bogus=1)
    with pytest.raises(JournalError, match="closed"):
        journal.update_soon("k", 0, "succeeded", on_error=print)


async def test_an_older_file_loses_its_state_index(tmp_path: Path) -> None:
    """A journal made with the state index (older versions) no longer has it once opened."""
    path = tmp_path / "j.sqlite"
    async with Journal(path, base_url=BASE) as journal:
        await begin(journal, "k")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE INDEX intents_state ON intents (state)")
    conn.close()
    async with Journal(path, base_url=BASE):
        pass
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert ("intents_state" in names, "intents" in names) == (False, True)

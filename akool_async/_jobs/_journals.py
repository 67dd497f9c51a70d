"""Which journal a batch writes: the interface both backends satisfy, and the choice by name.

``swap_many(journal=...)`` takes a path (the embedded SQLite journal, ``_journal.py``, one
process per file) or a ``postgresql://`` URL (the shared journal, ``_journal_pg.py``, any
number of workers on one named batch). ``BatchRun`` talks to either through
``JournalBackend``: the per-request calls ``begin_submit`` (durable before the send),
``record_unsubmitted``, ``update`` and ``counts``. How requests reach the batch differs:

* SQLite (``claims = False``): the batch reads its input itself and ``admit(key)`` finds the
  row of each request it reads (``(key, occurrence)`` identifies it).
* PostgreSQL (``claims = True``): every worker loads the same input (its digest must match
  the batch's), and a request reaches a worker only by ``claim()``: leased to one worker at a
  time, together with the row that says what is already known about it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from akool_async._errors import ValidationError

from ._journal import Journal, JournalRecord, JournalState

__all__ = [
    "JournalBackend",
    "JournalSpec",
    "is_shared_url",
    "journal_spec",
    "open_journal",
    "url_passwords",
    "without_passwords",
]

#: What ``swap_many(journal=...)`` accepts after validation: a path or a database URL.
JournalSpec = Path | str

_SCHEMES = ("postgresql://", "postgres://")
#: A password in a DSN's query string (libpq and asyncpg take ``?password=...``).
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.I)


class JournalBackend(Protocol):
    """What a batch needs from its journal (``Journal`` and ``PgJournal`` both are one)."""

    #: True when requests come from ``claim()`` (a shared batch), not from reading the input.
    claims: bool
    #: Transactions committed and writes made (the journal's cost, for benchmarks).
    commits: int
    writes: int

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    async def admit(self, key: str) -> tuple[int, JournalRecord | None]: ...

    async def begin_submit(
        self,
        key: str,
        occurrence: int,
        *,
        index: int,
        kind: str,
        request: str,
        ref: str | None = None,
    ) -> None: ...

    async def record_unsubmitted(
        self,
        key: str,
        occurrence: int,
        *,
        index: int,
        kind: str,
        request: str,
        state: JournalState,
        error_type: str | None,
        error_message: str | None,
        error_code: int | None = None,
    ) -> None: ...

    async def update(
        self, key: str, occurrence: int, state: JournalState, **fields: object
    ) -> None: ...

    async def known_jobs(self, job_ids: Collection[str]) -> set[str]: ...

    async def counts(self) -> Mapping[str, int]: ...


def is_shared_url(value: object) -> bool:
    """Whether ``value`` names a PostgreSQL journal (a ``postgresql://`` URL)."""
    return isinstance(value, str) and value.startswith(_SCHEMES)


def url_passwords(url: str) -> list[str]:
    """The passwords a database URL holds: in its user-info and in a ``password=`` parameter."""
    found = [match.group(2) for match in _QUERY_PASSWORD.finditer(url)]
    userinfo, at, _ = url.partition("://")[2].split("?", 1)[0].rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    return [password for password in found if password]


def without_passwords(url: str) -> str:
    """``url`` with every password it holds (user-info, ``?password=``) replaced by ``***``."""
    url = _QUERY_PASSWORD.sub(lambda match: f"{match.group(1)}***", url)
    scheme, sep, rest = url.partition("://")
    location, question, query = rest.partition("?")
    userinfo, at, host = location.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}{question}{query}"


def journal_spec(
    journal: str | os.PathLike[str] | None, batch_id: str | None
) -> JournalSpec | None:
    """Validate ``swap_many``'s ``journal`` and ``batch_id`` together.

    Raises:
        ValidationError: a shared journal without a batch id, a batch id without a shared
            journal, or a batch id that is not 1-200 printable characters.
    """
    if is_shared_url(journal):
        assert isinstance(journal, str)
        if batch_id is None:
            raise ValidationError(
                "a PostgreSQL journal needs batch_id= (the name every worker of the batch uses)",
                field="batch_id",
            )
        if not isinstance(batch_id, str) or not 0 < len(batch_id) <= 200:
            raise ValidationError("must be a string of 1 to 200 characters", field="batch_id")
        if not batch_id.isprintable() or batch_id.strip() != batch_id:
            raise ValidationError(
                "must be printable, without surrounding whitespace", field="batch_id"
            )
        return journal
    if batch_id is not None:
        raise ValidationError(
            "batch_id names a shared batch: it needs journal='postgresql://...'",
            field="batch_id",
        )
    if journal is None:
        return None
    if isinstance(journal, str) and "://" in journal:
        raise ValidationError(
            f"unsupported journal URL {journal.split('://', 1)[0]!r}://: use a file path "
            "(SQLite) or postgresql://",
            field="journal",
        )
    return Path(journal)


def open_journal(
    spec: JournalSpec,
    *,
    base_url: str,
    batch_id: str | None = None,
    lease: float | None = None,
    worker_id: str | None = None,
    resubmit_ambiguous: bool = False,
) -> JournalBackend:
    """The journal ``spec`` names, not yet entered."""
    if isinstance(spec, str) and is_shared_url(spec):
        from ._journal_pg import DEFAULT_LEASE, PgJournal

        assert batch_id is not None
        return PgJournal(
            spec,
            base_url=base_url,
            batch_id=batch_id,
            lease=DEFAULT_LEASE if lease is None else lease,
            worker_id=worker_id,
            resubmit_ambiguous=resubmit_ambiguous,
        )
    return Journal(spec, base_url=base_url)

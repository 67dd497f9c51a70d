"""What a batch left in its folder, as report items: ``.akool-batch.json``, journal, records.

``remember_batch`` writes ``DIR/.akool-batch.json`` (the manifest lines at the start of a batch,
its statistics at the end); ``collect_items`` merges it with the journal (the freshest source:
it wins) and ``report.jsonl`` into one ``ReportItem`` per manifest line. A journal held by a
running batch is locked (``locking_mode=EXCLUSIVE``), so it is then read from a copy of its
files, taken again if either file changed while being copied.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import attrs

from ._errors import JournalError, ValidationError
from ._jobs._journal import JournalRecord, read_journal

__all__ = [
    "BATCH_FILE",
    "IMAGE_SUFFIXES",
    "STATES",
    "VIDEO_SUFFIXES",
    "ReportItem",
    "State",
    "collect_items",
    "guess_media",
    "remember_batch",
]

#: What a batch writes for its report: the manifest lines, then its statistics.
BATCH_FILE: Final = ".akool-batch.json"
_DEFAULT_JOURNAL: Final = ".akool-journal.sqlite"

State = Literal["succeeded", "failed", "ambiguous", "error", "running", "pending"]
#: Report states in display order.
STATES: Final[tuple[State, ...]] = (
    "succeeded",
    "failed",
    "ambiguous",
    "error",
    "running",
    "pending",
)
_JOURNAL_STATES: Final[Mapping[str, State]] = {
    "succeeded": "succeeded",
    "failed": "failed",
    "ambiguous": "ambiguous",
    "submitting": "running",
    "submitted": "running",
    "rejected": "error",
    "timed_out": "error",
    "not_found": "error",
    "download_failed": "error",
}
_KINDS: Final[Mapping[str, str]] = {
    "PlusSwap": "plus",
    "ProSwap": "pro",
    "ImageSwap": "image",
    "VideoSwap": "video",
}
VIDEO_SUFFIXES: Final = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")
IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


@attrs.define(kw_only=True)
class ReportItem:
    """One card of the gallery: one manifest line and what became of it."""

    index: int
    line: int | None = None
    ref: str | None = None
    kind: str = "?"
    media: str = "image"
    request: dict[str, Any] | None = None
    state: State = "pending"
    detail: str | None = None
    id: str | None = None
    """The job's record ``_id`` (what ``status``, ``wait`` and ``delete`` take)."""
    job_id: str | None = None
    """AKOOL's own job id."""
    result_url: str | None = None
    file: str | None = None
    sha256: str | None = None
    finished_at: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_code: int | None = None
    resumed: bool = False

    @property
    def sources(self) -> list[str]:
        """The new faces' URLs."""
        body = self.request or {}
        if "source_url" in body:
            return [str(body["source_url"])]
        return [str(face.get("path")) for face in body.get("sourceImage") or () if face]

    @property
    def targets(self) -> list[str]:
        """The media swapped into (the image or video changed)."""
        body = self.request or {}
        for name in ("target_url", "modifyImage", "modifyVideo"):
            if body.get(name):
                return [str(body[name])]
        return [str(face.get("path")) for face in body.get("targetImage") or () if face]


def _wire_body(canonical: str) -> dict[str, Any] | None:
    """The wire body inside a journal's canonical request JSON."""
    try:
        value = json.loads(canonical)
    except ValueError:
        return None
    body = value.get("body") if isinstance(value, dict) else None
    return body if isinstance(body, dict) else None


def guess_media(url: str | None) -> str:
    path = urlsplit(url or "").path.lower()
    return "video" if path.endswith(VIDEO_SUFFIXES) else "image"


def remember_batch(
    directory: str | os.PathLike[str],
    entries: Sequence[Any],
    *,
    journal: str | os.PathLike[str] | None = None,
    statistics: Any = None,
    seconds: float | None = None,
) -> Path:
    """Write ``DIR/.akool-batch.json``: the manifest lines and (at the end) the statistics.

    Args:
        directory: The batch's output directory.
        entries: Its ``ManifestEntry`` values, in input order.
        journal: The journal path, when not the default one.
        statistics: The final ``BatchStatistics``, once the batch is over.
        seconds: The batch's wall time, once over.
    """
    from ._jobs._records import request_key

    directory = Path(directory)
    lines = []
    for index, entry in enumerate(entries):
        _, canonical = request_key(entry.request)
        lines.append(
            {
                "index": index,
                "line": entry.line,
                "ref": entry.ref,
                "kind": entry.kind,
                "media": str(getattr(entry.request.media, "value", entry.request.media)),
                "request": _wire_body(canonical),
            }
        )
    path = directory / BATCH_FILE
    now = time.time()
    started = now
    if statistics is not None:  # the end of a batch: keep when it started
        earlier = _read_json_file(path)
        if isinstance(earlier, dict) and isinstance(earlier.get("started_at"), float):
            started = earlier["started_at"]
    document: dict[str, Any] = {
        "version": 1,
        "entries": lines,
        "started_at": started,
        "written_at": now,
    }
    if journal is not None and Path(journal) != directory / _DEFAULT_JOURNAL:
        document["journal"] = str(Path(journal).resolve())
    if statistics is not None:
        document["statistics"] = {
            "succeeded": statistics.succeeded,
            "failed": statistics.failed,
            "errored": statistics.errored,
            "ambiguous": statistics.ambiguous,
            "resumed": statistics.resumed,
            "credits_used": statistics.credits_used,
            "submits": statistics.submits,
            "retries": statistics.retries,
            "throttles": statistics.throttles,
            "seconds": seconds if seconds is not None else statistics.elapsed,
        }
    directory.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    os.replace(temp, path)
    return path


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return records
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def _snapshot_journal(path: Path) -> list[JournalRecord]:
    """The journal's rows; a journal held by a running batch is read from a fresh copy."""
    try:
        return read_journal(path)
    except JournalError:
        if not path.is_file():
            raise
    files = [path, path.with_name(path.name + "-wal")]
    for _ in range(10):
        before = [(f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else None for f in files]
        with tempfile.TemporaryDirectory(prefix="akool-report-") as temp:
            copy = Path(temp) / path.name
            for source in files:
                if source.exists():
                    shutil.copyfile(source, Path(temp) / source.name)
            after = [
                (f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else None for f in files
            ]
            if before != after:
                continue  # written while copied: try again
            try:
                return read_journal(copy)
            except JournalError:
                continue
    raise JournalError(f"journal {str(path)!r} kept changing while it was read; try again")


def collect_items(
    directory: str | os.PathLike[str],
    *,
    journal: str | os.PathLike[str] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[ReportItem], dict[str, Any]]:
    """Every swap of the batch in ``directory`` as a ``ReportItem``, and the batch's summary.

    Reads ``DIR/.akool-batch.json``, the journal (``journal``, else the one the batch file
    names, else ``DIR/.akool-journal.sqlite``, if present) and the records (``records``, else
    ``DIR/report.jsonl``, if present).

    Raises:
        ValidationError: ``directory`` holds nothing of a batch.
        JournalError: the ``journal`` given is missing, or a journal cannot be read.
    """
    directory = Path(directory)
    batch = _read_json_file(directory / BATCH_FILE)
    batch = batch if isinstance(batch, dict) else {}
    if journal is None:
        recorded = batch.get("journal")
        journal = recorded if recorded and Path(recorded).is_file() else None
        journal = journal or directory / _DEFAULT_JOURNAL
    elif not Path(journal).is_file():
        raise JournalError(f"no journal at {str(journal)!r}")
    journal_path = Path(journal)
    if records is None:
        records = _read_records(directory / "report.jsonl")
    items: dict[int, ReportItem] = {}
    for entry in batch.get("entries") or ():
        index = int(entry["index"])
        items[index] = ReportItem(
            index=index,
            line=entry.get("line"),
            ref=entry.get("ref"),
            kind=str(entry.get("kind") or "?"),
            media=str(entry.get("media") or "image"),
            request=entry.get("request"),
        )
    by_line: dict[object, ReportItem] = {
        item.line: item for item in items.values() if item.line is not None
    }
    for position, record in enumerate(records):
        item = by_line.get(record.get("line"))
        if item is None:
            index = len(items) if position in items else position
            item = items[index] = ReportItem(index=index, line=record.get("line"))
        _apply_record(item, record)
    rows = _snapshot_journal(journal_path) if journal_path.is_file() else []
    for row in rows:
        item = items.get(row.index)
        if item is None:
            item = items[row.index] = ReportItem(index=row.index)
        _apply_row(item, row)
    if not items:
        raise ValidationError(
            f"{str(directory)!r} holds no batch: no {BATCH_FILE}, report.jsonl or journal",
            field="directory",
        )
    summary: dict[str, Any] = {"statistics": batch.get("statistics")}
    updated = [row.updated_at for row in rows]
    started = batch.get("started_at")
    if rows:
        summary["first_update"] = min(updated)
        summary["last_update"] = max(updated)
    if started is not None:
        summary["started_at"] = started
    return [items[index] for index in sorted(items)], summary


def _apply_record(item: ReportItem, record: Mapping[str, Any]) -> None:
    item.ref = record.get("ref", item.ref)
    item.kind = str(record.get("kind") or item.kind)
    status = record.get("status")
    error_type = record.get("error_type")
    if status == "ok":
        item.state = "succeeded"
    elif status == "failed":
        item.state = "failed"
    elif error_type == "AmbiguousSubmitError":
        item.state = "ambiguous"
    elif status == "error":
        item.state = "error"
    item.detail = status
    item.id = record.get("id")
    item.job_id = record.get("job_id")
    item.result_url = record.get("result_url")
    item.file = record.get("file")
    item.sha256 = record.get("sha256")
    item.error_type = error_type
    item.error_message = record.get("error_message")
    item.resumed = bool(record.get("resumed"))
    if item.result_url and item.media == "image" and item.request is None:
        item.media = guess_media(item.result_url)


def _apply_row(item: ReportItem, row: JournalRecord) -> None:
    item.kind = _KINDS.get(row.kind, item.kind) if item.kind == "?" else item.kind
    if item.request is None:
        item.request = _wire_body(row.request)
    if row.media:
        item.media = row.media
    state = _JOURNAL_STATES.get(row.state)
    if state is None:  # unsent: refused before reaching AKOOL, resubmitted on resume
        state = "error" if row.error_type else "pending"
    item.state = state
    item.detail = row.state
    item.id = row.job_id or item.id  # the journal's job_id column is the record _id
    item.job_id = row.job_ref or item.job_id
    item.error_type = row.error_type
    item.error_message = row.error_message
    item.error_code = row.error_code
    item.file = row.path or item.file
    item.sha256 = row.sha256 or item.sha256
    if row.state in ("succeeded", "download_failed", "failed", "not_found", "timed_out"):
        item.finished_at = row.updated_at
    if row.result:
        try:
            result = json.loads(row.result)
        except ValueError:
            result = {}
        if result.get("faceswap_status") == 3 and result.get("url"):
            item.result_url = result["url"]
        created = result.get("createdAt")
        if isinstance(created, str):
            try:
                parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                item.finished_at = parsed.timestamp()
            except ValueError:
                pass

"""The HTML gallery of a batch: ``DIR/report.html``, rebuilt from what the batch left in ``DIR``.

A batch run by ``akool-async batch --out DIR`` leaves:

- ``DIR/.akool-batch.json`` (written here, at the start and at the end): every manifest line
  (its number, ``ref``, kind, media and wire body), so a report made mid-batch knows the swaps
  that have no journal row yet; at the end also the batch's statistics (credits, time);
- the journal (default ``DIR/.akool-journal.sqlite``): each swap's state, job, result, error,
  file and SHA-256, as they happen;
- ``DIR/report.jsonl`` at the end, and the downloaded result files.

``write_report_html`` merges them (the journal wins, being the freshest) into one
self-contained page: inline CSS and JS, the data as inline JSON, nothing fetched from anywhere
but the folder itself (``file://`` and offline work). A journal held by a running batch is
locked (``locking_mode=EXCLUSIVE``), so mid-batch it is read from a copy of its files, taken
again if either file changed while being copied.

Thumbnails (``DIR/report-files/``) need Pillow (``pip install 'akool-async[report]'``): made
one at a time in one worker thread, JPEGs decoded at reduced size (``Image.draft``), so memory
stays bounded whatever the size of the batch or its images; each is made once and reused by
later rebuilds. Without Pillow the page shows the full images, lazily loaded.

The page is meant to be shared, so nothing secret goes in it: no API key, token or client
secret (``secrets`` are scrubbed from every string), URL user-info and credential-looking query
parameters (``X-Amz-Signature``, ``token``...) are masked, and a signed input URL is never used
as an image source.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import attrs

from ._errors import JournalError, ValidationError
from ._journal import JournalRecord, read_journal

__all__ = [
    "BATCH_FILE",
    "finish_batch_report",
    "REPORT_FILES",
    "ReportItem",
    "collect_items",
    "redact_url",
    "remember_batch",
    "write_report_html",
]

#: What a batch writes for its report: the manifest lines, then its statistics.
BATCH_FILE: Final = ".akool-batch.json"
_DEFAULT_JOURNAL: Final = ".akool-journal.sqlite"
#: Where thumbnails and fetched inputs go, next to ``report.html``.
REPORT_FILES: Final = "report-files"
#: How long AKOOL keeps a result (the API documentation: 7 days).
RESULT_LIFETIME: Final = timedelta(days=7)
THUMB_SIZE: Final = 320
#: Inputs larger than this are not fetched for the report.
FETCH_LIMIT: Final = 50 * 1024 * 1024
#: Images with more pixels than this get no thumbnail (a decompression bomb guard).
MAX_PIXELS: Final = 120_000_000

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
_VIDEO_SUFFIXES: Final = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")
_IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
_SECRET_PARAM: Final = re.compile(
    r"(sig|signature|token|secret|key|password|passwd|credential|auth|session|policy)", re.I
)
_SECRET_TEXT: Final = re.compile(
    r"(?i)(\bbearer)(\s+)([\w.~+/=-]{8,})"
    r"|\b(x-api-key|authorization|api[_-]?key|client[_-]?secret|(?:access[_-]?)?token)"
    r"(\s*[:=]\s*)((?:bearer\s+)?[^\s,;'\")]+)"
)
_URL_IN_TEXT: Final = re.compile(r"https?://[^\s'\"<>]+")


# --------------------------------------------------------------------------------------------
# Secrets


def redact_url(url: str) -> str:
    """``url`` with its user-info and credential-looking query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(name, "***" if _SECRET_PARAM.search(name) else value) for name, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _is_signed(url: str) -> bool:
    """Whether ``url`` carries credentials (user-info or a credential query parameter)."""
    return redact_url(url) != url


class _Scrubber:
    """Removes known secrets, credential-looking assignments and URL credentials from text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _SECRET_TEXT.sub(_mask_assignment, text)
        return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

    def data(self, value: Any) -> Any:
        """A JSON value with every string scrubbed."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        return value


def _mask_assignment(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)}{match.group(2)}***"
    return f"{match.group(4)}{match.group(5)}***"


def _environment_secrets() -> list[str]:
    names = ("AKOOL_API_KEY", "AKOOL_CLIENT_SECRET", "AKOOL_CLIENT_ID", "AKOOL_TOKEN")
    return [os.environ[name] for name in names if os.environ.get(name)]


# --------------------------------------------------------------------------------------------
# What the batch left


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
    job_id: str | None = None
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


def _guess_media(url: str | None) -> str:
    path = urlsplit(url or "").path.lower()
    return "video" if path.endswith(_VIDEO_SUFFIXES) else "image"


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
    from ._records import request_key

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
    document: dict[str, Any] = {"version": 1, "entries": lines, "written_at": time.time()}
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
    path = directory / BATCH_FILE
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
        JournalError: the journal exists but cannot be read.
    """
    directory = Path(directory)
    batch = _read_json_file(directory / BATCH_FILE)
    batch = batch if isinstance(batch, dict) else {}
    if journal is None:
        recorded = batch.get("journal")
        journal = recorded if recorded and Path(recorded).is_file() else None
        journal = journal or directory / _DEFAULT_JOURNAL
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
    item.job_id = record.get("job_id")
    item.result_url = record.get("result_url")
    item.file = record.get("file")
    item.sha256 = record.get("sha256")
    item.error_type = error_type
    item.error_message = record.get("error_message")
    item.resumed = bool(record.get("resumed"))
    if item.result_url and item.media == "image" and item.request is None:
        item.media = _guess_media(item.result_url)


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
    item.job_id = row.job_id or item.job_id
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


# --------------------------------------------------------------------------------------------
# Thumbnails and fetched inputs


class _Thumbnailer:
    """Makes ``report-files/t-<hash>.jpg`` thumbnails one at a time (None without Pillow)."""

    def __init__(self, files_dir: Path, *, enabled: bool) -> None:
        self.files_dir = files_dir
        self.image: Any = None
        if enabled:
            try:
                from PIL import Image
            except ImportError:
                self.image = None
            else:
                self.image = Image
        self.made = 0
        self.reused = 0
        self.used: set[Path] = set()

    @property
    def available(self) -> bool:
        return self.image is not None

    def __call__(self, source: Path) -> Path | None:
        """The thumbnail of an image file (made if missing), or None if it cannot be made."""
        if self.image is None or source.suffix.lower() not in _IMAGE_SUFFIXES:
            return None
        try:
            stat = source.stat()
        except OSError:
            return None
        tag = f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        name = "t-" + hashlib.sha256(tag.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        target = self.files_dir / f"{name}.jpg"
        if target.exists():
            self.reused += 1
            self.used.add(target)
            return target
        Image = self.image
        try:
            with Image.open(source) as img:
                if img.width * img.height > MAX_PIXELS:
                    return None
                # JPEG: decode straight at (at least) twice the thumbnail size, not in full.
                img.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))
                img.thumbnail((THUMB_SIZE, THUMB_SIZE))
                rgb = img.convert("RGB")
            self.files_dir.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.tmp")
            rgb.save(temp, "JPEG", quality=80, optimize=True)
            os.replace(temp, target)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        self.made += 1
        self.used.add(target)
        return target

    def prune(self, keep: Iterable[Path]) -> None:
        """Delete report files of earlier builds that this one no longer uses."""
        if not self.files_dir.is_dir():
            return
        wanted = {path.name for path in (*self.used, *keep)}
        for path in self.files_dir.iterdir():
            if path.name.startswith(("t-", "i-")) and path.name not in wanted:
                path.unlink(missing_ok=True)


async def _fetch_inputs(urls: Iterable[str], files_dir: Path) -> dict[str, Path]:
    """Download each http(s) input once into ``report-files/`` (cached by URL hash)."""
    import aiohttp

    wanted = sorted({url for url in urls if url.startswith(("http://", "https://"))})
    fetched: dict[str, Path] = {}
    await anyio.Path(files_dir).mkdir(parents=True, exist_ok=True)
    limiter = anyio.CapacityLimiter(8)
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        suffix = Path(urlsplit(url).path).suffix.lower()
        suffix = suffix if suffix in _IMAGE_SUFFIXES + _VIDEO_SUFFIXES else ".bin"
        target = files_dir / f"i-{hashlib.sha256(url.encode()).hexdigest()[:24]}{suffix}"
        if await anyio.Path(target).exists():
            fetched[url] = target
            return
        async with limiter:
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        return
                    data = bytearray()
                    async for chunk in response.content.iter_chunked(1 << 16):
                        data += chunk
                        if len(data) > FETCH_LIMIT:
                            return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return
        temp = target.with_name(f".{target.name}.tmp")
        await anyio.Path(temp).write_bytes(bytes(data))
        os.replace(temp, target)
        fetched[url] = target

    async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as tg:
        for url in wanted:
            tg.start_soon(one, session, url)
    return fetched


# --------------------------------------------------------------------------------------------
# The page


def _href(path: Path, base: Path) -> str:
    """``path`` as a relative URL from ``base`` (the page's folder)."""
    from urllib.parse import quote

    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return path.resolve().as_uri()
    return quote(relative.replace(os.sep, "/"))


def _media_entry(
    url: str,
    *,
    base: Path,
    inputs: str,
    fetched: Mapping[str, Path],
    thumb: _Thumbnailer,
    scrub: _Scrubber,
) -> dict[str, Any]:
    """One input picture: its (masked) URL, and what the page may load for it."""
    entry: dict[str, Any] = {"u": scrub(url), "v": _guess_media(url) == "video"}
    local: Path | None = fetched.get(url)
    if local is None and not url.startswith(("http://", "https://", "data:")):
        candidate = Path(url[7:] if url.startswith("file://") else url)
        local = candidate if candidate.is_file() else None
    if local is not None:
        entry["s"] = _href(local, base)
        small = thumb(local)
        if small is not None:
            entry["t"] = _href(small, base)
    elif inputs == "link" and url.startswith(("http://", "https://")) and not _is_signed(url):
        entry["s"] = url
    return entry


def _card(
    item: ReportItem,
    *,
    base: Path,
    inputs: str,
    fetched: Mapping[str, Path],
    thumb: _Thumbnailer,
    scrub: _Scrubber,
    now: float,
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "i": item.index,
        "l": item.line,
        "r": scrub(item.ref),
        "k": item.kind,
        "m": item.media,
        "s": item.state,
        "d": item.detail,
        "j": item.job_id,
        "src": [
            _media_entry(u, base=base, inputs=inputs, fetched=fetched, thumb=thumb, scrub=scrub)
            for u in item.sources
        ],
        "tgt": [
            _media_entry(u, base=base, inputs=inputs, fetched=fetched, thumb=thumb, scrub=scrub)
            for u in item.targets
        ],
    }
    result: dict[str, Any] = {}
    if item.file:
        path = Path(item.file)
        if path.is_file():
            result["f"] = _href(path, base)
            result["v"] = path.suffix.lower() in _VIDEO_SUFFIXES
            small = thumb(path)
            if small is not None:
                result["t"] = _href(small, base)
            if item.finished_at is None:
                item.finished_at = path.stat().st_mtime
    if item.result_url:
        result["u"] = scrub(item.result_url)
        result.setdefault("v", _guess_media(item.result_url) == "video")
        if item.finished_at is not None:
            expires = item.finished_at + RESULT_LIFETIME.total_seconds()
            result["x"] = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
            result["xp"] = now >= expires
        if "f" not in result and not result.get("xp") and not _is_signed(item.result_url):
            result["f"] = item.result_url  # no local copy: the live URL, while it lasts
    if result:
        card["res"] = result
    if item.sha256:
        card["h"] = item.sha256
    if item.error_type or item.error_message:
        card["e"] = scrub(item.error_type)
        card["em"] = scrub(item.error_message)
        if item.error_code is not None:
            card["ec"] = item.error_code
    if item.state == "ambiguous":
        card["hint"] = (
            "the submit may or may not have reached AKOOL: check the dashboard, or re-run "
            "with --resubmit-ambiguous (it may be paid twice)"
        )
    if item.resumed:
        card["rs"] = 1
    if item.request is not None:
        card["q"] = scrub.data(item.request)
    return card


def _summary_rows(
    items: Sequence[ReportItem], summary: Mapping[str, Any], now: float
) -> list[tuple[str, str]]:
    stats = summary.get("statistics") or {}
    finished = sum(1 for item in items if item.state not in ("running", "pending"))
    seconds = stats.get("seconds")
    if seconds is None and "first_update" in summary:
        start = summary.get("started_at") or summary["first_update"]
        seconds = max(summary["last_update"] - start, 0.0)
    credits = stats.get("credits_used")
    rows = [
        ("swaps", f"{len(items):,}"),
        ("finished", f"{finished:,}"),
        ("credits used", "unknown" if credits is None else f"{credits:,g}"),
        ("time", "unknown" if seconds is None else f"{seconds:,.1f} s"),
        (
            "rate",
            "unknown" if not seconds else f"{finished / seconds:,.2f} swaps/s",
        ),
        ("built", datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    if not stats:
        rows.append(("batch", "in progress, or its statistics were not recorded"))
    return rows


def render_page(
    cards: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
    rows: Sequence[tuple[str, str]],
    *,
    title: str,
    thumbnails: bool,
) -> str:
    """The whole page as one string."""
    from ._report_page import CSP, PAGE

    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    state_cells = "".join(
        f'<div class="stat st-{state}"><b data-count="{state}">{counts.get(state, 0):,}</b>'
        f"<span>{state}</span></div>"
        for state in STATES
    )
    info = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    data = json.dumps(
        {"cards": list(cards), "thumbs": thumbnails}, ensure_ascii=False, separators=(",", ":")
    )
    # Inside <script>, "</" could end the element early and "<!--" open a comment.
    data = data.replace("<", "\\u003c")
    return (
        PAGE.replace("{{CSP}}", CSP)
        .replace("{{TITLE}}", esc(title))
        .replace("{{STATS}}", state_cells)
        .replace("{{INFO}}", info)
        .replace("{{DATA}}", data)
    )


def _build(
    directory: Path,
    items: list[ReportItem],
    summary: dict[str, Any],
    *,
    output: Path,
    inputs: str,
    fetched: Mapping[str, Path],
    thumbnails: bool,
    secrets: Sequence[str],
) -> Path:
    base = output.parent
    thumb = _Thumbnailer(base / REPORT_FILES, enabled=thumbnails)
    scrub = _Scrubber([*secrets, *_environment_secrets()])
    now = time.time()
    cards = [
        _card(item, base=base, inputs=inputs, fetched=fetched, thumb=thumb, scrub=scrub, now=now)
        for item in items
    ]
    counts: Counter[str] = Counter(item.state for item in items)
    page = render_page(
        cards,
        counts,
        _summary_rows(items, summary, now),
        title=f"akool-async batch: {directory.resolve().name}",
        thumbnails=thumb.available,
    )
    page = scrub(page) or ""
    if thumb.available:  # without Pillow, thumbnails made earlier are left alone
        thumb.prune(fetched.values())
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    os.replace(temp, output)
    return output


async def write_report_html(
    directory: str | os.PathLike[str],
    *,
    journal: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    thumbnails: bool = True,
    inputs: Literal["link", "fetch", "none"] = "link",
    secrets: Sequence[str] = (),
) -> Path:
    """Build the HTML gallery of the batch in ``directory`` (default ``DIR/report.html``).

    Works at any time, also while the batch runs: swaps without an outcome yet show as
    ``running`` or ``pending``.

    Args:
        directory: The batch's ``--out`` directory.
        journal: The batch journal (default: the one the batch used, if any).
        output: Where the page goes (default ``DIR/report.html``).
        records: The batch's report records (default: ``DIR/report.jsonl`` if present).
        thumbnails: Make thumbnails with Pillow (the ``report`` extra), when it is installed.
        inputs: How source and target pictures appear: ``"link"`` loads them from their URLs
            (never a signed one), ``"fetch"`` downloads them into ``DIR/report-files/`` now
            so the page needs nothing outside its folder, ``"none"`` shows only their URLs.
        secrets: Strings that must not appear in the page (API key, token...); the AKOOL_*
            credentials of the environment are always scrubbed.

    Returns:
        The path of the page.

    Raises:
        ValidationError: ``directory`` holds no batch, or ``inputs`` is unknown.
        JournalError: the journal cannot be read.
    """
    if inputs not in ("link", "fetch", "none"):
        raise ValidationError(
            f"inputs must be 'link', 'fetch' or 'none', not {inputs!r}", field="inputs"
        )
    directory = Path(directory)
    target = Path(output) if output is not None else directory / "report.html"
    items, summary = await anyio.to_thread.run_sync(
        lambda: collect_items(directory, journal=journal, records=records)
    )
    fetched: dict[str, Path] = {}
    if inputs == "fetch":
        urls = [url for item in items for url in (*item.sources, *item.targets)]
        fetched = await _fetch_inputs(urls, target.parent / REPORT_FILES)
    return await anyio.to_thread.run_sync(
        lambda: _build(
            directory,
            items,
            summary,
            output=target,
            inputs=inputs,
            fetched=fetched,
            thumbnails=thumbnails,
            secrets=secrets,
        )
    )


async def finish_batch_report(
    directory: str | os.PathLike[str],
    entries: Sequence[Any],
    result: Any,
    *,
    journal: str | os.PathLike[str] | None = None,
    inputs: Literal["link", "fetch", "none"] = "link",
    secrets: Sequence[str] = (),
) -> Path:
    """At the end of a CLI batch: record its statistics, then build ``DIR/report.html``."""
    directory = Path(directory)
    await anyio.to_thread.run_sync(
        lambda: remember_batch(
            directory,
            entries,
            journal=journal,
            statistics=result.statistics,
            seconds=result.seconds,
        )
    )
    return await write_report_html(
        directory, journal=journal, records=result.records, inputs=inputs, secrets=secrets
    )

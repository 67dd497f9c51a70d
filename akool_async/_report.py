"""The HTML gallery of a batch: ``DIR/report.html``, rebuilt from what the batch left in ``DIR``.

A batch run by ``akool-async batch --out DIR`` leaves:

- ``DIR/.akool-batch.json`` (written here, at the start and at the end): every manifest line
  (its number, ``ref``, kind, media and wire body), so a report made mid-batch knows the swaps
  that have no journal row yet; at the end also the batch's statistics (credits, time);
- the journal (default ``DIR/.akool-journal.sqlite``): each swap's state, job, result, error,
  file and SHA-256, as they happen;
- ``DIR/report.jsonl`` at the end, and the downloaded result files.

``write_report_html`` merges them (the journal wins, being the freshest) into one
self-contained page: inline CSS and JS, the data as inline JSON, nothing loaded from anywhere
but the folder itself (``file://`` and offline work), except with ``inputs="link"`` (the
default) the inputs' own URLs (and live result URLs without a local copy); with
``inputs="fetch"`` or ``"none"`` its Content-Security-Policy forbids the browser any other
source. A journal held by a running batch is
locked (``locking_mode=EXCLUSIVE``), so mid-batch it is read from a copy of its files, taken
again if either file changed while being copied.

Thumbnails (``DIR/report-files/``) need Pillow (``pip install '.[report]'`` in a checkout, or
``pip install Pillow``): made one at a time in one worker thread, JPEGs decoded at reduced size
(``Image.draft``), so memory stays bounded whatever the size of the batch or its images; each
is made once and reused by later rebuilds. Without Pillow the page shows the full images,
lazily loaded.

The page is meant to be shared, so nothing secret goes in it: no API key, token or client
secret (``secrets`` are scrubbed from every string), URL user-info and credential-looking query
parameters (``X-Amz-Signature``, ``token``...) are masked, and a signed input URL is never used
as an image source.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio

from ._errors import ValidationError
from ._redact import redact
from ._report_data import (
    BATCH_FILE,
    STATES,
    VIDEO_SUFFIXES,
    ReportItem,
    collect_items,
    guess_media,
    remember_batch,
)
from ._report_media import Thumbnailer, cached_inputs, fetch_inputs

__all__ = [
    "BATCH_FILE",
    "REPORT_FILES",
    "ReportItem",
    "collect_items",
    "redact_url",
    "remember_batch",
    "write_report_html",
]

#: Where thumbnails and fetched inputs go, next to ``report.html``.
REPORT_FILES: Final = "report-files"
#: How long AKOOL keeps a result (the API documentation: 7 days).
RESULT_LIFETIME: Final = timedelta(days=7)
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
    """``url`` with its user-info and credential-looking query values masked.

    A URL without either comes back unchanged (not even re-encoded).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "@" not in parts.netloc and not any(_SECRET_PARAM.search(name) for name, _ in pairs):
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [(name, "***" if _SECRET_PARAM.search(name) else value) for name, value in pairs],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _is_signed(url: str) -> bool:
    """Whether ``url`` carries credentials (user-info or a credential query parameter)."""
    return redact_url(url) != url


class _Scrubber:
    """Removes known secrets, credential-looking assignments and URL credentials from text.

    The page's own patterns come on top of ``_redact.redact``, the SDK's one redaction point.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = redact(text)  # every secret the process registered (keys, tokens, storage)
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
    thumb: Thumbnailer,
    scrub: _Scrubber,
) -> dict[str, Any]:
    """One input picture: its (masked) URL, and what the page may load for it."""
    entry: dict[str, Any] = {"u": scrub(url), "v": guess_media(url) == "video"}
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
    thumb: Thumbnailer,
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
        "id": item.id,
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
            result["v"] = path.suffix.lower() in VIDEO_SUFFIXES
            small = thumb(path)
            if small is not None:
                result["t"] = _href(small, base)
            if item.finished_at is None:
                item.finished_at = path.stat().st_mtime
    if item.result_url:
        result["u"] = scrub(item.result_url)
        result.setdefault("v", guess_media(item.result_url) == "video")
        if item.finished_at is not None:
            expires = item.finished_at + RESULT_LIFETIME.total_seconds()
            result["x"] = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
            result["xp"] = now >= expires
        live = inputs == "link" and not result.get("xp") and not _is_signed(item.result_url)
        if "f" not in result and live:
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
    busy = finished < len(items)
    if seconds is None:
        start = summary.get("started_at") or summary.get("first_update")
        if start is not None:
            end = now if busy or "last_update" not in summary else summary["last_update"]
            seconds = max(end - start, 0.0)
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
    if busy:
        rows.append(("batch", f"unfinished: {len(items) - finished:,} swaps have no outcome yet"))
    elif not stats:
        rows.append(("batch", "finished; its statistics were not recorded"))
    return rows


def render_page(
    cards: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
    rows: Sequence[tuple[str, str]],
    *,
    title: str,
    thumbnails: bool,
    remote: bool = True,
) -> str:
    """The whole page as one string; ``remote=False``: the browser loads nothing outside."""
    from ._report_page import CSP, CSP_LOCAL, PAGE

    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    state_cells = "".join(
        f'<div class="stat st-{state}"><b data-count="{state}">{counts.get(state, 0):,}</b>'
        f"<span>{state}</span></div>"
        for state in STATES
    )
    info = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in rows)
    data = json.dumps(
        {"cards": list(cards), "thumbs": thumbnails}, ensure_ascii=False, separators=(",", ":")
    )
    # Inside <script>, "</" could end the element early and "<!--" open a comment.
    data = data.replace("<", "\\u003c")
    return (
        PAGE.replace("{{CSP}}", CSP if remote else CSP_LOCAL)
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
    thumb = Thumbnailer(base / REPORT_FILES, enabled=thumbnails)
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
        remote=inputs == "link",
    )
    page = scrub(page) or ""
    if thumb.available:  # without Pillow, thumbnails made earlier are left alone
        thumb.prune(fetched.values(), inputs=inputs != "none")
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
        JournalError: the ``journal`` given is missing, or a journal cannot be read.
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
    urls = [url for item in items for url in (*item.sources, *item.targets)]
    files = target.parent / REPORT_FILES
    if inputs == "fetch":
        fetched = await fetch_inputs(urls, files)
    elif inputs == "link":  # copies an earlier build fetched are still used
        fetched = await anyio.to_thread.run_sync(cached_inputs, urls, files)
    else:
        fetched = {}
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

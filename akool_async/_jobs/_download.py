"""Streaming, verified downloads of result files: temp file, checksums, atomic rename, retries.

A result is streamed in chunks (never whole in memory: videos can be large) into a hidden
temporary file next to its destination, hashed on the way (SHA-256 always; MD5 too when the
server's ``ETag`` is a bare 32-hex MD5, as S3 and CloudFront send for simple uploads), checked
against ``Content-Length`` and that ETag, flushed to disk, and only then renamed over the
final name, so a file under the final name is always complete.

Transport errors, HTTP 5xx / 408 / 429 and integrity failures are retried with backoff (a
truncated or corrupted transfer is usually transient); other HTTP errors (403/404: the link
expired after 7 days, or the file is gone) are not. Whatever is left is a ``DownloadError``.

Result hosts are not the API: a download carries no credentials (the client adds its key or
token per API request, never to the session), may follow redirects (CDNs do) but only to
http(s) URLs, and names its file after the job's ``_id`` only when that is 24 hex digits.

Guards against hosts that misbehave without failing: an answer whose ``Content-Type`` is HTML
or text (an error page served with 200) is not a result and is retried; a transfer slower
than a floor (``MIN_RATE`` bytes/s over each ``RATE_WINDOW`` seconds) fails and is retried,
since a per-read timeout never trips on a trickle of one byte every few seconds; and
``save_result`` bounds a download's total time, retries included (``timeout``). Temporary
files of a killed process are swept by ``sweep_parts`` (a batch does it at start).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import anyio
import attrs

from akool_async._errors import DownloadError
from akool_async._models import SwapResult, is_record_id
from akool_async._redact import describe
from akool_async._retry import Retryable, RetryPolicy, retrying

__all__ = [
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "DOWNLOAD_RETRY",
    "MIN_RATE",
    "RATE_WINDOW",
    "Downloaded",
    "download",
    "file_name",
    "part_files",
    "save_result",
    "sha256_of_file",
    "sweep_parts",
]

#: Default retries of a download: 4 attempts, short backoff; no ``max_elapsed`` (a
#: download's total time is bounded by ``download_timeout``, retries included).
DOWNLOAD_RETRY: Final = RetryPolicy(
    max_attempts=4, initial_delay=0.5, max_delay=8.0, max_elapsed=None
)

_CHUNK: Final = 256 * 1024
_MD5_ETAG = re.compile(r'(?:W/)?"?([0-9a-fA-F]{32})"?')
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_RETRY_STATUS: Final = frozenset({408, 429})
_MAX_REDIRECTS: Final = 10
#: Seconds one result's download may take, retries included (``swap_many(download_timeout=)``).
DEFAULT_DOWNLOAD_TIMEOUT: Final = 3600.0
#: The throughput floor: fewer bytes than ``MIN_RATE * RATE_WINDOW`` in any ``RATE_WINDOW``.
MIN_RATE: Final = 1024.0
RATE_WINDOW: Final = 30.0
#: Our temporary files: ``.<final name>.<8 hex>.part`` (see ``_attempt``).
_PART = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.part")
#: Content types that are never a result file (an error page served with HTTP 200).
_NOT_MEDIA: Final = ("text/", "application/xhtml", "application/json", "application/xml")


@attrs.frozen(kw_only=True)
class Downloaded:
    """A verified result file on disk."""

    path: Path
    sha256: str
    size: int


def file_name(job_id: str, url: str) -> str:
    """``<job id><extension of the URL's path>``, e.g. ``6593c94c0ef703e8c055e3c8.mp4``."""
    suffix = PurePosixPath(urlsplit(url).path).suffix
    stem = _SAFE_NAME.sub("_", job_id) or "result"
    return stem + (suffix.lower() if _SUFFIX.fullmatch(suffix) else "")


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (call it in a worker thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Sink(Protocol):
    """Where one download attempt's bytes go; only ``commit`` makes them visible."""

    async def open(self) -> None: ...
    async def write(self, chunk: bytes) -> None: ...
    async def close(self) -> None:
        """All bytes are written (and durable); not yet visible under the final name."""

    async def commit(self) -> None:
        """Make the verified content visible under its final name."""

    async def discard(self) -> None:
        """Throw away whatever was not committed (called in every case; idempotent)."""


class FileSink:
    """The default sink: a hidden ``.part`` file next to the destination, fsynced, renamed."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        self.temp = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
        self._handle: Any = None

    async def open(self) -> None:
        self._handle = await anyio.open_file(self.temp, "wb")

    async def write(self, chunk: bytes) -> None:
        await self._handle.write(chunk)

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        try:
            await handle.flush()
            await anyio.to_thread.run_sync(os.fsync, handle.wrapped.fileno())
        finally:
            await handle.aclose()

    async def commit(self) -> None:
        await anyio.to_thread.run_sync(os.replace, self.temp, self.destination)

    async def discard(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await handle.aclose()
        await anyio.Path(self.temp).unlink(missing_ok=True)


class _Retryable(Retryable):
    """An attempt's transient failure (``retrying`` tries again while the policy allows)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def error(self, url: str) -> DownloadError:
        return DownloadError(
            f"download of {url} failed: {self.reason}",
            url=url,
            reason=self.reason,
            status=self.status,
            attempts=self.attempt,
        )


async def download(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    *,
    retry: RetryPolicy = DOWNLOAD_RETRY,
    read_timeout: float | None = 60.0,
    on_retry: Callable[[int, float, DownloadError], None] | None = None,
    min_rate: tuple[float, float] = (MIN_RATE, RATE_WINDOW),
    sink: Callable[[Path], Sink] = FileSink,
) -> Downloaded:
    """Download ``url`` to ``destination`` (atomically), verifying what can be verified.

    Args:
        session: The aiohttp session to use (the client's).
        url: The result URL.
        destination: The final path; its directory must exist.
        retry: Attempts and backoff.
        read_timeout: Seconds without receiving a byte before an attempt fails.
        on_retry: Called as ``on_retry(attempt, delay, error)`` before each retry.
        min_rate: ``(bytes per second, window seconds)``: an attempt that receives less
            than ``rate * window`` bytes in any window fails (and is retried).
        sink: Makes each attempt's ``Sink`` for ``destination`` (default: a local file;
            ``_storage`` streams into an object store).

    Raises:
        DownloadError: no intact copy after the allowed attempts, or a non-retryable answer.
    """
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(
            f"download of {url!r} refused: not an http(s) URL", url=url, reason="not http(s)"
        )

    async def attempt(number: int) -> Downloaded:
        return await _attempt(session, url, destination, read_timeout, min_rate, sink(destination))

    def retried(number: int, delay: float, failure: _Retryable) -> None:
        if on_retry is not None:
            on_retry(number, delay, failure.error(url))

    try:
        return await retrying(retry, attempt, on_retry=retried)
    except _Retryable as failure:  # the last attempt's, once the policy gave up
        raise failure.error(url) from None


def _check_media_type(response: aiohttp.ClientResponse) -> None:
    """An HTML or text answer is an error page, not a result file: retried."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type.startswith(_NOT_MEDIA):
        raise _Retryable(f"not a media file: Content-Type {content_type}", response.status)


class _RateFloor:
    """Fails a transfer that stays under ``rate`` bytes/s for a whole ``window``."""

    def __init__(self, rate: float, window: float) -> None:
        self._need = rate * window
        self.window = window
        self._since = anyio.current_time()
        self._bytes = 0

    def add(self, size: int) -> None:
        self._bytes += size
        self.check()

    def check(self) -> None:
        now = anyio.current_time()
        if now - self._since < self.window:
            return
        if self._bytes < self._need:
            raise _Retryable(
                f"too slow: {self._bytes} bytes in {now - self._since:.0f} s "
                f"(floor {self._need / self.window:g} B/s)"
            )
        self._since, self._bytes = now, 0


async def _next_chunk(chunks: AsyncIterator[bytes], floor: _RateFloor) -> bytes | None:
    """The body's next chunk (None at the end); a trickle below the floor fails, even when
    no byte at all comes for a whole window."""
    while True:
        with anyio.move_on_after(floor.window):
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return None
            floor.add(len(chunk))
            return chunk
        floor.check()


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    read_timeout: float | None,
    min_rate: tuple[float, float] = (MIN_RATE, RATE_WINDOW),
    out: Sink | None = None,
) -> Downloaded:
    out = FileSink(destination) if out is None else out
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=read_timeout)
    try:
        # No headers of ours: the session holds no credentials (the client adds them per API
        # request), and aiohttp refuses a redirect to anything but http(s).
        async with session.get(
            url, timeout=timeout, max_redirects=_MAX_REDIRECTS, raise_for_status=False
        ) as response:
            status = response.status
            if status >= 500 or status in _RETRY_STATUS:
                raise _Retryable(f"HTTP {status}", status)
            if status != 200:
                raise DownloadError(
                    f"download of {url} failed: HTTP {status}",
                    url=url,
                    reason=f"HTTP {status}",
                    status=status,
                )
            _check_media_type(response)
            encoding = response.headers.get("Content-Encoding", "identity").lower()
            expected = response.content_length if encoding == "identity" else None
            etag = _MD5_ETAG.fullmatch(response.headers.get("ETag", "").strip())
            sha = hashlib.sha256()
            md5 = hashlib.md5(usedforsecurity=False) if etag and encoding == "identity" else None
            size = 0
            await out.open()
            chunks, floor = aiter(response.content.iter_chunked(_CHUNK)), _RateFloor(*min_rate)
            while (chunk := await _next_chunk(chunks, floor)) is not None:
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
                await out.write(chunk)
            await out.close()
        if expected is not None and size != expected:
            raise _Retryable(f"short body: {size} of {expected} bytes", status)
        if md5 is not None and etag is not None and md5.hexdigest() != etag.group(1).lower():
            raise _Retryable("MD5 mismatch with the ETag (corrupted transfer)", status)
        await out.commit()
        return Downloaded(path=destination, sha256=sha.hexdigest(), size=size)
    except (aiohttp.TooManyRedirects, aiohttp.RedirectClientError) as exc:
        # RedirectClientError: a redirect to a non-http(s) or malformed URL.
        if isinstance(exc, aiohttp.TooManyRedirects):
            reason = "too many redirects"
        else:
            reason = "redirected to a non-http(s) or invalid URL"
        raise DownloadError(f"download of {url} failed: {reason}", url=url, reason=reason) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Retryable(f"transport error: {describe(exc)}") from exc
    except OSError as exc:  # after aiohttp's own OSError subclasses: this one is ours
        raise DownloadError(
            f"cannot write {str(destination)!r}: {exc}", url=url, reason=f"local I/O: {exc}"
        ) from exc
    finally:
        with anyio.CancelScope(shield=True):
            await out.discard()


async def save_result(
    session: aiohttp.ClientSession,
    result: SwapResult,
    directory: Path,
    *,
    deadline: float = math.inf,
    total_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
    retry: RetryPolicy = DOWNLOAD_RETRY,
    on_retry: Callable[[int, float, DownloadError], None] | None = None,
    min_rate: tuple[float, float] = (MIN_RATE, RATE_WINDOW),
    sink: Callable[[Path], Sink] = FileSink,
) -> Downloaded:
    """Download a finished job's file into ``directory`` as ``<job _id><extension>``.

    Args:
        deadline: ``anyio.current_time()`` by which the download must be done.
        total_timeout: Seconds the download may take in all, retries included; None: none.

    Raises:
        DownloadError: no URL, the deadline or the timeout passed, or ``download`` gave up.
    """
    url = result.url
    if not is_record_id(result.id):
        raise DownloadError(
            f"job _id {result.id[:40]!r} is not 24 hex digits: it cannot name a file",
            url=url or "",
            reason="invalid _id",
        )
    if not url:
        raise DownloadError(
            f"job {result.id} succeeded without a result URL", url="", reason="no URL"
        )
    started = anyio.current_time()
    limit = min(deadline, math.inf if total_timeout is None else started + total_timeout)
    with anyio.move_on_after(limit - started) as scope:
        return await download(
            session,
            url,
            directory / file_name(result.id, url),
            retry=retry,
            on_retry=on_retry,
            min_rate=min_rate,
            sink=sink,
        )
    assert scope.cancelled_caught
    if limit < deadline:
        raise DownloadError(
            f"the download of {url} took more than {total_timeout:g} s", url=url, reason="timeout"
        )
    raise DownloadError(
        f"the batch deadline passed while downloading {url}", url=url, reason="deadline"
    )


def part_files(directory: Path) -> dict[str, list[Path]]:
    """Our temporary files in ``directory`` (``.<job id><extension>.<8 hex>.part``), by the
    file stem they were for (the job id). Call it in a worker thread."""
    parts: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return parts
    for entry in entries:
        match = _PART.fullmatch(entry.name)
        if match is not None:
            parts.setdefault(PurePosixPath(match["name"]).stem, []).append(Path(entry.path))
    return parts


def sweep_parts(directory: Path, job_ids: Collection[str]) -> int:
    """Delete the temporary files that downloads of these jobs left behind (a killed run).

    Only files named like ours whose job id is in ``job_ids`` are removed: another batch's
    downloads in the same directory are left alone. Call it in a worker thread. Returns how
    many files were removed.
    """
    stems = {_SAFE_NAME.sub("_", job_id) or "result" for job_id in job_ids}
    removed = 0
    for stem, paths in part_files(directory).items():
        if stem not in stems:
            continue
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed

"""Results where batch users keep them: object stores as download destinations.

``download_dir`` (and ``AsyncClient.download``, the CLI's ``--out`` and ``swap --download``)
may be an object-store URL (``s3://bucket/results/``). ``store_result`` streams a result into
the store through ``_download``'s verified download: a ``StoreSink`` sends the bytes up in
``PART_SIZE`` parts of a multipart upload (never whole in memory, never on local disk),
completed only once the download's checks (length, ETag, content type, timeouts) passed and
aborted otherwise, so a partial object never appears under the final name; a file smaller than
one part is one PUT of the verified bytes. ``check_stored`` re-reads a stored object on resume
and checks its size and SHA-256 instead of trusting the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from akool_async._errors import DownloadError, StorageError, ValidationError
from akool_async._models import SwapResult
from akool_async._retry import RetryPolicy
from akool_async._storage import PART_SIZE, _filesystem, _store_failure, is_store_url

from ._download import DOWNLOAD_RETRY, Downloaded, file_name, save_result

if TYPE_CHECKING:
    from ._seams import ClientSeam

__all__ = [
    "SavedFile",
    "StoreSink",
    "check_stored",
    "download_one",
    "is_remote_dir",
    "save_anywhere",
    "store_result",
]

_READ_CHUNK = 1024 * 1024


@attrs.frozen(kw_only=True)
class SavedFile:
    """A downloaded, verified result file (``AsyncClient.download``).

    Attributes:
        location: Where it is: the local path, or the object-store URL.
        path: The local path, or None when it went into an object store.
        sha256: Hex SHA-256 of its content.
        size: Its size in bytes.
    """

    location: str
    path: Path | None
    sha256: str
    size: int


class StoreSink:
    """A ``_download.Sink`` into an object store: the verified bytes are streamed up in parts
    of ``PART_SIZE`` (a multipart upload; at most about two parts in memory) and committed
    only after the download's checks passed; a failed or cancelled attempt is aborted, so a
    partial object never appears under the final name."""

    def __init__(self, fs: Any, path: str, target: str) -> None:
        self._fs, self._path, self.target = fs, path, target
        self._file: Any = None
        self._buffer = bytearray()

    async def _run(self, what: str, work: Callable[[], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(work)
        except Exception as exc:
            reason = _store_failure(exc)
            raise StorageError(
                f"cannot {what} {self.target}: {reason}", url=self.target, reason=reason
            ) from None

    async def open(self) -> None:
        self._buffer = bytearray()  # the upload itself starts with the first full part

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        if len(self._buffer) >= PART_SIZE:
            if self._file is None:
                fs, path = self._fs, self._path
                self._file = await self._run(
                    "write", lambda: fs.open(path, "wb", block_size=PART_SIZE, autocommit=False)
                )
            await self._flush()

    async def _flush(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        handle = self._file
        await self._run("write", lambda: handle.write(data))

    async def close(self) -> None:
        if self._file is not None:  # a multipart upload: its last part
            if self._buffer:
                await self._flush()
            await self._run("write", self._file.close)

    async def commit(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            await self._run("store", handle.commit)
            return
        # Smaller than a part: one PUT of the verified bytes.
        fs, path, data = self._fs, self._path, bytes(self._buffer)
        self._buffer = bytearray()
        await self._run("store", lambda: fs.pipe_file(path, data))

    async def discard(self) -> None:
        handle, self._file = self._file, None
        self._buffer = bytearray()
        if handle is not None:
            with contextlib.suppress(Exception):  # best effort: an abandoned upload expires
                await anyio.to_thread.run_sync(handle.discard)


async def store_result(
    fetch: Callable[[Callable[[Path], StoreSink]], Awaitable[Downloaded]],
    name: str,
    destination: str,
    storage_options: Mapping[str, Any],
) -> tuple[str, str, int]:
    """Stream a result into the store at ``destination``: ``fetch(sink)`` is ``_download``'s
    verified download (retries, timeouts, length, ETag and content-type checks) writing
    through a ``StoreSink`` instead of a local file.

    Returns:
        ``(object URL, sha256, size)``.

    Raises:
        StorageError: the store refused or failed the upload.
    """
    target = destination.rstrip("/") + "/" + name
    fs, path = _filesystem(target, storage_options)
    done = await fetch(lambda _: StoreSink(fs, path, target))
    return target, done.sha256, done.size


async def check_stored(
    location: str,
    sha256: str | None,
    storage_options: Mapping[str, Any],
    *,
    size: int | None = None,
) -> bool:
    """Whether the object at ``location`` exists with the recorded size and SHA-256.

    The size is checked first (one HEAD); then the object is read back and hashed.
    """
    if not sha256:
        return False
    fs, path = _filesystem(location, storage_options)

    def work() -> bool:
        digest = hashlib.sha256()
        try:
            if size is not None and fs.size(path) != size:
                return False
            with fs.open(path, "rb", block_size=8 * _READ_CHUNK) as handle:
                while chunk := handle.read(_READ_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256

    try:
        return await anyio.to_thread.run_sync(work)
    except Exception as exc:
        reason = _store_failure(exc)
        raise StorageError(
            f"cannot check {location}: {reason}", url=location, reason=reason
        ) from None


def result_name(result: SwapResult) -> str:
    """The object name of a result: ``<job _id><extension>`` (as in a local directory)."""
    return file_name(result.id, result.url or "")


def is_remote_dir(value: str | os.PathLike[str]) -> bool:
    """Whether a download destination is an object-store URL rather than a local directory."""
    return isinstance(value, str) and is_store_url(value)


async def save_anywhere(
    client: ClientSeam,
    result: SwapResult,
    dest: str | Path,
    *,
    deadline: float = math.inf,
    retry: RetryPolicy = DOWNLOAD_RETRY,
    on_retry: Callable[[int, float, DownloadError], None] | None = None,
    **checks: Any,
) -> SavedFile:
    """``save_result`` into a local directory (which must exist) or an object-store prefix.

    ``checks`` go to ``save_result`` as they are (``total_timeout``, ``min_rate``).
    """
    session = client._session()
    if isinstance(dest, str) and is_remote_dir(dest):
        location, sha, size = await store_result(
            lambda sink: save_result(
                session,
                result,
                Path(),  # (names the object only: the sink writes into the store)
                deadline=deadline,
                retry=retry,
                on_retry=on_retry,
                sink=sink,
                **checks,
            ),
            result_name(result),
            dest,
            client._media().storage_options,
        )
        return SavedFile(location=location, path=None, sha256=sha, size=size)
    done = await save_result(
        session, result, Path(dest), deadline=deadline, retry=retry, on_retry=on_retry, **checks
    )
    return SavedFile(location=str(done.path), path=done.path, sha256=done.sha256, size=done.size)


async def download_one(
    client: ClientSeam, result: SwapResult, dest: str | os.PathLike[str]
) -> SavedFile:
    """``AsyncClient.download``: one result into a local directory or an object-store prefix."""
    if not isinstance(result, SwapResult):
        raise ValidationError(f"must be a SwapResult, got {type(result).__name__}", field="result")
    if isinstance(dest, str) and is_remote_dir(dest):
        return await save_anywhere(client, result, dest)
    if not isinstance(dest, str | os.PathLike):
        raise ValidationError(
            f"must be a directory or an object-store URL, got {type(dest).__name__}",
            field="dest",
        )
    directory = Path(dest)
    try:
        await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"cannot create {str(directory)!r}: {exc}", field="dest") from None
    return await save_anywhere(client, result, directory)

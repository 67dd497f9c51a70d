"""Media where batch users keep it: local files and object stores in, object stores out.

AKOOL fetches every input by URL, so a request's media fields (``PlusSwap.source_url``,
``FaceImage.path``, ``FaceInfo.face_url``...; the model fields marked ``MEDIA``) also take a
local file (``pathlib.Path`` or ``file://``) or an object-store URL (``s3://``, ``gs://``...).
``MediaResolver`` turns those into http(s) URLs in one step *before the wire* (the wire and the
server only ever see http(s) URLs):

* a local file is hashed (SHA-256), uploaded once to ``upload_to`` under a content-addressed
  key ``<upload_to>/<sha256><ext>`` (an existing object of the same size is not uploaded again,
  so the same face used by 10,000 swaps is one PUT, also across runs), and replaced by a
  presigned GET URL;
* an object-store URL is checked (it exists, the credentials are accepted) and presigned in
  place.

A presigned URL must outlive the job: it is signed for ``lifetime + PRESIGN_MARGIN`` seconds
(``lifetime`` is the batch's ``job_timeout``, or ``DEFAULT_LIFETIME``) and reused while at
least ``lifetime`` seconds of it are left. Within a run every file is hashed, uploaded and
signed once (single-flight per file and per object); with a batch journal the resolution of
every input is recorded in its ``media`` table (file size, mtime, SHA-256, object, URL,
expiry), so a resume neither re-hashes an unchanged file, nor uploads, nor re-signs what is
still valid.

Outputs (results streamed into an object store, ``AsyncClient.download``) are in
``_result_store``; both share the fsspec helpers of this module and raise ``StorageError``
(``_errors``).

fsspec (and s3fs, gcsfs, adlfs) is imported lazily: the core never needs it; without it, an
object-store URL gives an ``ImportError`` naming the ``akool-async[storage]`` extra.
"""

from __future__ import annotations

import hashlib
import sqlite3
import stat as stat_module
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import attrs

from ._errors import StorageError, ValidationError
from ._frames import AnalyzeFrames
from ._models import (
    OBJECT_SCHEMES,
    DetectFaces,
    ImageSwap,
    LegacyDetect,
    PlusSwap,
    ProSwap,
    VideoSwap,
)
from ._redact import describe, register


class Journal(Protocol):
    """What the resolver needs of a batch journal (``_jobs._journal.Journal`` is one): a
    function run on its SQLite connection, in order with its other writes."""

    async def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any: ...


__all__ = [
    "DEFAULT_LIFETIME",
    "MEDIA_TYPES",
    "PRESIGN_MARGIN",
    "MediaResolver",
    "is_store_url",
    "media_refs",
]

T = TypeVar("T")

#: Seconds a presigned URL must stay valid when no ``job_timeout`` says otherwise.
DEFAULT_LIFETIME: Final = 24 * 3600.0
#: Extra seconds a presigned URL is signed for on top of the lifetime it must have.
PRESIGN_MARGIN: Final = 3600.0
#: Part size of multipart uploads to S3: a file above twice this is sent in parts.
PART_SIZE: Final = 8 * 1024 * 1024
#: The longest a SigV4 presigned URL may live (S3's limit: 7 days).
MAX_PRESIGN: Final = 7 * 86_400.0

_HASH_CHUNK: Final = 1024 * 1024
#: Pages of 1,000 keys listed (once per run) under ``upload_to``; beyond that, HEAD per object.
_LIST_PAGES: Final = 10
_PIP_HINT: Final = "pip install '.[storage]' in an akool-async checkout, or pip install fsspec s3fs"

_MEDIA_TABLE: Final = """CREATE TABLE IF NOT EXISTS media (
    ref        TEXT PRIMARY KEY,  -- the input as given: file:// or object-store URL
    size       INTEGER,           -- local file: size in bytes when it was hashed
    mtime_ns   INTEGER,           -- local file: modification time when it was hashed
    sha256     TEXT,              -- local file: content hash (the object's key)
    object     TEXT NOT NULL,     -- the object-store URL the input resolved to
    url        TEXT NOT NULL,     -- the presigned GET URL sent to AKOOL
    expires_at REAL NOT NULL,     -- epoch seconds at which that URL stops working
    updated_at REAL NOT NULL
) WITHOUT ROWID"""


#: Request types with media fields (``_call`` resolves their local and object-store media).
MEDIA_TYPES: Final[frozenset[type]] = frozenset(
    {PlusSwap, ProSwap, ImageSwap, VideoSwap, DetectFaces, LegacyDetect, AnalyzeFrames}
)


def is_store_url(value: str) -> bool:
    """Whether ``value`` is an object-store URL (``s3://``, ``gs://``, ``az://``...)."""
    return urlsplit(value).scheme.lower() in OBJECT_SCHEMES


def _is_http(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


# --- which fields hold media ----------------------------------------------------------------

_MEDIA_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """``(name, is_media)`` of the attrs fields of ``cls`` that hold media or nested models."""
    known = _MEDIA_FIELDS.get(cls)
    if known is None:
        known = (
            tuple((f.name, bool(f.metadata.get("akool_media"))) for f in attrs.fields(cls))
            if attrs.has(cls)
            else ()
        )
        _MEDIA_FIELDS[cls] = known
    return known


def _walk(obj: object, prefix: str) -> Iterator[tuple[str, str]]:
    for name, is_media in _fields(type(obj)):
        value = getattr(obj, name)
        if is_media:
            if isinstance(value, str):
                yield prefix + name, value
            elif isinstance(value, tuple):  # e.g. AnalyzeFrames.frame_urls
                for index, item in enumerate(value):
                    if isinstance(item, str):
                        yield f"{prefix}{name}[{index}]", item
        elif attrs.has(type(value)):
            yield from _walk(value, f"{prefix}{name}.")
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if attrs.has(type(item)):
                    yield from _walk(item, f"{prefix}{name}[{index}].")


def media_refs(request: object) -> list[tuple[str, str]]:
    """``(field, value)`` of every media field of ``request`` that is not an http(s) URL."""
    if not attrs.has(type(request)):
        return []
    return [(field, value) for field, value in _walk(request, "") if not _is_http(value)]


def _replace(obj: T, urls: Mapping[str, str]) -> T:
    """``obj`` with every media value found in ``urls`` replaced (nested models too)."""
    changes: dict[str, Any] = {}
    for name, is_media in _fields(type(obj)):
        value = getattr(obj, name)
        if is_media:
            if isinstance(value, str) and value in urls:
                changes[name] = urls[value]
            elif isinstance(value, tuple) and any(item in urls for item in value):
                changes[name] = tuple(urls.get(item, item) for item in value)
        elif attrs.has(type(value)):
            new = _replace(value, urls)
            if new is not value:
                changes[name] = new
        elif isinstance(value, tuple) and any(attrs.has(type(item)) for item in value):
            items = tuple(_replace(item, urls) if attrs.has(type(item)) else item for item in value)
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[name] = items
    return attrs.evolve(obj, **changes) if changes else obj  # type: ignore[misc]


# --- fsspec, lazily -------------------------------------------------------------------------


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(f"local files and object-store URLs need fsspec: {_PIP_HINT}") from exc
    return fsspec


def _filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` (with ``options``) and the path within it."""
    fsspec = _fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise ImportError(f"{url.split(':', 1)[0]}:// URLs: {exc} ({_PIP_HINT})") from exc
    return fs, path


def _store_failure(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return f"the store refused the credentials or the access: {describe(exc)}"
    return describe(exc)


@attrs.define
class _Entry:
    """One object this run resolved: its presigned URL and when it expires."""

    url: str = ""
    expires_at: float = 0.0
    present: bool = False
    lock: anyio.Lock = attrs.field(factory=anyio.Lock)


@attrs.define
class MediaStatistics:
    """Counters of a ``MediaResolver`` (how much work deduplication saved)."""

    hashed: int = 0
    uploads: int = 0
    uploaded_bytes: int = 0
    already_stored: int = 0
    signed: int = 0
    reused: int = 0


class MediaResolver:
    """Resolves local and object-store media of requests to presigned http(s) URLs.

    Args:
        upload_to: Object-store prefix for local files (``"s3://bucket/prefix/"``), or None
            (local files are then refused with a ``ValidationError``).
        storage_options: fsspec options of the stores (``key``, ``secret``,
            ``endpoint_url``, ``client_kwargs``...), as in pandas.
    """

    def __init__(
        self, upload_to: str | None = None, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.upload_to = _check_upload_to(upload_to) if upload_to is not None else None
        self.storage_options = dict(storage_options or {})
        register(*_secret_values(self.storage_options))  # masked in every text we make
        self.statistics = MediaStatistics()
        #: Epoch seconds now (a test advances it with the store's clock).
        self.clock: Callable[[], float] = time.time
        self._entries: dict[str, _Entry] = {}
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._hash_locks: dict[str, anyio.Lock] = {}
        #: Per journal (a batch's, held weakly): the URL recorded per input in this run.
        self._written: weakref.WeakKeyDictionary[Journal, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        #: Sizes of the objects under ``upload_to`` when this run first looked (None: not
        #: listed, or too many to list); a listed prefix saves a HEAD per distinct file.
        self._listing: dict[str, int] | None = None
        self._listing_lock = anyio.Lock()
        self._listed = False
        if self.upload_to is not None:
            _fsspec()  # the ImportError at construction, not in the middle of a batch

    async def resolve(
        self, request: T, *, lifetime: float | None = None, journal: Journal | None = None
    ) -> T:
        """``request`` with every local or object-store media field replaced by a presigned URL.

        Args:
            lifetime: Seconds the URLs must stay valid (the job's timeout); default 24 h.
            journal: A batch journal recording (and remembering) what each input resolved to.

        Raises:
            ValidationError: a local file is missing or unreadable, or there is no
                ``upload_to`` for it (the error names the field).
            StorageError: the store refused the credentials, or an upload failed.
        """
        refs = media_refs(request)
        if not refs:
            return request
        need = min(DEFAULT_LIFETIME if lifetime is None else lifetime, MAX_PRESIGN - PRESIGN_MARGIN)
        if journal is not None and journal not in self._written:
            await journal._run(lambda conn: conn.execute(_MEDIA_TABLE))
            self._written[journal] = {}
        urls: dict[str, str] = {}
        for field, ref in refs:
            if ref not in urls:
                urls[ref] = await self._one(field, ref, need, journal)
        return _replace(request, urls)

    async def _one(self, field: str, ref: str, need: float, journal: Journal | None) -> str:
        scheme = urlsplit(ref).scheme.lower()
        if scheme == "file":
            return await self._local(field, ref, need, journal)
        if scheme in OBJECT_SCHEMES:
            return await self._remote(field, ref, ref, need, journal, size=None)
        raise ValidationError(f"cannot be resolved to an http(s) URL: {ref!r}", field=field)

    # -- local files -------------------------------------------------------------------------

    async def _local(self, field: str, ref: str, need: float, journal: Journal | None) -> str:
        path = Path(url2pathname(urlsplit(ref).path))
        if self.upload_to is None:
            raise ValidationError(
                f"is a local file ({str(path)!r}): pass upload_to='s3://bucket/prefix/' "
                "(and storage_options) to the client so that it can be uploaded for AKOOL",
                field=field,
            )
        try:
            stat = await anyio.Path(path).stat()
        except FileNotFoundError:
            raise ValidationError(f"no such file: {str(path)!r}", field=field) from None
        except OSError as exc:
            raise ValidationError(f"cannot read {str(path)!r}: {exc}", field=field) from None
        if not stat_module.S_ISREG(stat.st_mode):
            raise ValidationError(f"is not a regular file: {str(path)!r}", field=field)
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        sha = self._hashes.get(memo)
        row = None
        if sha is None:  # first time in this run: what does the journal know of it?
            row = await self._recorded(journal, ref)
            if row is not None and (row[0], row[1]) == (stat.st_size, stat.st_mtime_ns):
                sha = row[2]  # unchanged since the journal hashed it
        if sha is None:
            lock = self._hash_locks.setdefault(memo[0], anyio.Lock())
            async with lock:
                sha = self._hashes.get(memo)
                if sha is None:
                    sha = await self._hash(field, path)
                    self._hashes[memo] = sha
            self._hash_locks.pop(memo[0], None)
        self._hashes[memo] = sha
        suffix = PurePosixPath(path.name).suffix.lower()
        target = f"{self.upload_to}{sha}{suffix if len(suffix) <= 9 else ''}"
        if row is not None and row[3] == target and row[5] - self.clock() >= need:
            entry = self._entries.setdefault(target, _Entry())
            if entry.expires_at < row[5]:
                entry.url, entry.expires_at, entry.present = row[4], row[5], True
        return await self._remote(
            field, target, ref, need, journal, size=stat.st_size, local=path, sha=sha,
            mtime_ns=stat.st_mtime_ns,
        )  # fmt: skip

    async def _hash(self, field: str, path: Path) -> str:
        def work() -> str:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
            return digest.hexdigest()

        try:
            sha = await anyio.to_thread.run_sync(work)
        except OSError as exc:
            raise ValidationError(f"cannot read {str(path)!r}: {exc}", field=field) from None
        self.statistics.hashed += 1
        return sha

    # -- objects -----------------------------------------------------------------------------

    async def _remote(
        self,
        field: str,
        target: str,
        ref: str,
        need: float,
        journal: Journal | None,
        *,
        size: int | None,
        local: Path | None = None,
        sha: str | None = None,
        mtime_ns: int | None = None,
    ) -> str:
        """The presigned URL of ``target``, uploading ``local`` there first if it is missing."""
        entry = self._entries.setdefault(target, _Entry())
        async with entry.lock:  # single-flight: one check, upload and signature per object
            now = self.clock()
            if entry.url and entry.expires_at - now >= need:
                self.statistics.reused += 1
                if journal is not None:
                    await self._record(journal, ref, target, entry, size, mtime_ns, sha)
                return entry.url
            if local is None and journal is not None and not entry.url:
                row = await self._recorded(journal, ref)
                if row is not None and row[3] == target and row[5] - now >= need:
                    entry.url, entry.expires_at, entry.present = row[4], row[5], True
                    self.statistics.reused += 1
                    return entry.url
            fs, path = _filesystem(target, self.storage_options)
            if not entry.present:
                listing = await self._listed_sizes(fs) if local is not None else None
                if listing is not None and target in listing and listing[target] == size:
                    self.statistics.already_stored += 1
                elif listing is not None and target not in listing:
                    await self._put(fs, path, field, target, size, local)
                else:
                    await self._ensure(fs, path, field, target, size, local)
                entry.present = True
            lifetime = min(need + PRESIGN_MARGIN, MAX_PRESIGN)
            try:
                url = await anyio.to_thread.run_sync(
                    lambda: fs.sign(path, expiration=int(lifetime))
                )
            except NotImplementedError:
                raise StorageError(
                    f"the {type(fs).__name__} store cannot presign URLs",
                    url=target, reason="no presigning", field=field,
                ) from None  # fmt: skip
            except Exception as exc:
                raise StorageError(
                    f"cannot presign {target}: {_store_failure(exc)}",
                    url=target, reason=_store_failure(exc), field=field,
                ) from None  # fmt: skip
            self.statistics.signed += 1
            entry.url, entry.expires_at = str(url), now + lifetime
            if journal is not None:
                await self._record(journal, ref, target, entry, size, mtime_ns, sha)
            return entry.url

    async def _ensure(
        self, fs: Any, path: str, field: str, target: str, size: int | None, local: Path | None
    ) -> None:
        """Check that the object exists (upload ``local`` when it does not)."""

        def info() -> dict[str, Any] | None:
            try:
                if hasattr(fs, "call_s3") and hasattr(fs, "split_path"):
                    # s3fs: one HEAD (its info() of a missing key also lists a "directory")
                    bucket, key, _ = fs.split_path(path)
                    head = fs.call_s3("head_object", Bucket=bucket, Key=key)
                    return {"size": head.get("ContentLength")}
                return dict(fs.info(path))
            except FileNotFoundError:
                return None

        try:
            found = await anyio.to_thread.run_sync(info)
        except Exception as exc:
            reason = _store_failure(exc)
            raise StorageError(
                f"cannot check {target}: {reason}", url=target, reason=reason, field=field
            ) from None
        if local is None:
            if found is None:
                raise ValidationError(f"no such object: {target!r}", field=field)
            return
        if found is not None and (size is None or found.get("size") == size):
            self.statistics.already_stored += 1
            return
        await self._put(fs, path, field, target, size, local)

    async def _listed_sizes(self, fs: Any) -> dict[str, int] | None:
        """The objects under ``upload_to`` (one listing per run, up to ``_LIST_LIMIT`` keys)."""
        async with self._listing_lock:
            if self._listed:
                return self._listing
            self._listed = True
            if not (hasattr(fs, "call_s3") and hasattr(fs, "split_path")):
                return None  # other stores: a HEAD per object
            assert self.upload_to is not None
            bucket, prefix, _ = fs.split_path(self.upload_to)
            scheme = self.upload_to.split("://", 1)[0]

            def work() -> dict[str, int] | None:
                found: dict[str, int] = {}
                token: str | None = None
                for _ in range(_LIST_PAGES):
                    extra = {"ContinuationToken": token} if token else {}
                    page = fs.call_s3(
                        "list_objects_v2",
                        Bucket=bucket,
                        Prefix=prefix.rstrip("/") + "/",
                        MaxKeys=1000,
                        **extra,
                    )
                    for item in page.get("Contents", ()):
                        found[f"{scheme}://{bucket}/{item['Key']}"] = int(item["Size"])
                    token = page.get("NextContinuationToken")
                    if not page.get("IsTruncated") or not token:
                        return found
                return None  # too many objects: check each one instead

            try:
                self._listing = await anyio.to_thread.run_sync(work)
            except Exception:
                self._listing = None  # no list permission (or a failure): HEAD each object
            return self._listing

    async def _put(
        self, fs: Any, path: str, field: str, target: str, size: int | None, local: Path | None
    ) -> None:
        assert local is not None
        try:
            await anyio.to_thread.run_sync(lambda: _put_file(fs, local, path))
        except OSError as exc:
            if isinstance(exc, PermissionError) or not isinstance(exc, FileNotFoundError):
                reason = _store_failure(exc)
                raise StorageError(
                    f"cannot upload {str(local)!r} to {target}: {reason}",
                    url=target, reason=reason, field=field,
                ) from None  # fmt: skip
            raise ValidationError(f"cannot read {str(local)!r}: {exc}", field=field) from None
        except Exception as exc:
            reason = _store_failure(exc)
            raise StorageError(
                f"cannot upload {str(local)!r} to {target}: {reason}",
                url=target, reason=reason, field=field,
            ) from None  # fmt: skip
        self.statistics.uploads += 1
        self.statistics.uploaded_bytes += size or 0

    # -- the journal's media table -----------------------------------------------------------

    async def _recorded(self, journal: Journal | None, ref: str) -> tuple[Any, ...] | None:
        if journal is None:
            return None
        row = await journal._run(
            lambda conn: conn.execute(
                "SELECT size, mtime_ns, sha256, object, url, expires_at FROM media WHERE ref = ?",
                (ref,),
            ).fetchone()
        )
        return tuple(row) if row is not None else None

    async def _record(
        self,
        journal: Journal,
        ref: str,
        target: str,
        entry: _Entry,
        size: int | None,
        mtime_ns: int | None,
        sha: str | None,
    ) -> None:
        written = self._written.setdefault(journal, {})
        if written.get(ref) == entry.url:
            return  # already recorded in this run
        values = (ref, size, mtime_ns, sha, target, entry.url, entry.expires_at, time.time())
        await journal._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO media VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values
            )
        )
        written[ref] = values[5]


def _put_file(fs: Any, local: Path, path: str) -> None:
    """``fs.put_file``; on S3 in parts of ``PART_SIZE`` (s3fs would read a file of up to
    100 MiB whole into memory for one PUT; parts keep the memory per upload bounded)."""
    if hasattr(fs, "call_s3"):
        fs.put_file(str(local), path, chunksize=PART_SIZE)
    else:
        fs.put_file(str(local), path)


_SECRET_KEYS: Final = ("secret", "token", "password", "account_key", "credential", "sas")


def _secret_values(options: Mapping[str, Any]) -> list[str]:
    """String values of storage options (nested dicts too) whose key names a secret."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found += _secret_values(value)
        elif isinstance(value, str) and any(word in str(key).lower() for word in _SECRET_KEYS):
            found.append(value)
    return found


def _check_upload_to(value: str) -> str:
    if not isinstance(value, str) or not is_store_url(value) or not urlsplit(value).netloc:
        raise ValidationError(
            f"must be an object-store URL such as 's3://bucket/prefix/', got {value!r}",
            field="upload_to",
        )
    return value if value.endswith("/") else value + "/"


# --- outputs --------------------------------------------------------------------------------

"""Batch manifests: a JSONL or CSV file of face swaps, validated whole before anything is sent.

One swap per line (JSONL) or row (CSV). ``kind`` picks the operation, and the other fields are
that operation's request fields under the SDK's snake_case names:

==========  =====================  ===================================================
``kind``    request class          fields
==========  =====================  ===================================================
``plus``    ``PlusSwap``           ``source_url`` ``target_url`` (required),
                                   ``single_face_mode`` ``face_enhance`` ``model_style``
                                   ``face_mapping`` ``webhook_url``
``pro``     ``ProSwap``            ``source`` ``target`` (required), ``face_enhance``
                                   ``single_face_mode`` ``model_name`` ``webhook_url``
``image``   ``ImageSwap`` (V3)     ``source`` ``target`` ``modify_image`` (required),
                                   ``face_enhance`` ``webhook_url``
``video``   ``VideoSwap`` (V3)     ``source`` ``target`` ``modify_video`` (required),
                                   ``face_enhance`` ``webhook_url``
==========  =====================  ===================================================

Every line may also carry ``ref``: any text, never sent, copied into the batch report so you
can match outcomes to your own records.

**JSONL** (``.jsonl``, ``.ndjson``, ``.json``): one JSON object per line; blank lines and lines
starting with ``#`` are skipped; ``null`` means "not given". Face lists are arrays whose items
are ``{"path": URL, "opts": "x,y:x,y:x,y:x,y"}`` objects or ``"URL"`` / ``"URL|opts"`` strings;
``face_mapping`` items are ``{"source": FACE, "target": FACE}`` where ``FACE`` is
``{"face_url": URL, "bbox": [x1, y1, x2, y2]}`` or a ``"URL"`` / ``"URL|x1,y1,x2,y2"`` string::

    {"kind": "plus", "source_url": "https://x/me.jpg", "target_url": "https://x/clip.mp4"}
    {"kind": "pro", "source": ["https://x/me.jpg"], "target": ["https://x/them.jpg"]}
    {"kind": "image", "source": ["https://x/me.jpg|1,2:3,4:5,6:7,8"],
     "target": [{"path": "https://x/crop.jpg", "opts": "1,2:3,4:5,6:7,8"}],
     "modify_image": "https://x/group.jpg", "face_enhance": true, "ref": "order-17"}

(a JSONL record must fit on one line; the third one is wrapped here for reading).

**CSV** (``.csv``): a header row of field names (``kind`` first is customary; any order), then
one row per swap; an empty cell means "not given", and a cell of a field another kind uses
must stay empty. Booleans are ``true``/``false`` (also ``1``/``0``, ``yes``/``no``). A list
cell is either JSON (starting with ``[``) or ``;``-separated items: face lists as ``URL`` or
``URL|opts``, ``face_mapping`` as ``SOURCE>TARGET`` pairs whose sides are ``URL`` or
``URL|x1,y1,x2,y2``::

    kind,source_url,target_url,source,target,modify_image,face_mapping,ref
    plus,https://x/me.jpg,https://x/clip.mp4,,,,,a
    plus,https://x/me.jpg,https://x/team.jpg,,,,https://x/s0.png>https://x/t0.png;https://x/s1.png>https://x/t1.png,b
    image,,,https://x/me.jpg,https://x/them.jpg,https://x/group.jpg,,c

Media fields also take object-store URLs (``s3://bucket/key``) and local files: a path
without a URL scheme (``faces/me.jpg``) is relative to the manifest's own directory, and a
missing file is a problem of its line (uploading needs the CLI's ``--upload-to``).

Whatever the format, every line is checked (field names, types, URLs, the model's own rules)
before the first request goes out; each problem is reported as ``FILE:LINE: FIELD: reason``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import attrs

from akool_async._errors import ValidationError
from akool_async._models import (
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    PlusSwap,
    ProSwap,
    SwapRequest,
    VideoSwap,
)
from akool_async._storage import media_refs

__all__ = [
    "KINDS",
    "MAX_REPORTED",
    "META_FIELDS",
    "ManifestEntry",
    "ManifestError",
    "Problem",
    "build_request",
    "detect_format",
    "fields_of",
    "parse_csv",
    "parse_jsonl",
    "read_manifest",
]

Format = Literal["jsonl", "csv"]
T = TypeVar("T")

#: The ``kind`` values and the request class each one builds.
KINDS: Final[Mapping[str, type[SwapRequest]]] = {
    "plus": PlusSwap,
    "pro": ProSwap,
    "image": ImageSwap,
    "video": VideoSwap,
}
#: Fields every line may carry besides its request's own.
META_FIELDS: Final = ("kind", "ref")
#: Problems listed in a ``ManifestError`` message (all are kept in ``problems``).
MAX_REPORTED: Final = 20

_TRUE: Final = frozenset({"true", "1", "yes", "y", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "off"})


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong with a manifest: where (line and field) and why."""

    line: int
    field: str | None
    reason: str

    def describe(self, source: str) -> str:
        """``FILE:LINE: FIELD: reason``."""
        where = f"{source}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class ManifestError(ValidationError):
    """A manifest that cannot be used; nothing was submitted.

    Attributes:
        source: The manifest's name, as shown in messages.
        problems: Every problem found, in line order.
    """

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = [p.describe(source) for p in self.problems[:MAX_REPORTED]]
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more problem{'s' if more > 1 else ''}")
        super().__init__("\n".join(shown))
        # The first problem's field, for code that looks at ValidationError.field.
        self.field = self.problems[0].field if self.problems else None


@attrs.frozen(kw_only=True)
class ManifestEntry:
    """One validated swap of a manifest.

    Attributes:
        line: 1-based line number in the file (CSV: the row's first line).
        kind: ``"plus"``, ``"pro"``, ``"image"`` or ``"video"``.
        request: The request, ready to submit.
        ref: The line's ``ref`` text, if any.
    """

    line: int
    kind: str
    request: SwapRequest
    ref: str | None = None


class _FieldError(Exception):
    """A problem with one field, by its dotted path."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Value parsers: each takes a JSON value or (``text=True``) a CSV cell, and the field's path.


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _string(value: object, path: str, text: bool) -> str:
    if not isinstance(value, str):
        raise _FieldError(path, f"must be a string, got {_type_name(value)} {value!r}")
    return value.strip() if text else value


#: The directory of the manifest file being read: relative local paths are relative to it.
_BASE: ContextVar[Path | None] = ContextVar("akool_manifest_base", default=None)


def _local(value: str) -> str:
    """A media value: a path relative to the manifest (or absolute) becomes a file:// URL."""
    base = _BASE.get()
    if base is None or not value or "://" in value or value.startswith("file:"):
        return value
    return (base / Path(value).expanduser()).absolute().as_uri()


def _media_string(value: object, path: str, text: bool) -> str:
    return _local(_string(value, path, text))


def _boolean(value: object, path: str, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise _FieldError(path, f"must be true or false, got {value!r}")


def _cell_items(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]


def _list_value(value: object, path: str, text: bool) -> list[Any]:
    """A JSON array, or (CSV) a JSON-array cell or ``;``-separated items."""
    if text and isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise _FieldError(path, f"is not valid JSON: {exc}") from None
        else:
            return _cell_items(stripped)
    if not isinstance(value, list):
        raise _FieldError(path, f"must be a list, got {_type_name(value)} {value!r}")
    return value


def _with_path(path: str, build: Callable[[], T]) -> T:
    try:
        return build()
    except ValidationError as exc:
        field = f"{path}.{exc.field}" if exc.field else path
        raise _FieldError(field, exc.reason) from None


def _face_image(item: object, path: str) -> FaceImage:
    if isinstance(item, str):
        url, sep, opts = item.partition("|")
        return _with_path(
            path, lambda: FaceImage(path=_local(url.strip()), opts=opts.strip() if sep else None)
        )
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"path", "opts"})
        if unknown:
            raise _FieldError(f"{path}.{unknown[0]}", "unknown field (expected path, opts)")
        if "path" not in item or item["path"] is None:
            raise _FieldError(f"{path}.path", "is required")
        face_path = _local(_string(item["path"], f"{path}.path", False))
        raw_opts = item.get("opts")
        face_opts = None if raw_opts is None else _string(raw_opts, f"{path}.opts", False)
        return _with_path(path, lambda: FaceImage(path=face_path, opts=face_opts))
    raise _FieldError(path, f"must be a URL string or a {{path, opts}} object, got {item!r}")


def _faces(value: object, path: str, text: bool) -> tuple[FaceImage, ...]:
    items = _list_value(value, path, text)
    if not items:
        raise _FieldError(path, "must contain at least one face")
    return tuple(_face_image(item, f"{path}[{index}]") for index, item in enumerate(items))


def _bbox_text(text: str, path: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise _FieldError(
            f"{path}.bbox", f"must be four numbers x1,y1,x2,y2, got {text!r}"
        ) from None


def _face_info(item: object, path: str) -> FaceInfo:
    if isinstance(item, str):
        url, sep, bbox_text = item.partition("|")
        bbox = _bbox_text(bbox_text, path) if sep else None
        return _with_path(path, lambda: FaceInfo(face_url=_local(url.strip()), bbox=bbox))
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"face_url", "bbox"})
        if unknown:
            raise _FieldError(f"{path}.{unknown[0]}", "unknown field (expected face_url, bbox)")
        face_url = item.get("face_url")
        if face_url is not None:
            face_url = _local(_string(face_url, f"{path}.face_url", False))
        bbox_value = item.get("bbox")
        if bbox_value is not None and not isinstance(bbox_value, list):
            raise _FieldError(f"{path}.bbox", f"must be [x1, y1, x2, y2], got {bbox_value!r}")
        return _with_path(path, lambda: FaceInfo(face_url=face_url, bbox=bbox_value))
    raise _FieldError(path, f"must be a {{face_url, bbox}} object or a URL string, got {item!r}")


def _mapping_pair(item: object, path: str) -> FaceMapping:
    if isinstance(item, str):
        source, sep, target = item.partition(">")
        if not sep:
            raise _FieldError(path, f"must be SOURCE>TARGET, got {item!r}")
        source_info = _face_info(source.strip(), f"{path}.source")
        target_info = _face_info(target.strip(), f"{path}.target")
    elif isinstance(item, dict):
        unknown = sorted(set(item) - {"source", "target"})
        if unknown:
            raise _FieldError(f"{path}.{unknown[0]}", "unknown field (expected source, target)")
        for side in ("source", "target"):
            if item.get(side) is None:
                raise _FieldError(f"{path}.{side}", "is required")
        source_info = _face_info(item["source"], f"{path}.source")
        target_info = _face_info(item["target"], f"{path}.target")
    else:
        raise _FieldError(path, f"must be a {{source, target}} object, got {item!r}")
    return _with_path(path, lambda: FaceMapping(source=source_info, target=target_info))


def _face_mapping(value: object, path: str, text: bool) -> tuple[FaceMapping, ...]:
    items = _list_value(value, path, text)
    if not items:
        raise _FieldError(path, "must contain at least one SOURCE>TARGET pair")
    return tuple(_mapping_pair(item, f"{path}[{index}]") for index, item in enumerate(items))


_Parser = Callable[[object, str, bool], Any]

#: How each request field is read. A test checks that every field of every kind is here.
_PARSERS: Final[Mapping[str, _Parser]] = {
    "source_url": _media_string,
    "target_url": _media_string,
    "modify_image": _media_string,
    "modify_video": _media_string,
    "webhook_url": _string,
    "model_style": _string,
    "model_name": _string,
    "face_enhance": _boolean,
    "single_face_mode": _boolean,
    "source": _faces,
    "target": _faces,
    "face_mapping": _face_mapping,
}


def fields_of(kind: str) -> tuple[str, ...]:
    """The request fields a manifest line of ``kind`` may carry, in declaration order."""
    return tuple(field.name for field in attrs.fields(KINDS[kind]))


def _required(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(KINDS[kind]) if f.default is attrs.NOTHING)


def _all_fields() -> frozenset[str]:
    return frozenset(META_FIELDS).union(*(fields_of(kind) for kind in KINDS))


def build_request(
    kind: str, fields: Mapping[str, object], *, text: bool = False, base: Path | None = None
) -> SwapRequest:
    """Build and validate the request of one manifest line.

    Args:
        kind: ``"plus"``, ``"pro"``, ``"image"`` or ``"video"``.
        fields: The line's request fields (no ``kind`` / ``ref``); None values are left out.
        text: The values are CSV cells (strings), not JSON values.
        base: Media values without a URL scheme are local paths relative to this directory.

    Raises:
        ValidationError: with ``field`` set to the offending field's dotted path.
    """
    token = _BASE.set(base) if base is not None else None
    try:
        return _build(kind, fields, text)
    except _FieldError as exc:
        raise ValidationError(exc.reason, field=exc.field) from None
    finally:
        if token is not None:
            _BASE.reset(token)


def _build(kind: str, fields: Mapping[str, object], text: bool) -> SwapRequest:
    if kind not in KINDS:
        raise _FieldError("kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
    allowed = fields_of(kind)
    for name in fields:
        if name not in allowed:
            where = "another kind's field" if name in _all_fields() else "unknown field"
            raise _FieldError(name, f"{where}: a {kind!r} swap takes {', '.join(allowed)}")
    kwargs: dict[str, Any] = {}
    for name in allowed:
        value = fields.get(name)
        if value is None or (text and isinstance(value, str) and not value.strip()):
            continue
        kwargs[name] = _PARSERS[name](value, name, text)
    for name in _required(kind):
        if name not in kwargs:
            raise _FieldError(name, f"is required for a {kind!r} swap")
    return _with_path_top(KINDS[kind], kwargs)


def _with_path_top(cls: type[SwapRequest], kwargs: dict[str, Any]) -> SwapRequest:
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise _FieldError(exc.field, exc.reason) from None


# --------------------------------------------------------------------------------------------
# Files


def detect_format(path: str | os.PathLike[str], head: str) -> Format:
    """``"jsonl"`` or ``"csv"``, from the file name, else from its first non-blank character."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if head.lstrip().startswith(("{", "#")) else "csv"


def _entry(
    line: int, record: Mapping[str, object], text: bool, problems: list[Problem]
) -> ManifestEntry | None:
    kind_value = record.get("kind")
    if kind_value is None or (isinstance(kind_value, str) and not kind_value.strip()):
        problems.append(Problem(line=line, field="kind", reason=f"is required ({'|'.join(KINDS)})"))
        return None
    if not isinstance(kind_value, str):
        problems.append(
            Problem(line=line, field="kind", reason=f"must be a string: {kind_value!r}")
        )
        return None
    kind = kind_value.strip().lower()
    ref = record.get("ref")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, str | int | float)):
        problems.append(Problem(line=line, field="ref", reason=f"must be text, got {ref!r}"))
        return None
    fields = {k: v for k, v in record.items() if k not in META_FIELDS}
    try:
        request = _build(kind, fields, text)
    except _FieldError as exc:
        problems.append(Problem(line=line, field=exc.field, reason=exc.reason))
        return None
    if _BASE.get() is not None:
        for field, value in media_refs(request):
            if value.startswith("file:") and not Path(url2pathname(urlsplit(value).path)).is_file():
                where = url2pathname(urlsplit(value).path)
                problems.append(Problem(line=line, field=field, reason=f"no such file: {where!r}"))
                return None
    ref_text = None if ref is None or (isinstance(ref, str) and not ref.strip()) else str(ref)
    return ManifestEntry(line=line, kind=kind, request=request, ref=ref_text)


def _lines(text: str) -> list[str]:
    """JSONL lines: split on ``\\n`` only, then a trailing ``\\r`` dropped.

    Not ``str.splitlines()``: it also splits on U+2028, U+0085, form feeds... which valid
    JSON strings may hold raw, and every such split shifts the later line numbers.
    """
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_jsonl(lines: Iterable[str]) -> tuple[list[ManifestEntry], list[Problem]]:
    """Every entry of a JSONL manifest, and every problem found (line numbers from 1)."""
    entries: list[ManifestEntry] = []
    problems: list[Problem] = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            record = json.loads(stripped)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            problems.append(Problem(line=number, field=None, reason=f"not valid JSON: {exc}"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(line=number, field=None, reason="must be a JSON object {...}"))
            continue
        entry = _entry(number, record, False, problems)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def parse_csv(text: str) -> tuple[list[ManifestEntry], list[Problem]]:
    """Every entry of a CSV manifest, and every problem found (line numbers from 1)."""
    entries: list[ManifestEntry] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return entries, problems
    except csv.Error as exc:
        return entries, [Problem(line=1, field=None, reason=f"unreadable CSV: {exc}")]
    columns = [name.strip().lstrip("\ufeff").lower() for name in header]
    known = _all_fields()
    for name in columns:
        if name not in known:
            problems.append(Problem(line=1, field=name or "(empty)", reason="unknown column"))
    if len(set(columns)) != len(columns):
        problems.append(Problem(line=1, field=None, reason="a column name appears twice"))
    if "kind" not in columns:
        problems.append(Problem(line=1, field="kind", reason="the header has no kind column"))
    if problems:
        return entries, problems
    rows: Iterator[list[str]] = iter(reader)
    start = reader.line_num + 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(line=start, field=None, reason=f"unreadable CSV: {exc}"))
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.append(
                Problem(
                    line=line,
                    field=None,
                    reason=f"has {len(row)} cells but the header has {len(columns)} columns",
                )
            )
            continue
        record = {name: cell for name, cell in zip(columns, row, strict=True) if cell.strip()}
        entry = _entry(line, record, True, problems)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def read_manifest(
    path: str | os.PathLike[str], *, format: Format | None = None
) -> list[ManifestEntry]:
    """Read and validate a whole manifest file.

    Args:
        path: The JSONL or CSV file.
        format: ``"jsonl"`` or ``"csv"``; None decides from the name, then the content.

    Returns:
        Every swap, in file order.

    Raises:
        ManifestError: anything wrong, anywhere in the file (all problems are listed), or a
            file without a single swap.
        OSError: the file cannot be read.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            source, [Problem(line=1, field=None, reason=f"not UTF-8: {exc}")]
        ) from None
    fmt = format or detect_format(path, text[:256])
    token = _BASE.set(Path(path).absolute().parent)
    try:
        entries, problems = parse_jsonl(_lines(text)) if fmt == "jsonl" else parse_csv(text)
    finally:
        _BASE.reset(token)
    if not problems and not entries:
        problems.append(Problem(line=1, field=None, reason="the manifest holds no swap"))
    if problems:
        raise ManifestError(source, sorted(problems, key=lambda p: p.line))
    return entries

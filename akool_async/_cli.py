"""The ``akool-async`` command line (also ``python -m akool_async``).

Commands::

    akool-async demo [--out DIR] [--jobs N]        the whole SDK on a local emulator
    akool-async batch MANIFEST --out DIR            many swaps from a JSONL/CSV manifest
          [--journal FILE] [--report FILE] [--concurrency N] [--job-timeout S]
    akool-async swap {plus,pro,image,video} ...     one swap [--wait] [--download DIR]
    akool-async status ID...                        the current state of jobs
    akool-async wait ID... [--timeout S]            wait for jobs to finish
    akool-async delete ID...                        delete job records
    akool-async credit                              the account's credit balance
    akool-async detect URL_OR_FILE                  find faces [--single-face] [--frames N]
          [--face-urls] [--legacy]
    akool-async emulator [--port P] ...             run the local AKOOL emulator

Global options (before or after the command): ``--api-key`` (else ``AKOOL_API_KEY``, or
``AKOOL_CLIENT_ID`` + ``AKOOL_CLIENT_SECRET``), ``--base-url`` (else ``AKOOL_BASE_URL``),
``--json`` (machine-readable stdout: one JSON document, or JSON Lines for ``batch``),
``-v`` / ``-vv`` (logs on stderr).

Exit codes: 0 success; 1 an API, network or job failure (``batch``: any swap that did not
succeed); 2 a usage or validation error (nothing was sent); 130 interrupted (Ctrl-C; 143 on
SIGTERM). Errors are single ``error: ...`` lines on stderr; secrets are never printed.

The command line is synchronous at the top: each invocation runs one event loop over an
``AsyncClient`` and keeps its own logic thin over the SDK. rich (the ``cli`` extra) draws the
progress bars and tables of ``batch`` and ``demo``; every other command, and those two with
``--json``, work without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, NoReturn

import anyio
import attrs

from ._client import AsyncClient
from ._errors import AkoolError, JobError, JobFailedError, ValidationError
from ._manifest import build_request, fields_of
from ._models import (
    DetectFaces,
    FaceDetection,
    LegacyDetect,
    LegacyFaceDetection,
    MediaType,
    ModelStyle,
    SwapJob,
    SwapResult,
    validate_ids,
)
from ._poll_config import PollConfig

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Context",
    "build_parser",
    "main",
    "result_record",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143

PROG: Final = "akool-async"
RICH_HINT: Final = "pip install 'akool-async[cli]'"
_ENV_SECRETS: Final = ("AKOOL_API_KEY", "AKOOL_CLIENT_SECRET")

_logger = logging.getLogger("akool_async.cli")


class CliError(Exception):
    """A failure to report as one ``error:`` line (or one per line of the message)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a one-line ``CliError`` (exit 2) instead of usage text."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


@attrs.define
class Context:
    """What a command gets: its arguments, its output streams and a client factory."""

    args: argparse.Namespace
    stdout: IO[str]
    stderr: IO[str]
    secrets: tuple[str, ...] = ()
    #: The command line as given (without the program name), to show how to run it again.
    argv: tuple[str, ...] = ()
    #: Printed on stderr if the command is interrupted (how to resume, ...).
    interrupt_hint: Callable[[], str] | None = None
    #: The first SIGINT/SIGTERM received, if any.
    interrupted: int | None = None
    _scope: anyio.CancelScope | None = None

    @property
    def json(self) -> bool:
        """Whether stdout is machine-readable JSON."""
        return bool(self.args.json)

    def emit(self, document: object) -> None:
        """Write one JSON document (one line) on stdout."""
        self.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()

    def say(self, text: str = "") -> None:
        """Write a line of human output on stdout."""
        self.stdout.write(self.redact(text) + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """Write a line of commentary on stderr (kept off stdout for scripts)."""
        self.stderr.write(self.redact(text) + "\n")
        self.stderr.flush()

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    @contextlib.asynccontextmanager
    async def connect(self, client: AsyncClient | None = None) -> AsyncIterator[AsyncClient]:
        """Open ``client`` (default: ``self.client()``) for the command's work.

        A Ctrl-C or SIGTERM during the work cancels the work only; the client (its batches,
        poller and session) then closes normally, and ``_Interrupted`` is raised after.
        """
        async with client if client is not None else self.client() as opened:
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    yield opened
                finally:
                    self._scope = None
        if self.interrupted is not None:
            raise _Interrupted(self.interrupted)

    def client(self) -> AsyncClient:
        """An ``AsyncClient`` from ``--api-key`` / ``--base-url`` and the AKOOL_* environment."""
        client = AsyncClient(api_key=self.args.api_key, base_url=self.args.base_url)
        interval = getattr(self.args, "poll_interval", None)
        if interval is not None:
            defaults = PollConfig()
            client.poll_config = attrs.evolve(
                defaults,
                image_first=interval,
                video_first=interval,
                image_max=max(interval, defaults.image_max),
                video_max=max(interval, defaults.video_max),
            )
        return client

    def require_rich(self, what: str) -> None:
        """Fail with the install hint (exit 2) when rich is missing."""
        try:
            import rich  # noqa: F401
        except ImportError:
            raise CliError(
                f"{what} needs rich for its progress bar and tables: {RICH_HINT} "
                "(or pass --json for plain JSON output)",
                EXIT_USAGE,
            ) from None


class _Redactor(logging.Filter):
    """Replace secrets in log records (belt and braces: the SDK never logs them)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        return True


# --------------------------------------------------------------------------------------------
# Parsing


def _version() -> str:
    try:
        return importlib.metadata.version("akool-async")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes; on subcommands they default to "not given"."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=default(None),
        help="API key (default: $AKOOL_API_KEY, else $AKOOL_CLIENT_ID + $AKOOL_CLIENT_SECRET); "
        "prefer the environment: arguments show up in process lists",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="API host (default: $AKOOL_BASE_URL, else https://openapi.akool.com)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine-readable output on stdout (JSON; JSON Lines for batch)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log to stderr (-v: info, -vv: debug)",
    )


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_seconds,
        metavar="S",
        help="first (and shortest) wait between status checks of a job; later checks back "
        "off from it (default: 2 for images, 10 for videos)",
    )


def _face_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="URL[|OPTS]",
        help="a new face (repeat in order); OPTS is the 4-point landmark string x,y:x,y:x,y:x,y",
    )
    parser.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="URL[|OPTS]",
        help="the face to replace, paired with --source by position (repeat)",
    )


def _swap_parsers(swap: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    after = _Parser(add_help=False)
    group = after.add_argument_group("waiting")
    group.add_argument("--wait", action="store_true", help="wait for the job to finish")
    group.add_argument(
        "--download",
        metavar="DIR",
        type=Path,
        help="wait, then download the result into DIR (verified; implies --wait)",
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=1800.0,
        metavar="S",
        help="seconds to wait for the job (default: 1800)",
    )
    _poll_option(after)
    webhook = _Parser(add_help=False)
    webhook.add_argument("--webhook-url", metavar="URL", help="where AKOOL posts status callbacks")
    parents = [common, webhook, after]

    plus = swap.add_parser(
        "plus",
        parents=parents,
        help="Face Swap Plus: image or video target, one or several faces",
        description="Face Swap Plus (faceswapPlusByImage): swap the face in --source-url into "
        "--target-url (an image or a .mp4/.mov/.avi/.webm video).",
    )
    plus.add_argument("--source-url", required=True, metavar="URL", help="the new face")
    plus.add_argument("--target-url", required=True, metavar="URL", help="image or video")
    plus.add_argument(
        "--face-mapping",
        metavar="PAIRS",
        help="multi-face mode: 'SRC>TGT;SRC>TGT' (each side URL or URL|x1,y1,x2,y2) or JSON",
    )
    plus.add_argument(
        "--single-face-mode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="single-face mode (default: on without --face-mapping, off with it)",
    )
    plus.add_argument("--face-enhance", action="store_true", help="enhance the swapped faces")
    plus.add_argument(
        "--model-style", choices=[style.value for style in ModelStyle], help="default: realistic"
    )
    plus.set_defaults(kind="plus")

    pro = swap.add_parser(
        "pro",
        parents=parents,
        help="Face Swap Pro: highest-quality image swap",
        description="Face Swap Pro (faceswapByImage): 1 to 50 --source/--target pairs.",
    )
    _face_options(pro)
    pro.add_argument("--face-enhance", action="store_true", help="enhance the swapped faces")
    pro.add_argument(
        "--single-face-mode", action=argparse.BooleanOptionalAction, default=None, help="sent as is"
    )
    pro.add_argument("--model-name", metavar="NAME", help="default: akool_faceswap_image_hq")
    pro.set_defaults(kind="pro")

    for kind, media in (("image", "image"), ("video", "video")):
        sub = swap.add_parser(
            kind,
            parents=parents,
            help=f"V3 {kind} swap (specify{kind}){' (legacy)' if kind == 'video' else ''}",
            description=f"Faceswap V3 (specify{kind}): replace the --target faces found in "
            f"--modify-{media} with the --source faces.",
        )
        _face_options(sub)
        sub.add_argument(
            f"--modify-{media}", required=True, metavar="URL", help=f"the {media} to change"
        )
        sub.add_argument(
            "--face-enhance", action="store_true", help="the HD model (face_enhance=1)"
        )
        sub.set_defaults(kind=kind)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``akool-async`` command line."""
    from ._cli_batch import BATCH_EPILOG

    parser = _Parser(
        prog=PROG,
        description="Command line of akool-async, the async SDK for the AKOOL Face Swap API.",
        epilog="Exit codes: 0 success, 1 API/job failure, 2 usage or validation error, "
        "130 interrupted. Start with: akool-async demo",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(parser, suppress=False)
    common = _Parser(add_help=False, allow_abbrev=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            parents=[common],
            help=help,
            description=kwargs.pop("description", help),
            allow_abbrev=False,
            **kwargs,
        )
        return sub

    demo = add(
        "demo",
        "run a few hundred swaps on a built-in local emulator (no account needed)",
        description="Start the local AKOOL emulator in-process, run a batch of mixed swaps "
        "through swap_many with a live progress bar, download the results and print a "
        "summary. Needs no credentials and no network; a few failed swaps are part of the "
        "show (the exit code is still 0).",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("akool-demo-output"),
        metavar="DIR",
        help="where the results go (default: ./akool-demo-output)",
    )
    demo.add_argument(
        "--jobs", type=_positive_int, default=300, metavar="N", help="swaps (default: 300)"
    )
    demo.add_argument("--seed", type=int, default=7, metavar="N", help="emulator seed (default: 7)")
    demo.set_defaults(handler="demo")

    batch = add(
        "batch",
        "run the swaps of a JSONL or CSV manifest (resumable)",
        description="Validate a whole manifest, then submit every swap, wait for all of "
        "them, download the results into --out and write a JSON Lines report. Interrupted "
        "or crashed? Run the same command again: the journal resumes without paying twice.",
        epilog=BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("manifest", type=Path, metavar="MANIFEST", help="JSONL or CSV file")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="download directory")
    batch.add_argument(
        "--journal",
        type=Path,
        metavar="FILE",
        help="resume journal (default: DIR/.akool-journal.sqlite)",
    )
    batch.add_argument(
        "--report", type=Path, metavar="FILE", help="JSONL report (default: DIR/report.jsonl)"
    )
    batch.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="submits in flight (default: 64)",
    )
    batch.add_argument(
        "--job-timeout",
        type=_seconds,
        default=3 * 3600.0,
        metavar="S",
        help="seconds a job may take (default: 10800)",
    )
    _poll_option(batch)
    batch.add_argument(
        "--format", choices=("jsonl", "csv"), help="manifest format (default: from the name)"
    )
    batch.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="on resume, submit again swaps whose earlier submit may have reached AKOOL "
        "(may pay twice)",
    )
    batch.set_defaults(handler="batch")

    swap = add("swap", "submit one swap", description="Submit one face swap.")
    swap_kinds = swap.add_subparsers(dest="kind", metavar="KIND", required=True)
    _swap_parsers(swap_kinds, common)
    swap.set_defaults(handler="swap")

    status = add("status", "show the current state of jobs")
    status.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    status.set_defaults(handler="status")

    wait = add("wait", "wait for jobs to finish")
    wait.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    wait.add_argument("--timeout", type=_seconds, default=1800.0, metavar="S", help="default: 1800")
    wait.add_argument(
        "--media",
        choices=[media.value for media in MediaType],
        default="image",
        help="polling pace: videos are polled less often (default: image)",
    )
    _poll_option(wait)
    wait.set_defaults(handler="wait")

    delete = add("delete", "delete job records (permanent)")
    delete.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    delete.set_defaults(handler="delete")

    credit = add("credit", "show the account's credit balance")
    credit.set_defaults(handler="credit")

    detect = add("detect", "detect faces in an image or video (URL or local image file)")
    detect.add_argument("media", metavar="URL_OR_FILE", help="http(s) URL, or an image file")
    detect.add_argument("--single-face", action="store_true", help="only the largest face")
    detect.add_argument(
        "--frames", type=_positive_int, metavar="N", help="video frames to sample (default: 5)"
    )
    detect.add_argument(
        "--face-urls", action="store_true", help="also return face crops (URL, region, opts)"
    )
    detect.add_argument(
        "--legacy", action="store_true", help="use the legacy detector (sg3.akool.com/detect)"
    )
    detect.set_defaults(handler="detect")

    emulator = commands.add_parser(
        "emulator",
        add_help=False,
        help="run the local AKOOL emulator until Ctrl-C (see 'akool-async emulator --help')",
        description="Run the local AKOOL emulator (python -m akool_async.testing).",
    )
    emulator.set_defaults(handler="emulator")
    return parser


# --------------------------------------------------------------------------------------------
# Output helpers


def _status_name(result: SwapResult) -> str:
    return result.status.name.lower()


def result_record(result: SwapResult) -> dict[str, Any]:
    """A listbyids item as a JSON-ready dict."""
    return {
        "id": result.id,
        "status": _status_name(result),
        "status_code": int(result.status),
        "url": result.url,
        "job_id": result.job_id,
        "created_at": None if result.created_at is None else result.created_at.isoformat(),
    }


def _columns(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------------------------
# Single-call commands


def _swap_request(args: argparse.Namespace) -> Any:
    fields = {name: getattr(args, name) for name in fields_of(args.kind) if hasattr(args, name)}
    return build_request(args.kind, fields, text=True)


async def _submit(client: AsyncClient, request: Any) -> SwapJob:
    operation = getattr(client, f"faceswap_{request.kind.value}")
    job: SwapJob = await operation(request)
    return job


def _job_record(job: SwapJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "job_id": job.job_id,
        "kind": job.kind.value,
        "media": job.media.value,
        "url": job.url,
    }


async def _cmd_swap(ctx: Context) -> int:
    from ._cli_batch import outcome_record

    args = ctx.args
    request = _swap_request(args)
    wait = args.wait or args.download is not None
    async with ctx.connect() as client:
        if not wait:
            job = await _submit(client, request)
            if ctx.json:
                ctx.emit(_job_record(job))
            else:
                ctx.say(f"submitted {job.kind.value} job {job.id} ({job.media.value})")
                ctx.say(f"check it with: {PROG} status {job.id}")
            return EXIT_OK

        def on_event(event: Any) -> None:
            if event.kind == "submitted" and not ctx.json:
                ctx.note(f"submitted job {event.job_id}; waiting for it...")

        batch = client.swap_many(
            [request],
            download_dir=args.download,
            job_timeout=args.timeout,
            check_credit=False,
            on_event=on_event,
        )
        async with batch:
            outcomes = [outcome async for outcome in batch]
    [outcome] = outcomes
    record = outcome_record(outcome, line=None, kind=args.kind)
    if ctx.json:
        ctx.emit(record)
    elif outcome.ok:
        ctx.say(f"job {record['job_id']} succeeded: {record['result_url']}")
        if outcome.path is not None:
            ctx.say(f"saved {outcome.path} (sha256 {outcome.sha256})")
    else:
        what = f"job {record['job_id']}" if record["job_id"] else "the swap"
        ctx.note(
            f"error: {what} did not succeed: {record['error_type']}: {record['error_message']}"
        )
    return EXIT_OK if outcome.ok else EXIT_FAILED


async def _cmd_status(ctx: Context) -> int:
    ids = validate_ids(ctx.args.ids)
    async with ctx.connect() as client:
        results = {result.id: result for result in await client.get_results(ids)}
    records = [
        result_record(results[i]) if i in results else {"id": i, "status": "not_found"} for i in ids
    ]
    if ctx.json:
        ctx.emit(records)
    else:
        rows = [[r["id"], r["status"], r.get("url") or ""] for r in records]
        for line in _columns([["ID", "STATUS", "URL"], *rows]):
            ctx.say(line)
    return EXIT_OK if len(results) == len(ids) else EXIT_FAILED


async def _cmd_wait(ctx: Context) -> int:
    args = ctx.args
    ids = validate_ids(args.ids)
    records: dict[str, dict[str, Any]] = {}

    async def one(client: AsyncClient, job_id: str) -> None:
        try:
            result = await client.wait(job_id, timeout=args.timeout, media=args.media)
        except JobError as exc:
            record: dict[str, Any] = {"id": job_id}
            last = exc.result if isinstance(exc.result, SwapResult) else None
            if last is not None:
                record |= result_record(last)
            if isinstance(exc, JobFailedError):
                record["status"] = "failed"
            elif last is None or not last.status.is_terminal:
                record["status"] = type(exc).__name__.removeprefix("Job").removesuffix("Error")
                record["status"] = {"Timeout": "timed_out", "NotFound": "not_found"}.get(
                    record["status"], "error"
                )
            record |= {"error_type": type(exc).__name__, "error_message": str(exc)}
            records[job_id] = record
        else:
            records[job_id] = result_record(result)
        if not ctx.json:
            done = records[job_id]
            ok = done["status"] == "success"
            detail = done.get("url") if ok else done.get("error_message")
            ctx.say(f"{job_id}  {done['status']}  {detail or ''}".rstrip())

    async with ctx.connect() as client, anyio.create_task_group() as tg:
        for job_id in ids:
            tg.start_soon(one, client, job_id)
    ordered = [records[i] for i in ids]
    if ctx.json:
        ctx.emit(ordered)
    return EXIT_OK if all(r["status"] == "success" for r in ordered) else EXIT_FAILED


async def _cmd_delete(ctx: Context) -> int:
    ids = validate_ids(ctx.args.ids)
    async with ctx.connect() as client:
        await client.delete_results(ids)
    if ctx.json:
        ctx.emit({"deleted": list(ids)})
    else:
        ctx.say(f"deleted {len(ids)} job record{'s' if len(ids) != 1 else ''}")
    return EXIT_OK


async def _cmd_credit(ctx: Context) -> int:
    async with ctx.connect() as client:
        credit = await client.get_credit()
    if ctx.json:
        ctx.emit({"credit": credit})
    else:
        ctx.say(f"credit: {credit:,g}")
    return EXIT_OK


def _detect_faces_records(found: FaceDetection) -> list[dict[str, Any]]:
    return [
        {
            "frame": face.frame,
            "index": face.index,
            "region": list(face.region),
            "bbox": list(face.bbox),
            "opts": face.opts,
            "face_url": face.face_url,
            "crop_region": None if face.crop_region is None else list(face.crop_region),
            "crop_landmarks": face.crop_landmarks,
        }
        for face in found.faces
    ]


def _legacy_records(found: LegacyFaceDetection) -> list[dict[str, Any]]:
    return [
        {
            "frame": 0,
            "index": index,
            "region": list(region),
            "opts": opts,
            "landmarks": [list(point) for point in landmarks],
        }
        for index, (region, opts, landmarks) in enumerate(
            zip(found.regions, found.opts, found.landmarks, strict=False)
        )
    ]


async def _cmd_detect(ctx: Context) -> int:
    args = ctx.args
    media: str = args.media
    is_url = media.lower().startswith(("http://", "https://"))
    document: dict[str, Any]
    if args.legacy:
        if args.frames is not None or args.face_urls:
            raise CliError("--frames and --face-urls need the current detector", EXIT_USAGE)
        legacy = (
            LegacyDetect(image_url=media, single_face=args.single_face)
            if is_url
            else LegacyDetect(img=Path(media), single_face=args.single_face)
        )
        async with ctx.connect() as client:
            found_legacy = await client.detect_faces_legacy(legacy)
        faces = _legacy_records(found_legacy)
        document = {"media": media, "faces": faces, "origin_url": found_legacy.origin_url}
    else:
        options: dict[str, Any] = {
            "single_face": args.single_face,
            "return_face_url": args.face_urls,
        }
        if args.frames is not None:
            options["num_frames"] = args.frames
        request = (
            DetectFaces(url=media, **options) if is_url else DetectFaces(img=Path(media), **options)
        )
        async with ctx.connect() as client:
            found = await client.detect_faces(request)
        faces = _detect_faces_records(found)
        document = {"media": media, "frames": len(found.frames), "faces": faces}
    if ctx.json:
        ctx.emit(document)
        return EXIT_OK
    ctx.say(f"{len(faces)} face{'s' if len(faces) != 1 else ''} in {media}")
    if faces:
        header = ["FRAME", "FACE", "REGION x,y,w,h", "OPTS", "CROP"]
        rows = [
            [
                str(face["frame"]),
                str(face["index"]),
                ",".join(str(v) for v in face["region"]),
                face.get("opts") or "",
                face.get("face_url") or "",
            ]
            for face in faces
        ]
        for line in _columns([header, *rows]):
            ctx.say(line)
    return EXIT_OK


def _cmd_emulator(extra: Sequence[str]) -> int:
    from .testing import main as emulator_main

    return emulator_main(list(extra))


async def _cmd_batch(ctx: Context) -> int:
    from ._cli_batch import cmd_batch

    return await cmd_batch(ctx)


async def _cmd_demo(ctx: Context) -> int:
    from ._demo import cmd_demo

    return await cmd_demo(ctx)


_HANDLERS: Final[dict[str, Callable[[Context], Awaitable[int]]]] = {
    "batch": _cmd_batch,
    "credit": _cmd_credit,
    "delete": _cmd_delete,
    "demo": _cmd_demo,
    "detect": _cmd_detect,
    "status": _cmd_status,
    "swap": _cmd_swap,
    "wait": _cmd_wait,
}


# --------------------------------------------------------------------------------------------
# Running


@contextlib.contextmanager
def _logging(ctx: Context) -> Iterator[None]:
    verbosity = int(ctx.args.verbose or 0)
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger("akool_async")
    handler = logging.StreamHandler(ctx.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redactor(ctx.secrets))
    previous = logger.level
    logger.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def _run(ctx: Context, handler: Callable[[Context], Awaitable[int]]) -> int:
    """Run a command with Ctrl-C and SIGTERM turned into a clean stop.

    Inside ``ctx.connect()`` a signal cancels only the command's work (an anyio cancel scope),
    so the client and its batches close normally before ``_Interrupted`` is raised; elsewhere,
    or on a second signal, it cancels the whole command.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        first = ctx.interrupted is None
        if first:
            ctx.interrupted = signum
        if first and ctx._scope is not None:
            ctx._scope.cancel()
        elif task is not None:
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        return await handler(ctx)
    except asyncio.CancelledError:
        if ctx.interrupted is not None:
            raise _Interrupted(ctx.interrupted) from None
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _Interrupted(Exception):
    """SIGINT or SIGTERM stopped the command."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _secrets(args: argparse.Namespace) -> tuple[str, ...]:
    values = [getattr(args, "api_key", None), *(os.environ.get(n) for n in _ENV_SECRETS)]
    return tuple(sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True))


def _report(ctx: Context, message: str, code: int) -> int:
    for line in (message or "failed").splitlines() or ["failed"]:
        ctx.note(f"error: {line}")
    return code


def _first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: the one worth reporting."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _failure(ctx: Context, exc: Exception) -> int:
    """Report a command's exception as ``error:`` lines; return the exit code."""
    error = _first_leaf(exc)
    if isinstance(error, CliError):
        return _report(ctx, str(error), error.code)
    if isinstance(error, ValidationError):
        return _report(ctx, str(error), EXIT_USAGE)
    if isinstance(error, AkoolError):
        return _report(ctx, _error_text(error), EXIT_FAILED)
    if isinstance(error, OSError):
        return _report(ctx, str(error), EXIT_FAILED)
    _logger.debug("unexpected error", exc_info=exc)
    return _report(ctx, f"unexpected {_error_text(error)} (run with -vv for details)", EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it)."""
    stdout, stderr = sys.stdout, sys.stderr
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(arguments)
        if args.handler == "emulator":
            return _cmd_emulator(extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except CliError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.code
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    ctx = Context(
        args=args, stdout=stdout, stderr=stderr, secrets=_secrets(args), argv=tuple(arguments)
    )
    handler = _HANDLERS[args.handler]
    with _logging(ctx):
        try:
            return asyncio.run(_run(ctx, handler))
        except (KeyboardInterrupt, _Interrupted) as exc:
            ctx.note("interrupted")
            if ctx.interrupt_hint is not None:
                ctx.note(ctx.interrupt_hint())
            terminated = isinstance(exc, _Interrupted) and exc.signum == signal.SIGTERM
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except Exception as exc:
            return _failure(ctx, exc)

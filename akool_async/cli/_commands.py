"""The single-call commands of ``akool-async``: swap, status, wait, delete, credit, detect."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from akool_async._client import AsyncClient
from akool_async._errors import DownloadError, JobError, JobFailedError, StorageError
from akool_async._models import (
    DetectFaces,
    FaceDetection,
    LegacyDetect,
    LegacyFaceDetection,
    SwapJob,
    SwapResult,
    validate_ids,
)

from ._context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, CliError, Context
from ._manifest import build_request, fields_of

__all__ = ["HANDLERS", "cmd_emulator", "result_record"]

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


# --------------------------------------------------------------------------------------------
# Single-call commands


def _swap_request(args: argparse.Namespace) -> Any:
    fields = {name: getattr(args, name) for name in fields_of(args.kind) if hasattr(args, name)}
    return build_request(args.kind, fields, text=True, base=Path.cwd())


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
    from ._batch import outcome_record

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
            if event.kind == "submitted":
                ctx.progress(f"submitted job {event.job_id}; waiting for it...")
            elif event.kind == "status_changed" and event.status is not None:
                ctx.progress(f"job {event.job_id}: {event.status.name.lower()}")

        batch = client.swap_many(
            [request], job_timeout=args.timeout, check_credit=False, on_event=on_event
        )
        async with batch:
            outcomes = [outcome async for outcome in batch]
        [outcome] = outcomes
        if outcome.ok and outcome.result is not None and args.download is not None:
            try:
                saved = await client.download(outcome.result, args.download)
            except (DownloadError, StorageError) as exc:
                outcome = attrs.evolve(outcome, error=exc)
            else:
                outcome = attrs.evolve(
                    outcome, path=saved.path, sha256=saved.sha256, location=saved.location
                )
    record = outcome_record(outcome, line=None, kind=args.kind)
    if ctx.json:
        ctx.emit(record)
    elif outcome.ok:
        ctx.say(f"job {record['id']} succeeded: {record['result_url']}")
        if outcome.location is not None:
            ctx.say(f"saved {outcome.location} (sha256 {outcome.sha256})")
    else:
        what = f"job {record['id']}" if record["id"] else "the swap"
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


def _not_found(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": "not_found",
        "error_type": "JobNotFoundError",
        "error_message": f"job {job_id} is unknown to AKOOL (wrong, deleted or expired id)",
    }


async def _cmd_wait(ctx: Context) -> int:
    args = ctx.args
    ids = validate_ids(args.ids)
    records: dict[str, dict[str, Any]] = {}

    def show(job_id: str) -> None:
        if not ctx.json:
            done = records[job_id]
            ok = done["status"] == "success"
            detail = done.get("url") if ok else done.get("error_message")
            ctx.say(f"{job_id}  {done['status']}  {detail or ''}".rstrip())

    async def one(client: AsyncClient, job_id: str) -> None:
        try:
            result = await client.wait(
                job_id,
                timeout=args.timeout,
                media=args.media,
                on_status=lambda seen: ctx.progress(f"{job_id}: {_status_name(seen)}"),
            )
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
        show(job_id)

    async with ctx.connect() as client:
        # One listbyids first: an unknown id fails now instead of after the poller's grace.
        known = {result.id: result for result in await client.get_results(ids)}
        waiting = []
        for job_id in ids:
            if job_id not in known:
                records[job_id] = _not_found(job_id)
                show(job_id)
            else:
                waiting.append(job_id)
        if waiting:
            states = ", ".join(f"{i} {_status_name(known[i])}" for i in waiting)
            ctx.progress(
                f"waiting for {len(waiting)} job{'s' if len(waiting) > 1 else ''}: {states}"
            )
        async with anyio.create_task_group() as tg:
            for job_id in waiting:
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
    if args.analyze:
        from ._analyze import cmd_analyze

        return await cmd_analyze(ctx)
    if args.timestamps is not None or args.expand_ratio is not None:
        raise CliError("--timestamps and --expand-ratio need --analyze", EXIT_USAGE)
    if len(args.media) > 1:
        raise CliError("detect takes one URL or file (frames of a video: --analyze)", EXIT_USAGE)
    [media] = args.media
    is_url = media.lower().startswith(("http://", "https://"))
    if not is_url and "://" in media:
        scheme = media.split("://", 1)[0]
        raise CliError(
            f"URL_OR_FILE: only http(s) URLs can be detected, not {scheme}:// ({media!r})",
            EXIT_USAGE,
        )
    if not is_url and not await anyio.Path(media).is_file():
        raise CliError(
            f"URL_OR_FILE: no such file: {media!r} (give an http(s) URL or an image file)",
            EXIT_USAGE,
        )
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


def cmd_emulator(extra: Sequence[str]) -> int:
    from akool_async.testing import main as emulator_main

    return emulator_main(list(extra), prog="akool-async emulator")


async def _cmd_batch(ctx: Context) -> int:
    from ._batch import cmd_batch

    return await cmd_batch(ctx)


async def _cmd_demo(ctx: Context) -> int:
    from ._demo import cmd_demo

    return await cmd_demo(ctx)


async def _cmd_login(ctx: Context) -> int:
    from ._config import cmd_login

    return await cmd_login(ctx)


async def _cmd_logout(ctx: Context) -> int:
    from ._config import cmd_logout

    return await cmd_logout(ctx)


async def _cmd_completion(ctx: Context) -> int:
    from ._config import cmd_completion

    return await cmd_completion(ctx)


async def _cmd_report(ctx: Context) -> int:
    from ._report import cmd_report

    return await cmd_report(ctx)


HANDLERS: Final[dict[str, Callable[[Context], Awaitable[int]]]] = {
    "batch": _cmd_batch,
    "completion": _cmd_completion,
    "credit": _cmd_credit,
    "delete": _cmd_delete,
    "demo": _cmd_demo,
    "detect": _cmd_detect,
    "login": _cmd_login,
    "logout": _cmd_logout,
    "report": _cmd_report,
    "status": _cmd_status,
    "swap": _cmd_swap,
    "wait": _cmd_wait,
}

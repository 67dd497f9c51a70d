"""``akool-async demo``: the whole SDK at work on a local emulator, in well under a minute.

1. An ``Emulator`` starts in-process with realistic but fast jobs (images 0.3-1.5 s, videos
   1-4 s, a short queue, limited processing slots and a 3 % failure rate).
2. The sample media are hosted by the emulator itself; file names carry face hints
   (``...-faces-3.png``), so the detector finds several faces in group photos.
3. ``detect_faces`` runs on the photos, clips and faces that need landmarks or crops.
4. A few hundred mixed swaps are built: V3 image, V3 video, Pro, Plus single-face (images and
   videos) and Plus multi-face, whose ``face_mapping`` uses detector crops or bboxes.
5. They all go through ``client.swap_many`` (bounded concurrency, the shared coalescing
   poller, verified downloads) with a live progress bar, into ``./akool-demo-output/``.
6. A summary shows the outcomes, the HTTP requests by endpoint (note how few listbyids calls
   the poller needs per job), the credits used and the wall time.

No credentials and no network are needed; a few failed swaps are part of the show.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import anyio

from akool_async._client import AsyncClient
from akool_async._jobs._poll_config import PollConfig
from akool_async._models import (
    DetectedFace,
    DetectFaces,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    ModelStyle,
    PlusSwap,
    ProSwap,
    VideoSwap,
)

from ._batch import BatchRunResult, run_batch, write_report
from ._context import EXIT_OK, Context
from ._manifest import ManifestEntry
from ._report import finish_batch_report

__all__ = ["DEMO_POLL", "build_demo_requests", "cmd_demo", "demo_emulator_config"]

#: Fast polling for the emulator's fast jobs (the defaults suit the real API's pace).
DEMO_POLL: Final = PollConfig(
    image_first=0.4, image_max=1.5, video_first=1.0, video_max=2.0, backoff=1.5
)
#: Which swap each slot of a 20-job cycle is: the demo's mix.
_MIX: Final = (
    "plus",
    "image",
    "plus_video",
    "pro",
    "plus_multi_crops",
    "plus",
    "video",
    "image",
    "plus_multi_bbox",
    "pro",
    "plus",
    "plus_video",
    "image",
    "plus_multi_crops",
    "pro",
    "video",
    "plus",
    "plus_multi_bbox",
    "image",
    "plus_video",
)
_DETECT_LIMIT: Final = 16
_LABELS: Final = {
    "plus": "Plus, single face, image",
    "plus_video": "Plus, single face, video",
    "plus_multi_crops": "Plus, multi-face, detector crops",
    "plus_multi_bbox": "Plus, multi-face, bboxes",
    "pro": "Pro",
    "image": "V3 image",
    "video": "V3 video",
}


def demo_emulator_config(seed: int = 7) -> Any:
    """The emulator configuration of the demo (realistic shape, fast timings)."""
    from akool_async.testing import EmulatorConfig

    return EmulatorConfig(
        seed=seed,
        queue_seconds=(0.0, 0.3),
        image_seconds=(0.3, 1.5),
        video_seconds=(1.0, 4.0),
        concurrency=96,
        failure_rate=0.03,
        video_size=256 * 1024,
    )


class _Media:
    """The sample media, hosted by the emulator (``/results/uploads/...``)."""

    def __init__(self, base_url: str) -> None:
        self.base = f"{base_url}/results/uploads"

    def face(self, n: int) -> str:
        return f"{self.base}/demo-face-{n:02d}.png"

    def photo(self, n: int) -> str:
        return f"{self.base}/demo-photo-{n:02d}.png"

    def group(self, n: int) -> str:
        return f"{self.base}/demo-group-{n:02d}-faces-3.png"

    def cast(self, n: int) -> str:
        return f"{self.base}/demo-cast-{n:02d}-faces-3.png"

    def clip(self, n: int) -> str:
        # Not served (the emulator never fetches inputs); the extension makes it a video job.
        return f"{self.base}/demo-clip-{n:02d}.mp4"


async def _detect_all(
    client: AsyncClient, urls: Sequence[str], *, frames: int = 1
) -> dict[str, list[DetectedFace]]:
    """``detect_faces`` (with crops) on every URL, a few at a time."""
    found: dict[str, list[DetectedFace]] = {}
    limiter = anyio.CapacityLimiter(_DETECT_LIMIT)

    async def one(url: str) -> None:
        async with limiter:
            detection = await client.detect_faces(
                DetectFaces(url=url, return_face_url=True, num_frames=frames)
            )
        found[url] = list(detection.faces)

    async with anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(one, url)
    return found


async def build_demo_requests(client: AsyncClient, base_url: str, jobs: int) -> list[ManifestEntry]:
    """Detect faces in the sample media and build ``jobs`` mixed swap requests."""
    media = _Media(base_url)
    faces = [media.face(n) for n in range(16)]
    photos = [media.photo(n) for n in range(12)]
    groups = [media.group(n) for n in range(8)]
    casts = [media.cast(n) for n in range(8)]
    clips = [media.clip(n) for n in range(8)]
    detected = await _detect_all(client, [*faces, *photos, *groups, *casts])
    detected |= await _detect_all(client, clips, frames=3)

    def crop(url: str, index: int = 0) -> FaceImage:
        return detected[url][index].to_face_image()

    entries: list[ManifestEntry] = []
    counter = itertools.count()
    for i in range(jobs):
        slot = _MIX[i % len(_MIX)]
        n = next(counter)
        face, photo = faces[n % len(faces)], photos[(n // 3) % len(photos)]
        request: Any
        kind = slot.split("_", 1)[0]
        if slot == "plus":
            # A distinct target per job: single-face mode needs no detection.
            request = PlusSwap(source_url=face, target_url=f"{media.base}/demo-selfie-{i:03d}.png")
        elif slot == "plus_video":
            style = (ModelStyle.REALISTIC, ModelStyle.BEAUTIFY)[n % 2]
            request = PlusSwap(
                source_url=face,
                target_url=f"{media.base}/demo-reel-{i:03d}.mp4",
                model_style=style,
                face_enhance=n % 3 == 0,
            )
        elif slot.startswith("plus_multi"):
            group, cast = groups[n % len(groups)], casts[(n // 2) % len(casts)]
            pairs = zip(detected[cast], detected[group], strict=False)
            if slot == "plus_multi_crops":
                mapping = [
                    FaceMapping(source=s.to_face_info(), target=t.to_face_info()) for s, t in pairs
                ]
            else:
                mapping = [
                    FaceMapping(
                        source=FaceInfo(face_url=cast, bbox=s.bbox),
                        target=FaceInfo(face_url=group, bbox=t.bbox),
                    )
                    for s, t in pairs
                ]
            request = PlusSwap(source_url=cast, target_url=group, face_mapping=mapping)
        elif slot == "pro":
            request = ProSwap(source=[crop(face)], target=[crop(photo)], face_enhance=n % 2 == 0)
        elif slot == "image":
            request = ImageSwap(source=[crop(face)], target=[crop(photo)], modify_image=photo)
        else:  # video
            clip = clips[n % len(clips)]
            request = VideoSwap(source=[crop(face)], target=[crop(clip)], modify_video=clip)
        entries.append(ManifestEntry(line=i + 1, kind=kind, request=request, ref=slot))
    return entries


def _requests(result: BatchRunResult, client_requests: dict[str, int]) -> dict[str, int]:
    merged = dict(client_requests)
    for name, count in result.statistics.requests.items():
        merged.setdefault(name, count)
    return dict(sorted(merged.items(), key=lambda item: -item[1]))


def _clear_previous_run(out_dir: Path) -> int:
    """Remove the files an earlier demo wrote into ``out_dir`` (those its report lists).

    Only files named in ``out_dir/report.jsonl`` and inside ``out_dir`` are removed, so a
    directory the user also keeps other things in is safe. Returns how many were removed.
    """
    report = out_dir / "report.jsonl"
    if not report.is_file():
        return 0
    removed = 0
    root = out_dir.resolve()
    for line in report.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            name = json.loads(line).get("file")
        except (ValueError, AttributeError):
            continue
        if not isinstance(name, str):
            continue
        path = Path(name).resolve()
        if path.parent == root and path.is_file():
            path.unlink()
            removed += 1
    report.unlink()
    return removed


def _files(out_dir: Path, records: Sequence[dict[str, Any]]) -> tuple[int, int]:
    paths = [Path(r["file"]) for r in records if r.get("file")]
    return len(paths), sum(p.stat().st_size for p in paths if p.exists())


async def cmd_demo(ctx: Context) -> int:
    """``akool-async demo [--out DIR] [--jobs N] [--seed N]``."""
    from akool_async.testing import Emulator

    args = ctx.args
    if not ctx.json:
        ctx.require_rich("akool-async demo")
    out_dir: Path = args.out
    await anyio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    removed = await anyio.to_thread.run_sync(_clear_previous_run, out_dir)
    if removed:
        ctx.progress(f"removed the {removed} result files of the previous demo in {out_dir}/")
    started = time.monotonic()
    async with Emulator(config=demo_emulator_config(args.seed)) as emu:
        if not ctx.json:
            ctx.progress(
                f"local AKOOL emulator at {emu.base_url}; detecting faces in the samples..."
            )
        client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
        client.poll_config = DEMO_POLL
        async with ctx.connect(client):
            entries = await build_demo_requests(client, emu.base_url, args.jobs)
            result = await run_batch(
                ctx,
                client,
                entries,
                out_dir=out_dir,
                concurrency=64,
                progress=not ctx.json and not ctx.quiet,
                label="swaps",
            )
            client_requests = dict(client.statistics().requests)
        # Inside the emulator's lifetime: the sample inputs are fetched into the folder.
        page = await finish_batch_report(
            out_dir, entries, result, inputs="fetch", secrets=(emu.api_key,)
        )
    wall = time.monotonic() - started
    report = out_dir / "report.jsonl"
    await anyio.to_thread.run_sync(write_report, report, result.records)
    kinds = Counter(record["kind"] for record in result.records)
    requests = _requests(result, client_requests)
    jobs_tracked = sum(1 for record in result.records if record["id"])
    per_job = requests.get("list_results", 0) / max(1, jobs_tracked)
    files, size = await anyio.to_thread.run_sync(_files, out_dir, result.records)
    stats = result.statistics
    summary: dict[str, Any] = {
        "swaps": len(result.records),
        "kinds": dict(kinds),
        "succeeded": result.count("ok"),
        "failed": result.count("failed"),
        "errors": result.count("error"),
        "requests": requests,
        "listbyids_per_job": round(per_job, 3),
        "credits_used": stats.credits_used,
        "batch_seconds": round(result.seconds, 3),
        "wall_seconds": round(wall, 3),
        "files": files,
        "bytes": size,
        "out": str(out_dir),
        "report": str(report),
        "gallery": str(page),
    }
    if ctx.json:
        ctx.emit(summary)
        return EXIT_OK
    from ._progress import key_value_table, print_table, requests_rows

    mix = Counter(record["ref"] for record in result.records)
    rows = [
        ("swaps", f"{len(result.records):,}"),
        ("done", f"{summary['succeeded']:,}"),
        ("failed (status 4)", f"{summary['failed']:,}"),
        ("errors", f"{summary['errors']:,}"),
        ("credits used", "unknown" if stats.credits_used is None else f"{stats.credits_used:,g}"),
        ("listbyids requests per job", f"{per_job:.2f}"),
        ("throughput", f"{len(result.records) / max(result.seconds, 1e-9):.1f} swaps/s"),
        ("batch time", f"{result.seconds:.1f} s"),
        ("wall time", f"{wall:.1f} s"),
        ("results", f"{files} files, {size / 1e6:.1f} MB in {out_dir}/"),
        ("report", str(report)),
        ("gallery", str(page)),
    ]
    print_table(
        ctx.stdout,
        key_value_table("Swaps by kind", [(_LABELS[ref], f"{mix[ref]:,}") for ref in _LABELS]),
        key_value_table("akool-async demo", rows),
        key_value_table("Requests by endpoint", requests_rows(requests)),
    )
    if summary["failed"]:
        rate = demo_emulator_config(args.seed).failure_rate
        ctx.say(
            f"The {summary['failed']} failed swaps are on purpose: the demo's emulator fails "
            f"{rate:.0%} of its jobs, to show failures arriving as values (exit code 0)."
        )
    ctx.say(f"open {page} to see every swap side by side")
    return EXIT_OK

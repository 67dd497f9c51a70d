"""The HTML gallery at scale: a 10,000-result report's size, build time and time to first paint.

Run ``python benchmarks/bench_report.py [--results 10000] [--large 300] [--quick]``.

1. **Thumbnails in bounded memory**: ``--large`` copies of one 4000x3000 JPEG (a phone photo)
   are thumbnailed one at a time by the report's thumbnailer; the process's peak RSS before
   and after shows what thumbnailing added, next to what one full decode would take.
2. **A 10,000-result report**: a synthetic batch folder (``.akool-batch.json``, ``report.jsonl``
   and one small PNG per image result; 5 % videos, 3 % failed, 1 % errors, 1 % ambiguous) is
   turned into ``report.html`` with thumbnails; then the page is opened from ``file://`` in
   headless Chromium (1280x800) and its first contentful paint, the time until every card is
   placed (cards are filled as they come into view) and the time until the first screen of
   cards is filled are read from the page's own performance timeline.

Prints one JSON object. ``--quick`` keeps 10,000 results but thumbnails 40 large photos.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from akool_async import write_report_html  # noqa: E402
from akool_async._report import REPORT_FILES  # noqa: E402
from akool_async._report_media import Thumbnailer  # noqa: E402
from tests._browser import Chromium  # noqa: E402


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def large_jpeg(path: Path, width: int = 4000, height: int = 3000) -> None:
    """A photo-sized JPEG with real detail (a gradient plus noise), written once."""
    noise = Image.effect_noise((width // 8, height // 8), 64).resize((width, height))
    gradient = Image.linear_gradient("L").resize((width, height))
    Image.merge("RGB", (noise, gradient, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(
        path, "JPEG", quality=90
    )


def bench_thumbnails(work: Path, count: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    source = work / "photo.jpg"
    # Made in a child process: its full-size buffers must not count in this one's peak RSS.
    subprocess.run([sys.executable, __file__, "--make-photo", str(source)], check=True, cwd=ROOT)
    photos = work / "photos"
    photos.mkdir()
    for i in range(count):
        shutil.copyfile(source, photos / f"p{i:05d}.jpg")
    thumb = Thumbnailer(work / "thumbs", enabled=True)
    before = peak_rss()
    started = time.perf_counter()
    for path in sorted(photos.iterdir()):
        assert thumb(path) is not None
    seconds = time.perf_counter() - started
    after = peak_rss()
    with Image.open(source) as full:
        full.load()  # for comparison: one decode at full size, as without draft()
    full_peak = peak_rss()
    return {
        "large_photos": count,
        "photo_pixels": "4000x3000",
        "thumbnail_ms_per_photo": round(seconds / count * 1000, 2),
        "peak_rss_before_mb": round(before / 1e6, 1),
        "peak_rss_after_mb": round(after / 1e6, 1),
        "thumbnails_added_peak_rss_mb": round((after - before) / 1e6, 1),
        "one_full_decode_mb": round(4000 * 3000 * 3 / 1e6, 1),
        "peak_rss_after_one_full_decode_mb": round(full_peak / 1e6, 1),
    }


def synthetic_batch(out: Path, results: int) -> dict[str, int]:
    """A finished batch's folder with ``results`` swaps; returns its counts per state."""
    out.mkdir(parents=True)
    png = io.BytesIO()
    Image.new("RGB", (256, 256), (120, 80, 200)).save(png, "PNG")
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096
    inputs = out / "inputs"
    inputs.mkdir()
    for n in range(200):
        Image.new("RGB", (512, 512), (n, 255 - n, 90)).save(inputs / f"in{n:03d}.png")
    entries, records = [], []
    counts = {"succeeded": 0, "failed": 0, "error": 0, "ambiguous": 0}
    for i in range(results):
        kind = ("plus", "pro", "image", "video")[i % 4] if i % 20 else "video"
        media = "video" if kind == "video" and i % 20 == 0 else "image"
        ext = "mp4" if media == "video" else "png"
        # Local inputs (as a batch over local files would have): nothing to resolve or fetch.
        request = {
            "source_url": str(inputs / f"in{i % 97:03d}.png"),
            "target_url": str(inputs / f"in{97 + i % 103:03d}.png"),
        }
        status, error_type, message = "ok", None, None
        if i % 100 in (7, 41, 77):
            status, error_type, message = "failed", "JobFailedError", "no face in the target"
        elif i % 100 == 13:
            status, error_type, message = "error", "DownloadError", "HTTP 404 after 3 attempts"
        elif i % 100 == 29:
            status, error_type, message = "error", "AmbiguousSubmitError", "stopped mid-submit"
        state = {
            "ok": "succeeded",
            "failed": "failed",
        }.get(status, "ambiguous" if error_type == "AmbiguousSubmitError" else "error")
        counts[state] += 1
        path = None
        if status == "ok":
            path = out / f"{i:024x}.{ext}"
            path.write_bytes(video if media == "video" else png.getvalue())
        entries.append(
            {"index": i, "line": i + 1, "ref": f"shoot-{i // 50}/take-{i}", "kind": kind,
             "media": media, "request": request}
        )  # fmt: skip
        records.append(
            {"line": i + 1, "ref": f"shoot-{i // 50}/take-{i}", "kind": kind, "status": status,
             "job_id": f"{i:024x}",
             "result_url": f"https://cdn.example/final_{i:024x}.{ext}" if path else None,
             "file": str(path) if path else None, "sha256": "ab" * 32 if path else None,
             "error_type": error_type, "error_message": message, "resumed": False}
        )  # fmt: skip
    batch = {
        "version": 1,
        "entries": entries,
        "statistics": {**counts, "errored": counts["error"], "credits_used": results * 2.0,
                       "seconds": 1800.0},
    }  # fmt: skip
    (out / ".akool-batch.json").write_text(json.dumps(batch))
    (out / "report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return counts


async def open_in_chromium(page: Path, work: Path) -> dict[str, Any]:
    binary = Chromium.find()
    if binary is None:
        return {"chromium": "not installed"}
    async with Chromium(binary, work) as browser, browser.page(1280, 800) as tab:
        started = time.perf_counter()
        await tab.navigate(page.as_uri())
        load = time.perf_counter() - started
        await tab.wait_for("document.body.dataset.ready === '1'", timeout_ms=120_000)
        in_view = await tab.wait_for(
            "[...document.querySelectorAll('.card')].slice(0, 12)"
            ".every(e => e.dataset.filled) && performance.now()",
            timeout_ms=120_000,
        )
        timing = await tab.evaluate(
            "JSON.stringify({fcp: (performance.getEntriesByName('first-contentful-paint')[0]"
            " || {}).startTime, dcl: performance.getEntriesByType('navigation')[0]"
            ".domContentLoadedEventEnd, ready: performance.getEntriesByName("
            "'akool-cards-ready')[0].startTime, cards: document.querySelectorAll('.card').length,"
            " shown: document.body.dataset.shown})"
        )
        metrics = {
            m["name"]: m["value"] for m in (await tab.send("Performance.getMetrics"))["metrics"]
        } if await tab.send("Performance.enable") is not None else {}  # fmt: skip
        values = json.loads(timing)
        return {
            "first_contentful_paint_ms": round(values["fcp"]),
            "dom_content_loaded_ms": round(values["dcl"]),
            "all_cards_placed_ms": round(values["ready"]),
            "first_screen_filled_ms": round(in_view),
            "load_event_s": round(load, 2),
            "cards": values["cards"],
            "js_heap_mb": round(metrics.get("JSHeapUsedSize", 0) / 1e6, 1),
            "dom_nodes": int(metrics.get("Nodes", 0)),
            "console_errors": len(tab.console_errors),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=300, help="large photos to thumbnail")
    parser.add_argument("--quick", action="store_true", help="40 large photos")
    parser.add_argument("--make-photo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_photo:
        large_jpeg(args.make_photo)
        return
    large = 40 if args.quick else args.large
    with tempfile.TemporaryDirectory(prefix="bench-report-") as temp:
        work = Path(temp)
        out: dict[str, Any] = {"results": args.results}
        out |= await asyncio.to_thread(bench_thumbnails, work / "thumbs", large)
        folder = work / "batch"
        counts = await asyncio.to_thread(synthetic_batch, folder, args.results)
        started = time.perf_counter()
        page = await write_report_html(folder)
        out["build_s_first"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        page = await write_report_html(folder)
        out["build_s_rebuild"] = round(time.perf_counter() - started, 2)
        files = list((folder / REPORT_FILES).iterdir())
        out |= {
            "counts": counts,
            "html_bytes": page.stat().st_size,
            "thumbnails": len(files),
            "thumbnail_bytes": sum(f.stat().st_size for f in files),
        }
        out |= await open_in_chromium(page, work)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

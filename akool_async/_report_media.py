"""The gallery's pictures: thumbnails made one at a time, and inputs fetched into the folder.

Thumbnails need Pillow (the ``report`` extra). They are made in the caller's (worker) thread,
one at a time, JPEGs decoded at reduced size (``Image.draft``), so memory stays bounded
whatever the size of the batch or of its images; each is named after its source's path, size
and mtime, so later rebuilds reuse it. Without Pillow there are none (the page shows the full
images).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import anyio

from ._report_data import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = [
    "FETCH_LIMIT",
    "MAX_PIXELS",
    "THUMB_SIZE",
    "Thumbnailer",
    "cached_inputs",
    "fetch_inputs",
    "input_cache_path",
]

THUMB_SIZE: Final = 320
#: Inputs larger than this are not fetched for the report.
FETCH_LIMIT: Final = 50 * 1024 * 1024
#: Images with more pixels than this get no thumbnail (a decompression bomb guard).
MAX_PIXELS: Final = 120_000_000


class Thumbnailer:
    """Makes ``report-files/t-<hash>.jpg`` thumbnails one at a time (None without Pillow)."""

    def __init__(self, files_dir: Path, *, enabled: bool) -> None:
        self.files_dir = files_dir
        self.image: Any = None
        self.ops: Any = None
        if enabled:
            try:
                from PIL import Image, ImageOps
            except ImportError:
                pass
            else:
                self.image, self.ops = Image, ImageOps
        self.made = 0
        self.reused = 0
        self.used: set[Path] = set()

    @property
    def available(self) -> bool:
        return self.image is not None

    def __call__(self, source: Path) -> Path | None:
        """The thumbnail of an image file (made if missing), or None if it cannot be made."""
        if self.image is None or source.suffix.lower() not in IMAGE_SUFFIXES:
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
                # Phone photos are stored sideways with an EXIF orientation: apply it.
                rgb = self.ops.exif_transpose(img).convert("RGB")
            self.files_dir.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.tmp")
            rgb.save(temp, "JPEG", quality=80, optimize=True)
            os.replace(temp, target)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        self.made += 1
        self.used.add(target)
        return target

    def prune(self, keep: Iterable[Path], *, inputs: bool = True) -> None:
        """Delete report files of earlier builds that this one no longer uses.

        Args:
            keep: Fetched inputs this build uses.
            inputs: Whether fetched inputs not in ``keep`` go too (not when none are shown).
        """
        if not self.files_dir.is_dir():
            return
        wanted = {path.name for path in (*self.used, *keep)}
        prefixes = ("t-", "i-") if inputs else ("t-",)
        for path in self.files_dir.iterdir():
            if path.name.startswith(prefixes) and path.name not in wanted:
                path.unlink(missing_ok=True)


def input_cache_path(url: str, files_dir: Path) -> Path:
    """Where ``fetch_inputs`` keeps the copy of ``url``."""
    suffix = Path(urlsplit(url).path).suffix.lower()
    suffix = suffix if suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES else ".bin"
    return files_dir / f"i-{hashlib.sha256(url.encode()).hexdigest()[:24]}{suffix}"


def cached_inputs(urls: Iterable[str], files_dir: Path) -> dict[str, Path]:
    """The inputs an earlier ``fetch_inputs`` already copied (nothing is downloaded)."""
    found = {url: input_cache_path(url, files_dir) for url in set(urls)}
    return {url: path for url, path in found.items() if path.is_file()}


async def fetch_inputs(urls: Iterable[str], files_dir: Path) -> dict[str, Path]:
    """Download each http(s) image input once into ``report-files/`` (cached by URL hash).

    Videos are not fetched (too large to copy for a preview). A failed download leaves the
    input out (the page then shows its URL only); at most 8 downloads run at once, each
    streamed to disk and dropped beyond ``FETCH_LIMIT`` bytes.
    """
    import aiohttp

    wanted = sorted(
        url
        for url in set(urls)
        if url.startswith(("http://", "https://"))
        and not urlsplit(url).path.lower().endswith(VIDEO_SUFFIXES)
    )
    fetched: dict[str, Path] = {}
    await anyio.Path(files_dir).mkdir(parents=True, exist_ok=True)
    limiter = anyio.CapacityLimiter(8)
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        target = input_cache_path(url, files_dir)
        if await anyio.Path(target).exists():
            fetched[url] = target
            return
        temp = anyio.Path(target.with_name(f".{target.name}.tmp"))
        async with limiter:
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        return
                    size = 0
                    async with await anyio.open_file(temp, "wb") as handle:
                        async for chunk in response.content.iter_chunked(1 << 16):
                            size += len(chunk)
                            if size > FETCH_LIMIT:
                                break
                            await handle.write(chunk)
                    if size > FETCH_LIMIT:
                        await temp.unlink(missing_ok=True)
                        return
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
                await temp.unlink(missing_ok=True)
                return
        await temp.rename(target)
        fetched[url] = target

    async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as tg:
        for url in wanted:
            tg.start_soon(one, session, url)
    return fetched

"""Uploading local media: deduplication and throughput against plain s3fs puts.

Run ``python benchmarks/bench_storage.py`` (``--quick`` for a smaller run). It needs the
storage and test extras (fsspec, s3fs, ``moto[server]``): a moto S3 server runs on 127.0.0.1
in this process, on its own thread.

The workload: ``--files`` local images (default 1,000) of which ``--distinct`` (default 100)
have distinct contents, ``--size`` bytes each (default 256 KiB), every one used as the source
face of a ``PlusSwap``. Measured in the same run, with the same concurrency (``--workers``
at once):

* **dedup**: all the requests resolved by the SDK's ``MediaResolver`` (hash, existence
  check, upload, presign): the number of uploads must equal the number of distinct files;
* **sdk**: the distinct files resolved by a fresh resolver into an empty prefix (so every
  one is uploaded): upload throughput in MB/s, hashing, HEAD and presigning included;
* **plain**: the same distinct files put with ``fs.put_file`` into another empty prefix:
  the baseline throughput (no hashing, no check, no signature).

Targets: ``uploads == distinct`` and ``sdk / plain >= 0.8``. ``measure_storage()`` returns the
figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from akool_async import PlusSwap
from akool_async._storage import MediaResolver


def _files(directory: Path, files: int, distinct: int, size: int) -> list[Path]:
    paths = []
    for index in range(files):
        content = index % distinct
        path = directory / f"img{index:05d}.jpg"
        seed = f"image {content} ".encode()
        path.write_bytes((seed * (size // len(seed) + 1))[:size])
        paths.append(path)
    return paths


async def _resolve_all(resolver: MediaResolver, paths: list[Path], workers: int) -> float:
    limiter = anyio.CapacityLimiter(workers)

    async def one(path: Path) -> None:
        async with limiter:
            request = PlusSwap(source_url=path, target_url="https://example.com/t.jpg")
            resolved = await resolver.resolve(request, lifetime=3600)
            assert resolved.source_url.startswith("http")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for path in paths:
            tg.start_soon(one, path)
    return time.perf_counter() - started


async def _plain(fs: Any, paths: list[Path], prefix: str, workers: int) -> float:
    limiter = anyio.CapacityLimiter(workers)

    async def one(path: Path) -> None:
        await anyio.to_thread.run_sync(
            lambda: fs.put_file(str(path), f"{prefix}{path.name}"), limiter=limiter
        )

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for path in paths:
            tg.start_soon(one, path)
    return time.perf_counter() - started


async def _measure(files: int, distinct: int, size: int, workers: int) -> dict[str, Any]:
    import boto3
    import fsspec
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        options = {"key": "bench", "secret": "bench", "endpoint_url": endpoint}
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        fs = fsspec.filesystem("s3", **options)
        with tempfile.TemporaryDirectory() as tmp:
            paths = _files(Path(tmp), files, distinct, size)
            unique = paths[:distinct]
            dedup = MediaResolver("s3://bench/dedup/", options)
            dedup_seconds = await _resolve_all(dedup, paths, workers)
            stored = len(fs.ls("bench/dedup/"))
            # Alternate the two measured runs (twice each) so that the machine's noise hits both.
            sdk_times, plain_times = [], []
            for round_ in range(2):
                sdk = MediaResolver(f"s3://bench/sdk{round_}/", options)
                sdk_times.append(await _resolve_all(sdk, unique, workers))
                assert sdk.statistics.uploads == distinct
                plain_times.append(await _plain(fs, unique, f"bench/plain{round_}/", workers))
        megabytes = distinct * size / 1e6
        sdk_rate = megabytes / min(sdk_times)
        plain_rate = megabytes / min(plain_times)
        return {
            "files": files,
            "distinct": distinct,
            "size_bytes": size,
            "workers": workers,
            "dedup_seconds": round(dedup_seconds, 3),
            "dedup_uploads": dedup.statistics.uploads,
            "dedup_objects": stored,
            "dedup_hashed": dedup.statistics.hashed,
            "sdk_mb_per_s": round(sdk_rate, 2),
            "plain_mb_per_s": round(plain_rate, 2),
            "ratio": round(sdk_rate / plain_rate, 3),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
    finally:
        server.stop()


def measure_storage(
    files: int = 1000, distinct: int = 100, size: int = 256 * 1024, workers: int = 16
) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict."""
    return anyio.run(_measure, files, distinct, size, workers)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=100)
    parser.add_argument("--size", type=int, default=256 * 1024)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="100 files of which 10 distinct")
    args = parser.parse_args()
    if args.quick:
        args.files, args.distinct = 100, 10
    figures = measure_storage(args.files, args.distinct, args.size, args.workers)
    print(json.dumps(figures, indent=2))
    ok = figures["dedup_uploads"] == args.distinct and figures["ratio"] >= 0.8
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()

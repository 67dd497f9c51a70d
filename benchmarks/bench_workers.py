"""One batch, 1, 2 and 4 workers: the shared PostgreSQL journal against the SQLite journal.

``python benchmarks/bench_workers.py [--quick]`` starts a durable PostgreSQL server (Debian's
binaries, ``tests/_postgres.py``, fsync on) and the emulator as a process, then measures in the
same run:

1. **journal cost**: only the journal's work for each job (SQLite: admit, submitting,
   submitted, succeeded; PostgreSQL: claim, submitting, submitted, succeeded), 32 tasks per
   worker process; jobs per second, milliseconds of journal per job, claims per second;
2. **end to end**: ``swap_many`` on N image swaps against the emulator (quick jobs), one
   process per worker: the SQLite journal with 1 worker, the PostgreSQL journal with 1, 2 and
   4 workers on one batch; jobs per second, each worker's CPU seconds per job.

Every worker is its own process (``bench_workers.py worker ...``) printing one JSON line.
Prints a table and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PROFILES = {
    "full": {"journal_jobs": 4000, "jobs": 2000, "rate_jobs": 1200},
    "quick": {"journal_jobs": 800, "jobs": 400, "rate_jobs": 400},
}
#: The account's rate limit (requests per second, every endpoint) in the rate-limit part.
RATE = 40
TASKS = 32


# -- the worker process ------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _keys(n: int) -> list[tuple[str, str, str]]:
    from akool_async import PlusSwap
    from akool_async._jobs._records import request_key

    return [
        (
            *request_key(
                PlusSwap(
                    source_url=f"https://example.com/f-{i}.jpg",
                    target_url=f"https://example.com/t-{i}.jpg",
                )
            ),
            "PlusSwap",
        )
        for i in range(n)
    ]


async def journal_only(args: argparse.Namespace) -> dict[str, Any]:
    """The journal's own work per job, ``TASKS`` jobs at a time."""
    import anyio

    from akool_async._jobs._journal import Journal
    from akool_async._jobs._journal_pg import PgJournal

    keys = _keys(args.jobs)
    base = "https://openapi.akool.com"
    done = 0
    started = time.perf_counter()
    cpu = _cpu()
    if args.journal.startswith("postgresql://"):
        async with PgJournal(args.journal, base_url=base, batch_id=args.batch_id) as pg:
            await pg.load(keys)
            started = time.perf_counter()

            async def task_pg() -> None:
                nonlocal done
                while (claim := await pg.claim()) is not None:
                    key = keys[claim.index][0]
                    await pg.begin_submit(key, 0, index=claim.index, kind="PlusSwap", request="")
                    await pg.update(key, 0, "submitted", job_id=f"{claim.index:024x}")
                    await pg.update(key, 0, "succeeded")
                    done += 1

            async with anyio.create_task_group() as tg:
                for _ in range(TASKS):
                    tg.start_soon(task_pg)
            elapsed = time.perf_counter() - started
            return {"jobs": done, "seconds": elapsed, "claims": pg.claimed,
                    "claim_rounds": pg.claim_rounds, "cpu": _cpu() - cpu}  # fmt: skip
    async with Journal(args.journal, base_url=base) as sq:
        queue = iter(range(args.jobs))

        async def task_sqlite() -> None:
            nonlocal done
            for index in queue:
                key, text, _ = keys[index]
                occurrence, _ = await sq.admit(key)
                await sq.begin_submit(key, occurrence, index=index, kind="PlusSwap", request=text)
                await sq.update(key, occurrence, "submitted", job_id=f"{index:024x}")
                await sq.update(key, occurrence, "succeeded")
                done += 1

        async with anyio.create_task_group() as tg:
            for _ in range(TASKS):
                tg.start_soon(task_sqlite)
        elapsed = time.perf_counter() - started
        return {"jobs": done, "seconds": elapsed, "claims": done, "claim_rounds": 0,
                "cpu": _cpu() - cpu}  # fmt: skip


async def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """``swap_many`` with this journal against the emulator at ``args.base_url``."""
    from akool_async import AsyncClient, PlusSwap, PollConfig
    from akool_async.testing import DEFAULT_API_KEY

    requests = [
        PlusSwap(source_url=f"https://example.com/f-{i}.jpg", target_url=f"https://x.com/t-{i}.jpg")
        for i in range(args.start, args.start + args.jobs)
    ]
    shared = args.journal.startswith("postgresql://")
    cpu = _cpu()
    client = AsyncClient(api_key=DEFAULT_API_KEY, base_url=args.base_url)
    client.poll_config = PollConfig(image_first=0.2, image_max=0.5, jitter=0.1)
    done = 0
    async with client:
        batch = client.swap_many(
            requests,
            concurrency=args.concurrency,
            journal=args.journal,
            batch_id=args.batch_id if shared else None,
            check_credit=False,
        )
        async with batch:
            async for outcome in batch:
                done += outcome.ok
        stats = batch.statistics()
    return {"jobs": done, "cpu": _cpu() - cpu, "throttled": stats.throttles}


def worker_main(argv: list[str]) -> None:
    import anyio

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("journal", "batch"))
    parser.add_argument("--journal", required=True)
    parser.add_argument("--batch-id", default="")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--base-url", default="")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    func = journal_only if args.mode == "journal" else end_to_end
    print(json.dumps(anyio.run(func, args)), flush=True)


# -- the driver --------------------------------------------------------------------------------


def run_workers(
    count: int, argv: list[str], each: list[list[str]] | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Start ``count`` worker processes together; wall seconds until the last one ends."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", *argv, *(each[n] if each else [])],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed ({process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - started, results


def start_emulator(*extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "akool_async.testing", "--port", "0", "--latency-scale", "0.05",
         "--queue-seconds", "0", "0", "--concurrency", "5000", "--credit", "1e9", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.strip().rsplit(" ", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument(
        "--only", choices=("journal", "batch", "rate"), help="one of the three parts"
    )
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    from tests._postgres import PostgresServer

    figures: dict[str, Any] = {"profile": "quick" if args.quick else "full", "journal": {},
                               "end_to_end": {}}  # fmt: skip
    with (
        PostgresServer(durable=not os.environ.get("BENCH_PG_NOFSYNC")) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        n = profile["journal_jobs"]
        if args.only in ("batch", "rate"):
            n = 0
        wall, results = run_workers(
            1, ["journal", "--journal", f"{tmp}/j.sqlite", "--jobs", str(n)]
        )
        figures["journal"]["sqlite x1"] = _journal_figures(n, wall, results)
        for workers in (1, 2, 4) if n else ():
            batch = f"bench-{uuid.uuid4().hex[:8]}"
            wall, results = run_workers(
                workers,
                ["journal", "--journal", server.url, "--batch-id", batch, "--jobs", str(n)],
            )
            figures["journal"][f"postgres x{workers}"] = _journal_figures(n, wall, results)
        emulator, base_url = start_emulator()
        try:
            n = 0 if args.only in ("journal", "rate") else profile["jobs"]
            common = ["batch", "--jobs", str(n), "--base-url", base_url]
            wall, results = run_workers(1, [*common, "--journal", f"{tmp}/e.sqlite"])
            figures["end_to_end"]["sqlite x1"] = _batch_figures(n, wall, results)
            for workers in (1, 2, 4) if n else ():
                batch = f"e2e-{uuid.uuid4().hex[:8]}"
                wall, results = run_workers(
                    workers, [*common, "--journal", server.url, "--batch-id", batch]
                )
                figures["end_to_end"][f"postgres x{workers}"] = _batch_figures(n, wall, results)
        finally:
            emulator.terminate()
            emulator.wait()
        if args.only in (None, "rate"):
            figures["rate_limit"] = _rate_limit(profile["rate_jobs"], server.url, tmp)
    print(f"{'journal only':<16}{'jobs/s':>10}{'claims/s':>10}{'cpu ms/job':>12}")
    for name, row in figures["journal"].items():
        print(f"{name:<16}{row['jobs_per_s']:>10.0f}{row['claims_per_s']:>10.0f}"
              f"{row['cpu_ms_per_job']:>12.2f}")  # fmt: skip
    print(f"{'end to end':<16}{'jobs/s':>10}{'cpu ms/job':>12}{'throttled':>10}")
    for name, row in figures["end_to_end"].items():
        print(f"{name:<16}{row['jobs_per_s']:>10.0f}{row['cpu_ms_per_job']:>12.2f}"
              f"{row['throttled']:>10}")  # fmt: skip
    if "rate_limit" in figures:
        print(f"{'rate limit':<16}{'1005s':>10}{'wall s':>10}")
        for name, row in figures["rate_limit"].items():
            print(f"{name:<16}{row['throttled']:>10}{row['wall']:>10.1f}")
    print(json.dumps(figures))


def _rate_limit(n: int, url: str, tmp: str) -> dict[str, Any]:
    """4 workers under one account limit: one shared batch vs 4 uncoordinated SQLite batches."""
    figures = {}
    emulator, base_url = start_emulator("--rps", str(RATE), "--burst", str(RATE // 4))
    try:
        common = ["batch", "--base-url", base_url, "--concurrency", "16"]
        wall, results = run_workers(
            4,
            [*common, "--jobs", str(n), "--journal", url, "--batch-id", f"rate-{uuid.uuid4()}"],
        )
        figures["shared x4"] = _batch_figures(n, wall, results)
        quarter = n // 4
        wall, results = run_workers(
            4,
            [*common, "--jobs", str(quarter)],
            [
                ["--start", str(100_000 + k * quarter), "--journal", f"{tmp}/r{k}.sqlite"]
                for k in range(4)
            ],
        )
        figures["separate x4"] = _batch_figures(quarter * 4, wall, results)
    finally:
        emulator.terminate()
        emulator.wait()
    return figures


def _journal_figures(n: int, wall: float, results: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = max(1, sum(r["jobs"] for r in results))
    assert jobs == max(n, 1), (jobs, n)
    busiest = max(r["seconds"] for r in results)
    return {
        "jobs_per_s": jobs / busiest,
        "claims_per_s": sum(r["claims"] for r in results) / busiest,
        "cpu_ms_per_job": 1000 * sum(r["cpu"] for r in results) / jobs,
        "wall": wall,
    }


def _batch_figures(n: int, wall: float, results: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = max(1, sum(r["jobs"] for r in results))
    assert jobs == max(n, 1), (jobs, n)
    return {
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_job": 1000 * sum(r["cpu"] for r in results) / jobs,
        "throttled": sum(r["throttled"] for r in results),
        "wall": wall,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
    else:
        main()

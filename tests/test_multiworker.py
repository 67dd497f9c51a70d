"""Four worker processes on one shared batch, two SIGKILLed and restarted: nobody pays twice.

The emulator runs as its own process (``python -m akool_async.testing --submit-log``), shared by
the workers, and logs every job it creates; the workers are ``akool-async batch`` processes on
one PostgreSQL journal. Sized by ``AKOOL_MULTIWORKER_INPUTS`` (300 by default, quick enough for
CI; ``nox -s multiworker`` runs the full 2,000).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from akool_async.testing import DEFAULT_API_KEY

pytestmark = pytest.mark.anyio

INPUTS = int(os.environ.get("AKOOL_MULTIWORKER_INPUTS", "300"))
LEASE = 2.0
FINAL = {"succeeded", "failed", "rejected", "ambiguous", "not_found", "download_failed"}


async def start_emulator(log: Path) -> tuple[Process, str]:
    """The emulator process with quick jobs; returns it and its base URL."""
    process = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "akool_async.testing",
            "--port",
            "0",
            "--latency-scale",
            "0.01",
            "--queue-seconds",
            "0",
            "0.05",
            "--credit",
            "1000000",
            "--submit-log",
            str(log),
        ]
    )
    assert process.stdout is not None
    line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 1000)
    return process, line.decode().rsplit(" ", 1)[-1]


def worker_argv(
    base_url: str, manifest: Path, out: Path, journal: str, batch_id: str, worker: str
) -> list[str]:
    """One worker: the same batch command every worker runs, with its own name."""
    return [
        sys.executable, "-m", "akool_async", "--json", "--api-key", DEFAULT_API_KEY,
        "--base-url", base_url, "batch", str(manifest), "--out", str(out),
        "--journal", journal, "--batch-id", batch_id, "--worker-id", worker,
        "--lease", str(LEASE), "--concurrency", "16", "--poll-interval", "0.1",
    ]  # fmt: skip


async def fetch(url: str, query: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


@pytest.mark.timeout(600)
async def test_four_workers_two_killed_nobody_pays_twice(postgres_url: str, tmp_path: Path) -> None:
    """Every input ends with exactly one outcome, no input was submitted twice, and the only
    ambiguous ones were submits in flight in a worker when it was killed."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}, {INPUTS} inputs")
    manifest = tmp_path / "swaps.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "kind": "plus",
                    "source_url": f"https://example.com/face-{i}.jpg",
                    "target_url": f"https://example.com/target-{i}.jpg",
                    "ref": str(i),
                }
            )
            + "\n"
            for i in range(INPUTS)
        )
    )
    out = tmp_path / "out"
    batch_id = f"multi-{seed}"
    log = tmp_path / "submits.jsonl"
    emulator, base_url = await start_emulator(log)
    processes: dict[str, Process] = {}
    killed: list[str] = []
    try:

        def launch(worker: str) -> None:
            async def spawn() -> None:
                processes[worker] = await anyio.open_process(
                    worker_argv(base_url, manifest, out, postgres_url, batch_id, worker),
                    stdout=subprocess.DEVNULL,
                    stderr=None,
                )

            tg.start_soon(spawn)

        async def submitted() -> int:
            import asyncpg

            exited = {
                n: p.returncode
                for n, p in processes.items()
                if p.returncode is not None and n not in killed
            }
            assert not exited, "a worker exited before the kills"
            try:
                rows = await fetch(
                    postgres_url,
                    "SELECT count(*) AS n FROM akool_journal_intents WHERE batch_id=$1"
                    " AND attempts > 0",
                    batch_id,
                )
            except asyncpg.UndefinedTableError:
                return 0  # no worker has created the tables yet
            return int(rows[0]["n"]) if rows else 0

        with anyio.fail_after(500):
            async with anyio.create_task_group() as tg:
                for n in range(4):
                    launch(f"w{n}")
            # Kill two workers at random points of the batch, each while it is submitting.
            marks = sorted(rng.uniform(0.1, 0.7) * INPUTS for _ in range(2))
            for victim, mark in zip(("w1", "w2"), marks, strict=True):
                while True:  # the journal is the only place that knows: poll it
                    if await submitted() >= mark:
                        break
                    await anyio.sleep(0.02)
                await anyio.sleep(rng.uniform(0, 0.2))
                processes[victim].send_signal(signal.SIGKILL)
                await processes[victim].wait()
                killed.append(victim)
                async with anyio.create_task_group() as tg:
                    launch(f"{victim}-restarted")
            codes = {}
            for name, process in processes.items():
                codes[name] = await process.wait()
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        emulator.terminate()
        await emulator.wait()

    rows = await fetch(
        postgres_url,
        "SELECT idx, state, owner, previous_owner, job_id FROM akool_journal_intents"
        " WHERE batch_id=$1 ORDER BY idx",
        batch_id,
    )
    states = Counter(row["state"] for row in rows)
    print(f"states {dict(states)}, exit codes {codes}")
    # Exactly one outcome per input, all final.
    assert list(range(INPUTS)) == [row["idx"] for row in rows]
    assert set(states) <= FINAL
    assert set(states) <= {"succeeded", "ambiguous"}
    # The emulator's per-input submit counts (the target URL names the input).
    paid = Counter(
        int(json.loads(line)["body"]["target_url"].rsplit("-", 1)[1].split(".")[0])
        for line in log.read_text().splitlines()
    )
    assert not [index for index, count in paid.items() if count > 1]
    ambiguous = [row for row in rows if row["state"] == "ambiguous"]
    succeeded = [row for row in rows if row["state"] == "succeeded"]
    assert all(paid[row["idx"]] == 1 for row in succeeded)
    # The ambiguous ones: submits that a killed worker had in flight, nothing else.
    assert {row["previous_owner"] for row in ambiguous} <= set(killed)
    assert all(paid[row["idx"]] <= 1 for row in ambiguous)
    # The survivors' reports: each input at most once, and only those the journal gives them.
    reported: Counter[int] = Counter()
    for report in out.glob("report.*.jsonl"):
        for line in report.read_text().splitlines():
            reported[int(json.loads(line)["ref"])] += 1
    assert not [index for index, count in reported.items() if count > 1]
    # Survivors exit 0, or 1 when ambiguous outcomes came their way; the killed ones by SIGKILL.
    assert all(codes[name] in (0, 1) for name in codes if name not in killed)
    assert all(codes[name] == -signal.SIGKILL for name in killed)
    print(
        f"ambiguous: {len(ambiguous)}, of which AKOOL got {sum(paid[r['idx']] for r in ambiguous)}"
    )
    # Any worker shows the whole batch's progress.
    status = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "akool_async",
            "--json",
            "batch",
            "--status",
            "--journal",
            postgres_url,
            "--batch-id",
            batch_id,
        ]
    )
    document = json.loads(status.stdout.decode())
    assert (INPUTS, INPUTS, dict(states)) == (
        document["total"],
        document["finished"],
        document["states"],
    )

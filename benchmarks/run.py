"""akool-async against what people write today, and against the limit: ``python benchmarks/run.py``.

One run measures, on the same workload and the same emulator configuration:

1. **akool-async**: ``swap_many`` on N image swaps (``concurrency=C``, other options default);
2. **naive**: C plain-aiohttp workers, each submitting a job and polling it alone with listbyids
   every 4.5 s until it finishes (contract section 7), then taking the next input;
3. **the limit**: raw aiohttp submits of pre-built bodies (same C), and the server-side ideal
   makespan: the jobs' own processing times list-scheduled, in submit order, onto the
   emulator's slots from time 0 (what an infinitely fast client would get);

plus the blocking shim's per-call overhead, the memory per tracked job at 100,000 jobs, and a
rate-limited workload: the emulator refuses (1005) beyond an account-wide token bucket of
``RATELIMIT_RATE`` requests/s the clients do not know about; swap_many (default concurrency,
the client at its defaults) against the naive client with sleep-and-retry on 1005, each as
goodput (the ideal ``N / R`` plus one job's time, over the wall time) and refused share.

The emulator runs in its own process (``_server.py``), started fresh for every workload, with
an introspection port for request counts and per-job server times. Every client workload runs
in its own process (``_sdk.py``, ``_naive.py``, ``_raw.py``, ``_memory.py``) so that its CPU time
and peak RSS are its own. Detection delay = the wall-clock time at which the client knew a job
had finished minus the job's server-side finish time, both on ``time.time()``, which all
processes on the host share.

Prints a table, whether each target is met, and, as the last line of stdout, one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

#: Workload sizes. C is the same for swap_many and the naive client (see README.md).
#: ``makespan`` and ``status`` are the run's targets (x ideal; status requests per job): the
#: quick run's 1,000 jobs leave a proportionally longer tail and fewer ids per poll.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "jobs": 10_000, "slots": 500, "concurrency": 256, "submit_jobs": 10_000, "rounds": 2,
        "ratelimit_jobs": 600, "makespan": 1.05, "status": 0.03,
    },
    "quick": {
        "jobs": 1_000, "slots": 150, "concurrency": 75, "submit_jobs": 3_000, "rounds": 1,
        "ratelimit_jobs": 200, "makespan": 1.10, "status": 0.04,
    },
}  # fmt: skip
#: The rate-limited workload: the account's limit (requests/s, burst = 1 s of it), the
#: concurrency of both clients (swap_many's default), and the ideal's one job (IMAGE_SECONDS).
RATELIMIT_RATE = 20.0
RATELIMIT_CONCURRENCY = 64
PARTS = ("sdk", "journal", "naive", "submit", "memory", "sync", "ratelimit")
IMAGE_SECONDS = (2.0, 4.0)
NAIVE_INTERVAL = 4.5
MEMORY_JOBS = 100_000


# --------------------------------------------------------------------------------------------
# Processes


class Server:
    """One ``_server.py`` process: the emulator plus its admin port."""

    def __init__(self, slots: int, seed: int = 0, rate_limit: float | None = None) -> None:
        limit = ("--rate-limit", str(rate_limit)) if rate_limit is not None else ()
        self.process = subprocess.Popen(
            [
                PYTHON,
                str(HERE / "_server.py"),
                "--slots",
                str(slots),
                "--seed",
                str(seed),
                "--image-seconds",
                *map(str, IMAGE_SECONDS),
                *limit,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process did not start")
        urls = json.loads(line)
        self.base_url: str = urls["base_url"]
        self.admin_url: str = urls["admin_url"]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.admin_url + path, timeout=60) as response:
            return json.load(response)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def server(slots: int, rate_limit: float | None = None) -> Iterator[Server]:
    srv = Server(slots, rate_limit=rate_limit)
    try:
        yield srv
    finally:
        srv.close()


#: Extra environment of the akool-async workloads (``--baseline``: PYTHONPATH and the like).
_ENV: dict[str, str] = {}


def worker(script: str, *args: object, timeout: float = 900) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` in a fresh process; return the JSON of its last line."""
    done = subprocess.run(
        [PYTHON, str(HERE / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **_ENV} if _ENV and script == "_sdk.py" else None,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"{script} failed with status {done.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------------------------
# Analysis


def ideal_makespan(durations: Sequence[float], slots: int) -> float:
    """List scheduling of ``durations`` (in submit order) onto ``slots`` slots from time 0."""
    free = [0.0] * min(slots, max(1, len(durations)))
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def makespan_workload(name: str, slots: int, script: str, *args: object) -> dict[str, Any]:
    """Run one makespan workload against a fresh emulator and measure it."""
    with server(slots) as srv:
        cpu_before = srv.get("/stats")["cpu_s"]
        result = worker(script, "--base-url", srv.base_url, *args)
        stats = srv.get("/stats")
        jobs = srv.get("/jobs")["jobs"]
    n = result["jobs"]
    finish = {row[0]: row[3] for row in jobs}
    durations = [row[3] - row[2] for row in jobs]
    delays = [t - finish[job_id] for job_id, t in result["detected"].items() if job_id in finish]
    requests: dict[str, int] = stats["requests"]
    return {
        "name": name,
        "jobs": n,
        "jobs_created": len(jobs),
        "errors": result.get("errors", 0),
        "wall_s": result["wall_s"],
        "ideal_s": ideal_makespan(durations, slots),
        "requests": requests,
        "requests_per_job": sum(requests.values()) / n,
        "status_requests_per_job": requests.get("list_results", 0) / n,
        "detect_delay_mean_s": statistics.fmean(delays) if delays else math.nan,
        "detect_delay_p50_s": percentile(delays, 0.50),
        "detect_delay_p99_s": percentile(delays, 0.99),
        "detect_delay_max_s": max(delays) if delays else math.nan,
        "detected": len(delays),
        "client_cpu_us_per_job": result["cpu_s"] / n * 1e6,
        "speedups": result.get("speedups"),
        "peak_rss": result["peak_rss"],
        "server_cpu_s": stats["cpu_s"] - cpu_before,
        "ids_polled_per_job": result.get("ids_polled", math.nan) / n,
        # Where the wall time went: client start -> first job created on the server; the
        # server's own span (first created -> last finished); last finished -> client done.
        "start_lag_s": min(row[1] for row in jobs) - result["started_at"] if jobs else math.nan,
        "server_span_s": max(row[3] for row in jobs) - min(row[1] for row in jobs)
        if jobs
        else math.nan,
        "tail_s": result["started_at"] + result["wall_s"] - max(row[3] for row in jobs)
        if jobs
        else math.nan,
    }


def submit_workload(script: str, slots: int, jobs: int, concurrency: int) -> dict[str, Any]:
    with server(slots) as srv:
        result = worker(
            script,
            "--base-url",
            srv.base_url,
            "--jobs",
            jobs,
            "--concurrency",
            concurrency,
            *(("--mode", "submit") if script == "_sdk.py" else ()),
        )
        created = srv.get("/jobs")["jobs"]
    return {
        "jobs": jobs,
        "created": len(created),
        "submit_s": result["submit_s"],
        "throughput": jobs / result["submit_s"],
        "cpu_us_per_job": result.get("submit_cpu_s", result["cpu_s"]) / jobs * 1e6,
    }


def ratelimit_workload(script: str, slots: int, jobs: int, *args: object) -> dict[str, Any]:
    """``jobs`` swaps under the emulator's account-wide limit of ``RATELIMIT_RATE``/s."""
    with server(slots, rate_limit=RATELIMIT_RATE) as srv:
        result = worker(
            script, "--base-url", srv.base_url, "--jobs", jobs,
            "--concurrency", RATELIMIT_CONCURRENCY, *args,
        )  # fmt: skip
        stats = srv.get("/stats")
        created = srv.get("/jobs")["jobs"]
    requests = sum(stats["requests"].values())
    refused = sum(n for key, n in stats["codes"].items() if key.endswith(" 1005"))
    ideal = jobs / RATELIMIT_RATE + IMAGE_SECONDS[1]
    return {
        "jobs": jobs,
        "created": len(created),
        "errors": result.get("errors", 0),
        "wall_s": result["wall_s"],
        "ideal_s": ideal,
        "goodput": ideal / result["wall_s"],
        "requests": requests,
        "refused": refused,
        "refused_share": refused / requests if requests else math.nan,
    }


def sync_overhead(slots: int) -> dict[str, Any]:
    """The sync shim's overhead per call (``bench_sync.measure_sync_overhead`` if present)."""
    with server(slots) as srv:
        return worker("_sync_overhead.py", "--base-url", srv.base_url)


# --------------------------------------------------------------------------------------------
# Report


def _fmt(value: float, digits: int = 2) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:,.{digits}f}")
    )


def report(
    profile: str,
    config: dict[str, Any],
    sdk: dict[str, Any],
    journaled: dict[str, Any],
    naive: dict[str, Any],
    raw: dict[str, Any],
    sdk_submit: dict[str, Any],
    sync: dict[str, Any],
    memory: dict[str, Any],
    limited: dict[str, Any],
    elapsed: float,
) -> dict[str, Any]:
    ideal = sdk["ideal_s"]
    ours, theirs = limited["sdk"], limited["naive"]
    throughput_ratio = sdk_submit["throughput"] / raw["throughput"]
    raw_cpu = raw["cpu_us_per_job"]
    cpu_ratio = sdk["client_cpu_us_per_job"] / raw_cpu
    journal_overhead = journaled["client_cpu_us_per_job"] / sdk["client_cpu_us_per_job"] - 1
    floor = sync["sync_floor_us"]
    summary: dict[str, Any] = {
        "jobs": sdk["jobs"],
        "wall_s": round(sdk["wall_s"], 3),
        "ideal_s": round(ideal, 3),
        "naive_wall_s": round(naive["wall_s"], 3),
        "requests_per_job": round(sdk["requests_per_job"], 4),
        "naive_requests_per_job": round(naive["requests_per_job"], 4),
        "status_requests_per_job": round(sdk["status_requests_per_job"], 4),
        "naive_status_requests_per_job": round(naive["status_requests_per_job"], 4),
        "detect_delay_mean_s": round(sdk["detect_delay_mean_s"], 3),
        "detect_delay_p99_s": round(sdk["detect_delay_p99_s"], 3),
        "naive_detect_delay_mean_s": round(naive["detect_delay_mean_s"], 3),
        "naive_detect_delay_p99_s": round(naive["detect_delay_p99_s"], 3),
        "client_cpu_us_per_job": round(sdk["client_cpu_us_per_job"], 1),
        "raw_cpu_us_per_request": round(raw_cpu, 1),
        "client_cpu_vs_raw": round(cpu_ratio, 3),
        "journal_cpu_us_per_job": round(journaled["client_cpu_us_per_job"], 1),
        "journal_cpu_overhead": round(journal_overhead, 3),
        "journal_bytes_per_job": round(journaled["journal_bytes"] / journaled["jobs"], 1),
        "journal_wall_s": round(journaled["wall_s"], 3),
        "naive_client_cpu_us_per_job": round(naive["client_cpu_us_per_job"], 1),
        "peak_rss_bytes": sdk["peak_rss"],
        "naive_peak_rss_bytes": naive["peak_rss"],
        "sdk_submit_per_s": round(sdk_submit["throughput"], 1),
        "raw_submit_per_s": round(raw["throughput"], 1),
        "sdk_vs_raw_submit_throughput": round(throughput_ratio, 3),
        "sdk_submit_cpu_us_per_job": round(sdk_submit["cpu_us_per_job"], 1),
        "sync_overhead_us": round(sync["overhead_us"], 1),
        "sync_floor_us": round(floor, 1),
        # The same hop around a call doing nothing (statistics()): the portal's own cost.
        "sync_trivial_overhead_us": round(sync.get("trivial_overhead_us", math.nan), 1),
        "sync_overhead_vs_floor": round(sync["overhead_us"] / floor, 3),
        "rss_bytes_per_job": round(memory["bytes_per_job"], 1),
        "ratelimit_goodput": round(ours["goodput"], 3),
        "ratelimit_refused_share": round(ours["refused_share"], 4),
        "naive_ratelimit_goodput": round(theirs["goodput"], 3),
        "naive_ratelimit_refused_share": round(theirs["refused_share"], 4),
        "ratelimit_wall_s": round(ours["wall_s"], 3),
        "naive_ratelimit_wall_s": round(theirs["wall_s"], 3),
        "ratelimit_ideal_s": round(ours["ideal_s"], 3),
        "ratelimit_jobs": ours["jobs"],
        "ratelimit_rate": RATELIMIT_RATE,
        "profile": profile,
        "slots": config["slots"],
        "concurrency": config["concurrency"],
        "naive_interval_s": NAIVE_INTERVAL,
        "server_cpu_s": round(sdk["server_cpu_s"], 2),
        "naive_server_cpu_s": round(naive["server_cpu_s"], 2),
        "errors": sdk["errors"]
        + journaled["errors"]
        + naive["errors"]
        + ours["errors"]
        + theirs["errors"],
        "speedups": sdk.get("speedups"),
        "tuned": os.environ.get("AKOOL_BENCH_TUNED", "") not in ("", "0"),
        "run_s": round(elapsed, 1),
    }
    naive_status = naive["status_requests_per_job"]
    makespan, status = config["makespan"], config["status"]
    targets = [
        (
            f"makespan <= {makespan:g} x ideal",
            sdk["wall_s"] / ideal,
            makespan,
            sdk["wall_s"] <= makespan * ideal,
        ),
        (
            "naive makespan >= 2 x ours",
            naive["wall_s"] / sdk["wall_s"],
            2.0,
            naive["wall_s"] >= 2 * sdk["wall_s"],
        ),
        (
            "status requests/job <= naive / 20",
            sdk["status_requests_per_job"] / naive_status if naive_status else math.inf,
            0.05,
            sdk["status_requests_per_job"] * 20 <= naive_status,
        ),
        (
            f"status requests/job <= {status:g}",
            sdk["status_requests_per_job"],
            status,
            sdk["status_requests_per_job"] <= status,
        ),
        (
            "p99 detection delay <= naive's (s)",
            sdk["detect_delay_p99_s"],
            naive["detect_delay_p99_s"],
            sdk["detect_delay_p99_s"] <= naive["detect_delay_p99_s"],
        ),
        ("submit throughput >= 0.8 x raw", throughput_ratio, 0.8, throughput_ratio >= 0.8),
        ("client CPU/job <= 2 x raw CPU/request", cpu_ratio, 2.0, cpu_ratio <= 2.0),
        ("journal CPU overhead <= 0.15", journal_overhead, 0.15, journal_overhead <= 0.15),
        (
            "memory <= 2 KB/tracked job",
            memory["bytes_per_job"],
            2048.0,
            memory["bytes_per_job"] <= 2048,
        ),
        (
            "sync overhead <= 1.5 x floor",
            sync["overhead_us"] / floor,
            1.5,
            sync["overhead_us"] <= 1.5 * floor,
        ),
        *ratelimit_targets(limited),
    ]
    summary["targets_met"] = sum(1 for t in targets if t[3])
    summary["targets"] = len(targets)
    _print_tables(config, sdk, journaled, naive, raw, sdk_submit, sync, memory, targets)
    _print_ratelimit(limited)
    return summary


def ratelimit_targets(limited: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """The rate-limited workload's targets: goodput, refused share, ahead of naive."""
    ours, theirs = limited["sdk"], limited["naive"]
    return [
        ("rate-limited goodput >= 0.85", ours["goodput"], 0.85, ours["goodput"] >= 0.85),
        (
            "rate-limited refused <= 5%",
            ours["refused_share"],
            0.05,
            ours["refused_share"] <= 0.05,
        ),
        (
            "rate-limited goodput > naive's",
            ours["goodput"],
            theirs["goodput"],
            ours["goodput"] > theirs["goodput"],
        ),
    ]


def _print_ratelimit(limited: dict[str, Any]) -> None:
    ours, theirs = limited["sdk"], limited["naive"]
    print(
        f"rate-limited: {ours['jobs']} swaps at {RATELIMIT_RATE:g} requests/s (unknown to the "
        f"clients), ideal {ours['ideal_s']:.1f} s"
    )
    for name, row in (("akool-async", ours), ("naive sleep-and-retry", theirs)):
        print(
            f"  {name}: {row['wall_s']:.1f} s, goodput {row['goodput']:.3f}, "
            f"{row['refused']} of {row['requests']} requests refused "
            f"({row['refused_share']:.1%}), {row['created']} jobs created"
        )


def _print_tables(
    config: dict[str, Any],
    sdk: dict[str, Any],
    journaled: dict[str, Any],
    naive: dict[str, Any],
    raw: dict[str, Any],
    sdk_submit: dict[str, Any],
    sync: dict[str, Any],
    memory: dict[str, Any],
    targets: list[tuple[str, float, float, bool]],
) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text without rich
        Console = None  # type: ignore[assignment,misc]
    n, c, slots = sdk["jobs"], config["concurrency"], config["slots"]
    title = (
        f"{n:,} image swaps (server: {slots} slots, {IMAGE_SECONDS[0]:g}-"
        f"{IMAGE_SECONDS[1]:g} s per job), concurrency {c}"
    )
    rows = [
        ("wall time (s)", _fmt(sdk["wall_s"]), _fmt(naive["wall_s"]), _fmt(sdk["ideal_s"])),
        (
            "requests / job",
            _fmt(sdk["requests_per_job"], 3),
            _fmt(naive["requests_per_job"], 3),
            "1.000",
        ),
        (
            "status requests / job",
            _fmt(sdk["status_requests_per_job"], 4),
            _fmt(naive["status_requests_per_job"], 4),
            "-",
        ),
        (
            "requests by endpoint",
            _endpoints(sdk["requests"]),
            _endpoints(naive["requests"]),
            f"faceswap_plus {n}",
        ),
        (
            "detection delay mean (s)",
            _fmt(sdk["detect_delay_mean_s"]),
            _fmt(naive["detect_delay_mean_s"]),
            "0.00",
        ),
        (
            "detection delay p99 (s)",
            _fmt(sdk["detect_delay_p99_s"]),
            _fmt(naive["detect_delay_p99_s"]),
            "0.00",
        ),
        (
            "client CPU / job (us)",
            _fmt(sdk["client_cpu_us_per_job"], 0),
            _fmt(naive["client_cpu_us_per_job"], 0),
            _fmt(raw["cpu_us_per_job"], 0) + " (submit)",
        ),
        (
            "client peak RSS (MiB)",
            _fmt(sdk["peak_rss"] / 2**20, 1),
            _fmt(naive["peak_rss"] / 2**20, 1),
            "-",
        ),
        (
            "submits / s (alone)",
            _fmt(sdk_submit["throughput"], 0),
            "-",
            _fmt(raw["throughput"], 0) + " (raw aiohttp)",
        ),
        ("emulator CPU (s)", _fmt(sdk["server_cpu_s"]), _fmt(naive["server_cpu_s"]), "-"),
    ]
    extra = [
        f"journaled swap_many: {journaled['client_cpu_us_per_job']:.0f} us CPU/job, "
        f"{journaled['journal_bytes'] / journaled['jobs']:,.0f} B/job on disk, "
        f"wall {journaled['wall_s']:.2f} s",
        f"sync shim overhead: {sync['overhead_us']:.0f} us/call (from {sync.get('source', '?')}); "
        f"bare cross-thread round trip: {sync['sync_floor_us']:.0f} us",
        f"speedups in use: {sdk.get('speedups')}",
        f"memory per tracked job at {memory['jobs']:,} jobs: {memory['bytes_per_job']:,.0f} B "
        f"({memory.get('how', 'rss')})",
    ]
    if Console is None:
        print(title)
        for row in rows:
            print(" | ".join(row))
        for line in extra:
            print(line)
        for name, value, limit, ok in targets:
            print(f"{'MET ' if ok else 'MISS'} {name}: {value:.3f} (target {limit:g})")
        return
    console = Console(width=120)
    table = Table(title=title)
    for header in ("", "akool-async swap_many", f"naive ({NAIVE_INTERVAL:g} s polls)", "limit"):
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in extra:
        console.print(line)
    goals = Table(title="targets")
    for header in ("target", "measured", "limit", ""):
        goals.add_column(header)
    for name, value, limit, ok in targets:
        goals.add_row(
            name, f"{value:.3f}", f"{limit:g}", "[green]met[/green]" if ok else "[red]NOT met[/red]"
        )
    console.print(goals)


def _endpoints(requests: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))


# --------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description="akool-async benchmarks (see benchmarks/README.md)")
    p.add_argument("--quick", action="store_true", help="1,000 jobs instead of 10,000")
    p.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only these parts (for development)",
    )
    p.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the akool-async workloads (swap_many, journaled, submits) with DIR (a "
        "checkout of an older akool_async) first on PYTHONPATH, for an A/B in one run",
    )
    p.add_argument(
        "--baseline-env",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="also run the akool-async workloads with this environment (repeatable), e.g. "
        "AKOOL_ASYNC_NO_SPEEDUPS=1 or AKOOL_BENCH_TUNED=0 (A/B in one run)",
    )
    p.add_argument(
        "--tuned",
        action="store_true",
        help="every client process (raw, naive, akool-async) on uvloop with tune_gc(): what a "
        "program that owns its process may opt into",
    )
    args = p.parse_args()
    profile = "quick" if args.quick else "full"
    config = PROFILES[profile]
    parts = set(args.only or PARTS)
    n, c, slots = config["jobs"], config["concurrency"], config["slots"]
    started = time.monotonic()

    def step(name: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {name}", file=sys.stderr, flush=True)

    empty: dict[str, Any] = {}
    baseline_env: dict[str, str] = {}
    if args.baseline:
        baseline_env["PYTHONPATH"] = str(Path(args.baseline).resolve())
    for item in args.baseline_env:
        name, _, value = item.partition("=")
        baseline_env[name] = value
    if args.tuned:
        os.environ["AKOOL_BENCH_TUNED"] = "1"  # inherited by every client process

    def swap_many(label: str, journal: bool) -> dict[str, Any]:
        extra = f" with a journal{label}" if journal else label
        step(f"akool-async swap_many{extra}: {n} jobs, concurrency {c}, {slots} slots")
        if not journal:
            return makespan_workload(
                "akool-async", slots, "_sdk.py", "--jobs", n, "--concurrency", c
            )
        with tempfile.TemporaryDirectory() as tmp:
            result = makespan_workload(
                "akool-async+journal",
                slots,
                "_sdk.py",
                "--jobs",
                n,
                "--concurrency",
                c,
                "--journal",
                Path(tmp) / "bench.sqlite",
            )
            result["journal_bytes"] = sum(
                f.stat().st_size for f in Path(tmp).iterdir() if f.is_file()
            )
        return result

    def with_env(env: dict[str, str], run: Any, *run_args: Any) -> dict[str, Any]:
        _ENV.clear()
        _ENV.update(env)
        try:
            result: dict[str, Any] = run(*run_args)
            return result
        finally:
            _ENV.clear()

    sdk = swap_many("", journal=False) if "sdk" in parts else empty
    journaled = swap_many("", journal=True) if "journal" in parts else empty
    baseline: dict[str, Any] = {}
    if baseline_env:
        if "sdk" in parts:
            baseline["sdk"] = with_env(baseline_env, swap_many, " (baseline)", False)
        if "journal" in parts:
            baseline["journal"] = with_env(baseline_env, swap_many, " (baseline)", True)
    step(f"naive: {c} workers polling every {NAIVE_INTERVAL} s")
    naive = (
        makespan_workload(
            "naive",
            slots,
            "_naive.py",
            "--jobs",
            n,
            "--concurrency",
            c,
            "--interval",
            NAIVE_INTERVAL,
        )
        if "naive" in parts
        else empty
    )
    raw = sdk_submit = empty
    if "submit" in parts:
        # Alternate them (twice in a full run) and keep each one's best: noisy machines.
        raws, sdks, bases = [], [], []
        jobs = config["submit_jobs"]
        for _ in range(config["rounds"]):
            step(f"raw aiohttp submits: {jobs} jobs")
            raws.append(submit_workload("_raw.py", slots, jobs, c))
            step(f"akool-async submits: {jobs} jobs")
            sdks.append(submit_workload("_sdk.py", slots, jobs, c))
            if baseline_env:
                step(f"akool-async submits (baseline): {jobs} jobs")
                bases.append(with_env(baseline_env, submit_workload, "_sdk.py", slots, jobs, c))
        raw = max(raws, key=lambda r: r["throughput"])
        sdk_submit = max(sdks, key=lambda r: r["throughput"])
        if bases:
            baseline["submit"] = max(bases, key=lambda r: r["throughput"])
    memory = empty
    if "memory" in parts:
        step(f"memory: {MEMORY_JOBS} tracked jobs")
        with server(slots) as srv:
            memory = worker("_memory.py", "--base-url", srv.base_url, "--jobs", MEMORY_JOBS)
    sync = empty
    if "sync" in parts:
        step("sync shim overhead")
        sync = sync_overhead(slots)
    limited: dict[str, Any] = {}
    if "ratelimit" in parts:
        jobs = config["ratelimit_jobs"]
        step(f"rate-limited, {RATELIMIT_RATE:g}/s: akool-async swap_many, {jobs} jobs")
        limited["sdk"] = ratelimit_workload("_sdk.py", slots, jobs)
        step(f"rate-limited, {RATELIMIT_RATE:g}/s: naive sleep-and-retry, {jobs} jobs")
        limited["naive"] = ratelimit_workload(
            "_naive.py", slots, jobs, "--interval", NAIVE_INTERVAL
        )
    step("done")
    if parts != set(PARTS):
        print(
            json.dumps(
                {
                    "sdk": sdk,
                    "journal": journaled,
                    "naive": naive,
                    "raw": raw,
                    "sdk_submit": sdk_submit,
                    "memory": memory,
                    "sync": sync,
                    "baseline": baseline,
                    "ratelimit": limited,
                },
                default=str,
            )
        )
        return
    summary = report(
        profile,
        config,
        sdk,
        journaled,
        naive,
        raw,
        sdk_submit,
        sync,
        memory,
        limited,
        time.monotonic() - started,
    )
    if baseline:
        summary["baseline"] = _baseline_summary(baseline, raw, baseline_env)
        print(f"baseline ({', '.join(f'{k}={v}' for k, v in baseline_env.items())}):")
        for key, value in summary["baseline"].items():
            print(f"  {key}: {value}")
    print(json.dumps(summary, separators=(",", ":")))


def _baseline_summary(
    baseline: dict[str, Any], raw: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    """The baseline's figures, next to the same keys of the main run."""
    out: dict[str, Any] = {"env": env}
    if "sdk" in baseline:
        out["client_cpu_us_per_job"] = round(baseline["sdk"]["client_cpu_us_per_job"], 1)
        out["wall_s"] = round(baseline["sdk"]["wall_s"], 3)
    if "journal" in baseline:
        out["journal_cpu_us_per_job"] = round(baseline["journal"]["client_cpu_us_per_job"], 1)
        out["journal_bytes_per_job"] = round(
            baseline["journal"]["journal_bytes"] / baseline["journal"]["jobs"], 1
        )
        if "sdk" in baseline:
            out["journal_cpu_overhead"] = round(
                baseline["journal"]["client_cpu_us_per_job"]
                / baseline["sdk"]["client_cpu_us_per_job"]
                - 1,
                3,
            )
    if "submit" in baseline:
        out["sdk_submit_per_s"] = round(baseline["submit"]["throughput"], 1)
        out["submit_cpu_us_per_job"] = round(baseline["submit"]["cpu_us_per_job"], 1)
        if raw:
            out["sdk_vs_raw_submit_throughput"] = round(
                baseline["submit"]["throughput"] / raw["throughput"], 3
            )
    return out


if __name__ == "__main__":
    main()

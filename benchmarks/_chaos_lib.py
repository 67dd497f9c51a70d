"""The reliability suite's engine: chaos batches, crash-and-resume, and the soak, with figures.

Shared by ``benchmarks/chaos.py`` (full sizes, printed figures) and the tests
(``tests/test_reliability.py``, ``tests/test_crash_resume.py``, ``tests/test_soak.py``, quick
sizes, asserted figures). Everything drives the real ``AsyncClient`` (and the real CLI, as a
child process) against the local emulator's fault injection; the emulator's per-input submit
counters (``jobs_by_target``: every input has its own target URL) are the evidence of what
was paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from akool_async import (
    AmbiguousSubmitError,
    AsyncClient,
    Outcome,
    PlusSwap,
    PollConfig,
    RetryPolicy,
    WebhookEvent,
    WebhookReceiver,
    WebhookVerifier,
)
from akool_async.testing import Emulator, EmulatorConfig, EmulatorThread

__all__ = [
    "CHAOS_RATES",
    "ChaosFigures",
    "CrashFigures",
    "SoakFigures",
    "crash_resume",
    "run_chaos",
    "run_soak",
]

REPO = Path(__file__).resolve().parent.parent

#: The fault mix of a chaos batch, per request to any endpoint (submits, polls, downloads,
#: getToken, quota): 10% HTTP 5xx, 5% dropped before processing, 2% dropped after (a submit
#: then created its job), 5% 1005 throttles, 3% slow.
CHAOS_RATES: dict[str, float] = {
    "http_500": 0.04,
    "http_502": 0.03,
    "http_503": 0.03,
    "drop_before": 0.05,
    "drop_after": 0.02,
    "rate_limited": 0.05,
    "slow": 0.03,
}
#: Webhook faults: duplicated, lost (the polling safety net must catch those) and late.
WEBHOOK_RATES: dict[str, float] = {"duplicate": 0.10, "lost": 0.10, "late": 0.05}

#: Distinctive credentials (the emulator's AES key must be 32 bytes).
CLIENT_ID = "CHAOSclientId-0123456789"
CLIENT_SECRET = "chaos-secret-0123456789abcdefXYZ"

FAST_RETRY = RetryPolicy(max_attempts=10, initial_delay=0.005, max_delay=0.05, max_elapsed=60)
DOWNLOAD_RETRY = RetryPolicy(max_attempts=10, initial_delay=0.005, max_delay=0.05)
FAST_POLL = PollConfig(
    image_first=0.05,
    image_max=0.2,
    jitter=0.1,
    retry_delay=0.02,
    miss_limit=3,
    miss_grace=0.5,
    safety_net_interval=0.3,
)


def target(i: int, tag: str = "chaos") -> str:
    """The target URL of input ``i``: unique, so the emulator counts jobs per input."""
    return f"https://example.com/{tag}/target-{i:06d}.png"


def swap(i: int, *, tag: str = "chaos", webhook_url: str | None = None) -> PlusSwap:
    """Input ``i`` of a batch (the same request for the same ``i`` in every run)."""
    return PlusSwap(
        source_url=f"https://example.com/{tag}/face-{i % 97}.png",
        target_url=target(i, tag),
        webhook_url=webhook_url,
    )


# --------------------------------------------------------------------------------------------
# Chaos batch


@attrs.frozen(kw_only=True)
class ChaosFigures:
    """What one chaos batch did, and what the emulator saw."""

    jobs: int
    outcomes: int
    succeeded: int
    failed_other: int
    ambiguous: int
    duplicates: int
    lost: int
    verified_files: int
    faults: dict[str, int]
    webhook_faults: dict[str, int]
    webhook_events: int
    retries: int
    client_retries: dict[str, int]
    throttled: int
    token_fetches: int
    token_refreshes: int
    ambiguous_submits: int
    ambiguous_with_job: int
    ambiguous_with_callback: int
    resolved: int
    resubmitted_ambiguous: int
    after_resubmit_duplicates: int
    after_resubmit_succeeded: int
    problems: list[str]
    seconds: float

    def lines(self) -> list[str]:
        """The figures, one ``name: value`` line each."""
        return [
            f"jobs: {self.jobs:,}  outcomes: {self.outcomes:,}  succeeded: {self.succeeded:,}"
            f"  other errors: {self.failed_other:,}  ({self.seconds:.1f} s)",
            "faults injected (emulator): "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())),
            "webhook faults (emulator): "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.webhook_faults.items()))
            + f"; events handled by the receiver: {self.webhook_events:,}",
            f"retries (batch statistics): {self.retries:,}; client retries by endpoint: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.client_retries.items())),
            f"throttled answers: {self.throttled:,}; token fetches: {self.token_fetches}"
            f" (refreshes after expiry: {self.token_refreshes})",
            f"ambiguous submits: {self.ambiguous:,} (client counter {self.ambiguous_submits:,});"
            f" of them with a job on the server: {self.ambiguous_with_job:,}; bound to their"
            f" job by a webhook reference: {self.resolved:,}; left with a delivered callback:"
            f" {self.ambiguous_with_callback:,}",
            f"duplicates outside ambiguous: {self.duplicates}  lost: {self.lost}"
            f"  verified files: {self.verified_files:,}",
            f"after the user's explicit resubmit of the ambiguous ones: resubmitted "
            f"{self.resubmitted_ambiguous:,}, succeeded {self.after_resubmit_succeeded:,}/"
            f"{self.jobs:,}, inputs with 2 jobs {self.after_resubmit_duplicates:,} "
            f"(all among the ambiguous)",
        ] + [f"PROBLEM: {p}" for p in self.problems]


def _verify_file(outcome: Outcome[Any]) -> str | None:
    """None when the outcome's file exists with its SHA-256, else what is wrong."""
    if outcome.path is None or outcome.sha256 is None:
        return f"input {outcome.index}: success without a downloaded file"
    try:
        data = outcome.path.read_bytes()
    except OSError as exc:
        return f"input {outcome.index}: {outcome.path} unreadable: {exc}"
    if hashlib.sha256(data).hexdigest() != outcome.sha256:
        return f"input {outcome.index}: sha256 mismatch for {outcome.path}"
    if not data:
        return f"input {outcome.index}: empty file {outcome.path}"
    return None


async def run_chaos(
    n: int,
    workdir: Path,
    *,
    concurrency: int = 64,
    seed: int = 1,
    rates: dict[str, float] | None = None,
    webhooks: bool = True,
    resubmit: bool = True,
    ambiguous_wait: float | None = 2.0,
) -> ChaosFigures:
    """Run ``n`` jobs through ``swap_many`` under the chaos fault mix; return the figures.

    The client authenticates with client id and secret (getToken); every token is expired
    when half the outcomes are in. Jobs carry a webhook URL served by a ``WebhookReceiver``
    that feeds ``client.notify_job``; the emulator duplicates, loses and delays callbacks.
    With ``resubmit``, the ambiguous inputs are then run again from the journal with
    ``resubmit_ambiguous=True`` (the user's explicit decision) and no faults.

    Webhooks come through ``use_webhooks``, so each submit carries its reference; with
    ``ambiguous_wait=None`` ambiguous submits are reported at once (no binding: as before).
    """
    started = time.monotonic()
    config = EmulatorConfig(
        seed=seed,
        latency_scale=0.01,
        queue_seconds=(0.0, 0.5),
        credit=10 * n + 100,
        slow_seconds=0.05,
        fault_rates={"*": dict(CHAOS_RATES if rates is None else rates)}
        | ({"webhook": WEBHOOK_RATES} if webhooks else {}),
        webhook_late_seconds=0.2,
        webhook_retry_delays=(0.05, 0.1),
    )
    problems: list[str] = []
    handled: Counter[str] = Counter()
    journal = workdir / "chaos.sqlite"
    out = workdir / "files"
    async with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, config=config) as emu:
        verifier = WebhookVerifier(CLIENT_ID, CLIENT_SECRET, tolerance=None)
        receiver = WebhookReceiver(verifier)
        client = AsyncClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            base_url=emu.base_url,
            retry=FAST_RETRY,
        )
        client.poll_config = FAST_POLL
        async with receiver, client:
            hook_url = None  # use_webhooks sets it, with each submit's reference
            if webhooks:

                def on_webhook(event: WebhookEvent) -> None:
                    handled[event.id] += 1

                receiver.subscribe(on_webhook)
                client.use_webhooks(receiver, url=receiver.url)
            outcomes: dict[int, Outcome[PlusSwap]] = {}
            extra = 0
            expired = False
            batch = client.swap_many(
                (swap(i, webhook_url=hook_url) for i in range(n)),
                concurrency=concurrency,
                journal=journal,
                download_dir=out,
                download_retry=DOWNLOAD_RETRY,
                job_timeout=120,
                ambiguous_wait=ambiguous_wait,
            )
            async with batch:
                async for outcome in batch:
                    if outcome.index in outcomes:
                        extra += 1
                    outcomes[outcome.index] = outcome
                    if not expired and len(outcomes) >= n // 2:
                        emu.expire_tokens()  # every token issued so far now gets 1101
                        expired = True
            stats = batch.statistics()
            client_stats = client.statistics()

            counts = emu.stats.jobs_by_target
            duplicates = lost = verified = 0
            ambiguous = [
                i for i, o in outcomes.items() if isinstance(o.error, AmbiguousSubmitError)
            ]
            if extra:
                problems.append(f"{extra} inputs had more than one outcome")
            missing = n - len(outcomes)
            if missing:
                problems.append(f"{missing} inputs had no outcome")
            lost += missing
            with_job = sum(counts[target(i)] >= 1 for i in ambiguous)
            delivered = {a.job_id for a in emu.webhook_attempts if a.outcome == "delivered"}
            called_back = {
                t for job in emu.jobs.values() if job.id in delivered for t in job.target_urls
            }
            with_callback = sum(target(i) in called_back for i in ambiguous)
            for i in range(n):
                outcome = outcomes.get(i)
                jobs = counts[target(i)]
                is_ambiguous = outcome is not None and isinstance(
                    outcome.error, AmbiguousSubmitError
                )
                if jobs > 1:
                    duplicates += 1
                    problems.append(f"input {i}: {jobs} jobs created")
                if outcome is None:
                    continue
                if outcome.ok:
                    if jobs != 1:
                        problems.append(f"input {i}: succeeded but {jobs} jobs on the server")
                    why = _verify_file(outcome)
                    if why is None:
                        verified += 1
                    else:
                        problems.append(why)
                elif jobs >= 1 and outcome.job is None and not is_ambiguous:
                    lost += 1  # the server has a job the SDK does not know about
                    problems.append(f"input {i}: job created, outcome {outcome.error!r}")
            others = [o for o in outcomes.values() if not o.ok and o.index not in set(ambiguous)]
            for o in others[:5]:
                problems.append(f"input {o.index}: {type(o.error).__name__}: {o.error}")
            faults = Counter[str]()
            webhook_faults = Counter[str]()
            for (endpoint, kind), count in emu.stats.faults.items():
                (webhook_faults if endpoint == "webhook" else faults)[kind] += count

            resubmitted = after_dupes = after_ok = 0
            if resubmit:
                emu.configure(fault_rates={})
                before = dict(counts)
                again = client.swap_many(
                    (swap(i, webhook_url=hook_url) for i in range(n)),
                    concurrency=concurrency,
                    journal=journal,
                    download_dir=out,
                    download_retry=DOWNLOAD_RETRY,
                    resubmit_ambiguous=True,
                )
                async with again:
                    rerun = {o.index: o async for o in again}
                resubmitted = sum(counts[target(i)] - before.get(target(i), 0) for i in range(n))
                after_ok = sum(o.ok for o in rerun.values())
                after_dupes = sum(counts[target(i)] > 1 for i in range(n))
                outside = [i for i in range(n) if counts[target(i)] > 1 and i not in set(ambiguous)]
                if outside:
                    problems.append(f"inputs {outside[:10]} paid twice outside ambiguous")
            await emu.drain_webhooks()

    return ChaosFigures(
        jobs=n,
        outcomes=len(outcomes),
        succeeded=stats.succeeded,
        failed_other=len(others),
        ambiguous=len(ambiguous),
        duplicates=duplicates,
        lost=lost,
        verified_files=verified,
        faults=dict(faults),
        webhook_faults=dict(webhook_faults),
        webhook_events=sum(handled.values()),
        retries=stats.retries,
        client_retries=dict(client_stats.retries),
        throttled=client_stats.throttled,
        token_fetches=client_stats.token_fetches,
        token_refreshes=client_stats.token_refreshes,
        ambiguous_submits=client_stats.ambiguous_submits,
        ambiguous_with_job=with_job,
        ambiguous_with_callback=with_callback,
        resolved=stats.resolved,
        resubmitted_ambiguous=resubmitted,
        after_resubmit_duplicates=after_dupes,
        after_resubmit_succeeded=after_ok,
        problems=problems,
        seconds=time.monotonic() - started,
    )


# --------------------------------------------------------------------------------------------
# Crash and resume through the CLI


@attrs.frozen(kw_only=True)
class CrashFigures:
    """What five SIGKILLs of ``akool-async batch`` and the resumes did."""

    inputs: int
    kills: list[dict[str, Any]]
    final_exit: int
    ambiguous_reported: int
    resubmit_exit: int
    done_once: int
    paid_twice: int
    never_paid_ok: int
    problems: list[str]
    seconds: float

    def lines(self) -> list[str]:
        """The figures, one line each."""
        kills = "; ".join(
            f"#{k['run']} at {k['at']} (jobs on the server {k['jobs']}, exit {k['exit']})"
            for k in self.kills
        )
        return [
            f"inputs: {self.inputs}; SIGKILLs: {len(self.kills)} ({self.seconds:.1f} s)",
            f"kills: {kills}",
            f"resume to the end: exit {self.final_exit}; ambiguous reported "
            f"{self.ambiguous_reported} (not resubmitted without --resubmit-ambiguous)",
            f"--resubmit-ambiguous (the user's decision): exit {self.resubmit_exit}",
            f"inputs with exactly one job: {self.done_once}/{self.inputs}; two jobs (only "
            f"among the ambiguous): {self.paid_twice}; done with no job of their own: "
            f"{self.never_paid_ok}",
        ] + [f"PROBLEM: {p}" for p in self.problems]


def _manifest(path: Path, n: int, tag: str) -> list[str]:
    targets = [target(i, tag) for i in range(n)]
    lines = [
        json.dumps(
            {
                "kind": "plus",
                "source_url": f"https://example.com/{tag}/me.png",
                "target_url": url,
                "ref": f"r{i}",
            }
        )
        for i, url in enumerate(targets)
    ]
    path.write_text("\n".join(lines) + "\n")
    return targets


def _batch_command(manifest: Path, out: Path, journal: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "akool_async", "--json", "batch", str(manifest),
        "--out", str(out), "--journal", str(journal), "--concurrency", "8",
        "--poll-interval", "0.1", *extra,
    ]  # fmt: skip


def _child_env(base_url: str, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
    return env | {"AKOOL_BASE_URL": base_url, "AKOOL_API_KEY": api_key}


def crash_resume(n: int, workdir: Path, *, kills: int = 5, seed: int = 7) -> CrashFigures:
    """SIGKILL ``akool-async batch`` ``kills`` times at random points, resume, check payments.

    The emulator runs in a background thread, so it outlives every CLI process. Kill points
    are random (seeded): after a random number of new submits, or a random delay into the
    run (polling or downloading). Then the same command runs to the end; swaps it reports as
    ambiguous are resubmitted only by a last run with ``--resubmit-ambiguous``.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    problems: list[str] = []
    manifest, out, journal = workdir / "m.jsonl", workdir / "out", workdir / "journal.sqlite"
    targets = _manifest(manifest, n, "crash")
    config = EmulatorConfig(
        seed=seed,
        queue_seconds=(0.0, 0.2),
        image_seconds=(2.0, 3.0),
        fault_rates={"faceswap_plus": {"slow": 0.5}},
        slow_seconds=0.05,
        credit=10 * n + 100,
    )
    log = (workdir / "cli-stderr.txt").open("w")
    with EmulatorThread(config=config) as runner, log:
        emu = runner.emulator
        env = _child_env(runner.base_url, emu.api_key)

        def submits() -> int:
            return emu.stats.requests["faceswap_plus"]

        def run(*extra: str) -> int:
            command = _batch_command(manifest, out, journal, *extra)
            done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
            return done.returncode

        killed: list[dict[str, Any]] = []
        for number in range(1, kills + 1):
            child = subprocess.Popen(
                _batch_command(manifest, out, journal),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            base, launched = submits(), time.monotonic()
            # Jobs take 2-3 s, so no run can finish before its kill: a random delay into the
            # run (start-up, submits, polls, downloads of earlier jobs), or earlier, after a
            # random number of new submits (mid-submit, in flight).
            delay = rng.uniform(0.3, 2.0)
            by_submits = rng.random() < 0.5
            want = rng.randint(1, max(1, n - len(emu.jobs))) if by_submits else n + 1
            while (
                child.poll() is None
                and submits() < base + want
                and time.monotonic() < launched + delay
            ):
                time.sleep(0.005)
            elapsed = time.monotonic() - launched
            at = f"{elapsed:.2f} s, {submits() - base} new submits"
            child.send_signal(signal.SIGKILL)
            code = child.wait()
            killed.append({"run": number, "at": at, "jobs": len(emu.jobs), "exit": code})
            if code != -signal.SIGKILL:
                problems.append(f"run {number} ended by itself with exit {code} before the kill")

        final_exit = run()
        records = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
        ambiguous = {r["line"] - 1 for r in records if r["error_type"] == "AmbiguousSubmitError"}
        others = [r for r in records if r["status"] != "ok" and r["line"] - 1 not in ambiguous]
        problems += [f"line {r['line']}: {r['error_type']}: {r['error_message']}" for r in others]
        counts_before = {url: emu.stats.jobs_by_target[url] for url in targets}
        if any(count > 1 for count in counts_before.values()):
            problems.append("an input was paid twice before any explicit resubmit")
        resubmit_exit = run("--resubmit-ambiguous") if ambiguous else final_exit
        records = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
        if [r["status"] for r in records] != ["ok"] * n:
            problems.append("not every swap ended ok after the explicit resubmit")
        for r in records:
            path = r["file"]
            data = Path(path).read_bytes() if path and Path(path).exists() else None
            if data is None or hashlib.sha256(data).hexdigest() != r["sha256"]:
                problems.append(f"line {r['line']}: result file missing or corrupt")
        counts = [emu.stats.jobs_by_target[url] for url in targets]
        twice = [i for i, c in enumerate(counts) if c == 2]
        for i, count in enumerate(counts):
            if count > 2 or (count == 2 and i not in ambiguous) or count == 0:
                problems.append(f"input {i}: {count} jobs")
    return CrashFigures(
        inputs=n,
        kills=killed,
        final_exit=final_exit,
        ambiguous_reported=len(ambiguous),
        resubmit_exit=resubmit_exit,
        done_once=sum(c == 1 for c in counts),
        paid_twice=len(twice),
        never_paid_ok=sum(c == 0 for c in counts),
        problems=problems,
        seconds=time.monotonic() - started,
    )


# --------------------------------------------------------------------------------------------
# Soak: memory, sockets, tasks and file descriptors over a long run


@attrs.frozen(kw_only=True)
class SoakFigures:
    """Resources of the client process over one long batch (emulator in another process)."""

    jobs: int
    succeeded: int
    seconds: float
    traced_first_half_peak: int
    traced_second_half_peak: int
    rss_first_half_peak: int
    rss_second_half_peak: int
    fds_before: int
    fds_after: int
    sockets_before: int
    sockets_during: int
    sockets_after: int
    tasks_before: int
    tasks_after: int

    def lines(self) -> list[str]:
        """The figures, one line each."""
        mib = 1024 * 1024
        return [
            f"soak: {self.jobs:,} jobs, {self.succeeded:,} ok in {self.seconds:.1f} s "
            f"({self.jobs / self.seconds:,.0f} jobs/s)",
            f"traced Python memory peak: first half {self.traced_first_half_peak / mib:.1f} MiB,"
            f" second half {self.traced_second_half_peak / mib:.1f} MiB",
            f"RSS peak: first half {self.rss_first_half_peak / mib:.1f} MiB, second half "
            f"{self.rss_second_half_peak / mib:.1f} MiB",
            f"open fds: {self.fds_before} before, {self.fds_after} after; sockets: "
            f"{self.sockets_before} before, {self.sockets_during} at the last sample, "
            f"{self.sockets_after} after close",
            f"asyncio tasks: {self.tasks_before} before, {self.tasks_after} after",
        ]


def _fds() -> list[str]:
    """What every open file descriptor of this process points at (Linux)."""
    fd_dir = "/proc/self/fd"
    targets = []
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            targets.append(os.readlink(os.path.join(fd_dir, name)))
    return targets


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _start_emulator_process(seed: int) -> tuple[subprocess.Popen[str], str]:
    """``python -m akool_async.testing`` on a free port; returns the process and its URL."""
    command = [
        sys.executable, "-m", "akool_async.testing", "--port", "0", "--seed", str(seed),
        "--latency-scale", "0.01", "--queue-seconds", "0", "0.2", "--credit", "1e9",
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
    ]  # fmt: skip
    env = _child_env("http://unused", "unused")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def _stop_process(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def run_soak(
    n: int, workdir: Path, *, concurrency: int = 64, samples: int = 20, trace: bool = True
) -> SoakFigures:
    """Stream ``n`` jobs through one ``swap_many`` with downloads; sample resources.

    The emulator runs in a child process, so this process's memory is the client's alone.
    The input is a generator and outcomes are dropped as they come (files deleted once
    checked), as a long-running service would. Memory is sampled ``samples`` times; the
    second half's peak should not be materially above the first half's.
    """
    process, base_url = await anyio.to_thread.run_sync(_start_emulator_process, 3)
    out = workdir / "soak-files"
    try:
        gc.collect()
        before = _fds()
        tasks_before = len(asyncio.all_tasks())
        if trace:
            tracemalloc.start()
        started = time.monotonic()
        traced: list[int] = []
        rss: list[int] = []
        sockets_during = 0
        succeeded = 0
        every = max(1, n // samples)
        client = AsyncClient(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base_url, retry=FAST_RETRY
        )
        client.poll_config = FAST_POLL
        async with client:
            batch = client.swap_many(
                (swap(i, tag="soak") for i in range(n)),
                concurrency=concurrency,
                download_dir=out,
                check_credit=False,
            )
            async with batch:
                done = 0
                async for outcome in batch:
                    done += 1
                    if outcome.ok and outcome.path is not None:
                        succeeded += 1
                        outcome.path.unlink()
                    del outcome
                    if done % every == 0:
                        if trace:
                            traced.append(tracemalloc.get_traced_memory()[0])
                        rss.append(_rss())
                        sockets_during = sum(t.startswith("socket:") for t in _fds())
        seconds = time.monotonic() - started
        if trace:
            tracemalloc.stop()
        await anyio.lowlevel.checkpoint()  # let closed transports finish their callbacks
        gc.collect()
        after = _fds()
        tasks_after = len(asyncio.all_tasks())
    finally:
        _stop_process(process)
    half = len(rss) // 2
    return SoakFigures(
        jobs=n,
        succeeded=succeeded,
        seconds=seconds,
        traced_first_half_peak=max(traced[:half], default=0),
        traced_second_half_peak=max(traced[half:], default=0),
        rss_first_half_peak=max(rss[:half], default=0),
        rss_second_half_peak=max(rss[half:], default=0),
        fds_before=len(before),
        sockets_before=sum(t.startswith("socket:") for t in before),
        fds_after=len(after),
        sockets_during=sockets_during,
        sockets_after=sum(t.startswith("socket:") for t in after),
        tasks_before=tasks_before,
        tasks_after=tasks_after,
    )

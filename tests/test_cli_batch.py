"""akool-async batch and demo: manifests end to end, reports, resume after SIGINT and SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from akool_async.testing import DEFAULT_API_KEY, EmulatorConfig, EmulatorThread
from tests._support import CLI_JOBS, Cli

OPTS = "1,2:3,4:5,6:7,8"


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Fast jobs and small videos."""
    return CLI_JOBS


def child_env(emulator: EmulatorThread | None = None) -> dict[str, str]:
    """The environment of a ``python -m akool_async`` child (pointed at ``emulator``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    if emulator is not None:
        env |= {"AKOOL_BASE_URL": emulator.base_url, "AKOOL_API_KEY": DEFAULT_API_KEY}
    return env


def read_report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def plus_manifest(path: Path, count: int, *, tag: str = "t") -> Path:
    """``count`` Plus swaps, each with its own target URL (the emulator counts per target)."""
    lines = [
        json.dumps(
            {
                "kind": "plus",
                "source_url": "https://x/me.png",
                "target_url": f"https://x/{tag}-{i:03d}.png",
                "ref": f"r{i}",
            }
        )
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def submits(emulator: EmulatorThread) -> int:
    stats = emulator.emulator.stats
    return sum(n for name, n in stats.requests.items() if name.startswith("faceswap_"))


def test_batch_downloads_and_writes_the_report(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """A CSV of all four kinds: files downloaded, report in line order, exit 1 for a failure."""
    manifest = tmp_path / "swaps.csv"
    manifest.write_text(
        "kind,source_url,target_url,source,target,modify_image,modify_video,ref\n"
        "plus,https://x/me.png,https://x/a.png,,,,,first\n"
        f'pro,,,"https://x/me.png|{OPTS}","https://x/b.png|{OPTS}",,,\n'
        "image,,,https://x/me.png,https://x/c.png,https://x/group.png,,\n"
        "\n"
        "video,,,https://x/me.png,https://x/d.png,,https://x/clip.mp4,\n"
        "plus,https://x/me.png,https://x/fail.png,,,,,broken\n"
    )
    out = tmp_path / "out"
    run = cli("batch", str(manifest), "--out", str(out), "--poll-interval", "0.2")
    report = read_report(out / "report.jsonl")
    assert run.code == 1
    assert [(r["line"], r["kind"], r["status"], r["ref"]) for r in report] == [
        (2, "plus", "ok", "first"),
        (3, "pro", "ok", None),
        (4, "image", "ok", None),
        (6, "video", "ok", None),
        (7, "plus", "failed", "broken"),
    ]
    for record in report[:4]:
        data = Path(record["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert record["result_url"].startswith(emulator.base_url)
        assert emulator.emulator.jobs[record["id"]].endpoint == f"faceswap_{record['kind']}"
    assert Path(report[3]["file"]).suffix == ".mp4"
    assert (report[4]["error_type"], report[4]["file"]) == ("JobFailedError", None)
    assert (out / ".akool-journal.sqlite").exists()
    assert "Requests by endpoint" in run.out
    assert "line 7 ref 'broken' (plus): failed: JobFailedError" in run.out


def test_batch_rerun_resumes_from_the_journal(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """Running a finished batch again submits nothing and reports every swap as resumed."""
    manifest = plus_manifest(tmp_path / "m.jsonl", 5)
    out = tmp_path / "out"
    first = cli(
        "batch", str(manifest), "--out", str(out), "--concurrency", "2", "--poll-interval", "0.2"
    )
    sent = submits(emulator)
    second = cli("--json", "batch", str(manifest), "--out", str(out))
    records = [json.loads(line) for line in second.out.splitlines()]
    assert (first.code, second.code, sent, submits(emulator)) == (0, 0, 5, 5)
    assert sorted((r["line"], r["status"], r["resumed"]) for r in records) == [
        (i, "ok", True) for i in range(1, 6)
    ]


def test_batch_json_streams_one_record_per_line(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """--json prints exactly one JSON record per swap on stdout; --report moves the report."""
    manifest = plus_manifest(tmp_path / "m.jsonl", 4)
    report = tmp_path / "elsewhere" / "r.jsonl"
    out = str(tmp_path / "o")
    run = cli(
        "--json",
        "batch",
        str(manifest),
        "--out",
        out,
        "--report",
        str(report),
        "--poll-interval",
        "0.2",
    )
    streamed = [json.loads(line) for line in run.out.splitlines()]
    assert (run.code, run.err, len(streamed)) == (0, "", 4)
    assert sorted(streamed, key=lambda r: r["line"]) == read_report(report)


def test_batch_rate_limit_keeps_to_the_account_limit(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """--rate-limit paces the whole batch, so an account limited to it never answers 1005."""
    emulator.call(lambda: emulator.emulator.configure(rate_limit=10.0, rate_burst=2))
    manifest = plus_manifest(tmp_path / "m.jsonl", 6)
    argv = ["--json", "--rate-limit", "10", "batch", str(manifest), "--out", str(tmp_path / "o")]
    run = cli(*argv, "--poll-interval", "0.2")
    codes = emulator.emulator.stats.codes
    refused = sum(n for (_, code), n in codes.items() if code == 1005)
    emulator.call(lambda: emulator.emulator.configure(rate_limit=None, rate_burst=None))
    assert (run.code, len(run.out.splitlines()), refused) == (0, 6, 0)


@pytest.mark.anyio
async def test_progress_shows_a_rate_bound_batch() -> None:
    """The progress line says when the batch is rate-bound, at what rate, with its ETA."""
    import io

    from rich.console import Console

    from akool_async import RateLimitStatistics
    from akool_async._jobs._events import BatchCounters
    from akool_async.cli._progress import BatchProgress

    recorded = Console(record=True, width=80, file=io.StringIO(), force_terminal=False)
    stats = BatchCounters(read=10).snapshot(
        total=100, polls=0, client=(0, 0), started=True, finished=False
    )
    limit = RateLimitStatistics(
        rate=20.0, limit=None, phase="limited", measured=19.0, throttle_episodes=1,
        refused=1, waiting=5, waits=5, wait_seconds=1.0,
    )  # fmt: skip
    with BatchProgress(io.StringIO(), 100, output=recorded) as bar:
        bar.update(stats, limit)
        live = "\n".join(line.plain for line in bar.view.lines(80))
    eta = re.search(r"eta +(\S+)", live)  # 90 left to submit at 20/s
    assert ("rate-bound at 20/s" in live, eta and eta.group(1)) == (True, "0:00:04")


def test_bad_manifest_submits_nothing(emulator: EmulatorThread, cli: Cli, tmp_path: Path) -> None:
    """A bad line anywhere is exit 2 naming line and field, and the emulator sees no request."""
    manifest = plus_manifest(tmp_path / "m.jsonl", 3)
    with manifest.open("a") as handle:
        handle.write('{"kind": "plus", "source_url": "https://x/a", "target_url": "nope"}\n')
        handle.write('{"kind": "pro", "source": ["https://x/a"], "targets": []}\n')
    out = tmp_path / "out"
    run = cli("batch", str(manifest), "--out", str(out))
    assert (run.code, run.out) == (2, "")
    assert run.err.splitlines() == [
        f"error: {manifest}:4: target_url: no such file: {str(tmp_path / 'nope')!r}",
        f"error: {manifest}:5: targets: unknown field: a 'pro' swap takes source, target, "
        "face_enhance, single_face_mode, model_name, webhook_url",
    ]
    assert sum(emulator.emulator.stats.requests.values()) == 0
    assert not out.exists()


def test_missing_manifest_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    """A manifest that cannot be read is exit 2 with one error line."""
    run = cli("batch", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o"))
    assert (run.code, run.err) == (
        2,
        f"error: cannot read the manifest '{tmp_path / 'none.jsonl'}': No such file or directory\n",
    )


def start_batch(
    emulator: EmulatorThread, manifest: Path, out: Path, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "akool_async",
            "--json",
            "batch",
            str(manifest),
            "--out",
            str(out),
            "--poll-interval",
            "0.3",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(emulator),
    )


def finish(child: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return child.returncode, out, err


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the batch")
        time.sleep(0.02)


def test_resume_after_sigint(emulator: EmulatorThread, tmp_path: Path) -> None:
    """Ctrl-C while jobs run exits 130 with a resume hint; the re-run re-attaches, no resubmit."""
    emulator.call(lambda: emulator.emulator.configure(image_seconds=(2.5, 3.0)))
    manifest = plus_manifest(tmp_path / "m.jsonl", 20)
    out = tmp_path / "out"
    child = start_batch(emulator, manifest, out)
    wait_for(lambda: submits(emulator) == 20)
    time.sleep(0.5)  # let the child record the last job ids in its journal
    child.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(child)
    assert (code, stdout) == (130, "")
    assert (
        f"to resume, run the same command again: akool-async --json batch {manifest} --out"
        in stderr
    )
    assert ("Traceback" not in stderr, "Unclosed" not in stderr) == (True, True)

    code, stdout, stderr = finish(start_batch(emulator, manifest, out))
    records = read_report(out / "report.jsonl")
    counts = emulator.emulator.stats.jobs_by_target
    assert (code, stderr) == (0, "")
    assert [(r["line"], r["status"], r["resumed"]) for r in records] == [
        (i, "ok", True) for i in range(1, 21)
    ]
    assert sorted(counts.values()) == [1] * 20
    assert all(Path(r["file"]).exists() for r in records)


def test_resume_after_sigkill_mid_submit(emulator: EmulatorThread, tmp_path: Path) -> None:
    """kill -9 while submitting: the resume never submits a swap twice and reports the rest."""
    emulator.call(
        lambda: emulator.emulator.configure(
            fault_rates={"faceswap_plus": {"slow": 1.0}}, slow_seconds=0.15
        )
    )
    manifest = plus_manifest(tmp_path / "m.jsonl", 16)
    out = tmp_path / "out"
    child = start_batch(emulator, manifest, out, "--concurrency", "2")
    wait_for(lambda: len(emulator.emulator.jobs) >= 5)
    child.kill()
    finish(child)
    emulator.call(lambda: emulator.emulator.configure(fault_rates={}))

    code, _, stderr = finish(start_batch(emulator, manifest, out, "--concurrency", "2"))
    records = read_report(out / "report.jsonl")
    counts = emulator.emulator.stats.jobs_by_target
    targets = [json.loads(line)["target_url"] for line in manifest.read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    ambiguous = [r for r in records if r["status"] != "ok"]
    assert [r["line"] for r in records] == list(range(1, 17))
    assert max(counts.values()) == 1
    assert all(counts[targets[r["line"] - 1]] == 1 for r in ok)
    assert {r["error_type"] for r in ambiguous} <= {"AmbiguousSubmitError"}
    assert len(ambiguous) <= 2
    assert code == (0 if not ambiguous else 1)
    assert stderr == ""


def test_demo_runs_and_writes_files(tmp_path: Path) -> None:
    """akool-async demo needs no account, exits 0 and leaves results and a report in ./."""
    done = subprocess.run(
        [sys.executable, "-m", "akool_async", "demo", "--jobs", "80"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = tmp_path / "akool-demo-output"
    records = read_report(out / "report.jsonl")
    files = [p for p in out.iterdir() if p.suffix in (".png", ".mp4")]
    assert (done.returncode, len(records)) == (0, 80)
    assert len(files) == sum(1 for r in records if r["status"] == "ok")
    assert {r["kind"] for r in records} == {"plus", "pro", "image", "video"}
    assert "Requests by endpoint" in done.stdout
    assert "listbyids requests per job" in done.stdout


def test_demo_json_summary(tmp_path: Path, cli: Cli) -> None:
    """demo --json prints one summary document with outcomes, requests and timings."""
    run = cli("--json", "demo", "--jobs", "20", "--out", str(tmp_path / "d"))
    summary = json.loads(run.out)
    assert (run.code, summary["swaps"]) == (0, 20)
    assert summary["succeeded"] + summary["failed"] + summary["errors"] == 20
    assert summary["requests"]["faceswap_plus"] == summary["kinds"]["plus"]
    assert summary["files"] == summary["succeeded"]


def test_journal_in_use_is_one_error_line(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """A journal locked by another process is exit 1 with one clear line, nothing submitted."""
    manifest = plus_manifest(tmp_path / "m.jsonl", 2)
    journal = tmp_path / "j.sqlite"
    holder = sqlite3.connect(journal)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("CREATE TABLE hold (x)")
        holder.commit()
        run = cli("batch", str(manifest), "--out", str(tmp_path / "o"), "--journal", str(journal))
    finally:
        holder.close()
    assert (run.code, run.out) == (1, "")
    assert run.err.splitlines()[-1] == (
        f"error: JournalError: journal {str(journal)!r} is in use by another batch or process"
    )
    assert submits(emulator) == 0


def test_sigterm_stops_cleanly(emulator: EmulatorThread, tmp_path: Path) -> None:
    """SIGTERM stops a waiting batch cleanly: exit 143, a note, no leaked session."""
    manifest = plus_manifest(tmp_path / "m.jsonl", 1)
    child = start_batch(emulator, manifest, tmp_path / "out")
    wait_for(lambda: len(emulator.emulator.jobs) == 1)
    [job_id] = emulator.emulator.jobs
    emulator.call(emulator.emulator.force_status, job_id, 2)  # never finishes
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    code, stdout, stderr = finish(child)
    assert (code, stdout, stderr.splitlines()[0]) == (143, "", "interrupted")
    assert ("Traceback" not in stderr, "Unclosed" not in stderr) == (True, True)


def test_sigint_with_submits_in_flight_leaves_no_ambiguity(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Ctrl-C while 8 submits wait for their answer: the grace journals them, no ambiguity."""
    emu = emulator.emulator
    emulator.call(lambda: emu.faults.inject("faceswap_plus", "slow", times=8, delay=1.0))
    manifest = plus_manifest(tmp_path / "m.jsonl", 8, tag="grace")
    out = tmp_path / "out"
    child = start_batch(emulator, manifest, out, "--concurrency", "8")
    wait_for(lambda: submits(emulator) == 8)
    child.send_signal(signal.SIGINT)
    code, _, _ = finish(child)
    resumed, _, stderr = finish(start_batch(emulator, manifest, out))
    records = read_report(out / "report.jsonl")
    assert (code, resumed, stderr) == (130, 0, "")
    assert [(r["status"], r["resumed"]) for r in records] == [("ok", True)] * 8
    assert sorted(emu.stats.jobs_by_target.values()) == [1] * 8


def test_deadline_and_download_timeout_options(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """--deadline ends a batch of slow jobs with timeouts; the next run finishes them."""
    emulator.call(lambda: emulator.emulator.configure(image_seconds=(3.0, 3.5)))
    manifest = plus_manifest(tmp_path / "m.jsonl", 3, tag="deadline")
    out = str(tmp_path / "out")
    options = ("--download-timeout", "60", "--poll-interval", "0.2")
    first = cli("--json", "batch", str(manifest), "--out", out, "--deadline", "1.0", *options)
    second = cli("--json", "batch", str(manifest), "--out", out, *options)
    errors = {json.loads(line)["error_type"] for line in first.out.splitlines()}
    assert (first.code, errors) == (1, {"JobTimeoutError"})
    assert (second.code, submits(emulator)) == (0, 3)


def test_jobs_the_journal_could_not_record_are_printed(
    emulator: EmulatorThread, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk after the submits: the summary names every job created, with its line."""
    from akool_async._errors import JournalError
    from akool_async._jobs._journal import Journal

    async def full_disk(*args: Any, **fields: Any) -> None:
        raise JournalError("journal write failed: database or disk is full")

    monkeypatch.setattr(Journal, "update", full_disk)
    manifest = plus_manifest(tmp_path / "m.jsonl", 3, tag="full")
    run = cli("batch", str(manifest), "--out", str(tmp_path / "out"), "--poll-interval", "0.2")
    jobs = set(emulator.emulator.jobs)
    printed = {line.split()[3] for line in run.out.splitlines() if "could not record" in line}
    assert (run.code, len(jobs), printed) == (1, 3, jobs)

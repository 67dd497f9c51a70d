"""The command line as a newcomer meets it: errors, logging, output vocabulary, conveniences."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from akool_async.cli import main as cli_main
from akool_async.testing import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, EmulatorConfig, EmulatorThread
from tests._support import CLI_JOBS, Cli, on_emulator

PLUS = ["swap", "plus", "--source-url", "https://x/me.png", "--target-url"]


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Fast jobs, so that waiting commands return quickly."""
    return CLI_JOBS


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m akool_async`` child, without the caller's AKOOL_*."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")} | extra


def requests(emulator: EmulatorThread) -> int:
    return sum(emulator.emulator.stats.requests.values())


# -- the emulator command -----------------------------------------------------------------------


def test_emulator_on_a_port_in_use_is_one_error_line() -> None:
    """A port already taken gives exit 1 and one 'error:' line, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "akool_async", "emulator", "--port", str(port)],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    expected = f"error: cannot listen on 127.0.0.1:{port}: the port is in use\n"
    assert (done.returncode, done.stdout, done.stderr) == (1, "", expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "x"], "error: argument --port: invalid int value: 'x'"),
        (["--bogus"], "error: unrecognized arguments: --bogus"),
        (["--queue-seconds", "1"], "error: argument --queue-seconds: expected 2 arguments"),
        (["--failure-rate", "2"], "error: failure_rate"),
    ],
)
def test_emulator_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage mistake on the emulator is exit 2 with one 'error:' line, not a usage dump."""
    code = cli_main(["emulator", *argv])
    captured = capsys.readouterr()
    assert (code, captured.out, len(captured.err.splitlines())) == (2, "", 1)
    assert captured.err.startswith(message)


def test_emulator_help_shows_defaults_and_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    """emulator --help gives each default and the credentials a client should use."""
    code = cli_main(["emulator", "--help"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"AKOOL_API_KEY={DEFAULT_API_KEY}" in out
    assert DEFAULT_CLIENT_ID in out
    for shown in ("(default: 0, a free one)", "(default: 1 3)", "(default: 10000)"):
        assert shown in out


# -- logging ----------------------------------------------------------------------------------


def test_v_logs_retries_and_throttling_at_info(emulator: EmulatorThread, cli: Cli) -> None:
    """-v shows INFO lines for a throttled, retried request, and no DEBUG lines."""
    on_emulator(emulator, emulator.emulator.faults.inject, "quota", "rate_limited")
    run = cli("-v", "credit")
    info = [line for line in run.err.splitlines() if " INFO " in line]
    assert (run.code, run.out) == (0, "credit: 10,000\n")
    assert any("quota throttled" in line for line in info)
    assert any("retrying quota" in line for line in info)
    assert " DEBUG " not in run.err


def test_v_logs_a_batch_start_and_finish(emulator: EmulatorThread, cli: Cli) -> None:
    """-v shows the start and the end of a batch (swap --wait runs one) at INFO."""
    run = cli("-v", *PLUS, "https://x/a.png", "--wait", "--poll-interval", "0.1")
    info = [line.split(" INFO ", 1)[1] for line in run.err.splitlines() if " INFO " in line]
    assert run.code == 0
    assert any(line.startswith("akool_async.batch: batch started: 1 requests") for line in info)
    assert any("batch finished after" in line and "1 succeeded" in line for line in info)


# -- one vocabulary ---------------------------------------------------------------------------


def test_swap_json_uses_id_and_job_id_like_status(emulator: EmulatorThread, cli: Cli) -> None:
    """swap --json, with and without --wait, and status --json all mean the same by id/job_id."""
    submitted = json.loads(cli("--json", *PLUS, "https://x/a.png").out)
    waited = json.loads(cli("--json", *PLUS, "https://x/b.png", "--wait").out)
    status = json.loads(cli("--json", "status", submitted["id"], waited["id"]).out)
    jobs = emulator.emulator.jobs
    for record in (submitted, waited):
        assert (record["id"], record["job_id"]) == (
            jobs[record["id"]].id,
            jobs[record["id"]].job_id,
        )
    assert [(r["id"], r["job_id"]) for r in status] == [
        (submitted["id"], submitted["job_id"]),
        (waited["id"], waited["job_id"]),
    ]


# -- errors -----------------------------------------------------------------------------------


def test_detect_rejects_other_url_schemes(emulator: EmulatorThread, cli: Cli) -> None:
    """detect ftp://... says only http(s) URLs work (exit 2), without treating it as a path."""
    run = cli("detect", "ftp://example.com/me.png")
    assert (run.code, run.err) == (
        2,
        "error: URL_OR_FILE: only http(s) URLs can be detected, not ftp:// "
        "('ftp://example.com/me.png')\n",
    )
    assert requests(emulator) == 0


def test_a_failed_job_says_what_is_known(emulator: EmulatorThread, cli: Cli) -> None:
    """A job ending in status 4 is reported with AKOOL's job id and the likely causes."""
    run = cli(*PLUS, "https://x/fail.png", "--wait", "--poll-interval", "0.1")
    [line] = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert run.code == 1
    assert "JobFailedError: job " in line
    assert "(AKOOL job 20" in line
    assert "gives no reason; usually a source or target without one clear face" in line


def test_wait_on_an_unknown_id_fails_at_once(emulator: EmulatorThread, cli: Cli) -> None:
    """wait on an id AKOOL does not know answers not_found after one listbyids call."""
    run = cli("--json", "wait", "a" * 24, "--timeout", "600")
    [record] = json.loads(run.out)
    expected = (1, "not_found", "JobNotFoundError")
    assert (run.code, record["status"], record["error_type"]) == expected
    assert emulator.emulator.stats.requests["list_results"] == 1


def test_wait_says_what_it_waits_for(emulator: EmulatorThread, cli: Cli) -> None:
    """wait tells on stderr which jobs it waits for and their state, then prints the result."""
    job = json.loads(cli("--json", *PLUS, "https://x/a.png").out)["id"]
    run = cli("wait", job, "--poll-interval", "0.1")
    assert run.code == 0
    assert run.err.startswith(f"waiting for 1 job: {job} ")
    assert run.out.startswith(f"{job}  success  http")


def test_broken_pipe_exits_quietly(emulator: EmulatorThread) -> None:
    """Output into a closed pipe (`| head`) ends with exit 141 and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "akool_async", "credit"],
            env=child_env(AKOOL_BASE_URL=emulator.base_url, AKOOL_API_KEY=DEFAULT_API_KEY),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


# -- conveniences -----------------------------------------------------------------------------


def test_quiet_silences_commentary_not_results(emulator: EmulatorThread, cli: Cli) -> None:
    """-q drops the progress lines on stderr; the result still prints on stdout."""
    loud = cli(*PLUS, "https://x/a.png", "--wait", "--poll-interval", "0.1")
    quiet = cli("-q", *PLUS, "https://x/b.png", "--wait", "--poll-interval", "0.1")
    assert loud.err.startswith("submitted job ")
    assert (quiet.code, quiet.err) == (0, "")
    assert quiet.out.startswith("job ")
    assert " succeeded: " in quiet.out


def test_quiet_batch_draws_no_progress(emulator: EmulatorThread, cli: Cli, tmp_path: Path) -> None:
    """batch -q prints its summary but no progress display."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"kind": "plus", "source_url": "https://x/a", "target_url": "https://x/b.png"}\n'
    )
    out = str(tmp_path / "out")
    run = cli("-q", "batch", str(manifest), "--out", out, "--poll-interval", "0.1")
    assert (run.code, run.err) == (0, "")
    assert "Requests by endpoint" in run.out


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["credt"], "did you mean 'credit'?"),
        (["swap", "plu"], "did you mean 'plus'?"),
        (["batch", "m.jsonl", "--out", "d", "--concurency", "3"], "did you mean '--concurrency'?"),
    ],
)
def test_typos_get_a_suggestion(cli: Cli, argv: list[str], hint: str) -> None:
    """A mistyped command or option is one error line that suggests the closest name."""
    run = cli(*argv)
    assert (run.code, len(run.err.splitlines())) == (2, 1)
    assert hint in run.err


def test_swap_help_names_each_endpoint(cli: Cli) -> None:
    """swap --help says which AKOOL endpoint each kind calls (and AKOOL's name for Pro)."""
    out = " ".join(cli("swap", "--help").out.split())
    for path in (
        "/api/open/v4/faceswap/faceswapPlusByImage",
        "/api/open/v4/faceswap/faceswapByImage",
        "/api/open/v3/faceswap/highquality/specifyimage",
        "/api/open/v3/faceswap/highquality/specifyvideo",
    ):
        assert path in out
    assert "AKOOL's 'faceswap image'" in out


def test_demo_says_its_failures_are_on_purpose_and_replaces_old_files(
    tmp_path: Path, cli: Cli
) -> None:
    """demo explains its failed swaps, and a second run into the same folder leaves no old files."""
    out = tmp_path / "demo"
    first = cli("-q", "demo", "--jobs", "40", "--out", str(out))
    files_before = {p.name for p in out.iterdir()}
    second = cli("demo", "--jobs", "40", "--out", str(out), "--seed", "8")
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    gallery = {"report.html", ".akool-batch.json", "report-files"}  # rebuilt by each run
    expected = {Path(r["file"]).name for r in report if r["file"]} | {"report.jsonl"} | gallery
    page = (out / "report.html").read_text(encoding="utf-8")
    stale = [p.name for p in (out / "report-files").iterdir() if p.name not in page]
    assert (first.code, second.code) == (0, 0)
    assert "failed swaps are on purpose" in first.out + second.out
    removed = len(files_before - gallery) - 1  # the result files, not report.jsonl
    assert f"removed the {removed} result files of the previous demo" in second.err
    assert ({p.name for p in out.iterdir()}, stale) == (expected, [])

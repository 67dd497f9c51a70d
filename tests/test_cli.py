"""The akool-async command line: single-call commands against the emulator, errors, secrets."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from akool_async.cli import main as cli_main
from akool_async.testing import DEFAULT_API_KEY, EmulatorConfig, EmulatorThread
from tests._support import CLI_JOBS, Cli

OPTS = "1,2:3,4:5,6:7,8"
SECRET = "sk-cli-test-secret-value-42"


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Fast jobs and small videos, so that waiting commands return quickly."""
    return CLI_JOBS


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m akool_async`` child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    return env | extra


def jobs(emulator: EmulatorThread) -> int:
    return sum(emulator.emulator.stats.jobs_by_endpoint.values())


def test_credit_human_and_json(emulator: EmulatorThread, cli: Cli) -> None:
    """credit prints the balance for people, and one JSON document with --json."""
    human = cli("credit")
    machine = cli("--json", "credit")
    assert (human.code, human.out, human.err) == (0, "credit: 10,000\n", "")
    assert (machine.code, json.loads(machine.out)) == (0, {"credit": 10000.0})


def test_global_options_after_the_command(emulator: EmulatorThread, cli: Cli) -> None:
    """--json and --base-url work after the command name too."""
    run = cli("credit", "--json", "--base-url", emulator.base_url)
    assert (run.code, json.loads(run.out)) == (0, {"credit": 10000.0})


def test_swap_without_wait_submits_one_job(emulator: EmulatorThread, cli: Cli) -> None:
    """swap plus submits one job and prints its id (JSON: id, kind, media)."""
    run = cli(
        "--json",
        "swap",
        "plus",
        "--source-url",
        "https://x/me.png",
        "--target-url",
        "https://x/clip.mp4",
        "--model-style",
        "beautify",
    )
    record = json.loads(run.out)
    job = emulator.emulator.jobs[record["id"]]
    assert (run.code, record["kind"], record["media"]) == (0, "plus", "video")
    assert (job.request["model_style"], job.request["single_face_mode"]) == ("beautify", True)


def test_swap_download_verifies_the_file(
    emulator: EmulatorThread,
    cli: Cli,
    tmp_path: Path,
) -> None:
    """swap --download waits, downloads the result and reports its path and sha256."""
    run = cli(
        "--json",
        "swap",
        "pro",
        "--source",
        f"https://x/me.png|{OPTS}",
        "--target",
        "https://x/them.png",
        "--download",
        str(tmp_path / "out"),
        "--poll-interval",
        "0.2",
    )
    record = json.loads(run.out)
    data = Path(record["file"]).read_bytes()
    assert (run.code, record["status"], record["kind"]) == (0, "ok", "pro")
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert data.startswith(b"\x89PNG")


def test_swap_failed_job_exits_1(emulator: EmulatorThread, cli: Cli) -> None:
    """A job that ends in status 4 makes swap --wait exit 1 with one error line."""
    run = cli(
        "swap",
        "image",
        "--source",
        "https://x/me.png",
        "--target",
        "https://x/t.png",
        "--modify-image",
        "https://x/fail-me.png",
        "--wait",
        "--poll-interval",
        "0.2",
    )
    assert run.code == 1
    assert run.err.splitlines()[-1].startswith("error: job ")
    assert "JobFailedError" in run.err


def test_swap_validation_error_sends_nothing(emulator: EmulatorThread, cli: Cli) -> None:
    """A bad field is exit 2 with the field named, and nothing reaches the server."""
    run = cli("swap", "plus", "--source-url", "ftp://x/me.png", "--target-url", "https://x/a.png")
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "error: source_url: must be an http(s) URL, a local file (pathlib.Path or file:// URL) "
        "or an object-store URL (s3://bucket/key, gs://...), got 'ftp://x/me.png'\n"
    )
    assert sum(emulator.emulator.stats.requests.values()) == 0


def test_status_wait_delete(emulator: EmulatorThread, cli: Cli) -> None:
    """status, wait and delete take several ids; a failed or unknown job makes exit 1."""
    ids = []
    for target in ("https://x/ok.png", "https://x/fail.png"):
        run = cli(
            "--json", "swap", "plus", "--source-url", "https://x/s.png", "--target-url", target
        )
        ids.append(json.loads(run.out)["id"])
    waited = cli("--json", "wait", *ids, "--timeout", "30", "--poll-interval", "0.2")
    assert waited.code == 1
    assert [r["status"] for r in json.loads(waited.out)] == ["success", "failed"]
    assert json.loads(waited.out)[1]["error_type"] == "JobFailedError"

    status = cli("status", ids[0])
    assert status.code == 0
    assert status.out.splitlines()[1].split()[:2] == [ids[0], "success"]

    deleted = cli("--json", "delete", ids[0])
    assert (deleted.code, json.loads(deleted.out)) == (0, {"deleted": [ids[0]]})
    gone = cli("--json", "status", ids[0], ids[1])
    assert gone.code == 1
    assert [r["status"] for r in json.loads(gone.out)] == ["not_found", "failed"]


def test_bad_id_is_a_usage_error(emulator: EmulatorThread, cli: Cli) -> None:
    """An id that is not 24 hex digits is exit 2 before any request."""
    run = cli("status", "abc")
    assert (run.code, run.err) == (2, "error: ids[0]: must be a 24-hex-digit _id, got 'abc'\n")
    assert sum(emulator.emulator.stats.requests.values()) == 0


def test_detect_url_and_file(emulator: EmulatorThread, cli: Cli, tmp_path: Path) -> None:
    """detect finds the hinted faces in a URL, the largest with --single-face, 1 in a file."""
    group = "https://x/team-faces-3.png"
    many = cli("--json", "detect", group, "--face-urls")
    one = cli("--json", "detect", group, "--single-face")
    image = tmp_path / "me.png"
    image.write_bytes(b"\x89PNG not really")
    local = cli("--json", "detect", str(image))
    legacy = cli("--json", "detect", "--legacy", group)
    faces = json.loads(many.out)["faces"]
    assert (many.code, len(faces), len(json.loads(one.out)["faces"])) == (0, 3, 1)
    assert all(face["face_url"] and face["crop_landmarks"] for face in faces)
    assert (local.code, len(json.loads(local.out)["faces"])) == (0, 1)
    assert (legacy.code, len(json.loads(legacy.out)["faces"])) == (0, 3)


def test_detect_human_output(emulator: EmulatorThread, cli: Cli) -> None:
    """Without --json, detect prints a count and one row per face."""
    run = cli("detect", "https://x/pair-faces-2.png")
    lines = run.out.splitlines()
    assert (run.code, lines[0], len(lines)) == (0, "2 faces in https://x/pair-faces-2.png", 4)


def test_detect_missing_file_and_legacy_frames(emulator: EmulatorThread, cli: Cli) -> None:
    """A missing file, or --frames with --legacy, is a usage error (exit 2)."""
    missing = cli("detect", "/no/such/file.png")
    frames = cli("detect", "--legacy", "--frames", "3", "https://x/a.png")
    assert (missing.code, frames.code) == (2, 2)
    assert missing.err == (
        "error: URL_OR_FILE: no such file: '/no/such/file.png' (give an http(s) URL or an "
        "image file)\n"
    )
    assert frames.err == "error: --frames and --face-urls need the current detector\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "error: argument COMMAND: invalid choice: 'bogus'"),
        (["swap", "plus"], "error: the following arguments are required: --source-url"),
        (["credit", "--nope"], "error: unrecognized arguments: --nope"),
        (["batch", "m.jsonl", "--out", "d", "--concurrency", "0"], "error: argument --concurrency"),
        ([], "error: the following arguments are required: COMMAND"),
        (["credit", "--rate-limit", "0"], "error: argument --rate-limit: must be a positive"),
    ],
)
def test_usage_errors_are_one_line(cli: Cli, argv: list[str], message: str) -> None:
    """Usage mistakes are one 'error:' line on stderr and exit 2, never usage dumps."""
    run = cli(*argv)
    assert (run.code, run.out, len(run.err.splitlines())) == (2, "", 1)
    assert run.err.startswith(message)


def test_no_credentials_is_exit_2(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key or client credentials the command stops before sending anything."""
    for name in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    run = cli("credit")
    assert (run.code, run.err) == (
        2,
        "error: no credentials: pass --api-key KEY, set AKOOL_API_KEY (or AKOOL_CLIENT_ID and "
        "AKOOL_CLIENT_SECRET) in the environment, or store a key with: akool-async login\n",
    )


def test_wrong_key_is_never_echoed(emulator: EmulatorThread, cli: Cli) -> None:
    """A refused key gives exit 1 and one error line; -vv logs never contain the key."""
    run = cli("-vv", "--api-key", SECRET, "credit")
    assert run.code == 1
    assert "DEBUG" in run.err
    assert run.err.splitlines()[-1] == (
        "error: AuthenticationError: [1101] Authorization invalid (HTTP 200)"
    )
    assert SECRET not in run.out + run.err


def test_wait_with_a_refused_key_is_one_line(emulator: EmulatorThread, cli: Cli) -> None:
    """An API error in concurrent waits is one error line (exit 1), not an exception group."""
    run = cli("--api-key", SECRET, "wait", "a" * 24, "b" * 24, "--poll-interval", "0.1")
    assert (run.code, run.out) == (1, "")
    assert run.err == "error: AuthenticationError: [1101] Authorization invalid (HTTP 200)\n"


def test_help_never_shows_the_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """--help output names the AKOOL_API_KEY variable but never its value."""
    monkeypatch.setenv("AKOOL_API_KEY", SECRET)
    top = cli("--help")
    batch = cli("batch", "--help")
    assert (top.code, batch.code) == (0, 0)
    assert "AKOOL_API_KEY" in top.out
    assert SECRET not in top.out + batch.out
    assert "exit codes:" in batch.out
    assert "report (DIR/report.jsonl" in batch.out


def test_version(cli: Cli) -> None:
    """--version prints the program name and version."""
    run = cli("--version")
    assert (run.code, run.out.split()[0]) == (0, "akool-async")


def test_python_m_json_output_is_parseable(emulator: EmulatorThread) -> None:
    """``python -m akool_async --json`` writes exactly one JSON document on stdout."""
    env = subprocess_env(AKOOL_BASE_URL=emulator.base_url, AKOOL_API_KEY=DEFAULT_API_KEY)
    done = subprocess.run(
        [sys.executable, "-m", "akool_async", "--json", "credit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, {"credit": 10000.0}, "")


def test_missing_rich_message(emulator: EmulatorThread, tmp_path: Path) -> None:
    """Without rich, drawing commands say how to install it (exit 2); --json ones still work."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"kind": "plus", "source_url": "https://x/a", "target_url": "https://x/b"}\n'
    )
    script = (
        "import sys; sys.modules['rich'] = None\n"
        "from akool_async.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    env = subprocess_env(AKOOL_BASE_URL=emulator.base_url, AKOOL_API_KEY=DEFAULT_API_KEY)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    demo = run("demo", "--out", str(tmp_path / "demo"))
    batch = run("batch", str(manifest), "--out", str(tmp_path / "out"))
    credit = run("--json", "credit")
    assert (demo.returncode, batch.returncode, credit.returncode) == (2, 2, 0)
    assert demo.stderr == (
        "error: akool-async demo needs rich for its progress bar and tables: "
        "pip install '.[cli]' in an akool-async checkout, or pip install rich (or pass --json "
        "for plain JSON output)\n"
    )
    assert "pip install rich" in batch.stderr
    assert json.loads(credit.stdout) == {"credit": 10000.0}
    assert jobs(emulator) == 0


def test_emulator_command_serves_until_sigint() -> None:
    """akool-async emulator prints its base URL, serves the API and exits 0 on SIGINT."""
    child = subprocess.Popen(
        [sys.executable, "-m", "akool_async", "emulator", "--port", "0", "--credit", "77"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        credit = subprocess.run(
            [sys.executable, "-m", "akool_async", "--json", "credit"],
            env=subprocess_env(AKOOL_BASE_URL=base_url, AKOOL_API_KEY=DEFAULT_API_KEY),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert line.startswith("AKOOL emulator listening on http://127.0.0.1:")
    assert json.loads(credit.stdout) == {"credit": 77}
    assert code == 0


def test_emulator_command_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """akool-async emulator --help shows its own name and the emulator's options."""
    try:
        code = cli_main(["emulator", "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: akool-async emulator ")
    assert "--port" in out

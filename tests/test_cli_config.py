"""Stored credentials (login, logout, profiles) and shell completion of the command line."""

from __future__ import annotations

import io
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from akool_async.testing import DEFAULT_API_KEY, EmulatorThread
from tests._support import Cli


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A credentials file path of its own, and no AKOOL_* credentials in the environment."""
    path = tmp_path / "conf" / "config.toml"
    monkeypatch.setenv("AKOOL_CONFIG", str(path))
    for name in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET", "AKOOL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def login(cli: Cli, monkeypatch: pytest.MonkeyPatch, key: str, *argv: str) -> tuple[int, str]:
    """Run ``login`` with ``key`` on stdin."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    run = cli("login", *argv)
    return run.code, run.out + run.err


def test_login_stores_the_key_privately_and_later_commands_use_it(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """login checks the key, writes it with mode 0600, and credit then works without one."""
    code, output = login(cli, monkeypatch, DEFAULT_API_KEY)
    credit = cli("--json", "credit")
    assert (code, stat.S_IMODE(config.stat().st_mode)) == (0, 0o600)
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert DEFAULT_API_KEY not in output
    assert "the key works: credit 10,000" in output
    assert (credit.code, json.loads(credit.out)) == (0, {"credit": 10000.0})


def test_a_refused_key_is_not_stored(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key AKOOL refuses makes login fail (exit 1) and leaves no file."""
    code, output = login(cli, monkeypatch, "sk-wrong-key-123")
    assert (code, config.exists()) == (1, False)
    assert "sk-wrong-key-123" not in output


def test_profiles_hold_keys_and_hosts(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named profile keeps its own key and base URL; --profile picks it."""
    monkeypatch.delenv("AKOOL_BASE_URL")
    code, _ = login(
        cli, monkeypatch, DEFAULT_API_KEY, "--profile", "emu", "--base-url", emulator.base_url
    )
    with_profile = cli("--json", "--profile", "emu", "credit")
    without = cli("credit")
    assert (code, with_profile.code, json.loads(with_profile.out)) == (0, 0, {"credit": 10000.0})
    assert (without.code, without.err.startswith("error: no credentials")) == (2, True)


def test_the_environment_wins_over_the_profile(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AKOOL_API_KEY beats a stored key (a wrong stored key is then never sent)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-stored-but-wrong\n"))
    assert cli("login", "--no-verify").code == 0
    monkeypatch.setenv("AKOOL_API_KEY", DEFAULT_API_KEY)
    run = cli("credit")
    assert (run.code, run.out) == (0, "credit: 10,000\n")


def test_an_unknown_profile_is_a_usage_error(cli: Cli, config: Path) -> None:
    """--profile naming no stored profile says which exist and how to create it."""
    run = cli("--profile", "nope", "credit")
    assert run.code == 2
    assert run.err.startswith("error: no profile 'nope' in ")
    assert "akool-async login --profile nope" in run.err


def test_a_file_others_can_read_is_reported(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credentials file readable by group or others gets a warning with the chmod to run."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(DEFAULT_API_KEY + "\n"))
    cli("login", "--no-verify")
    config.chmod(0o644)
    run = cli("credit")
    assert run.code == 0
    assert f"run: chmod 600 {config}" in run.err


def test_logout_forgets_the_profile(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logout removes the profile, keeping the file private; a second logout says so."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-to-forget\n"))
    cli("login", "--no-verify")
    first = cli("logout")
    second = cli("logout")
    assert (first.out, second.out) == (
        "removed profile 'default'\n",
        "no profile 'default' was stored\n",
    )
    assert "sk-to-forget" not in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_login_without_a_key_says_how(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty stdin is exit 2 with the three ways to give a key."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    run = cli("login", "--no-verify")
    assert run.code == 2
    assert "pass --api-key" in run.err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["akool-async", "cre"], "credit"),
        (["akool-async", "swap", "pl"], "plus"),
        (["akool-async", "--json", "swap", "plus", "--sour"], "--source-url"),
        (["akool-async", "batch", "m.jsonl", "--conc"], "--concurrency"),
        (["akool-async", "emulator", "--po"], "--port"),
    ],
)
def test_bash_completion_completes(
    cli: Cli, tmp_path: Path, words: list[str], expected: str
) -> None:
    """The bash script completes commands, subcommands and each command's options."""
    script = tmp_path / "completion.bash"
    script.write_text(cli("completion", "bash").out)
    array = " ".join(f"'{w}'" for w in words)
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"source {script}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; "
            '_akool_async; echo "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout.split()) == (0, [expected])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_a_script(cli: Cli, shell: str) -> None:
    """zsh and fish get scripts naming the commands (zsh through bashcompinit)."""
    run = cli("completion", shell)
    assert (run.code, "akool-async" in run.out, "batch" in run.out) == (0, True, True)


def test_detect_analyze_uses_the_stored_profile(
    emulator: EmulatorThread, cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """detect --analyze takes its key and host from a profile, like every other command."""
    monkeypatch.delenv("AKOOL_BASE_URL")
    login(cli, monkeypatch, DEFAULT_API_KEY, "--profile", "emu", "--base-url", emulator.base_url)
    frames = [f"https://example.com/f-{n}-faces-2.jpg" for n in range(3)]
    run = cli("--json", "--profile", "emu", "detect", "--analyze", *frames)
    persons = json.loads(run.out)["persons"]
    assert (run.code, [p["person_id"] for p in persons]) == (0, ["person_0", "person_1"])


def test_report_scrubs_the_stored_key_from_the_page(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key known only from the credentials file is masked in report.html too."""
    stored = "sk-stored-profile-key-0042"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stored + "\n"))
    assert cli("login", "--no-verify").code == 0
    out = tmp_path / "batch"
    out.mkdir()
    record = {
        "line": 1,
        "ref": "a",
        "kind": "plus",
        "status": "error",
        "id": None,
        "job_id": None,
        "result_url": None,
        "file": None,
        "sha256": None,
        "error_type": "AuthenticationError",
        "error_message": f"rejected key {stored}",
        "resumed": False,
    }
    (out / "report.jsonl").write_text(json.dumps(record) + "\n")
    run = cli("-q", "report", str(out), "--inputs", "none")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert (run.code, run.err, stored in page, "rejected key ***" in page) == (0, "", False, True)


def test_typos_of_the_report_and_detect_options_get_a_suggestion(cli: Cli) -> None:
    """did-you-mean covers the report command and detect's --analyze options."""
    command = cli("reprot", "results/")
    option = cli("detect", "--analize", "https://example.com/a.jpg")
    ratio = cli("detect", "--analyze", "--expand-ration", "0.2", "https://example.com/a.jpg")
    assert (command.code, option.code, ratio.code) == (2, 2, 2)
    assert "did you mean 'report'?" in command.err
    assert "did you mean '--analyze'?" in option.err
    assert "did you mean '--expand-ratio'?" in ratio.err

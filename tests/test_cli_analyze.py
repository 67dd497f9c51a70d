"""``akool-async detect --analyze URL...`` against the emulator (the CLI run in-process)."""

from __future__ import annotations

import json

import pytest

from akool_async.testing import EmulatorThread
from tests._support import Cli

STILLS = [
    "https://cdn.example/clip-7/f000-faces-2.jpg",
    "https://cdn.example/clip-7/f025-faces-1.jpg",
    "https://cdn.example/clip-7/f050-faces-2.jpg",
]


def test_analyze_json(emulator: EmulatorThread, cli: Cli) -> None:
    """--json prints the frames and one object per person with its crop, bbox and frames."""
    run = cli("--json", "detect", "--analyze", *STILLS, "--timestamps", "0,1.5,3")
    document = json.loads(run.out)
    persons = document["persons"]
    expected = (
        0,
        STILLS,
        3,
        ["person_0", "person_1"],
        [[0, 1, 2], [0, 2]],
        [(0.0, 3.0), (0.0, 3.0)],
        [1.5, 3.0],
    )
    assert expected == (
        run.code,
        document["frame_urls"],
        document["frame_count"],
        [p["person_id"] for p in persons],
        [p["frames"] for p in persons],
        [(p["first_seen"], p["last_seen"]) for p in persons],
        [a["timestamp"] for a in persons[0]["appearances"][1:]],
    )
    assert all(p["face_url"].startswith("http") and len(p["bbox"]) == 4 for p in persons)


def test_analyze_human_output(emulator: EmulatorThread, cli: Cli) -> None:
    """Without --json: a count line, a header and one row per person."""
    run = cli("detect", "--analyze", *STILLS, "--expand-ratio", "0.5")
    lines = run.out.splitlines()
    expected = (0, "2 persons in 3 frames", 4, ["PERSON", "INDEX"], "person_1")
    assert expected == (run.code, lines[0], len(lines), lines[1].split()[:2], lines[3].split()[0])


def test_analyze_no_face(emulator: EmulatorThread, cli: Cli) -> None:
    """Frames without faces: exit 0 and "0 persons"."""
    run = cli("detect", "--analyze", "https://x/empty-faces-0.jpg")
    expected = (0, "0 persons in 1 frame\n")
    assert expected == (run.code, run.out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--analyze", *STILLS, "--timestamps", "0,1"], "timestamps: has 2 items for 3 frames"),
        (["--analyze", *STILLS, "--timestamps", "a,b,c"], "--timestamps takes comma-separated"),
        (["--analyze", STILLS[0], "--expand-ratio", "2"], "expand_ratio: must be from 0 to 1"),
        (["--analyze", "/tmp/frame.jpg"], "frame_urls[0]: must be an http(s) URL, a local file"),
        (["--analyze", STILLS[0], "--legacy"], "--legacy cannot be used with --analyze"),
        (["--analyze", STILLS[0], "--frames", "3"], "--frames cannot be used with --analyze"),
        ([STILLS[0], "--timestamps", "0"], "--timestamps and --expand-ratio need --analyze"),
        (STILLS, "detect takes one URL or file"),
    ],
)
def test_analyze_usage_errors(
    emulator: EmulatorThread, cli: Cli, argv: list[str], message: str
) -> None:
    """Bad arguments are exit 2 with one error line, before anything is sent."""
    run = cli("detect", *argv)
    expected = (2, True, 1, 0)
    assert expected == (
        run.code,
        run.err.startswith(f"error: {message}"),
        len(run.err.splitlines()),
        emulator.emulator.stats.requests["analyze_frames"],
    )


def test_analyze_server_error(emulator: EmulatorThread, cli: Cli) -> None:
    """A processing failure is exit 1 with the DetectionError on stderr."""
    run = cli("detect", "--analyze", "https://x/fail.jpg")
    expected = (1, "error: DetectionError: Failed to process frames (HTTP 500)\n")
    assert expected == (run.code, run.err)

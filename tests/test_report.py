"""The HTML gallery of a batch (report.html): built from what a batch left, checked in Chromium.

The browser tests open the page of a demo-sized batch (run against the emulator, with a
journal) in headless Chromium over the DevTools protocol. They are skipped when Chromium is
missing, except in CI (``$CI`` set), where they must run (``.ci/run`` installs it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from akool_async import AsyncClient, JournalError, ValidationError, write_report_html
from akool_async._jobs._journal import Journal
from akool_async._report import remember_batch
from akool_async.cli._batch import BatchRunResult, run_batch, write_report
from akool_async.cli._context import Context
from akool_async.cli._demo import DEMO_POLL, build_demo_requests, demo_emulator_config
from akool_async.testing import DEFAULT_API_KEY, DEFAULT_CLIENT_SECRET, Emulator, EmulatorThread
from tests._browser import Chromium, Page
from tests._support import Cli

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.anyio

JOBS = 60
CHROMIUM = Chromium.find()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium is not installed (apt-get install chromium); CI runs these",
)


def page_data(page: Path) -> dict[str, Any]:
    """The cards a report page embeds (its inline JSON)."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@attrs.frozen
class Gallery:
    """A finished batch's folder, its page and what the batch reported."""

    out: Path
    page: Path
    result: BatchRunResult


async def _run_demo_batch(out: Path) -> Gallery:
    config = attrs.evolve(
        demo_emulator_config(11),
        failure_rate=0.15,
        image_seconds=(0.05, 0.3),
        video_seconds=(0.1, 0.5),
        video_size=16 * 1024,
    )
    ctx = Context(args=argparse.Namespace(json=True), stdout=io.StringIO(), stderr=io.StringIO())
    journal = out / ".akool-journal.sqlite"
    async with Emulator(config=config) as emu:
        client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
        client.poll_config = DEMO_POLL
        async with client:
            entries = await build_demo_requests(client, emu.base_url, JOBS)
            emu.faults.inject("faceswap_pro", "drop_after")  # one ambiguous submit
            remember_batch(out, entries, journal=journal)
            result = await run_batch(
                ctx, client, entries, out_dir=out, journal=journal, progress=False
            )
        write_report(out / "report.jsonl", result.records)
        remember_batch(
            out, entries, journal=journal, statistics=result.statistics, seconds=result.seconds
        )
        page = await write_report_html(out, inputs="fetch", secrets=(emu.api_key,))
    return Gallery(out=out, page=page, result=result)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    """A demo-sized batch (60 mixed swaps, some failing) and its report.html, built once."""
    out = tmp_path_factory.mktemp("gallery")
    return anyio.run(_run_demo_batch, out)


@pytest.fixture
async def page(gallery: Gallery, tmp_path: Path) -> AsyncIterator[Page]:
    """The gallery open in headless Chromium at 1280x800, fully rendered."""
    assert CHROMIUM is not None, "CI needs chromium (apt-get install chromium)"
    async with Chromium(CHROMIUM, tmp_path) as browser, browser.page(1280, 800) as tab:
        await tab.navigate(gallery.page.as_uri())
        await tab.wait_for("document.body.dataset.ready === '1'")
        await tab.wait_for("document.body.dataset.filled === '1'")
        yield tab


async def shown(tab: Page) -> int:
    """Cards the page shows now."""
    count: int = await tab.evaluate("document.querySelectorAll('.card:not([hidden])').length")
    return count


async def click(tab: Page, selector: str) -> None:
    await tab.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def test_demo_batch_has_failures(gallery: Gallery) -> None:
    """The demo-sized batch has successes, failed swaps and one ambiguous submit."""
    stats = gallery.result.statistics
    actual = (stats.outcomes, stats.succeeded > 0, stats.failed > 0, stats.ambiguous)
    assert actual == (JOBS, True, True, 1)


async def test_cards_use_the_report_vocabulary(gallery: Gallery, tmp_path: Path) -> None:
    """A card's id is the record _id and its job id AKOOL's, with or without the journal."""
    expected = {r["line"]: (r["id"], r["job_id"]) for r in gallery.result.records}
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "report.jsonl").write_bytes((gallery.out / "report.jsonl").read_bytes())
    pages = [gallery.page, await write_report_html(alone, inputs="none", thumbnails=False)]
    actual = [{c["l"]: (c["id"], c["j"]) for c in page_data(p)["cards"]} for p in pages]
    tracked = sum(1 for record_id, job_id in expected.values() if record_id and job_id)
    assert (actual, tracked > JOBS // 2) == ([expected, expected], True)


@needs_chromium
async def test_page_loads_offline_without_errors(gallery: Gallery, page: Page) -> None:
    """From file://, the page logs no error and requests nothing outside its folder."""
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await page.wait_for("document.querySelectorAll('img').length > 0")
    await page.evaluate("window.scrollTo(0, 0)")
    # Kept after the run as its artifact: test-artifacts/report-1280x800.png in the checkout,
    # or in the folder AKOOL_TEST_ARTIFACTS names.
    artifacts = Path(os.environ.get("AKOOL_TEST_ARTIFACTS", REPO / "test-artifacts"))
    await anyio.Path(artifacts).mkdir(parents=True, exist_ok=True)
    shot = await page.screenshot(artifacts / "report-1280x800.png")
    folder = gallery.out.resolve().as_uri() + "/"
    outside = [url for url in page.requests if not url.startswith((folder, "data:"))]
    assert (page.console_errors, outside, shot.stat().st_size > 10_000) == ([], [], True)
    assert any(url.startswith(folder + "report-files/") for url in page.requests)


@needs_chromium
async def test_counts_match_batch_statistics(gallery: Gallery, page: Page) -> None:
    """The summary's counts per state and the cards per state are the batch's statistics."""
    stats = gallery.result.statistics
    expected = {
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "ambiguous": stats.ambiguous,
        "error": stats.errored,
        "running": 0,
        "pending": 0,
    }
    counts = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-count]')]"
        ".map(e => [e.dataset.count, Number(e.textContent.replace(/,/g, ''))]))"
    )
    cards = await page.evaluate(
        "(() => { const c = {succeeded: 0, failed: 0, ambiguous: 0, error: 0, running: 0,"
        " pending: 0}; document.querySelectorAll('.card').forEach(e => c[e.dataset.state]++);"
        " return c; })()"
    )
    assert (expected, expected, JOBS) == (counts, cards, await shown(page))


@needs_chromium
async def test_filters_change_what_is_shown(gallery: Gallery, page: Page) -> None:
    """The state and kind filters and the ref search each narrow the cards shown."""
    records = gallery.result.records
    await click(page, 'button[data-filter="state"][data-value="failed"]')
    failed = await shown(page)
    await click(page, 'button[data-filter="state"][data-value="failed"]')
    await click(page, 'button[data-filter="kind"][data-value="pro"]')
    pro = await shown(page)
    await click(page, 'button[data-filter="kind"][data-value="pro"]')
    await page.evaluate(
        "(() => { const q = document.getElementById('q'); q.value = 'MULTI_BBOX';"
        " q.dispatchEvent(new Event('input')); })()"
    )
    searched = await shown(page)
    expected = (
        sum(1 for r in records if r["status"] == "failed"),
        sum(1 for r in records if r["kind"] == "pro"),
        sum(1 for r in records if "multi_bbox" in (r["ref"] or "")),
    )
    assert expected == (failed, pro, searched)
    assert min(expected) > 0
    assert max(expected) < JOBS


@needs_chromium
async def test_failed_card_shows_its_reason(gallery: Gallery, page: Page) -> None:
    """A failed card shows the error type and the reason AKOOL gave."""
    failed = [r for r in gallery.result.records if r["status"] == "failed"]
    shown_errors = await page.evaluate(
        "[...document.querySelectorAll('.card.st-failed .err')].map(e => e.textContent)"
    )
    expected = [f"{r['error_type']}: {r['error_message']}" for r in failed]
    assert expected == shown_errors
    assert all(r["error_message"] for r in failed)


@needs_chromium
async def test_ambiguous_card_shows_its_reason_and_what_to_do(gallery: Gallery, page: Page) -> None:
    """An ambiguous card shows its error, and its large view says how to settle it."""
    (record,) = [r for r in gallery.result.records if r["error_type"] == "AmbiguousSubmitError"]
    shown_error = await page.evaluate(
        "document.querySelector('.card.st-ambiguous .err').textContent"
    )
    await click(page, ".card.st-ambiguous")
    details = await page.evaluate("document.getElementById('big-side').textContent")
    expected = (f"AmbiguousSubmitError: {record['error_message']}", True)
    assert expected == (shown_error, "--resubmit-ambiguous" in details)


@needs_chromium
async def test_keyboard_navigation_and_large_view(page: Page) -> None:
    """Arrow keys move between cards, Enter opens the large view, arrows page it, Esc closes."""
    await page.evaluate("document.querySelector('.card').focus()")
    await page.key("ArrowRight", key_code=39)
    focused = await page.evaluate("document.activeElement.dataset.i")
    await page.key("Enter", key_code=13)
    opened = await page.evaluate("document.getElementById('big').open")
    title = await page.evaluate("document.getElementById('big-title').textContent")
    await page.key("ArrowRight", key_code=39)
    paged = await page.evaluate("document.getElementById('big-title').textContent")
    await page.key("Escape", key_code=27)
    closed = not await page.evaluate("document.getElementById('big').open")
    assert (focused, opened, title.startswith("line 2"), closed) == ("1", True, True, True)
    assert paged.startswith("line 3")


def test_cards_point_at_local_files_and_thumbnails(gallery: Gallery) -> None:
    """Image results show a local thumbnail; every result links its file in the folder."""
    cards = page_data(gallery.page)["cards"]
    images = [c["res"] for c in cards if "res" in c and not c["res"]["v"] and "f" in c["res"]]
    thumbs = [gallery.page.parent / res["t"] for res in images]
    local = [not res["f"].startswith(("http:", "https:")) for res in images]
    assert (all(local), all(t.is_file() for t in thumbs)) == (True, True)
    from PIL import Image

    with Image.open(thumbs[0]) as thumb:
        assert max(thumb.size) <= 320


async def test_without_pillow_the_page_shows_full_images(
    gallery: Gallery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Pillow the page still works: no thumbnails, the full files instead."""
    monkeypatch.setitem(sys.modules, "PIL", None)
    output = tmp_path / "plain.html"
    await write_report_html(gallery.out, output=output)
    cards = page_data(output)["cards"]
    results = [c["res"] for c in cards if "res" in c and "f" in c["res"]]
    assert (False, False, len(results)) == (
        page_data(output)["thumbs"],
        any("t" in res for res in results),
        gallery.result.count("ok"),
    )


async def test_no_secret_leaks_into_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API key, client secret, tokens in messages and signed-URL signatures never appear."""
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "client-secret-4242")
    signed = "https://bucket.example/face.png?X-Amz-Signature=sig-9f9f9f&X-Amz-Date=1"
    records = [
        {
            "line": 1,
            "ref": "a",
            "kind": "plus",
            "status": "error",
            "job_id": None,
            "result_url": "https://user:pw-1234@cdn.example/r.png?token=tok-777",
            "file": None,
            "sha256": None,
            "error_type": "AuthenticationError",
            "error_message": (
                f"rejected key {DEFAULT_API_KEY} (Authorization: Bearer tok-abcdefgh-123) "
                f"for {signed}; client-secret-4242"
            ),
            "resumed": False,
        }
    ]
    (tmp_path / "report.jsonl").write_text(json.dumps(records[0]) + "\n")
    page = await write_report_html(tmp_path, secrets=(DEFAULT_API_KEY, DEFAULT_CLIENT_SECRET))
    text = page.read_text()
    leaked = [
        s
        for s in (
            DEFAULT_API_KEY,
            DEFAULT_CLIENT_SECRET,
            "client-secret-4242",
            "tok-abcdefgh-123",
            "sig-9f9f9f",
            "tok-777",
            "pw-1234",
        )
        if s in text
    ]
    assert (leaked, "AuthenticationError" in text) == ([], True)


async def test_mid_batch_report_reads_the_locked_journal(gallery: Gallery, tmp_path: Path) -> None:
    """While a batch holds its journal, the report still reads it (from a fresh copy)."""
    import shutil

    out = tmp_path / "running"
    shutil.copytree(gallery.out, out, ignore=shutil.ignore_patterns("report.*"))
    batch = json.loads((out / ".akool-batch.json").read_text())
    batch.pop("statistics")
    batch["entries"].append({**batch["entries"][-1], "index": JOBS, "line": JOBS + 1})
    (out / ".akool-batch.json").write_text(json.dumps(batch))
    base_url = read_base_url(out / ".akool-journal.sqlite")
    key = first_key(out)
    async with Journal(out / ".akool-journal.sqlite", base_url=base_url) as journal:
        await journal.update(*key, "submitted")
        page = await write_report_html(out)
    states = [card["s"] for card in page_data(page)["cards"]]
    stats = gallery.result.statistics
    assert (JOBS + 1, 1, 1, stats.succeeded + stats.failed - 1) == (
        len(states),
        states.count("running"),
        states.count("pending"),
        states.count("succeeded") + states.count("failed"),
    )


def read_base_url(path: Path) -> str:
    import sqlite3

    with sqlite3.connect(path) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE name='base_url'").fetchone()
    conn.close()
    return str(value)


def first_key(out: Path) -> tuple[str, int]:
    from akool_async._jobs._journal import read_journal

    row = read_journal(out / ".akool-journal.sqlite")[0]
    return row.key, row.occurrence


async def test_expired_result_urls_are_marked(tmp_path: Path) -> None:
    """A result finished more than 7 days ago has its URL marked expired and not loaded."""
    result = tmp_path / "r.png"
    result.write_bytes(b"\x89PNG\r\n\x1a\n")
    old = result.stat().st_mtime - 8 * 86_400
    os.utime(result, (old, old))
    record = {
        "line": 1,
        "ref": "old",
        "kind": "plus",
        "status": "ok",
        "job_id": "j",
        "result_url": "https://cdn.example/final.png",
        "file": str(result),
        "sha256": "0" * 64,
        "error_type": None,
        "error_message": None,
        "resumed": False,
    }
    (tmp_path / "report.jsonl").write_text(json.dumps(record) + "\n")
    page = await write_report_html(tmp_path, thumbnails=False)
    (card,) = page_data(page)["cards"]
    assert (card["res"]["xp"], card["res"]["f"]) == (True, "r.png")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "swaps.jsonl"
    lines = [
        {"kind": "plus", "ref": f"r{i}", "source_url": "https://example.com/f.png",
         "target_url": f"https://example.com/t-{i}.png"}
        for i in range(3)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_cli_batch_writes_and_names_the_gallery(
    cli: Cli, emulator: Any, manifest: Path, tmp_path: Path
) -> None:
    """``batch --out DIR`` writes DIR/report.html and says so; ``report DIR`` rebuilds it."""
    out = tmp_path / "out"
    run = cli("batch", str(manifest), "--out", str(out))
    page = out / "report.html"
    first = page.read_text()
    page.unlink()
    again = cli("report", str(out), "--inputs", "none")
    assert (0, True, 0, f"open {page}\n") == (
        run.code,
        f"gallery: open {page}" in run.out,
        again.code,
        again.out,
    )
    assert (3, first.count("r1")) == (len(page_data(page)["cards"]), page.read_text().count("r1"))


def test_cli_report_on_an_empty_folder_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    """``report DIR`` on a folder without a batch exits 2 with one error line."""
    run = cli("report", str(tmp_path))
    assert (run.code, "holds no batch" in run.err) == (2, True)


async def test_a_rebuild_keeps_the_inputs_fetched_earlier(gallery: Gallery, tmp_path: Path) -> None:
    """Rebuilt later (inputs linked, the default), the page still shows the fetched copies."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(gallery.out, out)
    page = await write_report_html(out)
    sources = [card["src"][0] for card in page_data(page)["cards"]]
    remote = [m["s"] for m in sources if m.get("s", "").startswith("http")]
    assert (remote, all(m.get("s", "").startswith("report-files/") for m in sources)) == ([], True)


def test_report_mid_batch_from_a_running_cli_batch(
    cli: Cli, emulator: EmulatorThread, manifest: Path, tmp_path: Path
) -> None:
    """``report DIR`` while ``batch`` runs in another process shows its swaps still running."""
    emulator.call(lambda: emulator.emulator.configure(image_seconds=(4.0, 5.0)))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    env |= {"AKOOL_BASE_URL": emulator.base_url, "AKOOL_API_KEY": DEFAULT_API_KEY}
    command = [sys.executable, "-m", "akool_async", "--json", "batch", str(manifest)]
    child = subprocess.Popen(
        [*command, "--out", str(out), "--poll-interval", "0.3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        # Another process's progress cannot be awaited: poll its folder.
        deadline = time.monotonic() + 30
        while not running_swaps(out):
            assert time.monotonic() < deadline, "the batch never got its jobs submitted"
            time.sleep(0.05)
        during = cli("report", str(out), "--inputs", "none")
        states_during = [card["s"] for card in page_data(out / "report.html")["cards"]]
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        assert child.stderr is not None
        child.stderr.close()
    after = cli("report", str(out), "--inputs", "none")
    states_after = [card["s"] for card in page_data(out / "report.html")["cards"]]
    assert (
        during.code,
        after.code,
        "running" in states_during and "succeeded" not in states_during,
        states_after,
    ) == (0, 0, True, ["succeeded"] * 3)


def running_swaps(out: Path) -> bool:
    """Whether the batch in ``out`` has swaps submitted and not finished."""
    from akool_async._report_data import collect_items

    try:
        items, _ = collect_items(out)
    except (ValidationError, JournalError):
        return False  # nothing written yet
    return any(item.state == "running" for item in items)


def test_cli_report_with_a_missing_journal_is_an_error(cli: Cli, gallery: Gallery) -> None:
    """``report DIR --journal FILE`` with no such file exits 2 naming it."""
    missing = gallery.out / "nope.sqlite"
    run = cli("report", str(gallery.out), "--journal", str(missing), "--output", "/dev/null")
    assert (run.code, f"no journal at '{missing}'" in run.err) == (2, True)


def test_thumbnails_are_small_upright_and_reused(tmp_path: Path) -> None:
    """A large sideways phone photo becomes an upright 320 px thumbnail, made once."""
    from PIL import Image

    from akool_async._report_media import Thumbnailer

    photo = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (2400, 1800), (200, 40, 40)).save(photo, "JPEG", exif=exif)
    thumbnailer = Thumbnailer(tmp_path / "report-files", enabled=True)
    first = thumbnailer(photo)
    again = thumbnailer(photo)
    assert first is not None
    with Image.open(first) as thumb:
        size = thumb.size
    assert ((240, 320), first, 1, 1) == (size, again, thumbnailer.made, thumbnailer.reused)


async def test_the_page_masks_every_secret_the_process_holds(tmp_path: Path) -> None:
    """A secret registered with the SDK (a storage option's key) is masked though not passed."""
    AsyncClient(api_key="k", storage_options={"secret": "storage-secret-0123456789"})
    record = {
        "line": 1,
        "ref": "a",
        "kind": "plus",
        "status": "error",
        "job_id": None,
        "result_url": None,
        "file": None,
        "sha256": None,
        "error_type": "StorageError",
        "error_message": "the store refused storage-secret-0123456789",
        "resumed": False,
    }
    (tmp_path / "report.jsonl").write_text(json.dumps(record) + "\n")
    page = await write_report_html(tmp_path)
    text = page.read_text()
    assert ("storage-secret-0123456789" in text, "StorageError" in text) == (False, True)

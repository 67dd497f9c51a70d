"""Local files and object stores as inputs and outputs, against a real S3 API (moto's server).

A moto server runs on 127.0.0.1 for the session. Each test puts a small proxy of its own in
front of it that counts the requests reaching the store (PUTs above all) and, as real S3
does, refuses presigned URLs past their expiry (against its clock plus ``skew``, so that a
test can make days pass for the store). The emulator runs with ``fetch_inputs=True``: it
GETs every input URL before it accepts a job, so every test proves the presigned URLs work.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web

from akool_async import (
    AnalyzeFrames,
    AsyncClient,
    BatchEvent,
    Client,
    DownloadError,
    JobFailedError,
    PlusSwap,
    PollConfig,
    SavedFile,
    StorageError,
    ValidationError,
)
from akool_async._jobs._journal import read_journal
from akool_async._storage import PART_SIZE, PRESIGN_MARGIN
from akool_async.testing import Emulator, EmulatorConfig, EmulatorThread
from tests._support import FAST_RETRY, Cli

moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.anyio

FAST_POLL = PollConfig(image_first=0.02, image_max=0.1, video_first=0.02, video_max=0.1)
CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), stopped after the session."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@attrs.define
class StoreProxy:
    """A counting, expiry-checking proxy in front of moto."""

    url: str = ""
    requests: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    skew: float = 0.0
    refuse: bool = False

    def puts(self, prefix: str = "") -> int:
        """PUT requests (objects and multipart parts) under ``/bucket/prefix``."""
        return sum(n for (m, p), n in self.requests.items() if m == "PUT" and p.startswith(prefix))


def _expired(query: Any, skew: float) -> bool:
    """Whether a presigned URL (SigV4 or SigV2 query) has expired at the store's clock."""
    now = time.time() + skew
    date, expires = query.get("X-Amz-Date"), query.get("X-Amz-Expires")
    if date and expires:
        return now > calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ")) + int(expires)
    until = query.get("Expires")
    return bool(until) and "Signature" in query and now > int(until)


@pytest.fixture
async def store(moto_url: str) -> AsyncIterator[StoreProxy]:
    """This test's proxy in front of moto; its URL is the S3 endpoint the SDK uses."""
    proxy = StoreProxy()
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def forward(request: web.Request) -> web.StreamResponse:
            proxy.requests[request.method, request.path] += 1
            if proxy.refuse:
                body = "<Error><Code>InvalidAccessKeyId</Code><Message>no</Message></Error>"
                return web.Response(status=403, text=body, content_type="application/xml")
            if _expired(request.query, proxy.skew):
                body = (
                    "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                )
                return web.Response(status=403, text=body, content_type="application/xml")
            headers = {
                k: v for k, v in request.headers.items() if k.lower() not in ("host", "expect")
            }
            body = await request.read()

            async def chunks() -> AsyncIterator[bytes]:  # (aiohttp warns of large raw bytes)
                for start in range(0, len(body), 1 << 18):
                    yield body[start : start + (1 << 18)]

            async with session.request(
                request.method,
                moto_url + request.path_qs,
                headers=headers,
                data=chunks() if body else None,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                out = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")
                }
                response = web.StreamResponse(status=answer.status, headers=out)
                length = answer.headers.get("Content-Length")
                response.content_length = (
                    int(length) if request.method == "HEAD" and length else len(payload)
                )
                await response.prepare(request)
                if request.method != "HEAD":
                    await response.write(payload)
                await response.write_eof()
                return response

        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield proxy
        finally:
            await runner.cleanup()


@pytest.fixture
def bucket(moto_url: str) -> str:
    """A fresh, empty bucket of this test (created directly in moto, not through the proxy)."""
    name = f"b-{uuid.uuid4().hex[:12]}"
    _s3(moto_url).create_bucket(Bucket=name)
    return name


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def _options(store: StoreProxy) -> dict[str, Any]:
    return {**CREDENTIALS, "endpoint_url": store.url}


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Fast jobs; every input is fetched before a job is accepted."""
    return EmulatorConfig(latency_scale=0.01, fetch_inputs=True)


def _client(emu: Emulator, store: StoreProxy, bucket: str, **kwargs: Any) -> AsyncClient:
    client = AsyncClient(
        api_key=emu.api_key,
        base_url=emu.base_url,
        retry=FAST_RETRY,
        upload_to=f"s3://{bucket}/uploads/",
        storage_options=_options(store),
        **kwargs,
    )
    client.poll_config = FAST_POLL
    return client


def _files(tmp_path: Path, count: int, prefix: str) -> list[Path]:
    paths = []
    for index in range(count):
        path = tmp_path / f"{prefix}{index}.jpg"
        path.write_bytes(f"{prefix} {index} ".encode() * 500)
        paths.append(path)
    return paths


def _fetched(emu: Emulator) -> Counter[int]:
    return Counter(status for (_, status), n in emu.stats.input_fetches.items() for _ in range(n))


async def test_batch_of_local_and_s3_inputs_into_a_bucket_resumes_without_new_puts(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """Local faces are uploaded once each, s3:// targets presigned in place, results stored
    in the bucket; a resume after a kill re-uploads nothing and stores only what was missing."""
    faces = _files(tmp_path, 2, "face")
    local_targets = _files(tmp_path, 3, "target")
    s3 = _s3(moto_url)
    for index in range(3):
        s3.put_object(Bucket=bucket, Key=f"in/t{index}.jpg", Body=b"remote target %d" % index)
    requests = [
        PlusSwap(source_url=faces[i % 2], target_url=target)
        for i, target in enumerate(
            [*local_targets, *(f"s3://{bucket}/in/t{index}.jpg" for index in range(3))] * 2
        )
    ]
    journal = tmp_path / "batch.db"
    out = f"s3://{bucket}/results/"

    class Killed(Exception):
        pass

    def kill(event: BatchEvent) -> None:
        if event.kind == "finished" and event.index >= 3:
            raise Killed  # the process dies here: some jobs done, some in flight, some unsent

    async def run_until_killed() -> None:
        async with (
            _client(emu, store, bucket) as client,
            client.swap_many(
                requests, journal=journal, download_dir=out, on_event=kill, concurrency=4
            ) as batch,
        ):
            async for _ in batch:
                pass

    with pytest.raises(Killed):
        await run_until_killed()
    stored = sum(1 for row in read_journal(journal) if row.state == "succeeded")
    assert 0 < stored < 12
    assert store.puts(f"/{bucket}/uploads/") == 5  # 2 faces + 3 local targets, each once
    assert stored == store.puts(f"/{bucket}/results/")
    downloads_before = emu.stats.requests["result_file"]

    store.requests.clear()
    async with (
        _client(emu, store, bucket) as client,
        client.swap_many(
            requests, journal=journal, download_dir=out, resubmit_ambiguous=True
        ) as batch,
    ):
        second = [outcome async for outcome in batch]
    assert [o.error for o in second] == [None] * 12
    assert store.puts(f"/{bucket}/uploads/") == 0
    assert store.puts(f"/{bucket}/results/") == 12 - stored
    assert emu.stats.requests["result_file"] - downloads_before == 12 - stored
    assert {200} == set(_fetched(emu))
    for outcome in second:
        assert outcome.location is not None
        assert outcome.path is None
        key = outcome.location.removeprefix(f"s3://{bucket}/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert outcome.sha256 == hashlib.sha256(body).hexdigest()
    rows = read_journal(journal)
    assert {out + Path(o.location or "").name for o in second} == {r.path for r in rows}


@pytest.mark.slow
async def test_a_cli_batch_killed_with_sigkill_resumes_without_new_uploads(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """``akool-async batch`` (local and s3:// inputs, results into a bucket) killed with SIGKILL
    mid-batch: the same command again uploads no input and stores only the missing results."""
    emu.configure(image_seconds=(0.3, 0.9))
    faces = _files(tmp_path, 2, "face")
    local_targets = _files(tmp_path, 3, "target")
    s3 = _s3(moto_url)
    for index in range(3):
        s3.put_object(Bucket=bucket, Key=f"in/t{index}.jpg", Body=b"remote target %d" % index)
    targets = [*map(str, local_targets), *(f"s3://{bucket}/in/t{i}.jpg" for i in range(3))]
    total = 36
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "kind": "plus",
                    "source_url": str(faces[i % 2]),
                    "target_url": targets[i % len(targets)],
                    "face_enhance": i % 3 == 0,  # distinct requests, the same few files
                    "ref": f"line-{i}",
                }
            )
            + "\n"
            for i in range(total)
        )
    )
    journal = tmp_path / "batch.db"
    options = [f"--storage-option={k}={v}" for k, v in _options(store).items()]
    command = [
        sys.executable, "-m", "akool_async", "--json", "batch", str(manifest),
        "--out", f"s3://{bucket}/results/", "--journal", str(journal),
        "--upload-to", f"s3://{bucket}/uploads/", *options,
        "--concurrency", "4", "--poll-interval", "0.05",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    env |= {"AKOOL_BASE_URL": emu.base_url, "AKOOL_API_KEY": emu.api_key}

    async with await anyio.open_process(command, env=env) as child:
        with anyio.fail_after(60):
            # Polling another process's progress (stored results): no event to wait on.
            while store.puts(f"/{bucket}/results/") < 6 and child.returncode is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    stored = sum(1 for row in read_journal(journal) if row.state == "succeeded")
    assert 0 < stored < total
    assert store.puts(f"/{bucket}/uploads/") == 5  # 2 faces + 3 local targets, each once
    downloads_before = emu.stats.requests["result_file"]

    store.requests.clear()
    # --resubmit-ambiguous: a submit the kill cut off may have created a job (it may pay
    # twice; what is counted here is uploads and stored results, not jobs).
    resumed = await anyio.run_process([*command, "--resubmit-ambiguous"], env=env, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    lines = [json.loads(line) for line in resumed.stdout.decode().splitlines()]
    assert sum(1 for line in lines if line.get("status") == "ok") == total, lines[-1:]
    assert store.puts(f"/{bucket}/uploads/") == 0
    assert store.puts(f"/{bucket}/results/") == total - stored
    assert emu.stats.requests["result_file"] - downloads_before == total - stored


async def test_resume_reuses_valid_presigns_and_resigns_expired_ones(
    emu: Emulator, store: StoreProxy, bucket: str, tmp_path: Path
) -> None:
    """A later batch on the same journal reuses still-valid URLs; once they have expired (the
    store refuses them) it re-signs them without uploading again, and the jobs succeed."""
    faces = _files(tmp_path, 2, "face")
    journal = tmp_path / "batch.db"

    def batch_of(style: str) -> list[PlusSwap]:
        return [
            PlusSwap(source_url=face, target_url=faces[1 - i], model_style=style)
            for i, face in enumerate(faces)
        ]

    async with _client(emu, store, bucket) as client:
        async with client.swap_many(
            batch_of("realistic"), journal=journal, job_timeout=60
        ) as batch:
            assert [o.error async for o in batch] == [None, None]
        first = client._media().statistics
    assert (first.uploads, first.signed) == (2, 2)
    recorded = {job.request["source_url"] for job in emu._state.store.jobs.values()}

    async with _client(emu, store, bucket) as client:
        async with client.swap_many(batch_of("beautify"), journal=journal, job_timeout=60) as batch:
            assert [o.error async for o in batch] == [None, None]
        again = client._media().statistics
    assert (again.uploads, again.signed, again.hashed) == (0, 0, 0)

    # An hour and more later (signed for 60 s + the margin): the store refuses the old URLs.
    later = 60 + PRESIGN_MARGIN + 60
    store.skew = later
    store.requests.clear()
    async with _client(emu, store, bucket) as client:
        client._media().clock = lambda: time.time() + later
        stale = PlusSwap(source_url=next(iter(recorded)), target_url=next(iter(recorded)))
        with pytest.raises(JobFailedError):
            await client.wait(await client.faceswap_plus(stale), timeout=30)
        # (signed from the real clock, the new URLs need to outlive the skew: a longer timeout)
        async with client.swap_many(
            batch_of("lossless"), journal=journal, job_timeout=2 * later
        ) as batch:
            assert [o.error async for o in batch] == [None, None]
        late = client._media().statistics
    assert (late.uploads, late.signed, late.already_stored) == (0, 2, 2)
    assert store.puts() == 0


async def test_a_local_file_without_upload_to_is_a_validation_error(
    emu: Emulator, tmp_path: Path
) -> None:
    """With no upload_to, a local path is refused naming the field, and nothing is sent."""
    face = _files(tmp_path, 1, "face")[0]
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        with pytest.raises(ValidationError) as caught:
            await client.faceswap_plus(
                PlusSwap(source_url="https://example.com/a.jpg", target_url=face)
            )
    assert caught.value.field == "target_url"
    assert emu.stats.requests["faceswap_plus"] == 0


async def test_missing_file_and_refusing_store_are_typed_errors_naming_the_field(
    emu: Emulator, store: StoreProxy, bucket: str, tmp_path: Path
) -> None:
    """A missing file is a ValidationError, a store refusing the credentials a StorageError;
    both name the field and send nothing to AKOOL; in a batch they are outcomes."""
    face = _files(tmp_path, 1, "face")[0]
    async with _client(emu, store, bucket) as client:
        with pytest.raises(ValidationError) as missing:
            await client.faceswap_plus(
                PlusSwap(source_url=tmp_path / "nope.jpg", target_url="https://example.com/t.jpg")
            )
        store.refuse = True
        with pytest.raises(StorageError) as refused:
            await client.faceswap_plus(PlusSwap(source_url=face, target_url=face))
        requests = [PlusSwap(source_url=face, target_url=face)]
        async with client.swap_many(requests, journal=tmp_path / "j.db") as batch:
            outcomes = [o async for o in batch]
    assert (missing.value.field, refused.value.field) == ("source_url", "source_url")
    assert [StorageError] == [type(o.error) for o in outcomes]
    assert [r.state for r in read_journal(tmp_path / "j.db")] == ["unsent"]
    assert emu.stats.requests["faceswap_plus"] == 0


async def test_download_one_result_into_a_bucket_and_a_directory(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """client.download puts one verified result into a bucket or a local directory."""
    async with _client(emu, store, bucket) as client:
        job = await client.faceswap_plus(
            PlusSwap(source_url=_files(tmp_path, 1, "f")[0], target_url=_files(tmp_path, 1, "t")[0])
        )
        result = await client.wait(job, timeout=30)
        remote = await client.download(result, f"s3://{bucket}/one/")
        local = await client.download(result, tmp_path / "out")
    body = _s3(moto_url).get_object(
        Bucket=bucket, Key=f"one/{local.path.name if local.path else ''}"
    )
    assert hashlib.sha256(body["Body"].read()).hexdigest() == remote.sha256 == local.sha256
    assert isinstance(remote, SavedFile)
    assert (None, f"s3://{bucket}/one/{result.id}.png") == (remote.path, remote.location)
    assert local.path is not None
    assert local.size == local.path.stat().st_size == remote.size


def test_blocking_client_download(
    akool_emulator_thread: EmulatorThread, moto_url: str, tmp_path: Path
) -> None:
    """Client.download is the blocking twin of AsyncClient.download."""
    runner = akool_emulator_thread
    runner.call(lambda: runner.emulator.configure(fetch_inputs=False))  # example.com is offline
    with Client(api_key=runner.emulator.api_key, base_url=runner.base_url) as client:
        job = client.faceswap_plus(
            PlusSwap(source_url="https://example.com/f.jpg", target_url="https://example.com/t.jpg")
        )
        saved = client.download(client.wait(job, timeout=30), tmp_path)
    assert saved.path is not None
    assert saved.sha256 == hashlib.sha256(saved.path.read_bytes()).hexdigest()


async def test_emulator_fails_a_job_whose_input_cannot_be_fetched(emu: Emulator) -> None:
    """With fetch_inputs, an unreachable input makes the job fail, as AKOOL's would."""
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        client.poll_config = FAST_POLL
        job = await client.faceswap_plus(
            PlusSwap(
                source_url=f"{emu.base_url}/nothing-here.jpg", target_url=emu.base_url + "/x.jpg"
            )
        )
        with pytest.raises(JobFailedError):
            await client.wait(job, timeout=30)
    assert {404} == set(_fetched(emu))


def test_media_fields_take_paths_and_store_urls(tmp_path: Path) -> None:
    """Media fields take a Path (stored as its file:// URL) or an s3:// URL; junk is refused."""
    request = PlusSwap(source_url=tmp_path / "a b.jpg", target_url="s3://bucket/key.mp4")
    assert (tmp_path / "a b.jpg").as_uri() == request.source_url
    assert request.media.value == "video"
    with pytest.raises(ValidationError) as caught:
        PlusSwap(source_url="face.jpg", target_url="s3://bucket/key.mp4")
    assert caught.value.field == "source_url"


def test_cli_batch_with_local_paths_and_s3_urls_into_a_bucket(
    emulator: EmulatorThread, cli: Cli, moto_url: str, tmp_path: Path
) -> None:
    """akool-async batch: a manifest of relative local paths and s3:// URLs, --upload-to,
    --storage-option and an s3:// --out; every result lands in the bucket."""
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3 = _s3(moto_url)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/group.jpg", Body=b"a group photo")
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "me.jpg").write_bytes(b"my face" * 100)
    lines = [
        {"kind": "plus", "source_url": "faces/me.jpg", "target_url": f"s3://{bucket}/in/group.jpg"},
        {"kind": "plus", "source_url": f"s3://{bucket}/in/group.jpg", "target_url": "faces/me.jpg"},
    ]
    manifest = tmp_path / "swaps.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = cli(
        "--json",
        "batch",
        str(manifest),
        "--out",
        f"s3://{bucket}/results/",
        "--upload-to",
        f"s3://{bucket}/uploads",
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--storage-option",
        f"endpoint_url={moto_url}",
        "--job-timeout",
        "60",
    )
    assert (run.code, run.err) == (0, "")
    records = [json.loads(line) for line in run.out.splitlines()]
    stored = s3.list_objects_v2(Bucket=bucket, Prefix="results/")["Contents"]
    uploads = s3.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"]
    assert (len(records), len(stored), len(uploads)) == (2, 2, 1)
    assert {record["status"] for record in records} == {"ok"}
    assert {record["file"] for record in records} == {
        f"s3://{bucket}/{item['Key']}" for item in stored
    }
    assert (tmp_path / "swaps.report.jsonl").is_file()


def test_cli_swap_download_into_a_bucket(
    emulator: EmulatorThread, cli: Cli, moto_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """akool-async swap plus --download s3://... stores the verified result in the bucket."""
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3 = _s3(moto_url)
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "me.jpg").write_bytes(b"my face" * 100)
    monkeypatch.chdir(tmp_path)
    run = cli(
        "swap",
        "plus",
        "--source-url",
        "me.jpg",
        "--target-url",
        "me.jpg",
        "--upload-to",
        f"s3://{bucket}/uploads/",
        "--storage-option",
        f"endpoint_url={moto_url}",
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--download",
        f"s3://{bucket}/out/",
        "--poll-interval",
        "0.2",
    )
    assert run.code == 0, run.err
    [stored] = s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    body = s3.get_object(Bucket=bucket, Key=stored["Key"])["Body"].read()
    assert f"(sha256 {hashlib.sha256(body).hexdigest()})" in run.out


async def test_resume_checks_stored_results_instead_of_trusting_them(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """A result object changed or deleted in the bucket is downloaded and stored again on
    resume; intact ones are only read back."""
    face = _files(tmp_path, 1, "face")[0]
    requests = [
        PlusSwap(source_url=face, target_url=f"{face.as_uri()}", model_style=style)
        for style in ("realistic", "beautify", "lossless")
    ]
    journal, out = tmp_path / "j.db", f"s3://{bucket}/results/"
    async with (
        _client(emu, store, bucket) as client,
        client.swap_many(requests, journal=journal, download_dir=out) as batch,
    ):
        first = [o async for o in batch]
    s3 = _s3(moto_url)
    keys = sorted((o.location or "").removeprefix(f"s3://{bucket}/") for o in first)
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"tampered")
    s3.delete_object(Bucket=bucket, Key=keys[1])
    store.requests.clear()
    async with (
        _client(emu, store, bucket) as client,
        client.swap_many(requests, journal=journal, download_dir=out) as batch,
    ):
        second = [o async for o in batch]
    assert [o.error for o in second] == [None] * 3
    assert store.puts(f"/{bucket}/results/") == 2
    for outcome in second:
        key = (outcome.location or "").removeprefix(f"s3://{bucket}/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == outcome.sha256


async def test_a_missing_object_input_is_a_validation_error(
    emu: Emulator, store: StoreProxy, bucket: str
) -> None:
    """An s3:// input that does not exist is refused naming the field; nothing is sent."""
    async with _client(emu, store, bucket) as client:
        with pytest.raises(ValidationError) as caught:
            await client.faceswap_plus(
                PlusSwap(source_url=f"s3://{bucket}/none.jpg", target_url=f"s3://{bucket}/x.jpg")
            )
    assert (caught.value.field, emu.stats.requests["faceswap_plus"]) == ("source_url", 0)


async def test_analyze_frames_takes_local_frames(
    emu: Emulator, store: StoreProxy, bucket: str, tmp_path: Path
) -> None:
    """AnalyzeFrames.frame_urls take local files too: each is uploaded once and presigned."""
    frames = _files(tmp_path, 2, "frame")
    async with _client(emu, store, bucket) as client:
        analysis = await client.analyze_frames(AnalyzeFrames(frame_urls=[*frames, frames[0]]))
        stats = client._media().statistics
    assert (analysis.frame_count, stats.uploads) == (3, 2)
    assert store.puts(f"/{bucket}/uploads/") == 2


async def test_large_files_go_up_in_parts(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """A large local video and a large video result are sent in multipart uploads of
    PART_SIZE parts (never whole in one request), and arrive intact."""
    size = 2 * PART_SIZE + 1024
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(size))
    emu.configure(video_size=size)
    async with _client(emu, store, bucket) as client:
        job = await client.faceswap_plus(PlusSwap(source_url=video, target_url=video))
        result = await client.wait(job, timeout=60)
        saved = await client.download(result, f"s3://{bucket}/results/")
    parts = {path: n for (method, path), n in store.requests.items() if method == "PUT"}
    uploaded = f"/{bucket}/uploads/{hashlib.sha256(video.read_bytes()).hexdigest()}.mp4"
    # (more than one PUT of an object: its parts; s3fs sizes the last one itself)
    assert min(parts[uploaded], parts[f"/{bucket}/results/{result.id}.mp4"]) >= 2
    body = _s3(moto_url).get_object(Bucket=bucket, Key=f"results/{result.id}.mp4")["Body"].read()
    assert (len(body), hashlib.sha256(body).hexdigest()) == (saved.size, saved.sha256)


async def test_a_broken_transfer_never_leaves_an_object(
    emu: Emulator, store: StoreProxy, bucket: str, moto_url: str, tmp_path: Path
) -> None:
    """A result transfer cut in the middle aborts its multipart upload: a retry stores the
    intact file, and when every attempt breaks no object (and no open upload) is left."""
    size = 2 * PART_SIZE + 1024
    emu.configure(video_size=size)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"v" * 1000)
    s3 = _s3(moto_url)
    async with _client(emu, store, bucket) as client:
        job = await client.faceswap_plus(PlusSwap(source_url=video, target_url=video))
        result = await client.wait(job, timeout=60)
        emu.faults.inject("result_file", "drop_after", times=1)
        saved = await client.download(result, f"s3://{bucket}/ok/")
        emu.faults.inject("result_file", "drop_after", times=4)
        with pytest.raises(DownloadError):
            await client.download(result, f"s3://{bucket}/broken/")
    body = s3.get_object(Bucket=bucket, Key=f"ok/{result.id}.mp4")["Body"].read()
    assert (len(body), hashlib.sha256(body).hexdigest()) == (size, saved.sha256)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="broken/")["KeyCount"] == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_storage_secrets_are_masked(tmp_path: Path) -> None:
    """Secret storage options (secret, token, nested ones) are masked in every text the SDK
    makes, as API keys are."""
    from akool_async._redact import redact

    secret, token = "s3-secret-" + uuid.uuid4().hex, "s3-token-" + uuid.uuid4().hex
    client = AsyncClient(
        api_key="k" * 32,
        upload_to="s3://bucket/uploads/",
        storage_options={"key": "id", "secret": secret, "client_kwargs": {"session_token": token}},
    )
    text = redact(f"failed with {secret} and {token}")
    assert (secret in text, token in text) == (False, False)
    del client


def test_emulator_process_takes_fetch_inputs() -> None:
    """The emulator's command line turns fetch_inputs on with --fetch-inputs (off by default)."""
    from akool_async.testing._main import build_parser, config_from_args

    default = config_from_args(build_parser().parse_args([]))
    fetching = config_from_args(build_parser().parse_args(["--fetch-inputs"]))
    assert (default.fetch_inputs, fetching.fetch_inputs) == (False, True)


async def test_each_journal_of_a_client_records_its_own_inputs(
    emu: Emulator, store: StoreProxy, bucket: str, tmp_path: Path
) -> None:
    """Two batches of one client with two journals: each journal records the inputs it used
    (one upload in all)."""
    face = _files(tmp_path, 1, "face")[0]
    async with _client(emu, store, bucket) as client:
        for name in ("a.db", "b.db"):
            requests = [PlusSwap(source_url=face, target_url=face, model_style="beautify")]
            async with client.swap_many(requests, journal=tmp_path / name) as batch:
                assert [o.error async for o in batch] == [None]
    rows = []
    for name in ("a.db", "b.db"):
        with sqlite3.connect(tmp_path / name) as conn:
            rows.append(conn.execute("SELECT ref, object FROM media").fetchall())
        conn.close()
    assert rows[0] == rows[1]
    assert [ref for ref, _ in rows[0]] == [face.as_uri()]
    assert store.puts(f"/{bucket}/uploads/") == 1

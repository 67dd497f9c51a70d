"""analyze_frames through the clients (async and blocking) against the emulator, and the
multi-face video swap it enables: analyze, map, swap.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from akool_async import (
    AnalyzeFrames,
    AsyncClient,
    AuthenticationError,
    Client,
    DetectionError,
    FaceInfo,
    FrameAnalysis,
    SwapStatus,
    ValidationError,
    map_faces,
)
from akool_async.testing import DEFAULT_API_KEY, Emulator, EmulatorConfig, EmulatorThread
from tests._support import FAST_POLL, FAST_RETRY, QUICK_JOBS

pytestmark = pytest.mark.anyio

VIDEO = "https://cdn.example/clip-7/clip.mp4"
STILLS = [
    "https://cdn.example/clip-7/f000-faces-2.jpg",
    "https://cdn.example/clip-7/f025-faces-1.jpg",
    "https://cdn.example/clip-7/f050-faces-2.jpg",
]
NEW_FACES = ["https://cdn.example/new-a.jpg", "https://cdn.example/new-b.jpg"]


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms (images) and 50-150 ms (videos)."""
    return QUICK_JOBS


@pytest.fixture
def blocking(runner: EmulatorThread) -> Iterator[Client]:
    """An open blocking client of the emulator thread."""
    with Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url, retry=FAST_RETRY) as client:
        client.poll_config = FAST_POLL
        yield client


async def test_analyze_frames_returns_typed_persons(client: AsyncClient, emu: Emulator) -> None:
    """Keyword and request-object calls give the same FrameAnalysis of merged persons."""
    by_keywords = await client.analyze_frames(frame_urls=STILLS, timestamps=[0, 1, 2])
    by_request = await client.analyze_frames(AnalyzeFrames(frame_urls=STILLS))
    persons = by_keywords.persons
    expected = (
        FrameAnalysis,
        by_keywords,
        3,
        ["person_0", "person_1"],
        [(0, 1, 2), (0, 2)],
        [(0.0, 2.0), (0.0, 2.0)],
        2,
    )
    assert expected == (
        type(by_request),
        by_request,
        by_keywords.frame_count,
        [p.person_id for p in persons],
        [p.frames for p in persons],
        [(p.first_seen, p.last_seen) for p in persons],
        emu.stats.requests["analyze_frames"],
    )


async def test_analyze_map_swap(client: AsyncClient, emu: Emulator) -> None:
    """A multi-face video swap is three calls: the emulator receives one pair per person."""
    client.poll_config = FAST_POLL
    analysis = await client.analyze_frames(frame_urls=STILLS)
    mapping = map_faces(analysis, NEW_FACES)
    job = await client.faceswap_plus(
        source_url=NEW_FACES[0], target_url=VIDEO, face_mapping=mapping
    )
    result = await client.wait(job, timeout=30)
    sent = emu.jobs[job.id].request["face_mapping"]
    expected = (
        SwapStatus.SUCCESS,
        [{"face_url": url} for url in NEW_FACES],
        [{"face_url": p.face_url} for p in analysis.persons],
        False,
    )
    assert expected == (
        result.status,
        [pair["source_face_info"] for pair in sent],
        [pair["target_face_info"] for pair in sent],
        emu.jobs[job.id].request["single_face_mode"],
    )


async def test_detect_faces_crops_map_too(client: AsyncClient, emu: Emulator) -> None:
    """detect_faces(return_face_url=True) on one image maps its faces the same way."""
    group = "https://cdn.example/team-faces-2.jpg"
    found = await client.detect_faces(url=group, return_face_url=True)
    job = await client.faceswap_plus(
        source_url=NEW_FACES[0],
        target_url=group,
        face_mapping=map_faces(found, {1: NEW_FACES[1]}),
    )
    [pair] = emu.jobs[job.id].request["face_mapping"]
    expected = {
        "source_face_info": {"face_url": NEW_FACES[1]},
        "target_face_info": {"face_url": found.faces[1].face_url},
    }
    assert expected == pair


async def test_bad_input_is_refused_before_sending(client: AsyncClient, emu: Emulator) -> None:
    """A ValidationError is raised and nothing reaches the server."""
    with pytest.raises(ValidationError) as info:
        await client.analyze_frames(frame_urls=STILLS, timestamps=[0.0])
    expected = ("timestamps", 0)
    assert expected == (info.value.field, emu.stats.requests["analyze_frames"])


async def test_server_400_is_a_detection_error(client: AsyncClient, emu: Emulator) -> None:
    """A 400 error body is a DetectionError with the status and text, not retried."""
    emu.configure(analyze_max_frames=2)
    with pytest.raises(DetectionError) as info:
        await client.analyze_frames(frame_urls=STILLS)
    expected = (400, None, "At most 2 frames per request, got 3", 1)
    assert expected == (
        info.value.status,
        info.value.code,
        info.value.message,
        emu.stats.requests["analyze_frames"],
    )


async def test_server_500_is_a_detection_error(client: AsyncClient, emu: Emulator) -> None:
    """A 500 error body (processing failed) is a DetectionError, not retried."""
    with pytest.raises(DetectionError) as info:
        await client.analyze_frames(frame_urls=["https://cdn.example/fail.jpg"])
    expected = (500, "Failed to process frames", 1)
    assert expected == (
        info.value.status,
        info.value.message,
        emu.stats.requests["analyze_frames"],
    )


async def test_transient_failures_are_retried(client: AsyncClient, emu: Emulator) -> None:
    """An HTTP 503 and an HTML 500 are retried (a read), then the answer arrives."""
    emu.faults.inject("analyze_frames", "http_503")
    emu.faults.inject("analyze_frames", "http_500")
    analysis = await client.analyze_frames(frame_urls=STILLS[:1])
    expected = (2, 3)
    assert expected == (len(analysis.persons), emu.stats.requests["analyze_frames"])


@pytest.mark.parametrize("envelope", ["standard", "native"])
async def test_refused_key_is_an_authentication_error(emu: Emulator, envelope: str) -> None:
    """A wrong key is an AuthenticationError in either detector auth envelope, not retried."""
    emu.configure(detector_auth_errors=envelope)
    async with AsyncClient(api_key="wrong", base_url=emu.base_url, retry=FAST_RETRY) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.analyze_frames(frame_urls=STILLS)
    expected = {"standard": (1101, 200), "native": (None, 401)}[envelope]
    assert (expected, 1) == (
        (info.value.code, info.value.status),
        emu.stats.requests["analyze_frames"],
    )


async def test_works_with_a_token_from_get_token(emu: Emulator) -> None:
    """In client-id mode the call carries the bearer token like every other endpoint."""
    async with AsyncClient(
        client_id=emu.client_id, client_secret=emu.client_secret, base_url=emu.base_url
    ) as client:
        analysis = await client.analyze_frames(frame_urls=STILLS[:1])
    expected = (2, 1)
    assert expected == (len(analysis.persons), emu.stats.requests["get_token"])


def test_blocking_client(blocking: Client, runner: EmulatorThread) -> None:
    """The blocking twin returns the same FrameAnalysis and raises the same errors."""
    analysis = blocking.analyze_frames(frame_urls=STILLS)
    mapping = map_faces(analysis, {"person_1": FaceInfo(face_url=NEW_FACES[1])})
    job = blocking.faceswap_plus(source_url=NEW_FACES[1], target_url=VIDEO, face_mapping=mapping)
    result = blocking.wait(job, timeout=30)
    with pytest.raises(DetectionError) as info:
        blocking.analyze_frames(frame_urls=["https://cdn.example/fail.jpg"])
    expected = (["person_0", "person_1"], SwapStatus.SUCCESS, 500)
    assert expected == (
        [p.person_id for p in analysis.persons],
        result.status,
        info.value.status,
    )

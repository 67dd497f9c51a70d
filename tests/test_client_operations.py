"""Every AsyncClient operation and error mapping, through aiohttp against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from akool_async import (
    AsyncClient,
    DetectFaces,
    DetectionError,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    InsufficientCreditError,
    LegacyDetect,
    MediaType,
    ParameterError,
    PlusSwap,
    ProSwap,
    RateLimitError,
    RetryPolicy,
    SwapKind,
    SwapStatus,
    TooManyFacesError,
    ValidationError,
    VideoSwap,
)
from akool_async.testing import Emulator, EmulatorConfig
from tests._support import FAST_RETRY

pytestmark = pytest.mark.anyio

SRC = "https://example.com/source.jpg"
OPTS = "1,2:3,4:5,6:7,8"
UNKNOWN = "0123456789abcdef01234567"


def faces(n: int = 1) -> list[FaceImage]:
    return [FaceImage(path=f"https://example.com/face-{i}.jpg", opts=OPTS) for i in range(n)]


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """A manual clock and fixed job timings: images take 1 s, videos 5 s, no queueing."""
    return EmulatorConfig(
        clock="manual", image_seconds=(1, 1), video_seconds=(5, 5), queue_seconds=(0, 0)
    )


# --- submits ---------------------------------------------------------------------------------


async def test_faceswap_plus_image(client: AsyncClient, emu: Emulator) -> None:
    """Plus on an image target creates an image job, with no url (V4 returns none)."""
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg")
    stored = emu.jobs[job.id]
    assert (SwapKind.PLUS, MediaType.IMAGE, None, stored.job_id, "image", True) == (
        job.kind,
        job.media,
        job.url,
        job.job_id,
        stored.kind,
        stored.request["single_face_mode"],
    )


async def test_faceswap_plus_video_with_request_object(client: AsyncClient, emu: Emulator) -> None:
    """Plus accepts its request object; an .mp4 target is a video job."""
    request = PlusSwap(
        source_url=SRC,
        target_url="https://example.com/clip.mp4",
        webhook_url="https://hooks.example.com/akool",
        model_style="beautify",
        face_enhance=True,
    )
    job = await client.faceswap_plus(request)
    stored = emu.jobs[job.id]
    assert (
        job.media,
        stored.kind,
        stored.webhook_url,
        stored.request["model_style"],
        stored.request["face_enhance"],
    ) == (MediaType.VIDEO, "video", "https://hooks.example.com/akool", "beautify", True)


async def test_faceswap_plus_multi_face(client: AsyncClient, emu: Emulator) -> None:
    """Plus with a face_mapping sends single_face_mode false and the mapping."""
    detection = await client.detect_faces(
        url="https://example.com/group-faces-2.jpg", return_face_url=True
    )
    mapping = [
        FaceMapping(
            source=FaceInfo(face_url=f"https://example.com/new-{i}.jpg"), target=face.to_face_info()
        )
        for i, face in enumerate(detection.faces)
    ]
    job = await client.faceswap_plus(
        source_url=SRC, target_url="https://example.com/group-faces-2.jpg", face_mapping=mapping
    )
    sent = emu.jobs[job.id].request
    assert (False, 2, detection.faces[1].face_url) == (
        sent["single_face_mode"],
        len(sent["face_mapping"]),
        sent["face_mapping"][1]["target_face_info"]["face_url"],
    )


async def test_faceswap_pro(client: AsyncClient, emu: Emulator) -> None:
    """Pro with two pairs (opts on every item) creates an image job."""
    job = await client.faceswap_pro(source=faces(2), target=faces(2), face_enhance=True)
    assert (
        job.kind,
        job.media,
        emu.jobs[job.id].endpoint,
        emu.jobs[job.id].request["face_enhance"],
    ) == (SwapKind.PRO, MediaType.IMAGE, "faceswap_pro", True)


async def test_faceswap_image(client: AsyncClient, emu: Emulator) -> None:
    """V3 image returns the predicted url, which get_results reports after success."""
    job = await client.faceswap_image(
        source=faces(), target=faces(), modify_image="https://example.com/m.jpg", face_enhance=True
    )
    await emu.advance(5)
    [result] = await client.get_results([job.id])
    assert (SwapKind.IMAGE, SwapStatus.SUCCESS, job.url, 1) == (
        job.kind,
        result.status,
        result.url,
        emu.jobs[job.id].request["face_enhance"],
    )


async def test_faceswap_video(client: AsyncClient, emu: Emulator) -> None:
    """V3 video is a video job with face_enhance sent as 0."""
    job = await client.faceswap_video(
        VideoSwap(source=faces(), target=faces(), modify_video="https://example.com/v.mp4")
    )
    assert (
        job.kind,
        job.media,
        emu.jobs[job.id].request["face_enhance"],
        emu.jobs[job.id].kind,
    ) == (SwapKind.VIDEO, MediaType.VIDEO, 0, "video")


async def test_v4_url_when_the_server_sends_one(client: AsyncClient, emu: Emulator) -> None:
    """When Plus/Pro do return a url at submit, SwapJob.url carries it."""
    emu.configure(v4_returns_url=True)
    job = await client.faceswap_pro(source=faces(), target=faces())
    assert emu.result_url(emu.jobs[job.id]) == job.url


# --- results, credit -------------------------------------------------------------------------


async def test_get_results_statuses(client: AsyncClient, emu: Emulator) -> None:
    """get_results follows a job from queued through success; unknown ids are absent."""
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg")
    first = await client.get_results([job.id, UNKNOWN])
    await emu.advance(5)
    second = await client.get_results([job.id])
    assert ([job.id], [SwapStatus.PROCESSING], [SwapStatus.SUCCESS]) == (
        [r.id for r in first],
        [r.status for r in first],
        [r.status for r in second],
    )


async def test_get_results_failed_job(client: AsyncClient, emu: Emulator) -> None:
    """A job the server fails reports FAILED, a terminal status."""
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/fail.jpg")
    await emu.advance(5)
    [result] = await client.get_results([job.id])
    assert (result.status, result.status.is_terminal) == (SwapStatus.FAILED, True)


async def test_get_results_real_item_shape(client: AsyncClient, emu: Emulator) -> None:
    """The real logged item shape (five documented fields missing) decodes with Nones."""
    emu.configure(item_shape="observed")
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg")
    [result] = await client.get_results([job.id])
    assert (job.job_id, None, None, None, 1, True) == (
        result.job_id,
        result.user_id,
        result.faceswap_type,
        result.update_time,
        result.image,
        result.created_at is not None and result.created_at.tzinfo is not None,
    )


async def test_get_results_empty_url_before_success(client: AsyncClient, emu: Emulator) -> None:
    """An empty url before success is reported as None."""
    emu.configure(url_before_success="empty")
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg")
    [result] = await client.get_results([job.id])
    assert None is result.url


async def test_get_results_chunks_ids(emu: Emulator) -> None:
    """More ids than max_ids_per_request are split into several listbyids calls."""
    emu.configure(max_ids=2)
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, max_ids_per_request=2
    ) as client:
        jobs = [
            await client.faceswap_plus(source_url=SRC, target_url=f"https://example.com/t{i}.jpg")
            for i in range(5)
        ]
        results = await client.get_results([j.id for j in jobs] + [jobs[0].id])
    assert (sorted(j.id for j in jobs), 3) == (
        sorted(r.id for r in results),
        emu.stats.requests["list_results"],
    )


async def test_get_results_empty_list_sends_nothing(client: AsyncClient, emu: Emulator) -> None:
    """No ids means no request."""
    assert (await client.get_results([]), emu.stats.requests["list_results"]) == ([], 0)


async def test_get_results_validates_ids_before_sending(client: AsyncClient, emu: Emulator) -> None:
    """A malformed id is a ValidationError and nothing is sent."""
    with pytest.raises(ValidationError) as info:
        await client.get_results([UNKNOWN, "not-an-id"])
    assert (info.value.field, emu.stats.requests["list_results"]) == ("ids[1]", 0)


async def test_delete_results(client: AsyncClient, emu: Emulator) -> None:
    """delete_results removes jobs: get_results no longer lists them."""
    job = await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.jpg")
    await client.delete_results([job.id])
    assert (
        await client.get_results([job.id]),
        emu.jobs[job.id].deleted_at is not None,
    ) == ([], True)


async def test_delete_results_chunks_ids(emu: Emulator) -> None:
    """delete_results sends max_ids_per_request ids per call."""
    async with AsyncClient(
        api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, max_ids_per_request=2
    ) as client:
        await client.delete_results([f"{i:024x}" for i in range(5)])
    assert emu.stats.requests["delete_results"] == 3


async def test_get_credit(client: AsyncClient, emu: Emulator) -> None:
    """get_credit returns the balance as a float, charged at submit."""
    before = await client.get_credit()
    await client.faceswap_plus(source_url=SRC, target_url="https://example.com/t.mp4")
    after = await client.get_credit()
    assert (10000.0, 9995.0, float) == (before, after, type(after))


# --- detectors -------------------------------------------------------------------------------


async def test_detect_faces_url(client: AsyncClient) -> None:
    """detect_faces by URL returns the faces of frame 0 with crops on request."""
    detection = await client.detect_faces(
        url="https://example.com/p-faces-3.jpg", return_face_url=True
    )
    assert (
        list(detection.frames),
        len(detection.faces),
        all(f.face_url for f in detection.faces),
        all(f.crop_landmarks for f in detection.faces),
    ) == ([0], 3, True, True)


async def test_detect_faces_video_frames(client: AsyncClient) -> None:
    """A video gives num_frames frames keyed by int, with frame times."""
    detection = await client.detect_faces(
        DetectFaces(url="https://example.com/v.mp4", num_frames=4)
    )
    assert (
        len(detection.frames),
        all(frame.frame_time is not None for frame in detection.frames.values()),
    ) == (4, True)


async def test_detect_faces_img_bytes(client: AsyncClient) -> None:
    """detect_faces sends image bytes as base64."""
    detection = await client.detect_faces(img=b"\xff\xd8\xff\xe0 jpeg bytes")
    assert len(detection.faces) == 1


async def test_detect_faces_img_path(client: AsyncClient, tmp_path: Path) -> None:
    """detect_faces reads an image file given by path."""
    image = tmp_path / "face.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    detection = await client.detect_faces(img=image, single_face=True)
    assert len(detection.faces) == 1


async def test_detect_faces_no_face_error(client: AsyncClient, emu: Emulator) -> None:
    """ "No faces detected" (HTTP 400) is a DetectionError, not retried."""
    with pytest.raises(DetectionError) as info:
        await client.detect_faces(url="https://example.com/faces-0.jpg")
    assert (info.value.code, info.value.status, emu.stats.requests["detect_faces"]) == (1, 400, 1)


async def test_detect_faces_no_face_empty(client: AsyncClient, emu: Emulator) -> None:
    """A no-face success with empty arrays is an empty result."""
    emu.configure(detector_no_face="empty")
    detection = await client.detect_faces(url="https://example.com/faces-0.jpg")
    assert (detection.faces, list(detection.frames)) == ((), [0])


async def test_detect_faces_processing_error_500(client: AsyncClient, emu: Emulator) -> None:
    """A detector 500 with its error envelope is a DetectionError, not retried."""
    with pytest.raises(DetectionError) as info:
        await client.detect_faces(url="https://example.com/fail.jpg")
    assert (info.value.status, emu.stats.requests["detect_faces"]) == (500, 1)


async def test_detect_faces_legacy_url(client: AsyncClient) -> None:
    """The legacy detector returns opts strings usable as FaceImage.opts."""
    detection = await client.detect_faces_legacy(
        image_url="https://example.com/faces-2.jpg", single_face=False
    )
    face = detection.face_image(1, image_url="https://example.com/faces-2.jpg")
    assert (2, 6, detection.opts[1]) == (
        len(detection.opts),
        len(detection.landmarks[0]),
        face.opts,
    )


async def test_detect_faces_legacy_img(client: AsyncClient) -> None:
    """The legacy detector answers a base64 upload with an origin_url."""
    detection = await client.detect_faces_legacy(LegacyDetect(img=b"\x89PNG\r\n\x1a\n fake"))
    assert ((detection.origin_url or "").startswith("http"), len(detection.opts)) == (True, 1)


async def test_detect_faces_legacy_error(client: AsyncClient) -> None:
    """The legacy detector's error_code on HTTP 200 is a DetectionError."""
    with pytest.raises(DetectionError) as info:
        await client.detect_faces_legacy(image_url="https://example.com/fail.jpg")
    assert (info.value.code, info.value.status) == (1, 200)


# --- business errors -------------------------------------------------------------------------


async def test_parameter_error(client: AsyncClient) -> None:
    """A request the server rejects (multi-face mode without mapping) is a ParameterError."""
    with pytest.raises(ParameterError) as info:
        await client.faceswap_plus(
            source_url=SRC, target_url="https://example.com/t.jpg", single_face_mode=False
        )
    assert (info.value.code, info.value.status) == (1003, 200)


async def test_parameter_error_with_http_status(client: AsyncClient, emu: Emulator) -> None:
    """The code decides the error class whatever HTTP status the server uses."""
    emu.configure(error_status={1003: 400}, error_data="null")
    with pytest.raises(ParameterError) as info:
        await client.faceswap_plus(
            source_url=SRC, target_url="https://example.com/t.jpg", single_face_mode=False
        )
    assert info.value.status == 400


async def test_insufficient_credit(client: AsyncClient, emu: Emulator) -> None:
    """1006 is an InsufficientCreditError and creates no job."""
    emu.set_credit(0)
    with pytest.raises(InsufficientCreditError) as info:
        await client.faceswap_pro(source=faces(), target=faces())
    assert (info.value.code, dict(emu.jobs)) == (1006, {})


async def test_too_many_faces(client: AsyncClient) -> None:
    """More than 8 faces in the target media is a TooManyFacesError (1007)."""
    with pytest.raises(TooManyFacesError) as info:
        await client.faceswap_image(
            source=faces(), target=faces(), modify_image="https://example.com/crowd-faces-9.jpg"
        )
    assert info.value.code == 1007


async def test_rate_limited_without_retries(client: AsyncClient, emu: Emulator) -> None:
    """With retries off, 1005 surfaces as a RateLimitError."""
    emu.faults.inject("quota", "rate_limited")
    with pytest.raises(RateLimitError) as info:
        await client.with_options(retry=RetryPolicy.none()).get_credit()
    assert (info.value.code, emu.stats.requests["quota"]) == (1005, 1)


async def test_validation_error_sends_nothing(client: AsyncClient, emu: Emulator) -> None:
    """Invalid keyword arguments raise ValidationError before any request."""
    with pytest.raises(ValidationError) as info:
        await client.faceswap_pro(source=faces(2), target=[FaceImage(path=SRC)])
    assert (info.value.field, emu.stats.requests["faceswap_pro"]) == ("target[0].opts", 0)


async def test_wrong_request_object_is_a_type_error(client: AsyncClient) -> None:
    """Passing another operation's request object is a TypeError."""
    with pytest.raises(TypeError, match="ProSwap"):
        await client.faceswap_pro(ImageSwap(source=faces(), target=faces(), modify_image=SRC))  # type: ignore[call-overload]


async def test_request_object_and_keywords_together(client: AsyncClient) -> None:
    """A request object cannot be combined with keyword arguments."""
    request = ProSwap(source=faces(), target=faces())
    with pytest.raises(TypeError, match="not both"):
        await client.faceswap_pro(request, face_enhance=True)  # type: ignore[call-overload]

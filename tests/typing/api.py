"""Type-checked by mypy (``files`` in pyproject), never run: the public API's static types.

Each ``assert_type`` shows what a type checker infers for a call, so a change that loses the
per-operation signatures (the ``Operation`` descriptors) fails ``mypy --strict``.
"""

from __future__ import annotations

from typing import Any, assert_type

import attrs

from akool_async import (
    AnalyzeFrames,
    AsyncClient,
    ClientStatistics,
    DetectedFace,
    DetectFaces,
    FaceDetection,
    FaceImage,
    FaceInfo,
    FaceMapping,
    FrameAnalysis,
    LegacyFaceDetection,
    MediaType,
    Person,
    PlusSwap,
    RateLimit,
    RetryPolicy,
    SwapJob,
    SwapKind,
    SwapResult,
    SwapStatus,
    Timeout,
    map_faces,
)
from akool_async._endpoints import (
    FACESWAP_PLUS,
    AsyncOperation,
    BlockingBinder,
    BlockingMirror,
    BlockingOperation,
    Endpoint,
    Operation,
)


async def operations(client: AsyncClient) -> None:
    face = FaceImage(path="https://example.com/face.jpg", opts="1,2:3,4:5,6:7,8")

    assert_type(
        await client.faceswap_plus(source_url="https://a/s.jpg", target_url="https://a/t.jpg"),
        SwapJob,
    )
    plus = PlusSwap(source_url="https://a/s.jpg", target_url="https://a/t.mp4")
    assert_type(await client.faceswap_plus(plus), SwapJob)
    assert_type(await client.faceswap_pro(source=[face], target=[face]), SwapJob)
    assert_type(
        await client.faceswap_image(source=[face], target=[face], modify_image="https://a/m.jpg"),
        SwapJob,
    )
    assert_type(
        await client.faceswap_video(source=[face], target=[face], modify_video="https://a/v.mp4"),
        SwapJob,
    )
    assert_type(await client.detect_faces(url="https://a/t.jpg"), FaceDetection)
    assert_type(await client.detect_faces(img=b"\xff\xd8"), FaceDetection)
    assert_type(await client.detect_faces(DetectFaces(img="face.jpg")), FaceDetection)
    assert_type(await client.detect_faces_legacy(image_url="https://a/t.jpg"), LegacyFaceDetection)
    assert_type(await client.analyze_frames(frame_urls=["https://a/f0.jpg"]), FrameAnalysis)
    assert_type(
        await client.analyze_frames(
            frame_urls=["https://a/f0.jpg", "https://a/f1.jpg"],
            timestamps=[0, 1.5],
            expand_ratio=0.3,
        ),
        FrameAnalysis,
    )
    assert_type(
        await client.analyze_frames(AnalyzeFrames(frame_urls=["https://a/f.jpg"])), FrameAnalysis
    )
    assert_type(await client.get_results(["6593c94c0ef703e8c055e3c8"]), list[SwapResult])
    assert_type(await client.delete_results(["6593c94c0ef703e8c055e3c8"]), None)
    assert_type(await client.get_credit(), float)
    assert_type(client.statistics(), ClientStatistics)
    assert_type(client.statistics().rate_limit.rate, float | None)
    assert_type(client.rate_limit, RateLimit)
    AsyncClient(rate_limit=5)
    AsyncClient(rate_limit=RateLimit(rate=5, burst=2))
    AsyncClient(rate_limit="5")  # type: ignore[arg-type]

    patient = client.with_options(retry=RetryPolicy(max_attempts=8), timeout=Timeout(read=5))
    assert_type(patient, AsyncClient)
    assert_type(attrs.evolve(patient.retry, jitter=False), RetryPolicy)

    # The keyword arguments are checked against the request class's constructor.
    await client.faceswap_plus(source_url="https://a/s.jpg")  # type: ignore[call-overload]
    await client.faceswap_plus(source_url=1, target_url="https://a/t.jpg")  # type: ignore[call-overload]
    await client.faceswap_pro(face)  # type: ignore[call-overload]
    await client.analyze_frames(urls=["https://a/f.jpg"])  # type: ignore[call-overload]


def models(
    job: SwapJob, result: SwapResult, detection: FaceDetection, analysis: FrameAnalysis
) -> None:
    assert_type(job.kind, SwapKind)
    assert_type(job.media, MediaType)
    assert_type(job.url, str | None)
    assert_type(result.status, SwapStatus)
    assert_type(result.status.is_terminal, bool)
    assert_type(detection.faces[0].to_face_info(), FaceInfo)
    assert_type(detection.faces[0].to_face_image("https://a/t.jpg"), FaceImage)
    assert_type(detection.frames[0].faces, tuple[DetectedFace, ...])  # frames keyed by int
    FaceMapping(source=FaceInfo(face_url="https://a/s.jpg"), target=FaceInfo(bbox=(1, 2, 3, 4)))
    assert_type(analysis.persons, tuple[Person, ...])
    assert_type(analysis.persons[0].bbox, tuple[float, float, float, float] | None)
    assert_type(analysis.persons[0].appearances[0].frame_index, int)
    assert_type(map_faces(analysis, ["https://a/new.jpg", None]), tuple[FaceMapping, ...])
    assert_type(map_faces(analysis, {"person_0": "https://a/new.jpg"}), tuple[FaceMapping, ...])
    assert_type(map_faces(detection.faces, {0: "https://a/new.jpg"}), tuple[FaceMapping, ...])


def descriptors() -> None:
    assert_type(FACESWAP_PLUS, Endpoint[PlusSwap, SwapJob])
    operation: Operation[..., PlusSwap, SwapJob] = AsyncClient.faceswap_plus
    assert_type(operation.endpoint, Endpoint[PlusSwap, SwapJob])


class _Blocking(BlockingBinder):
    """How the blocking ``Client`` derives its methods from the same definitions."""

    faceswap_plus = AsyncClient.faceswap_plus
    get_results = BlockingMirror(AsyncClient.get_results)
    get_credit = BlockingMirror(AsyncClient.get_credit)

    def _call_blocking(self, endpoint: Endpoint[Any, Any], request: Any) -> Any:
        raise NotImplementedError

    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def blocking(client: _Blocking, aclient: AsyncClient) -> None:
    assert_type(
        client.faceswap_plus(source_url="https://a/s.jpg", target_url="https://a/t.jpg"), SwapJob
    )
    assert_type(client.get_results(["6593c94c0ef703e8c055e3c8"]), list[SwapResult])
    assert_type(client.get_credit(), float)
    client.get_results(1)  # type: ignore[arg-type]
    _: AsyncOperation[..., PlusSwap, SwapJob] = aclient.faceswap_plus
    __: BlockingOperation[..., PlusSwap, SwapJob] = client.faceswap_plus

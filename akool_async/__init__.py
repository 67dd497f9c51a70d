"""akool_async: async-first SDK for the AKOOL Face Swap API.

::

    from akool_async import AsyncClient

    async with AsyncClient(api_key="...") as client:
        job = await client.faceswap_plus(source_url="https://...", target_url="https://...")
        [result] = await client.get_results([job.id])
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._client import AsyncClient
from ._config import Limits, Timeout
from ._errors import (
    AccountBannedError,
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    BatchDeadlineError,
    ClientStateError,
    DetectionError,
    DownloadError,
    InsufficientCreditError,
    JobError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    JournalError,
    MediaError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StorageError,
    TooManyFacesError,
    TransportError,
    ValidationError,
    WebhookVerificationError,
    error_for_code,
)
from ._frames import AnalyzeFrames, Appearance, FrameAnalysis, Person, map_faces
from ._jobs._events import BatchEvent, BatchStatistics, Outcome
from ._jobs._journal_pg import BatchStatus, WorkerStatus, read_batch_status
from ._jobs._orchestrator import Batch
from ._jobs._poll_config import PollConfig
from ._jobs._poller import PollerStatistics
from ._jobs._result_store import SavedFile
from ._models import (
    DetectedFace,
    DetectedFrame,
    DetectFaces,
    FaceDetection,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    LegacyDetect,
    LegacyFaceDetection,
    MediaType,
    ModelStyle,
    PlusSwap,
    ProSwap,
    SwapJob,
    SwapKind,
    SwapResult,
    SwapStatus,
    VideoSwap,
    bbox_from_region,
)
from ._public import present_as_public as _present_as_public
from ._ratelimit import RateLimit, RateLimitStatistics
from ._receiver import WebhookASGIApp, WebhookReceiver, WebhookReceiverStatistics
from ._report import write_report_html
from ._retry import RetryPolicy
from ._speedups import tune_gc
from ._stats import ClientStatistics
from ._sync import BlockingBatch, Client
from ._webhooks import WebhookEvent, WebhookVerifier

try:
    __version__: str = _version("akool-async")
    """The installed distribution's version (``importlib.metadata``)."""
except _PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "APIError",
    "AccountBannedError",
    "AkoolError",
    "AmbiguousSubmitError",
    "AnalyzeFrames",
    "Appearance",
    "AsyncClient",
    "AuthenticationError",
    "Batch",
    "BatchDeadlineError",
    "BatchEvent",
    "BatchStatistics",
    "BatchStatus",
    "BlockingBatch",
    "Client",
    "ClientStateError",
    "ClientStatistics",
    "DetectFaces",
    "DetectedFace",
    "DetectedFrame",
    "DetectionError",
    "DownloadError",
    "FaceDetection",
    "FaceImage",
    "FaceInfo",
    "FaceMapping",
    "FrameAnalysis",
    "ImageSwap",
    "InsufficientCreditError",
    "JobError",
    "JobFailedError",
    "JobNotFoundError",
    "JobTimeoutError",
    "JournalError",
    "LegacyDetect",
    "LegacyFaceDetection",
    "Limits",
    "MediaError",
    "MediaType",
    "ModelStyle",
    "NotFoundError",
    "Outcome",
    "ParameterError",
    "PermissionDeniedError",
    "Person",
    "PlusSwap",
    "PollConfig",
    "PollerStatistics",
    "ProSwap",
    "RateLimit",
    "RateLimitError",
    "RateLimitStatistics",
    "RetryPolicy",
    "SavedFile",
    "ServerError",
    "StorageError",
    "SwapJob",
    "SwapKind",
    "SwapResult",
    "SwapStatus",
    "Timeout",
    "TooManyFacesError",
    "TransportError",
    "ValidationError",
    "VideoSwap",
    "WebhookASGIApp",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookReceiverStatistics",
    "WebhookVerificationError",
    "WebhookVerifier",
    "WorkerStatus",
    "bbox_from_region",
    "error_for_code",
    "map_faces",
    "read_batch_status",
    "tune_gc",
    "write_report_html",
]


_present_as_public(globals())

"""The emulator's configuration: one frozen, keyword-only attrs class.

Every option that changes what goes over the wire for a point the contract marks UNCONFIRMED
(section 8.5) is an option here, defaulting to the contract's suggestion (section 8.6).
Change a running emulator with ``emu.configure(**changes)`` (which uses ``attrs.evolve``).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "ENDPOINTS",
    "EmulatorConfig",
    "FAULT_KINDS",
    "WEBHOOK_FAULT_KINDS",
]

#: The emulator's default ``clientId`` (24 characters, like real ones).
DEFAULT_CLIENT_ID = "AKEMUclientId0123456789="
#: The emulator's default ``clientSecret`` (32 bytes, so webhooks use AES-256).
DEFAULT_CLIENT_SECRET = "akool-emulator-secret-0123456789"
#: The default API key: the same value as the client secret, as the docs say (section 2.1).
DEFAULT_API_KEY = DEFAULT_CLIENT_SECRET

#: Endpoint names used by request counters, rate limits and fault injection.
ENDPOINTS = frozenset(
    {
        "get_token",
        "faceswap_plus",
        "faceswap_pro",
        "faceswap_image",
        "faceswap_video",
        "list_results",
        "delete_results",
        "quota",
        "detect_faces",
        "analyze_frames",
        "detect_legacy",
        "result_file",
    }
)

#: Fault kinds for HTTP endpoints (see ``FaultInjector``).
FAULT_KINDS = frozenset(
    {
        "http_500",
        "http_502",
        "http_503",
        "http_429",
        "rate_limited",
        "drop_before",
        "drop_after",
        "slow",
        "malformed_json",
    }
)
#: Fault kinds for the ``"webhook"`` pseudo-endpoint.
WEBHOOK_FAULT_KINDS = frozenset({"duplicate", "late", "lost"})


def _range(value: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 <= low <= high:
        raise ValueError(f"expected 0 <= min <= max, got {value!r}")
    return (low, high)


def _frozen_map(value: Mapping[int, int]) -> Mapping[int, int]:
    return types.MappingProxyType(dict(value))


def _frozen_str_map(value: Mapping[str, float]) -> Mapping[str, float]:
    return types.MappingProxyType(dict(value))


def _frozen_rates(value: Mapping[str, Mapping[str, float]]) -> Mapping[str, Mapping[str, float]]:
    for endpoint, kinds in value.items():
        known = WEBHOOK_FAULT_KINDS if endpoint == "webhook" else FAULT_KINDS
        if endpoint not in ENDPOINTS | {"*", "webhook"}:
            raise ValueError(f"unknown endpoint {endpoint!r} in fault_rates")
        for kind, rate in kinds.items():
            if kind not in known:
                raise ValueError(f"unknown fault kind {kind!r} for {endpoint!r}")
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate must be within [0, 1], got {rate!r}")
    return types.MappingProxyType({k: types.MappingProxyType(dict(v)) for k, v in value.items()})


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """How the emulated AKOOL server behaves. Every field has a documented default."""

    # --- clock and job timing -------------------------------------------------------------
    clock: Literal["real", "manual"] = "real"
    """``"real"``: emulator time follows the monotonic clock (times ``clock_speed``).
    ``"manual"``: time moves only through ``await emu.advance(seconds)``."""
    clock_speed: float = 1.0
    """Real clock only: emulator seconds per real second (e.g. 60 makes a minute pass per s)."""
    start_time: float | None = None
    """Epoch seconds at which the emulator clock starts; None means the current wall time."""
    queue_seconds: tuple[float, float] = attrs.field(default=(0.0, 0.5), converter=_range)
    """Uniform (min, max) time a job stays in status 1 before processing starts."""
    image_seconds: tuple[float, float] = attrs.field(default=(1.0, 3.0), converter=_range)
    """Uniform (min, max) processing time (status 2) of image jobs."""
    video_seconds: tuple[float, float] = attrs.field(default=(5.0, 15.0), converter=_range)
    """Uniform (min, max) processing time (status 2) of video jobs."""
    latency_scale: float = 1.0
    """Multiplies every queue and processing time (0.01 makes jobs 100 times faster)."""
    concurrency: int | None = None
    """Processing slots; jobs wait in status 1 until one frees. None means unlimited."""
    failure_rate: float = 0.0
    """Probability that a job ends in status 4 (seeded RNG)."""
    fail_marker: str | None = "fail"
    """A job whose target media URL contains this substring ends in status 4; None disables."""
    seed: int = 0
    """Seed of every random choice (timings, ids, outcomes, faults, result order)."""
    video_duration: float = 10.0
    """``video_duration`` / ``deduction_duration`` reported for video jobs (seconds)."""

    # --- credits ----------------------------------------------------------------------------
    credit: float = 10_000
    """Initial credit balance (``quota/info``); restored by ``emu.reset()``."""
    credit_cost_image: float = 1
    """Credits charged at submit for an image job (UNCONFIRMED price)."""
    credit_cost_video: float = 5
    """Credits charged at submit for a video job (UNCONFIRMED price)."""

    # --- results ----------------------------------------------------------------------------
    result_ttl: float = 7 * 86_400.0
    """Seconds (emulator clock) after success during which the result file is served."""
    video_size: int = 2 * 1024 * 1024
    """Size in bytes of each result MP4 (padding in ``mdat``, streamed in chunks)."""
    missing_file_status: int = 404
    """HTTP status of a result file not ready, failed, deleted or expired (403 is CloudFront's)."""
    url_before_success: Literal["predicted", "empty"] = "predicted"
    """listbyids ``url`` before status 3: the predicted final URL (docs' example) or ``""``."""
    item_shape: Literal["documented", "observed"] = "documented"
    """listbyids item fields: the documented set plus ``job_id``, or the real logged item
    (``_id createdAt deduction_duration faceswap_status image job_id uid url video_duration``)."""
    result_order: Literal["shuffled", "request", "created"] = "shuffled"
    """Order of listbyids ``result`` items: seeded shuffle, ``_ids`` order, or creation order."""
    unknown_ids: Literal["omit", "error"] = "omit"
    """listbyids with ids that are well formed but unknown/deleted: left out, or 1003."""
    malformed_ids: Literal["omit", "error"] = "omit"
    """listbyids/delbyids ids that are not 24 hex digits: left out, or 1003."""
    max_ids: int | None = None
    """Maximum ids per listbyids/delbyids call (more gives 1003); None means unlimited."""
    v4_returns_url: bool = False
    """Whether Plus and Pro submits also return the predicted ``url`` (as V3 does)."""
    fetch_inputs: bool = False
    """GET every input media URL of a submit before accepting it, as AKOOL must; a job
    with an unreachable, refused or expired input (no HTTP 200) fails (status 4). Proves
    that presigned URLs really work. ``stats.input_fetches`` records each GET."""

    # --- wire shape of errors ---------------------------------------------------------------
    error_status: Mapping[int, int] = attrs.field(factory=dict, converter=_frozen_map)
    """HTTP status per business code (e.g. ``{1101: 401}``); unlisted codes use 200."""
    error_data: Literal["absent", "null", "empty"] = "absent"
    """Error bodies: no ``data`` key, ``"data": null`` or ``"data": {}``."""
    token_error_key: Literal["msg", "message"] = "msg"
    """Key of the error text in getToken error bodies."""
    face_enhance_types: Literal["strict", "coerce"] = "strict"
    """``face_enhance`` of the wrong JSON type (bool on V3, 0/1 on V4): 1003, or accepted."""
    plus_mapping_required: bool = True
    """Plus ``single_face_mode: false`` without ``face_mapping``: 1003 (True) or accepted."""
    detector_no_face: Literal["error", "empty"] = "error"
    """Detectors on media with no face: "No faces detected" error, or success with empty arrays.
    (Analyze Frames always answers success with no persons, as documented.)"""
    analyze_max_frames: int | None = None
    """Most ``frame_urls`` one Analyze Frames call takes (more is a 400); None means unlimited.
    UNCONFIRMED: the docs give no limit."""
    detector_auth_errors: Literal["standard", "native"] = "standard"
    """Auth failures (1101, 1102, 1200) on the detector endpoints (``detect_faces``,
    ``analyze_frames``, ``detect_legacy``): the face-swap envelope ``{code, msg}`` as on every
    other endpoint (``"standard"``, status from ``error_status``), or each endpoint's own error
    envelope (``{error_code: 1, error_msg}``, ``{success: false, error}``) with HTTP 401 (403
    for 1200) (``"native"``). UNCONFIRMED: the docs do not say how the detectors refuse."""

    # --- authentication ---------------------------------------------------------------------
    accept_api_key_as_bearer: bool = False
    """Accept ``Authorization: Bearer <api key>`` (UNCONFIRMED; off by default)."""
    legacy_detect_requires_auth: bool = True
    """Whether ``POST /detect`` (legacy detector) needs auth like every other endpoint."""
    token_ttl: float = 3600 * 86_400.0
    """Lifetime of getToken tokens in emulator seconds (3600 days, as observed)."""
    banned: bool = False
    """Answer 1200 (account banned) to every authenticated request and to getToken."""

    # --- rate limiting ----------------------------------------------------------------------
    rate_limit: float | None = None
    """Account-wide requests per second (token bucket on the emulator clock) before 1005.
    Every endpoint but result files counts; a refused request takes no token."""
    rate_burst: int | None = None
    """Bucket size for every limit; None means ``max(1, ceil(rate))``."""
    endpoint_rate_limits: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_str_map)
    """Per-endpoint requests per second (endpoint names as in ``ENDPOINTS``); a request
    passes only if the account-wide bucket and its endpoint's both have a token."""
    endpoint_rate_bursts: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_str_map)
    """Per-endpoint bucket sizes, overriding ``rate_burst`` for those endpoints."""
    rate_limit_retry_after: bool = False
    """Send ``Retry-After`` (whole seconds until a token, at least 1) with the limiter's
    1005s. The real API is not known to send one."""

    # --- faults -----------------------------------------------------------------------------
    fault_rates: Mapping[str, Mapping[str, float]] = attrs.field(
        factory=dict, converter=_frozen_rates
    )
    """Random faults: ``{endpoint or "*" or "webhook": {kind: probability}}`` (seeded)."""
    slow_seconds: float = 2.0
    """Real seconds a ``"slow"`` fault delays the response."""

    # --- webhooks ---------------------------------------------------------------------------
    webhook_statuses: tuple[int, ...] = (3, 4)
    """Job statuses that trigger a callback (the docs list 2, 3 and 4)."""
    webhook_type: str = "faceswap"
    """The ``type`` string in the decrypted payload (UNCONFIRMED)."""
    webhook_nonce_as_number: bool = False
    """Send ``nonce`` as a JSON number instead of a numeric string."""
    webhook_include_job_id: bool = False
    """Add ``job_id`` to the decrypted payload (UNCONFIRMED extra field)."""
    webhook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    """Emulator seconds before each retry of a non-200 delivery; attempts = len + 1."""
    webhook_timeout: float = 5.0
    """Real seconds to wait for the receiver's answer."""
    webhook_late_seconds: float = 30.0
    """Extra emulator seconds a ``"late"`` webhook fault waits before delivering."""

    def __attrs_post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1 (or None)")
        if self.latency_scale < 0 or self.clock_speed <= 0:
            raise ValueError("latency_scale must be >= 0 and clock_speed > 0")
        if not 0 <= self.failure_rate <= 1:
            raise ValueError("failure_rate must be within [0, 1]")
        if self.video_size < 0:
            raise ValueError("video_size must be >= 0")
        if self.max_ids is not None and self.max_ids < 1:
            raise ValueError("max_ids must be at least 1 (or None)")
        if self.analyze_max_frames is not None and self.analyze_max_frames < 1:
            raise ValueError("analyze_max_frames must be at least 1 (or None)")
        if not set(self.webhook_statuses) <= {1, 2, 3, 4}:
            raise ValueError("webhook_statuses must be within 1..4")
        for name in ("endpoint_rate_limits", "endpoint_rate_bursts"):
            limits: Mapping[str, float] = getattr(self, name)
            unknown = set(limits) - ENDPOINTS
            if unknown:
                raise ValueError(f"unknown endpoint(s) in {name}: {sorted(unknown)}")
            if any(not value > 0 for value in limits.values()):
                raise ValueError(f"{name} must be positive")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be positive (or None)")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise ValueError("rate_burst must be at least 1 (or None)")

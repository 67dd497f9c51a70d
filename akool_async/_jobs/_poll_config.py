"""How the shared poller paces itself: ``PollConfig`` and the interval rule ``poll_interval``.

A job tracked for ``age`` seconds is polled next after ``age * (backoff - 1)`` seconds, so
polls fall at ages t, t*backoff, t*backoff**2, ...: frequent while a job is young and likely
to finish soon, rarer as it ages. The interval is clamped per media kind (videos take longer
than images) and, while webhooks are attached, never shorter than the safety-net interval.
"""

from __future__ import annotations

import attrs

from akool_async._errors import ValidationError
from akool_async._models import MediaType
from akool_async._validators import (
    finite_number_at_least,
    finite_positive_number,
    integer_at_least,
    number_at_least,
)

__all__ = ["PollConfig", "poll_interval"]


def _fraction(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValidationError(f"must be in [0, 1), got {value!r}", field=attribute.name)


@attrs.frozen(kw_only=True)
class PollConfig:
    """How the shared poller schedules listbyids calls; build variants with ``attrs.evolve``.

    Args:
        batch_size: Most ids per listbyids call (100 ids make a 2.6 KB URL); at most the
            client's ``max_ids_per_request``.
        image_first: Seconds before an image job's first poll; also its shortest interval.
        image_max: Longest interval between polls of an image job.
        video_first: Seconds before a video job's first poll; also its shortest interval.
        video_max: Longest interval between polls of a video job.
        backoff: A job of age ``a`` is polled next at age ``a * backoff`` (within the
            first/max bounds): 1.5 means polls at ages t, 1.5t, 2.25t, ...
        jitter: Each interval is scaled by a random factor in ``[1 - jitter, 1 + jitter]``,
            so jobs submitted together spread out.
        fill: Fill a request's spare room with the next-most-due ids.
        max_concurrent_requests: listbyids calls in flight at once.
        miss_limit: Consecutive responses without an id before it is reported missing...
        miss_grace: ...provided it has been missing for at least this many seconds.
        coalesce: A due id may wait up to this fraction of its interval for other ids to
            fall due, so that they share one request (0 sends as soon as anything is due).
        retry_delay: Seconds before the ids of a failed listbyids call are asked again
            (at least; a server's ``retry_after`` wins when longer).
        safety_net_interval: While webhooks are attached, the interval of every job's polls:
            the safety net for callbacks that never arrive.
        fifo: Assume the server starts queued jobs in submit order (AKOOL queues them):
            poll jobs known to have started, and the oldest of the rest, at the first
            interval; poll the jobs queued behind those rarely. False: every job on its own
            age-based schedule.
    """

    batch_size: int = attrs.field(default=100, validator=integer_at_least(1))
    image_first: float = attrs.field(default=1.5, validator=finite_positive_number())
    image_max: float = attrs.field(default=15.0, validator=finite_positive_number())
    video_first: float = attrs.field(default=10.0, validator=finite_positive_number())
    video_max: float = attrs.field(default=60.0, validator=finite_positive_number())
    backoff: float = attrs.field(default=1.5, validator=number_at_least(1))
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    fill: bool = True
    max_concurrent_requests: int = attrs.field(default=2, validator=integer_at_least(1))
    miss_limit: int = attrs.field(default=5, validator=integer_at_least(1))
    miss_grace: float = attrs.field(default=30.0, validator=finite_positive_number())
    coalesce: float = attrs.field(default=0.5, validator=finite_number_at_least(0))
    retry_delay: float = attrs.field(default=2.0, validator=finite_positive_number())
    safety_net_interval: float = attrs.field(default=120.0, validator=finite_positive_number())
    fifo: bool = True

    def __attrs_post_init__(self) -> None:
        if self.image_max < self.image_first:
            raise ValidationError("must be >= image_first", field="image_max")
        if self.video_max < self.video_first:
            raise ValidationError("must be >= video_first", field="video_max")

    def bounds(self, media: MediaType | str) -> tuple[float, float]:
        """``(first, max)`` interval of a media kind (anything but video counts as image)."""
        if media == MediaType.VIDEO:
            return self.video_first, self.video_max
        return self.image_first, self.image_max


def poll_interval(
    config: PollConfig, media: MediaType | str, age: float, *, webhooks: bool = False
) -> float:
    """Seconds until the next poll of a job tracked for ``age`` seconds (before jitter).

    ``age * (backoff - 1)``, so that the next poll falls at ``age * backoff``, clamped to the
    media's ``[first, max]``; with webhooks attached, never below ``safety_net_interval``.
    """
    first, longest = config.bounds(media)
    interval = min(longest, max(first, age * (config.backoff - 1)))
    if webhooks:
        interval = max(interval, config.safety_net_interval)
    return interval

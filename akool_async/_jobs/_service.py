"""The job service: what one open client and its ``with_options`` views share after a submit.

A ``JobService`` owns one anyio task group, which runs the shared ``Poller`` and every
``swap_many`` batch, and the webhook state: while ``use_webhooks`` is in force, the
``webhookUrl`` submits carry and the function that detaches, and the ``References`` where
callbacks' ``akool_ref`` values meet the ambiguous submits expecting them.

Its lifetime is the client's: ``AsyncClient.__aenter__`` opens it (``JobService.open``) and
keeps it in the client's shared state, the object every ``with_options()`` view shares, so
``view.wait`` and ``view.swap_many`` use the parent's poller while submitting with the view's
retry policy. ``aclose()`` takes it out of the shared state first (from then on the client's
job methods raise ``ClientStateError``) and then closes it (``JobService.aclose``), before the
session. A client without a service is not open: there is no registry to consult. Open and
close it in the same task (as ``async with`` on the client does): a task group cannot be left
from another task.

The service does no I/O of its own: the poller's listbyids call is injected (``FetchResults``)
and a batch is started through the small ``_Run`` protocol, so this module imports neither the
client nor the batch machinery, and both can import it without a cycle. Arguments reach it
checked (the client checks them before it looks for the service: a bad argument is a
``ValidationError`` even on a closed client).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs
from anyio.abc import TaskGroup

from akool_async._ambiguity import References
from akool_async._endpoints import Endpoint
from akool_async._errors import ClientStateError
from akool_async._models import MediaType, SwapResult, SwapStatus

from ._poll_config import PollConfig
from ._poller import FetchResults, Poller, PollerStatistics

if TYPE_CHECKING:
    from akool_async._receiver import WebhookReceiver
    from akool_async._webhooks import WebhookEvent

__all__ = ["JobService"]


class _Run(Protocol):
    """What the service needs of a batch run (``BatchRun``) to start it and to stop it."""

    @property
    def finished(self) -> bool: ...

    @property
    def grace(self) -> float: ...

    @property
    def done(self) -> anyio.Event: ...

    def fail(self, error: BaseException) -> None: ...

    async def main(self) -> None: ...


def _paced(config: PollConfig, max_ids_per_request: int) -> PollConfig:
    """``config`` with a listbyids batch no larger than the client sends in one call."""
    return attrs.evolve(config, batch_size=min(config.batch_size, max_ids_per_request))


class JobService:
    """The task group, the shared poller, the running batches and the webhook state.

    Args:
        poller: The shared poller, already running in ``task_group``.
        task_group: The entered task group that runs the poller and the batches.
        max_ids_per_request: The client's most ids per listbyids call.
    """

    def __init__(self, poller: Poller, task_group: TaskGroup, *, max_ids_per_request: int) -> None:
        self.poller = poller
        self.task_group = task_group
        self.batches: weakref.WeakSet[_Run] = weakref.WeakSet()
        #: While ``use_webhooks`` is in force: the ``webhookUrl`` for submits, and its undo.
        self.webhook_url: str | None = None
        self.detach_webhooks: Callable[[], None] | None = None
        #: Callbacks' ``akool_ref`` values meet the ambiguous submits expecting them here.
        self.references = References()
        self._max_ids = max_ids_per_request

    @classmethod
    async def open(
        cls, fetch: FetchResults, config: PollConfig, *, max_ids_per_request: int
    ) -> JobService:
        """Enter a task group and start the shared poller in it.

        Args:
            fetch: The listbyids call the poller makes (it must not keep the client alive).
            config: How the poller schedules its calls.
            max_ids_per_request: The client's most ids per listbyids call.

        Returns:
            The open service; close it with ``aclose()`` in the same task.
        """
        poller = Poller(fetch, _paced(config, max_ids_per_request))
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(poller.run)
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return cls(poller, task_group, max_ids_per_request=max_ids_per_request)

    async def aclose(self) -> None:
        """Detach webhooks, stop every batch and the poller, and leave the task group."""
        if self.detach_webhooks is not None:
            self.detach_webhooks()  # the receiver outlives us: stop feeding this poller
        # Batches stop as on aclose(): submits already sent get their grace for an answer,
        # with their journal still open; their iterators raise ClientStateError.
        running = [run for run in self.batches if not run.finished]
        for run in running:
            run.fail(ClientStateError("the client was closed while the batch ran"))
        with anyio.CancelScope(shield=True):
            for run in running:
                with anyio.move_on_after(run.grace + 1.0):
                    await run.done.wait()
        # Running batches see this cancellation as the client closing under them: their
        # iterators raise ClientStateError once their outcomes are drained.
        self.task_group.cancel_scope.cancel()
        await self.task_group.__aexit__(None, None, None)

    def start(self, run: _Run) -> None:
        """Run a batch in the service's task group, to be stopped when the service closes.

        Raises:
            ClientStateError: the service is closed (or closing).
        """
        if self.poller.running is False:
            raise ClientStateError("the client is closed")
        self.batches.add(run)
        self.task_group.start_soon(run.main)

    # -- the shared poller ------------------------------------------------------------------

    def pace(self, config: PollConfig) -> None:
        """Take a new ``PollConfig`` at once (its ``max_concurrent_requests`` excepted)."""
        self.poller.config = _paced(config, self._max_ids)

    def statistics(self) -> PollerStatistics:
        """A snapshot of the shared poller."""
        return self.poller.statistics()

    async def wait(
        self,
        job_id: str,
        *,
        media: MediaType | str,
        timeout: float | None,  # noqa: ASYNC109 - a job deadline, raised as JobTimeoutError
        on_status: Callable[[SwapResult], None] | None,
    ) -> SwapResult:
        """Wait for one job through the shared poller (see ``AsyncClient.wait``)."""
        return await self.poller.wait(job_id, media=media, timeout=timeout, on_status=on_status)

    def notify(self, job_id: str, status: SwapStatus | int, url: str | None) -> bool:
        """Feed an external status to the job's waiters (see ``AsyncClient.notify_job``)."""
        return self.poller.notify(job_id, status, url)

    def attach_webhooks(self) -> Callable[[], None]:
        """Slow polling to the safety-net pace (see ``AsyncClient.attach_webhooks``)."""
        return self.poller.attach_webhooks()

    # -- webhooks ---------------------------------------------------------------------------

    def use_webhooks(self, receiver: WebhookReceiver, url: str) -> Callable[[], None]:
        """Route ``receiver``'s callbacks here and ``url`` into submits (``use_webhooks``).

        Args:
            receiver: The receiver whose verified events finish jobs.
            url: The checked ``webhookUrl`` for submits.

        Returns:
            A function that detaches (calling it again does nothing).

        Raises:
            ClientStateError: webhooks are already in use.
        """
        if self.detach_webhooks is not None:
            raise ClientStateError("webhooks are already in use on this client: detach first")
        loop = asyncio.get_running_loop()
        poller, references = self.poller, self.references

        def notify(event: WebhookEvent) -> None:
            poller.notify(event.id, event.status, event.url)
            if event.reference is not None:  # a batch's submit: resolves it if ambiguous
                references.bind(event.reference, event.id)

        def on_event(event: WebhookEvent) -> None:
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                notify(event)
            else:  # raises once our loop is closed: the receiver answers 500, AKOOL retries
                loop.call_soon_threadsafe(notify, event)

        unsubscribe = receiver.subscribe(on_event)
        slow_down = self.poller.attach_webhooks()

        def detach() -> None:
            if self.detach_webhooks is not detach:
                return
            unsubscribe()
            slow_down()
            self.webhook_url = self.detach_webhooks = None

        self.webhook_url = url
        self.detach_webhooks = detach
        return detach

    def with_webhook_url(self, endpoint: Endpoint[Any, Any], request: Any) -> Any:
        """``request`` with ``use_webhooks``' URL when it creates a job and names no URL."""
        if not endpoint.creates_job or self.webhook_url is None:
            return request
        if request.webhook_url is not None:
            return request
        return attrs.evolve(request, webhook_url=self.webhook_url)

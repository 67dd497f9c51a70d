"""The submits of one batch: its stop rules, its resubmits, and the journaled send.

Per request (``Submitter.submit``)::

    stop rule? -> (media resolved) -> 'submitting' (durable) -> send -> 'submitted' + job id
    refused:  1005 after the client's own retries -> resubmit later (at most 8 times)
              anything else -> its row ('ambiguous' / 'unsent' / 'rejected') -> an outcome

Stop rules. Running out of credit (1006, or a balance <= 0 before the start), an account
refusal (1200; 1101/1102 with an API key) and the batch ``deadline`` stop *admitting*:
``stop_error`` then gives every request not yet submitted its error, without a submit.

Stopping. Each send runs in a shielded scope (``_Flight``), and the client calls
``submit_sending`` right before an attempt's request goes out. At a stop (``stop``) a submit
that was sent gets ``cancel_grace`` seconds for its answer (its job id is journaled); one
that was not (waiting at the throttle gate, for a token, in backoff after a refusal) is
abandoned at once and journaled 'unsent'. Only a submit still without an answer after its
grace stays 'submitting', which a resume reports as ambiguous. The waits of ambiguous
submits for a callback naming their reference (``bound_job``) end at a stop too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import attrs

from akool_async._ambiguity import References, new_reference, with_reference
from akool_async._endpoints import GET_CREDIT, Endpoint
from akool_async._errors import (
    AccountBannedError,
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    BatchDeadlineError,
    InsufficientCreditError,
    JournalError,
    RateLimitError,
    StorageError,
    TransportError,
    ValidationError,
)
from akool_async._models import CreditQuery, SwapJob
from akool_async._requester import submit_events, submit_sending
from akool_async._retry import Retryable, RetryPolicy, retrying
from akool_async._storage import MEDIA_TYPES, media_refs

from ._batch_items import BatchOptions, Item, RunControl
from ._events import BatchCounters, Outcome, R
from ._journal import JournalState
from ._ledger import Ledger
from ._records import SUBMIT_ENDPOINTS, never_acted

if TYPE_CHECKING:
    from ._seams import ClientSeam

__all__ = ["Submitter", "Webhooks"]

#: Resubmits of one request after the client gave up on 1005: 8 after the first send, each
#: after a backoff wait (at least the server's Retry-After).
_RESUBMITS: Final = RetryPolicy(max_attempts=9, initial_delay=1.0, max_delay=30.0, max_elapsed=None)


class _Throttled(Retryable):
    """A send the client gave up on with a 1005 (or 429): submitted again after a wait."""

    def __init__(self, error: RateLimitError) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = error.retry_after


class Webhooks(Protocol):
    """Where a batch's submits learn of webhooks (the client's orchestrator is one)."""

    #: While ``use_webhooks`` is in force: the ``webhookUrl`` for submits, and its undo.
    webhook_url: str | None
    detach_webhooks: Callable[[], None] | None
    #: Callbacks' ``akool_ref`` values meet the ambiguous submits expecting them here.
    references: References


class _Abandoned(Exception):
    """Raised at the send point of a submit the batch stopped before it was sent."""


class _Flight:
    """One submit between its journal intent and its answer (see ``Submitter.stop``).

    ``sent`` is True while an attempt's request may be on its way to the server: set by the
    client right before it sends (``submit_sending``), cleared when that attempt is refused
    without action and the client backs off (its ``retried`` / ``throttled`` reports).
    """

    __slots__ = ("forward", "scope", "sent", "stopping")

    def __init__(self, scope: anyio.CancelScope, forward: Callable[..., None] | None) -> None:
        self.scope = scope
        self.forward = forward
        self.sent = False
        self.stopping = False

    def sending(self) -> None:
        if self.scope.cancel_called:
            raise _Abandoned  # the batch stopped while it waited: it never leaves
        self.sent = True

    def report(self, kind: str, **data: Any) -> None:
        if kind != "sending":  # an attempt leaving the rate controller; submit_sending follows
            self.sent = False  # that attempt was refused (or never connected): no job
        if self.stopping:
            self.scope.cancel()  # and no further attempt
        if self.forward is not None:
            self.forward(kind, **data)


class Submitter:
    """The submits of one batch (see the module docstring)."""

    def __init__(
        self,
        client: ClientSeam,
        webhooks: Webhooks | None,
        options: BatchOptions,
        counters: BatchCounters,
        run: RunControl,
    ) -> None:
        self._client = client
        self._webhooks = webhooks
        self._options = options
        self._counters = counters
        self._run = run
        #: Set once the journal is open (``open_ledger``).
        self.ledger = Ledger()
        self.deadline_at = math.inf
        self._credit_error: InsufficientCreditError | None = None
        self._account_error: APIError | None = None
        #: Submits between their journal intent and their answer; see ``stop``.
        self._flights: set[_Flight] = set()
        self.stopping = False
        #: Ambiguous submits waiting for a callback naming their reference.
        self.ambiguous: set[anyio.CancelScope] = set()

    # -- stop rules -------------------------------------------------------------------------

    def stop(self) -> None:
        """A graceful stop: submits already sent get ``cancel_grace`` seconds for an answer.

        Their shielded scopes get a deadline; a submit not yet sent (waiting at the throttle
        gate, for a token, in backoff) is abandoned at once and journaled as unsent, and so
        is one that reaches the send point later. Waits for webhook references end too.
        """
        if self.stopping:
            return
        self.stopping = True
        until = anyio.current_time() + self._options.cancel_grace
        for flight in self._flights:
            flight.stopping = True
            if flight.sent:
                flight.scope.deadline = min(flight.scope.deadline, until)
            else:
                flight.scope.cancel()
        for scope in self.ambiguous:
            scope.cancel()

    async def check_credit(self) -> None:
        """Read the balance before the start: none left stops admitting at once."""
        await self.refresh_credit()
        balance = self._counters.credits_before = self._counters.credits_now
        if balance is not None and balance <= 0:
            self._credit_error = InsufficientCreditError(f"the credit balance is {balance:g}")

    async def refresh_credit(self) -> None:
        self._counters.requests["quota"] += 1
        try:
            credit = await self._client._call(GET_CREDIT, CreditQuery())
        except AkoolError:
            return  # a balance is information, not a precondition: submits report real errors
        self._counters.credits_now = credit.credit

    def _stop_error(self) -> AkoolError | None:
        if self._account_error is not None:
            refused = self._account_error
            return type(refused)(
                f"not submitted: the account was refused ({refused.message})", code=refused.code
            )
        if self._credit_error is not None:
            return InsufficientCreditError(
                f"not submitted: the account ran out of credit ({self._credit_error.message})",
                code=self._credit_error.code,
            )
        if anyio.current_time() >= self.deadline_at:
            return BatchDeadlineError(
                f"not submitted: the batch deadline of {self._options.deadline} s passed"
            )
        return None

    def _account_refused(self, error: AkoolError) -> bool:
        """A refusal of the account itself (ban; API key refused): every submit would get it."""
        if isinstance(error, AccountBannedError):
            return True
        return (
            isinstance(error, AuthenticationError)
            and error.code in AuthenticationError.codes
            and self._client._shared.auth.api_key is not None
        )

    # -- one submit -------------------------------------------------------------------------

    async def submit(self, item: Item[R]) -> SwapJob | Outcome[R]:
        """Submit the request: its job, or the outcome of a submit that made none (or failed
        to journal the one it made)."""
        endpoint = SUBMIT_ENDPOINTS[type(item.request)]
        request: R = item.request
        if type(request) in MEDIA_TYPES and self._stop_error() is None and media_refs(request):
            # Local files and object-store URLs become presigned URLs before anything is sent
            # (the journal remembers them); a missing file or a refusing store is an outcome.
            # (Not when the batch stopped admitting: nothing is uploaded for a request that
            # will not be sent.)
            try:
                request = await self._client._media().resolve(
                    request, lifetime=self._options.job_timeout, journal=self.ledger.resolutions
                )
            except (ValidationError, StorageError, JournalError) as exc:
                if not isinstance(exc, JournalError):
                    await self.ledger.record_unsubmitted(item, "unsent", exc)
                return item.outcome(error=exc)
        sent = await self._send_with_resubmits(item, endpoint, request)
        if isinstance(sent, AkoolError):
            error = sent
            refresh = isinstance(error, InsufficientCreditError) and self._credit_error is None
            if refresh:
                assert isinstance(error, InsufficientCreditError)
                self._credit_error = error  # stop admitting; jobs already paid for go on
            if self._account_error is None and self._account_refused(error):
                assert isinstance(error, APIError)
                self._account_error = error  # stop admitting, as for credit
            outcome = await self._submit_failed(item, error)  # journaled first: then a stop
            if refresh:  # during the balance read is no false ambiguity
                await self.refresh_credit()
            return outcome
        job, journal_error = sent
        if journal_error is not None:  # paid for, but not durably recorded
            return item.outcome(job=job, error=journal_error)
        self._run.event("submitted", item.index, job_id=job.id)
        return job

    async def _send_with_resubmits(
        self, item: Item[R], endpoint: Endpoint[Any, SwapJob], request: R
    ) -> tuple[SwapJob, JournalError | None] | AkoolError:
        """The journaled send, submitted again later (``_RESUBMITS``) while it gets 1005s.

        The client already retried a 1005 at its rate controller and gave up; 1005 is a
        refusal without action, so trying again later cannot create a second job. Returns
        the job (and a journal error, if its row could not be written) or the error that
        ends the request (a stop rule's included).
        """
        try:
            return await self._send_unless_stopped(item, endpoint, request)  # the usual case
        except _Throttled as refused:
            first = refused
        backing_off: list[RateLimitError] = []  # the refusal being waited out, if any

        async def attempt(number: int) -> tuple[SwapJob, JournalError | None] | AkoolError:
            self._counters.retries += 1  # a resubmit, after its wait
            self._run.event("retried", item.index, error=backing_off.pop(), attempt=number)
            return await self._send_unless_stopped(item, endpoint, request)

        def waiting(number: int, delay: float, failure: _Throttled) -> None:
            backing_off.append(failure.error)

        try:
            return await retrying(_RESUBMITS, attempt, first=first, on_retry=waiting)
        except _Throttled as refused:  # still refused after the last resubmit
            return refused.error
        except BaseException:
            if backing_off:  # cancelled between two refusals: provably not sent
                await self.ledger.record_unsent(item)
            raise

    async def _send_unless_stopped(
        self, item: Item[R], endpoint: Endpoint[Any, SwapJob], request: R
    ) -> tuple[SwapJob, JournalError | None] | AkoolError:
        """One journaled send, or a stop rule's error; a 1005 raises ``_Throttled``."""
        # Cancellation is still honoured before anything is counted or sent.
        await anyio.lowlevel.checkpoint_if_cancelled()
        error = self._stop_error()
        if error is not None:
            return error
        item.slot.move("submitting")
        try:
            sent = await self._send_once(item, endpoint, request)
        except RateLimitError as exc:
            item.slot.move("waiting_input")
            raise _Throttled(exc) from None  # the client reported it ("throttled")
        except AkoolError as exc:
            item.slot.move("waiting_input")
            return exc
        item.slot.move("pending")
        return sent

    def _with_reference(self, item: Item[R], request: R) -> R:
        """The request to send: with a webhook reference when callbacks come to us."""
        webhooks = self._webhooks
        if webhooks is None or webhooks.webhook_url is None or request.webhook_url:
            item.ref = None
            return request
        item.ref = new_reference()
        return attrs.evolve(request, webhook_url=with_reference(webhooks.webhook_url, item.ref))

    async def _send_once(
        self, item: Item[R], endpoint: Endpoint[Any, SwapJob], resolved: R
    ) -> tuple[SwapJob, JournalError | None]:
        """Journal the intent (durably), send the submit (with the client's retries), and
        journal its job: ``(job, None)``, or ``(job, JournalError)`` when that last write
        failed (the job exists and is paid for: it is logged, and the outcome carries it).

        The send runs in a shielded scope: a graceful stop (``stop``) gives a submit that was
        sent ``cancel_grace`` seconds for its answer, and abandons one that was not.
        """
        ledger = self.ledger
        request = self._with_reference(item, resolved)
        await ledger.begin_submit(item)
        ref = item.ref or ""
        references = (
            self._webhooks.references
            if item.ref is not None and self._webhooks is not None
            else None
        )
        abandoned = False
        with anyio.CancelScope(shield=True) as scope:
            flight = _Flight(scope, submit_events.get())
            self._flights.add(flight)
            if self.stopping:
                flight.stopping = True
                scope.cancel()
            sending = submit_sending.set(flight.sending)
            reporting = submit_events.set(flight.report)
            if references is not None:
                references.expect(ref)
            try:
                # Counted by the run's report("sending") as each attempt leaves the rate
                # controller.
                job: SwapJob = await self._client._call(endpoint, request)
            except BaseException as exc:
                if references is not None and not isinstance(exc, AmbiguousSubmitError):
                    references.forget(ref)
                if isinstance(exc, AkoolError):
                    raise
                if not flight.sent:
                    # Stopped before it went out: say so, so that a resume resubmits it. A
                    # submit that was sent and got no answer in its grace stays 'submitting':
                    # a resume reports it as ambiguous (the honest case).
                    await ledger.record_unsent(item)
                if not isinstance(exc, _Abandoned):
                    raise
                abandoned = True
            else:
                if references is not None:
                    references.forget(ref)
                return job, await ledger.submitted(item, job)
            finally:
                submit_sending.reset(sending)
                submit_events.reset(reporting)
                self._flights.discard(flight)
        # Stopped: the shield caught its own cancellation; let the batch's come through.
        await anyio.lowlevel.checkpoint()
        if abandoned or not flight.sent:
            raise TransportError("the batch stopped before the submit was sent")
        raise AmbiguousSubmitError(
            "the batch stopped before the submit's answer came", request=item.request
        )

    async def _submit_failed(self, item: Item[R], error: AkoolError) -> Outcome[R]:
        state: JournalState
        if isinstance(error, AmbiguousSubmitError):
            state = "ambiguous"
        elif never_acted(error):
            state = "unsent"
        else:
            state = "rejected"
        error = await self.ledger.record_refusal(item, state, error)
        return item.outcome(error=error)

    # -- ambiguous submits ------------------------------------------------------------------

    def resolvable(self, item: Item[Any]) -> bool:
        """Whether a callback may still tell which job this ambiguous submit created."""
        webhooks = self._webhooks
        return (
            item.ref is not None
            and webhooks is not None
            and webhooks.detach_webhooks is not None
            and self._options.ambiguous_wait is not None
            and not self.stopping
        )

    def forget(self, item: Item[Any]) -> None:
        """Not waited for now; its callback is remembered for a resume in this process."""
        assert self._webhooks is not None
        assert item.ref is not None
        self._webhooks.references.forget(item.ref)

    async def bound_job(self, item: Item[Any]) -> str | None:
        """The job id a callback bound to the item's reference, or None when none came."""
        assert self._webhooks is not None
        assert item.ref is not None
        references: References = self._webhooks.references
        future = references.expect(item.ref)
        item.slot.move("pending")
        limit = self.deadline_at
        if self._options.job_timeout is not None:
            limit = min(limit, anyio.current_time() + self._options.job_timeout)
        try:
            with anyio.CancelScope(deadline=limit) as scope:
                self.ambiguous.add(scope)
                self._run.tighten()
                try:
                    return await future
                finally:
                    self.ambiguous.discard(scope)
            return None
        finally:
            references.forget(item.ref)

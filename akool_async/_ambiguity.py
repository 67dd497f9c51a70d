"""Resolving ambiguous submits through webhooks: a per-request reference in the callback URL.

A submit whose answer was lost (read timeout, dropped connection, a 5xx after the request
went out) may or may not have created a job, and the create call returned no ``_id`` to ask
listbyids about. With ``use_webhooks`` in force, a batch sends each submit with its own
reference in the ``webhookUrl`` query (``?akool_ref=<16 hex>``); the ``WebhookReceiver`` puts
that query value on the ``WebhookEvent`` (``event.reference``). If the job exists, its callback
names both the job ``_id`` and the reference, and the batch binds the request to that job
instead of reporting it as ambiguous (or resubmitting it and paying twice).

The reference is not covered by the callback's signature (the URL is not signed), but the job
``_id`` it is bound to always comes from a verified body, a reference is 64 random bits that
only AKOOL and the receiver see, and the receiver handles each ``(_id, status)`` once, so a
replayed body with another reference changes nothing.

``References`` is the rendezvous between callbacks and the batch requests expecting them; it
lives on the event loop of the client that owns it.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REFERENCE_PARAM", "References", "new_reference", "with_reference"]

#: The ``webhookUrl`` query parameter that carries a submit's reference.
REFERENCE_PARAM: Final = "akool_ref"
#: Callbacks remembered for references nobody expects yet (a late-registering resume).
_REMEMBERED: Final = 10_000


def new_reference() -> str:
    """A fresh random reference for one submit."""
    return secrets.token_hex(8)


def with_reference(url: str, reference: str) -> str:
    """``url`` with ``akool_ref=reference`` in its query (replacing any earlier one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k != REFERENCE_PARAM]
    query.append((REFERENCE_PARAM, reference))
    return urlunsplit(parts._replace(query=urlencode(query)))


class References:
    """Where callbacks carrying a reference meet the requests waiting for them (one loop)."""

    def __init__(self) -> None:
        self._expected: dict[str, asyncio.Future[str]] = {}
        self._seen: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.bound = 0

    def expect(self, reference: str) -> asyncio.Future[str]:
        """A future that gets the job ``_id`` once a callback names ``reference``."""
        future = self._expected.get(reference)
        if future is None:
            future = self._expected[reference] = asyncio.get_running_loop().create_future()
            job_id = self._seen.pop(reference, None)
            if job_id is not None:
                future.set_result(job_id)
        return future

    def forget(self, reference: str) -> None:
        """The request's fate is known otherwise: stop expecting its callback."""
        future = self._expected.pop(reference, None)
        if future is not None and not future.done():
            future.cancel()

    def bind(self, reference: str, job_id: str) -> bool:
        """A verified callback of job ``job_id`` carried ``reference``; True if expected."""
        future = self._expected.get(reference)
        if future is None:
            self._seen[reference] = job_id
            self._seen.move_to_end(reference)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
            return False
        if not future.done():
            future.set_result(job_id)
            self.bound += 1
        return True

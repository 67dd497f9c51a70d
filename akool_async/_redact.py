"""The one redaction point: the secrets this process holds, kept out of every text the SDK makes.

Every API key and client secret handed to an ``AsyncClient`` (or a ``WebhookVerifier``) and
every bearer token getToken hands out is registered here (``register``); ``redact(text)``
replaces each of them with ``***``. Registration is process-wide on purpose: a token fetched
by one client must not print through another module's log line or a journal row written later.

Where it applies, so that no path can skip it:

* every ``AkoolError`` message, as it is built (``AkoolError.__init__``), so ``str``,
  ``repr``, ``args`` and tracebacks of the SDK's exceptions, the journal's error columns and
  the CLI's report lines are clean;
* what a server sent back on a failure path (``scrub_error``: the args and attributes of the
  error built at the aiohttp boundary and of its causes; a hostile host may echo the key);
* every record of the SDK's loggers (``RedactingFilter``, installed on each ``akool_async*``
  logger: message, arguments, traceback and stack);
* every line the CLI writes.

Foreign exceptions are never formatted with ``repr``: ``describe(exc)`` gives their class and
safe parts only (aiohttp's ``RequestInfo`` holds the request headers, so the API key), and
``safe_cause(exc)`` keeps such an exception out of an error's ``__cause__``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections import OrderedDict
from typing import Any, Final

__all__ = [
    "MASK",
    "SDK_LOGGERS",
    "RedactingFilter",
    "describe",
    "redact",
    "register",
    "safe_cause",
    "scrub",
    "scrub_error",
]

#: What a secret is replaced with.
MASK: Final = "***"
#: Shorter values are not registered: no real credential is that short (AKOOL's keys and
#: secrets have 32 characters, tokens hundreds), and masking "secret" would shred ordinary text.
_MIN_LENGTH: Final = 12
#: Most secrets remembered (the least recently registered go first); clients are few, tokens
#: are fetched once per client and again only after an expiry.
_MAX_SECRETS: Final = 1024
#: A truncated text (a body capped at 2 KiB) may end in the first part of a secret.
_MIN_TAIL: Final = 8
#: The SDK's loggers; a test checks that every ``getLogger`` in the package is listed.
SDK_LOGGERS: Final = (
    "akool_async",
    "akool_async.batch",
    "akool_async.cli",
    "akool_async.poller",
    "akool_async.testing",
    "akool_async.webhooks",
)

_lock = threading.Lock()
_registry: OrderedDict[str, None] = OrderedDict()
_secrets: tuple[str, ...] = ()  # longest first, so that a secret inside another goes second


def register(*values: str | None) -> None:
    """Remember secret values (None, empty and very short ones are ignored)."""
    global _secrets
    fresh = [v for v in values if isinstance(v, str) and len(v) >= _MIN_LENGTH]
    if not fresh:
        return
    with _lock:
        for value in fresh:
            _registry[value] = None
            _registry.move_to_end(value)
        while len(_registry) > _MAX_SECRETS:
            _registry.popitem(last=False)
        _secrets = tuple(sorted(_registry, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_tail(text: str) -> str:
    """``redact``, and also a secret's first part (8+ characters) that ends the text."""
    text = redact(text)
    for secret in _secrets:
        for size in range(min(len(secret) - 1, len(text)), _MIN_TAIL - 1, -1):
            if text.endswith(secret[:size]):
                return text[:-size] + MASK
    return text


def scrub(value: Any) -> Any:
    """``value`` without secrets: str and bytes, JSON-like dicts, lists and tuples of them.

    Exceptions inside are scrubbed in place (``scrub_error``); other objects are returned as
    they are.
    """
    if isinstance(value, str):
        return _redact_tail(value)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
        clean = _redact_tail(text)
        return value if clean == text else clean.encode()
    if type(value) is dict:
        return {scrub(k): scrub(v) for k, v in value.items()}
    if type(value) is list or type(value) is tuple:
        return type(value)(scrub(item) for item in value)
    if isinstance(value, BaseException):
        return scrub_error(value)
    return value


def scrub_error(error: BaseException) -> BaseException:
    """Remove secrets from ``error`` and its causes, in place; return it.

    Every exception of the chain gets its args and data attributes scrubbed (a JSON error's
    ``doc`` is the whole body the server sent); a cause that holds request data (aiohttp's
    ``request_info``: the request headers) is cut off the chain.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(arg) for arg in current.args)
        for name, value in list(getattr(current, "__dict__", {}).items()):
            if not name.startswith("__"):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(current, name, scrub(value))
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        if cause is not None and safe_cause(cause) is None:
            current.__cause__, current.__suppress_context__ = None, True
            cause = None
        current = cause
    return error


def describe(exc: BaseException) -> str:
    """A foreign exception as safe text: its class and safe parts, never its ``repr``.

    aiohttp's response errors carry ``request_info`` (the request headers: the API key or the
    bearer token), so only their class and status are shown; an ``OSError`` shows its
    ``strerror``; anything else its redacted ``str``, capped.
    """
    name = type(exc).__name__
    if getattr(exc, "request_info", None) is not None:
        status = getattr(exc, "status", None)
        return f"{name} (HTTP {status})" if status else name
    os_error = getattr(exc, "os_error", None)  # aiohttp's connector errors
    if isinstance(os_error, OSError):
        host, port = getattr(exc, "host", None), getattr(exc, "port", None)
        where = f" to {host}:{port}" if host else ""
        return redact(f"{name}{where} ({os_error.strerror or type(os_error).__name__})")
    if isinstance(exc, OSError) and exc.strerror:
        return redact(f"{name} ({exc.strerror})")
    text = str(exc).strip()
    return redact(f"{name}: {text[:200]}" if text else name)


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc`` to chain as a ``__cause__``, or None when it holds request data (headers)."""
    return None if getattr(exc, "request_info", None) is not None else exc


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message, traceback and stack before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                text = record.exc_text or "".join(traceback.format_exception(record.exc_info[1]))
                clean = redact(text)
                if clean != text:
                    # The masked text replaces the exception: a handler that formats
                    # exc_info itself would print the secret.
                    record.exc_text, record.exc_info = clean.rstrip("\n"), None
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # a malformed record is logging's problem, not a reason to drop it
            return True
        return True


_FILTER: Final = RedactingFilter()

for _name in SDK_LOGGERS:
    _logger = logging.getLogger(_name)
    if _FILTER not in _logger.filters:
        _logger.addFilter(_FILTER)

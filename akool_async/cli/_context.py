"""What every ``akool-async`` command shares: exit codes, ``CliError`` and ``Context``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable
from typing import IO, Final

import anyio
import attrs

from akool_async._client import AsyncClient
from akool_async._errors import ValidationError
from akool_async._jobs._poll_config import PollConfig
from akool_async._redact import redact

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "NO_CREDENTIALS",
    "PROG",
    "RICH_HINT",
    "CliError",
    "Context",
    "Interrupted",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143

PROG: Final = "akool-async"
RICH_HINT: Final = "pip install '.[cli]' in an akool-async checkout, or pip install rich"
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what cat and git exit with when `| head` closes
NO_CREDENTIALS: Final = (
    "no credentials: pass --api-key KEY, set AKOOL_API_KEY (or AKOOL_CLIENT_ID and "
    "AKOOL_CLIENT_SECRET) in the environment, or store a key with: akool-async login"
)


class CliError(Exception):
    """A failure to report as one ``error:`` line (or one per line of the message)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the command."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@attrs.define
class Context:
    """What a command gets: its arguments, its output streams and a client factory."""

    args: argparse.Namespace
    stdout: IO[str]
    stderr: IO[str]
    secrets: tuple[str, ...] = ()
    #: The command line as given (without the program name), to show how to run it again.
    argv: tuple[str, ...] = ()
    #: Printed on stderr if the command is interrupted (how to resume, ...).
    interrupt_hint: Callable[[], str] | None = None
    #: The first SIGINT/SIGTERM received, if any.
    interrupted: int | None = None
    work_scope: anyio.CancelScope | None = None

    @property
    def json(self) -> bool:
        """Whether stdout is machine-readable JSON."""
        return bool(self.args.json)

    @property
    def quiet(self) -> bool:
        """``-q``: no progress bars or commentary on stderr (errors still show)."""
        return bool(getattr(self.args, "quiet", False))

    def emit(self, document: object) -> None:
        """Write one JSON document (one line) on stdout."""
        text = json.dumps(document, ensure_ascii=False, default=str)
        self.stdout.write(self.redact(text) + "\n")
        self.stdout.flush()

    def say(self, text: str = "") -> None:
        """Write a line of human output on stdout."""
        self.stdout.write(self.redact(text) + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """Write a line on stderr (kept off stdout for scripts); errors go through here."""
        self.stderr.write(self.redact(text) + "\n")
        self.stderr.flush()

    def progress(self, text: str) -> None:
        """Write a line of commentary on stderr, unless ``-q`` or ``--json`` (scripts) is on."""
        if not self.quiet and not self.json:
            self.note(text)

    def redact(self, text: str) -> str:
        """``text`` with every configured secret and every token handed out replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return redact(text)

    @contextlib.asynccontextmanager
    async def connect(self, client: AsyncClient | None = None) -> AsyncIterator[AsyncClient]:
        """Open ``client`` (default: ``self.client()``) for the command's work.

        A Ctrl-C or SIGTERM during the work cancels the work only; the client (its batches,
        poller and session) then closes normally, and ``Interrupted`` is raised after.
        """
        async with client if client is not None else self.client() as opened:
            with anyio.CancelScope() as scope:
                self.work_scope = scope
                try:
                    yield opened
                finally:
                    self.work_scope = None
        if self.interrupted is not None:
            raise Interrupted(self.interrupted)

    def client(self) -> AsyncClient:
        """An ``AsyncClient`` from ``--api-key`` / ``--base-url`` and the AKOOL_* environment."""
        from ._config import load_profile

        stored = load_profile(self.args, self.note)
        storage = getattr(self.args, "storage_option", None)
        options = {"api_key": self.args.api_key, "base_url": self.args.base_url} | stored
        try:
            client = AsyncClient(
                **options,
                rate_limit=getattr(self.args, "rate_limit", None),
                upload_to=getattr(self.args, "upload_to", None),
                storage_options=dict(storage) if storage else None,
            )
        except ValidationError as exc:
            if exc.field != "api_key":
                raise
            detail = str(exc).removeprefix("api_key: ")
            message = NO_CREDENTIALS if self.args.api_key is None else f"--api-key: {detail}"
            raise CliError(message, EXIT_USAGE) from None
        interval = getattr(self.args, "poll_interval", None)
        if interval is not None:
            defaults = PollConfig()
            client.poll_config = attrs.evolve(
                defaults,
                image_first=interval,
                video_first=interval,
                image_max=max(interval, defaults.image_max),
                video_max=max(interval, defaults.video_max),
            )
        return client

    def require_rich(self, what: str) -> None:
        """Fail with the install hint (exit 2) when rich is missing."""
        try:
            import rich  # noqa: F401
        except ImportError:
            raise CliError(
                f"{what} needs rich for its progress bar and tables: {RICH_HINT} "
                "(or pass --json for plain JSON output)",
                EXIT_USAGE,
            ) from None

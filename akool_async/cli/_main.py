"""The ``akool-async`` command line (also ``python -m akool_async``): runs one command.

Commands::

    akool-async demo [--out DIR] [--jobs N]        the whole SDK on a local emulator
    akool-async batch MANIFEST --out DIR            many swaps from a JSONL/CSV manifest
          [--journal FILE] [--report FILE] [--concurrency N] [--job-timeout S]
    akool-async swap {plus,pro,image,video} ...     one swap [--wait] [--download DIR]
    akool-async status ID...                        the current state of jobs
    akool-async wait ID... [--timeout S]            wait for jobs to finish
    akool-async delete ID...                        delete job records
    akool-async credit                              the account's credit balance
    akool-async detect URL_OR_FILE                  find faces [--single-face] [--frames N]
          [--face-urls] [--legacy]
    akool-async detect --analyze URL...             the people across frames [--timestamps]
    akool-async emulator [--port P] ...             run the local AKOOL emulator
    akool-async login [--profile NAME]              store an API key (0600 file); logout
    akool-async completion {bash,zsh,fish}          a shell completion script

Global options (before or after the command): ``--api-key`` (else ``AKOOL_API_KEY``, or
``AKOOL_CLIENT_ID`` + ``AKOOL_CLIENT_SECRET``), ``--base-url`` (else ``AKOOL_BASE_URL``),
``--profile`` (stored credentials, see ``_config``), ``--json`` (machine-readable
stdout: one JSON document, or JSON Lines for ``batch``), ``-v`` / ``-vv`` (logs on stderr),
``-q`` (no progress or commentary on stderr).

Exit codes: 0 success; 1 an API, network or job failure (``batch``: any swap that did not
succeed); 2 a usage or validation error (nothing was sent); 130 interrupted (Ctrl-C; 143 on
SIGTERM); 141, silently, when stdout is a pipe that closed (``| head``). Errors are single
``error: ...`` lines on stderr; secrets are never printed.

The command line is synchronous at the top: each invocation runs one event loop over an
``AsyncClient`` and keeps its own logic thin over the SDK. rich (the ``cli`` extra) draws the
progress bars and tables of ``batch`` and ``demo``; every other command, and those two with
``--json``, work without it.

Layout (this package, ``akool_async.cli``): ``_parser`` (arguments and help), ``_context``
(exit codes, ``Context``), ``_commands`` (single-call commands), ``_batch`` (``batch``),
``_shared`` (``batch`` on a shared journal), ``_analyze`` (``detect --analyze``),
``_report`` (``report``), ``_config`` (``login``, ``logout``, ``completion``), ``_demo``
(``demo``), ``_manifest`` (manifest files), ``_progress`` (rich rendering); this module runs a
command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Final

from akool_async._errors import AkoolError, ValidationError
from akool_async._jobs._journals import is_shared_url, url_passwords
from akool_async._redact import redact
from akool_async._speedups import run, tune_gc

from ._commands import HANDLERS, cmd_emulator
from ._context import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CliError,
    Context,
    Interrupted,
)
from ._parser import build_parser, command_parser

__all__ = ["build_parser", "main"]

_ENV_SECRETS: Final = ("AKOOL_API_KEY", "AKOOL_CLIENT_SECRET")

_logger = logging.getLogger("akool_async.cli")


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _Redactor(logging.Filter):
    """Replace secrets in log records (belt and braces: the SDK never logs them)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = redact(message), None
        return True


# --------------------------------------------------------------------------------------------
# Running


@contextlib.contextmanager
def _logging(ctx: Context) -> Iterator[None]:
    verbosity = int(ctx.args.verbose or 0)
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger("akool_async")
    handler = logging.StreamHandler(ctx.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redactor(ctx.secrets))
    previous = logger.level
    logger.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def _run(ctx: Context, handler: Callable[[Context], Awaitable[int]]) -> int:
    """Run a command with Ctrl-C and SIGTERM turned into a clean stop.

    Inside ``ctx.connect()`` a signal cancels only the command's work (an anyio cancel scope),
    so the client and its batches close normally before ``Interrupted`` is raised; elsewhere,
    or on a second signal, it cancels the whole command.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        first = ctx.interrupted is None
        if first:
            ctx.interrupted = signum
        if first and ctx.work_scope is not None:
            ctx.work_scope.cancel()
        elif task is not None:
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        return await handler(ctx)
    except asyncio.CancelledError:
        if ctx.interrupted is not None:
            raise Interrupted(ctx.interrupted) from None
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _secrets(args: argparse.Namespace) -> tuple[str, ...]:
    from ._config import profile_secrets

    values = [getattr(args, "api_key", None), *(os.environ.get(n) for n in _ENV_SECRETS)]
    values.extend(profile_secrets(args))
    journal = getattr(args, "journal", None)
    if isinstance(journal, str) and is_shared_url(
        journal
    ):  # a DSN's password: never in a log line, error or hint
        values.extend(url_passwords(journal))
    return tuple(sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True))


def _report(ctx: Context, message: str, code: int) -> int:
    for line in (message or "failed").splitlines() or ["failed"]:
        ctx.note(f"error: {line}")
    return code


def _first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: the one worth reporting."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _stdout_closed() -> int:
    """stdout is a pipe whose reader went away (``| head``): stop quietly, as cat and git do.

    Python ignores SIGPIPE, so the write raised instead; point stdout at /dev/null so that the
    interpreter's final flush does not raise (and print) the same error again.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _failure(ctx: Context, exc: Exception) -> int:
    """Report a command's exception as ``error:`` lines; return the exit code."""
    error = _first_leaf(exc)
    if isinstance(error, BrokenPipeError):
        return _stdout_closed()
    if isinstance(error, CliError):
        return _report(ctx, str(error), error.code)
    if isinstance(error, ValidationError):
        return _report(ctx, str(error), EXIT_USAGE)
    if isinstance(error, AkoolError):
        return _report(ctx, _error_text(error), EXIT_FAILED)
    if isinstance(error, OSError):
        return _report(ctx, str(error), EXIT_FAILED)
    _logger.debug("unexpected error", exc_info=exc)
    return _report(ctx, f"unexpected {_error_text(error)} (run with -vv for details)", EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # --help or --version into a closed pipe
        return _stdout_closed()


def _main(argv: Sequence[str] | None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(arguments)
        if args.handler == "emulator":
            return cmd_emulator(extra)
        if extra:
            # Reported by the command's own parser: its usage, its options to suggest.
            target = command_parser(parser, args.command, getattr(args, "kind", None))
            target.error(f"unrecognized arguments: {' '.join(extra)}")
    except CliError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.code
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    ctx = Context(
        args=args, stdout=stdout, stderr=stderr, secrets=_secrets(args), argv=tuple(arguments)
    )
    handler = HANDLERS[args.handler]
    with _logging(ctx):
        try:
            if argv is None:  # the program itself (not a caller's main([...])): its process
                tune_gc()
            return run(_run(ctx, handler))  # on uvloop with the speedups extra
        except (KeyboardInterrupt, Interrupted) as exc:
            ctx.note("interrupted")
            if ctx.interrupt_hint is not None:
                ctx.note(ctx.interrupt_hint())
            terminated = isinstance(exc, Interrupted) and exc.signum == signal.SIGTERM
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except Exception as exc:
            return _failure(ctx, exc)

"""The ``akool-async`` program: the command line, a layer on top of the SDK.

The layer rule (a test, ``tests/test_layers.py``, enforces it):

- The CLI is built on the SDK and imports its modules, private ones included: the program
  needs more than a library user does (``akool_async._jobs._journal_pg`` for a shared
  batch's status, ``akool_async._report`` for the batch's gallery, ...). Its own logic stays
  thin.
- Nothing in the SDK imports the CLI, not even lazily or under ``TYPE_CHECKING``: ``import
  akool_async`` never loads this package. Its only importers are the entry points,
  ``akool_async.__main__`` (``python -m akool_async``) and the ``akool-async`` console script
  (``akool_async.cli:main``).
- What is CLI-only lives here even when its name does not say so: the manifest files
  (``_manifest``), the rich progress and tables (``_progress``), the emulator demo (``_demo``).

Modules: ``_main`` (runs one command: logging, errors, exit codes), ``_parser`` (arguments and
help), ``_context`` (exit codes, ``Context``), ``_commands`` (single-call commands), ``_batch``
(``batch``), ``_shared`` (``batch`` on a shared journal), ``_analyze`` (``detect --analyze``),
``_report`` (``report``, and the report a batch leaves), ``_config`` (``login``, ``logout``,
``completion``), ``_demo`` (``demo``), ``_manifest`` (manifest files), ``_progress`` (rich
rendering).
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]

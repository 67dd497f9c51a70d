"""What happens after a submit: waiting, batches, journals and downloads.

The layer rule (checked by ``tests/test_layers.py``): modules here import each other and the
foundation below them (``akool_async._errors``, ``_models``, ``_endpoints``, ``_wire``,
``_retry``, ``_ratelimit``, ``_requester``, ``_storage``, ``_webhooks``, ``_receiver``...),
never the clients above them (``_base_client``, ``_client``, ``_sync``, ``_mirrors``,
``_portal``), the gallery report or the command line; and nothing below imports this package.
A batch talks to its client through the ``_seams.ClientSeam`` protocol.

What lives where:

- ``_service``: ``JobService``, one per open client: the shared poller, the task group the
  batches run in, webhook attachment and ``wait``.
- ``_poller``, ``_poll_config``: the coalescing listbyids poller (its I/O injected) and its
  pacing, ``PollConfig``.
- ``_orchestrator``: ``Batch`` (what ``swap_many`` returns) and the checks of the job
  methods' arguments.
- ``_batch``: ``BatchRun``, one running batch: workers, admission, completion; with its
  ``_submitter`` (stop rules, resubmits, the journaled send), ``_completion`` (the poller
  hand-off, downloads, resumed rows, outcomes) and ``_ledger`` (the journal as a batch sees
  it, a no-op without one); ``_batch_items`` holds its options, readers and items.
- ``_journal`` (SQLite), ``_journal_pg`` with ``_pg_*`` (PostgreSQL, shared by workers),
  ``_journals`` (choosing one from ``journal=``), ``_records`` (journal rows to and from
  outcomes).
- ``_download`` (one verified, streamed download), ``_result_store`` (naming, sinks,
  ``AsyncClient.download``).
- ``_events``: ``Outcome``, ``BatchEvent``, ``BatchStatistics``; ``_seams``: the client as
  this package sees it.

Importing this package imports nothing: ``akool_async`` re-exports the public names.
"""

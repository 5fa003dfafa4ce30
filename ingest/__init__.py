"""Ingest: Twilio (SDK), send logs, conversions and BulkExport files into the DuckDB warehouse.

Entry points:

* ``ingest.pipeline.run_ingest(settings, *, sources, since, until, full_refresh, client_factory,
  progress, send_logs, bulk_export_dir, lag_hours, publish) -> IngestReport`` (in-process);
* ``switchboard ingest`` (``ingest.cli``) and ``switchboard export --parquet DIR`` (``ingest.export``);
* ``ingest.warehouse``: ``connect``, ``create_schema``, ``refresh_facts``, ``publish_snapshot``
  (the views' documented contract is read back by ``analytics.schema``).

Sources behind one protocol (``runs.Source``: a ``name`` and ``run(con, ctx)`` with a ``runs.RunContext``):
``twilio_api.TwilioSource`` (client and retries from ``core.twilio``), ``send_logs.SendLogSource``,
``bulk_export.BulkExportSource``; ``pipeline.run_ingest`` loops over them. Shared: ``lines`` (record-by-record
readers: one bad line is one reject), ``bounds`` (plausibility bounds), ``enrich`` (countries, regions,
numbers, fx), ``encoding`` (body encoding in SQL), ``runs`` (audit, transactions, redaction).
"""

-- The `freshness` analyst view (issue 16): how old the data was when each ingest run made it visible.
-- One row per successful run of a source that loads records (twilio, receiver, send-logs, bulk-export).
-- Built only from the warehouse's own tables, so the numbers are those of the run, not of the moment
-- the view is read. Applied after the facts (the views step), and by `switchboard ingest --every`.
--
-- "Visible" is the publish of the snapshot: a continuous ingest writes a heartbeat run (source
-- 'continuous') just before it publishes, so visible_at is the first heartbeat after the source's run;
-- a one-shot ingest has none, and the source run's own finish stands in (the publish follows it by the
-- facts refresh).
--
-- Record time per source: twilio = date_updated of a message/call (its last status change, as Twilio
-- reports it); receiver = the pushed event's own time; send-logs = sent_at; bulk-export = date_updated.
-- The lag percentiles are over the records a run brought that changed since the source's previous run
-- started (older ones are re-reads, not news); for the receiver, over every event it loaded (each one is
-- news, however late Twilio delivered it).

CREATE OR REPLACE VIEW freshness AS
WITH ok_runs AS (
    SELECT run_id, source, started_at, finished_at, rows_loaded,
           lag(started_at) OVER (PARTITION BY source ORDER BY run_id) AS previous_started_at
    FROM ingest_runs
    WHERE status = 'ok' AND source IN ('twilio', 'receiver', 'send-logs', 'bulk-export')
), beats AS (
    SELECT run_id, finished_at FROM ingest_runs WHERE source = 'continuous' AND status = 'ok'
), records AS (  -- (source, run that loaded it, record time)
    SELECT CASE source WHEN 'bulk_export' THEN 'bulk-export' ELSE 'twilio' END AS source, ingest_run_id,
           date_updated AS record_at
    FROM twilio_messages WHERE date_updated IS NOT NULL
    UNION ALL
    SELECT CASE source WHEN 'bulk_export' THEN 'bulk-export' ELSE 'twilio' END, ingest_run_id, date_updated
    FROM twilio_calls WHERE date_updated IS NOT NULL
    UNION ALL
    SELECT 'receiver', ingest_run_id, event_time FROM twilio_events
    UNION ALL
    SELECT 'send-logs', ingest_run_id, sent_at FROM send_log
), visible AS (  -- the first heartbeat after the run, else the run's own finish
    SELECT r.*, coalesce(b.finished_at, r.finished_at) AS visible_at
    FROM ok_runs r ASOF LEFT JOIN beats b ON b.run_id > r.run_id
), newest_so_far AS (  -- per source, the newest record time loaded by each run and all before it
    SELECT source, ingest_run_id AS run_id,
           max(max(record_at)) OVER (PARTITION BY source ORDER BY ingest_run_id) AS newest_record_at
    FROM records GROUP BY source, ingest_run_id
), newest AS (
    SELECT v.run_id, n.newest_record_at
    FROM visible v ASOF JOIN newest_so_far n ON n.source = v.source AND n.run_id <= v.run_id
), lags AS (
    SELECT v.run_id, count(*) AS fresh_records,
           quantile_cont(epoch(v.visible_at) - epoch(x.record_at), 0.5) AS lag_p50_s,
           quantile_cont(epoch(v.visible_at) - epoch(x.record_at), 0.95) AS lag_p95_s
    FROM visible v JOIN records x ON x.source = v.source AND x.ingest_run_id = v.run_id
    WHERE v.source = 'receiver' OR x.record_at >= v.previous_started_at
    GROUP BY v.run_id
)
SELECT v.source, v.run_id, v.started_at AS run_started_at, v.finished_at AS run_finished_at, v.visible_at,
       n.newest_record_at,
       epoch(v.visible_at) - epoch(n.newest_record_at) AS newest_age_s,
       coalesce(l.fresh_records, 0) AS fresh_records,
       l.lag_p50_s, l.lag_p95_s
FROM visible v LEFT JOIN newest n USING (run_id) LEFT JOIN lags l USING (run_id)
ORDER BY v.run_id;

COMMENT ON VIEW freshness IS 'One row per successful ingest run of a source that loads records: when its data became visible, how old the newest record was then, and the lag from a record''s own time to the warehouse (p50/p95). Computed from the warehouse tables, so a run''s numbers do not change with the time you read them.';
COMMENT ON COLUMN freshness.source IS 'Ingest source: twilio (list API poller), receiver (status callbacks and Event Streams), send-logs, bulk-export.';
COMMENT ON COLUMN freshness.run_id IS 'ingest_runs row of the run.';
COMMENT ON COLUMN freshness.run_started_at IS 'When the source run started (UTC).';
COMMENT ON COLUMN freshness.run_finished_at IS 'When the source run finished (UTC).';
COMMENT ON COLUMN freshness.visible_at IS 'When the run''s data was published: the next continuous-ingest heartbeat (switchboard ingest --every), else the run''s finish.';
COMMENT ON COLUMN freshness.newest_record_at IS 'Newest record time this source had loaded by this run: last status change (twilio, bulk-export), event time (receiver), sent_at (send-logs). A row a later run re-reads counts for that later run.';
COMMENT ON COLUMN freshness.newest_age_s IS 'Seconds from newest_record_at to visible_at: how old the newest status was when the run published it (small on a busy account).';
COMMENT ON COLUMN freshness.fresh_records IS 'Records of this run its lag percentiles are over: those that changed since the source''s previous run started (receiver: every event loaded).';
COMMENT ON COLUMN freshness.lag_p50_s IS 'Median seconds from a fresh record''s own time to visible_at (event time to the warehouse). NULL when the run brought none.';
COMMENT ON COLUMN freshness.lag_p95_s IS '95th percentile of the same lag, in seconds.';

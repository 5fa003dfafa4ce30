-- opt_out_cells: the delivered SMS of a relation per cell and UTC send day, split at $o_split (recent = sent at
-- or after it). analytics.responses.opt_out_cells, THE count behind every opt-out spike (the Overview's "what
-- changed", the opt_out alert rule, the Responses page's spikes), runs it over the messages members answered
-- with an opt-out keyword (_opt_out_messages: message_facts rows whose sid a reply links to, ingest/responses.sql's
-- keyword and linking rules) for k, and over the period's SMS of an experiment for the variants' n (the other
-- SMS are counted from _daily_message_rollup through analytics._sql.counted). A message counts once however
-- many replies it got, on its send time, so a rate is the share of delivered SMS answered with an opt-out, as
-- in responses_rates.sql.
-- Fragments: {keys} (allow-listed expressions over m, each followed by a comma, or empty), {relation}, {where}.
-- Output columns: the keys, day, recent, n
SELECT {keys}
       m.sent_day                              AS day,
       m.sent_at >= $o_split                   AS recent,
       count(*)::BIGINT                        AS n
FROM {relation} m
WHERE m.is_delivered AND {where}
GROUP BY ALL

-- opt_out_cells: THE count behind every opt-out spike (analytics.responses.opt_out_cells: the Overview's
-- "what changed", the opt_out alert rule and the Responses page's spikes read it, nothing else counts
-- opt-outs for a spike). Per cell ({keys}: allow-listed message_facts expressions) and UTC send day:
-- delivered SMS sent in the baseline (before $o_split) and in the recent period (from it), and how many of
-- them the member answered with an opt-out keyword (responses.linked_sid: ingest/responses.sql's keyword
-- and linking rules). A message counts once however many replies it got, on its send time, so a rate is
-- the share of delivered SMS answered with an opt-out, as in responses_rates.sql.
-- Output columns: the keys, day, recent, n, k ({keys} is empty or ends with a comma)
WITH opted AS (
    SELECT DISTINCT linked_sid FROM responses WHERE classification = 'opt_out' AND linked_sid IS NOT NULL
)
SELECT {keys}
       m.sent_day                              AS day,
       m.sent_at >= $o_split                   AS recent,
       count(*)::BIGINT                        AS n,
       count(o.linked_sid)::BIGINT             AS k
FROM message_facts m
LEFT JOIN opted o ON o.linked_sid = m.sid
WHERE m.is_delivered AND {where}
GROUP BY ALL

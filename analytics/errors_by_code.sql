-- errors_by_code: messages and failures per error code (NULL code = no error) and period
-- (is_current: sent at or after $cur_start; {where} spans both periods).
-- The catalogue's description of each code is attached in Python (tiny dimension).
-- Output columns: error_code, is_current, sent, failed
SELECT
    error_code,
    sent_at >= $cur_start                 AS is_current,
    count(*)                              AS sent,
    count(*) FILTER (WHERE is_failed)     AS failed
FROM message_facts
WHERE {where}
GROUP BY ALL

-- errors_by_code: messages and failures per error code (NULL code = no error) in the current
-- and previous period, with the error catalogue's description of each code.
-- Parameter $cur_start: first instant of the current period ({where} spans both periods).
-- Output columns: error_code, sent, failed, sent_prev, failed_prev, error_name, category,
--                 retryable, what_to_do, more_info
WITH counts AS (
    SELECT
        error_code,
        count(*) FILTER (WHERE sent_at >= $cur_start)                  AS sent,
        count(*) FILTER (WHERE sent_at >= $cur_start AND is_failed)    AS failed,
        count(*) FILTER (WHERE sent_at < $cur_start)                   AS sent_prev,
        count(*) FILTER (WHERE sent_at < $cur_start AND is_failed)     AS failed_prev
    FROM message_facts
    WHERE {where}
    GROUP BY error_code
)
SELECT c.*, e.name AS error_name,
       CASE WHEN c.error_code IS NOT NULL THEN coalesce(e.category, 'unknown') END AS category,
       e.retryable, e.what_to_do, e.more_info
FROM counts c
LEFT JOIN error_codes e ON e.code = c.error_code

-- errors_daily: messages and failures per UTC day and error code (NULL code = no error).
-- Output columns: day, error_code, sent, failed
SELECT sent_day AS day, error_code, count(*) AS sent, count(*) FILTER (WHERE is_failed) AS failed
FROM message_facts
WHERE {where}
GROUP BY ALL

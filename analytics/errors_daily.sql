-- errors_daily: messages and failures per UTC day and error code (NULL code = no error).
-- Reads the messages relation: a counted relation (analytics._sql.counted).
-- Output columns: day, error_code, sent, failed
SELECT sent_day AS day, error_code, sum(n)::BIGINT AS sent,
       coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT AS failed
FROM {messages}
GROUP BY ALL

-- errors_by_code: messages and failures per error code (NULL code = no error) and period
-- (is_current: sent on or after the current period's start; the relation spans both periods).
-- Reads the messages relation: a counted relation (analytics._sql.counted, split at the current start).
-- The catalogue's description of each code is attached in Python (tiny dimension).
-- Output columns: error_code, is_current, sent, failed
SELECT
    error_code,
    is_current,
    sum(n)::BIGINT                                              AS sent,
    coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT        AS failed
FROM {messages}
GROUP BY ALL

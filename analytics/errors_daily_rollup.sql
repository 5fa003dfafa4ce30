-- errors_daily_rollup: errors_daily answered from _daily_message_rollup (same definitions and
-- output; {where} from analytics._sql.rollup_where).
-- Output columns: day, error_code, sent, failed
SELECT sent_day AS day, error_code, sum(n)::BIGINT AS sent,
       coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT AS failed
FROM _daily_message_rollup
WHERE {where}
GROUP BY ALL

-- errors_by_code_rollup: errors_by_code answered from _daily_message_rollup (same definitions
-- and output; {where} from analytics._sql.rollup_where; is_current: sent_day >= $cur_day).
-- Output columns: error_code, is_current, sent, failed
SELECT
    error_code,
    sent_day >= $cur_day                                        AS is_current,
    sum(n)::BIGINT                                              AS sent,
    coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT        AS failed
FROM _daily_message_rollup
WHERE {where}
GROUP BY ALL

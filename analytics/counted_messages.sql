-- counted_messages: message_facts as a counted relation, one row per SMS with n = 1 and the
-- columns of _daily_message_rollup computed per row (ingest/facts.sql builds that rollup by summing
-- exactly these). Queries over messages read this or the rollup (analytics._sql.counted).
-- Fragments: {where} from analytics.filters.where, {current} the is_current expression (or NULL).
-- Output columns: every message_facts column, n, cost_sq, priced, is_current
SELECT *,
       1::BIGINT                              AS n,
       cost_usd * cost_usd                    AS cost_sq,
       (cost_usd IS NOT NULL)::BIGINT         AS priced,
       {current}                              AS is_current
FROM message_facts
WHERE {where}

-- insights_cells_rollup: insights_cells answered from _daily_message_rollup (same definitions
-- and output; {where} from analytics._sql.rollup_where; recent: sent_day >= $recent_day).
WITH fine AS (
    SELECT
        country_iso2                                                AS country,
        carrier,
        template_id                                                 AS template,
        error_code,
        sent_day >= $recent_day                                     AS recent,
        sum(n)::BIGINT                                              AS n,
        coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT     AS delivered,
        coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT        AS failed,
        sum(cost_usd)                                               AS cost,
        sum(cost_sq)                                                AS cost_sq,
        sum(priced)::BIGINT                                         AS priced
    FROM _daily_message_rollup
    WHERE {where}
    GROUP BY ALL
),
cells AS (
    SELECT
        CASE WHEN GROUPING(country) = 1 THEN '<all>' ELSE coalesce(country, '<unknown>') END   AS country,
        CASE WHEN GROUPING(carrier) = 1 THEN '<all>' ELSE coalesce(carrier, '<unknown>') END   AS carrier,
        CASE WHEN GROUPING(template) = 1 THEN '<all>' ELSE coalesce(template, '<unknown>') END AS template,
        CASE WHEN GROUPING(error_code) = 1 THEN -1 ELSE error_code END                         AS code,
        coalesce(sum(n) FILTER (WHERE recent), 0)::DOUBLE             AS n1,
        coalesce(sum(n) FILTER (WHERE NOT recent), 0)::DOUBLE         AS n0,
        coalesce(sum(delivered) FILTER (WHERE recent), 0)::DOUBLE     AS delivered1,
        coalesce(sum(delivered) FILTER (WHERE NOT recent), 0)::DOUBLE AS delivered0,
        coalesce(sum(failed) FILTER (WHERE recent), 0)::DOUBLE        AS failed1,
        coalesce(sum(failed) FILTER (WHERE NOT recent), 0)::DOUBLE    AS failed0,
        coalesce(sum(cost) FILTER (WHERE recent), 0)::DOUBLE          AS cost1,
        coalesce(sum(cost) FILTER (WHERE NOT recent), 0)::DOUBLE      AS cost0,
        coalesce(sum(cost_sq) FILTER (WHERE recent), 0)::DOUBLE       AS cost_sq1,
        coalesce(sum(cost_sq) FILTER (WHERE NOT recent), 0)::DOUBLE   AS cost_sq0,
        coalesce(sum(priced) FILTER (WHERE recent), 0)::DOUBLE        AS priced1,
        coalesce(sum(priced) FILTER (WHERE NOT recent), 0)::DOUBLE    AS priced0
    FROM fine
    GROUP BY GROUPING SETS (
        (country), (country, carrier), (country, template), (country, carrier, template),
        (country, error_code), (country, carrier, error_code), (country, template, error_code),
        (country, carrier, template, error_code), (error_code), ()
    )
)
SELECT c.*, s.delivered1 + s.failed1 AS seg_final1, s.delivered0 + s.failed0 AS seg_final0
FROM cells c
LEFT JOIN cells s
       ON c.code >= 0 AND s.code = -1
      AND s.country = c.country AND s.carrier = c.carrier AND s.template = c.template
WHERE c.code IS NOT NULL

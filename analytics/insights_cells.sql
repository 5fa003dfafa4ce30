-- insights_cells: recent vs baseline counts for every country x carrier x template x error-code
-- cell and its roll-ups. One scan of the messages relation, a counted relation (analytics._sql.counted) spanning baseline + recent and
-- split at the recent start (is_current: suffix 1 = recent, 0 = baseline), then GROUPING SETS over
-- the small fine-grained result. A rolled-up dimension reads '<all>', a NULL one '<unknown>';
-- code -1 marks a segment row (all codes). Code rows carry their segment's final counts.
-- Output columns: country, carrier, template, code, n1, n0, delivered1, delivered0, failed1,
--                 failed0, cost1, cost0, cost_sq1, cost_sq0, priced1, priced0, seg_final1, seg_final0
WITH fine AS (
    SELECT
        country_iso2                                                AS country,
        carrier,
        template_id                                                 AS template,
        error_code,
        is_current                                                  AS recent,
        sum(n)::BIGINT                                              AS n,
        coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT     AS delivered,
        coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT        AS failed,
        sum(cost_usd)                                               AS cost,
        sum(cost_sq)                                                AS cost_sq,
        sum(priced)::BIGINT                                         AS priced
    FROM {messages}
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

-- template_stats: SMS attempts per template and variant (and {extra_key}, e.g. country),
-- with encoding, segments, outcomes, conversions and cost. Reads attempt_facts (channel sms).
-- Output columns: template_id, variant, extra_key, messages, ucs2_messages, avg_segments,
--                 delivered, failed, converted, cost_usd
SELECT
    template_id,
    variant,
    {extra_key}                                                             AS extra_key,
    count(*)                                                                AS messages,
    count(*) FILTER (WHERE encoding = 'UCS-2')                              AS ucs2_messages,
    count(*) FILTER (WHERE encoding IS NOT NULL)                            AS known_encoding,
    avg(num_segments)                                                       AS avg_segments,
    count(*) FILTER (WHERE is_delivered)                                    AS delivered,
    count(*) FILTER (WHERE provider_status IN ('undelivered', 'failed')
                        OR (provider_status IS NULL AND NOT is_delivered))  AS failed,  -- refused at create
    count(*) FILTER (WHERE converted)                                       AS converted,
    coalesce(sum(cost_usd), 0)                                              AS cost_usd
FROM attempt_facts
WHERE {where} AND channel = 'sms'
GROUP BY ALL
ORDER BY messages DESC, template_id, variant

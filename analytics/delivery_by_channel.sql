-- delivery_by_channel: outcome counts per channel from attempt_facts (every send attempt).
-- SMS: delivered / undelivered / failed as Twilio reports them. Voice: an answered call counts
-- as delivered; busy, no-answer, failed and canceled calls count as failed. Push and email have
-- no delivery receipt: they count as pending (outcome unknown). sent = delivered + undelivered
-- + failed + pending + canceled.
-- Output columns: key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
WITH counts AS (
    SELECT
        channel                                                              AS key,
        count(*)                                                             AS sent,
        count(*) FILTER (WHERE is_delivered)                                 AS delivered,
        count(*) FILTER (WHERE provider_status = 'undelivered')              AS undelivered,
        count(*) FILTER (WHERE provider_status IN ('failed', 'busy', 'no-answer')
                            OR (channel = 'voice' AND provider_status = 'canceled')) AS failed,
        count(*) FILTER (WHERE channel <> 'voice' AND provider_status = 'canceled') AS canceled,
        coalesce(sum(cost_usd), 0)                                           AS cost_usd
    FROM attempt_facts
    WHERE {where}
    GROUP BY ALL
)
SELECT 'all' AS period, key, sent, delivered, undelivered, failed,
       sent - delivered - undelivered - failed - canceled AS pending, canceled, cost_usd
FROM counts
ORDER BY key

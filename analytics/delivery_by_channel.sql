-- delivery_by_channel: outcome counts per channel from attempt_facts (every send attempt).
-- SMS: delivered / undelivered / failed as Twilio reports them. Voice: an answered call counts
-- as delivered; busy, no-answer, failed and canceled calls count as failed. Push and email have
-- no delivery receipt: they count as pending (outcome unknown). A send Twilio refused at create time
-- (no provider status, is_delivered false: the send log's error_code) counts as failed. sent = delivered + undelivered
-- + failed + pending + canceled.
-- Output columns: key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
WITH counts AS (
    SELECT
        channel                                                              AS key,
        count(*)                                                             AS sent,
        count(*) FILTER (WHERE is_delivered)                                 AS delivered,
        count(*) FILTER (WHERE provider_status = 'undelivered')              AS undelivered,
        count(*) FILTER (WHERE provider_status IN ('failed', 'busy', 'no-answer')
                            OR (channel = 'voice' AND provider_status = 'canceled')
                            OR (provider_status IS NULL AND NOT is_delivered)) AS failed,
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

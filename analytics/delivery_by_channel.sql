-- delivery_by_channel: outcome counts per channel over every send attempt.
-- SMS: delivered / undelivered / failed as Twilio reports them. Voice: an answered call counts
-- as delivered; busy, no-answer, failed and canceled calls count as failed. Push and email have
-- no delivery receipt: they count as pending (outcome unknown). A send Twilio refused at create time
-- (no provider status, is_delivered false: the send log's error_code) counts as failed. sent = delivered + undelivered
-- + failed + pending + canceled.
-- Reads the attempts relation: a counted relation (analytics._sql.counted: _daily_attempt_rollup or attempt_facts).
-- Output columns: period, key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
WITH counts AS (
    SELECT
        channel                                                                          AS key,
        sum(n)::BIGINT                                                                   AS sent,
        coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT                          AS delivered,
        coalesce(sum(n) FILTER (WHERE provider_status = 'undelivered'), 0)::BIGINT       AS undelivered,
        coalesce(sum(n) FILTER (WHERE provider_status IN ('failed', 'busy', 'no-answer')
                                   OR (channel = 'voice' AND provider_status = 'canceled')
                                   OR (provider_status IS NULL AND NOT is_delivered)), 0)::BIGINT AS failed,
        coalesce(sum(n) FILTER (WHERE channel <> 'voice' AND provider_status = 'canceled'), 0)::BIGINT AS canceled,
        coalesce(sum(cost_usd), 0)                                                       AS cost_usd
    FROM {attempts}
    GROUP BY ALL
)
SELECT 'all' AS period, key, sent, delivered, undelivered, failed,
       sent - delivered - undelivered - failed - canceled AS pending, canceled, cost_usd
FROM counts
ORDER BY key

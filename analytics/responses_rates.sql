-- responses_rates: per {key} (an allow-listed attempt_facts expression) and optionally per UTC day of the
-- send: delivered SMS attempts, and how many of them the member answered with an opt-out keyword, HELP,
-- an opt-in keyword or free text (responses.linked_event_id: the reply's linked attempt, see its comment).
-- A reply counts for the message it answers, on that message's send day, so a rate is a share of
-- delivered messages (each counted once however many replies it got).
-- Output columns: key, day, messages, delivered, opt_outs, helps, opt_ins, others
WITH sent AS (
    SELECT event_id, {key} AS key, {day} AS day, coalesce(is_delivered, false) AS is_delivered
    FROM attempt_facts
    WHERE channel = 'sms' AND {where}
),
answered AS (
    SELECT linked_event_id,
           bool_or(classification = 'opt_out') AS opt_out,
           bool_or(classification = 'help')    AS help,
           bool_or(classification = 'opt_in')  AS opt_in,
           bool_or(classification = 'other')   AS other
    FROM responses
    WHERE linked_event_id IS NOT NULL
    GROUP BY linked_event_id
)
SELECT s.key, s.day,
       count(*)::BIGINT                                                 AS messages,
       count(*) FILTER (WHERE s.is_delivered)::BIGINT                   AS delivered,
       count(*) FILTER (WHERE s.is_delivered AND a.opt_out)::BIGINT     AS opt_outs,
       count(*) FILTER (WHERE s.is_delivered AND a.help)::BIGINT        AS helps,
       count(*) FILTER (WHERE s.is_delivered AND a.opt_in)::BIGINT      AS opt_ins,
       count(*) FILTER (WHERE s.is_delivered AND a.other)::BIGINT       AS others
FROM sent s
LEFT JOIN answered a ON a.linked_event_id = s.event_id
GROUP BY ALL
ORDER BY delivered DESC, s.key, s.day

-- Responses (issue 18): members' replies classified and linked to the message they answer.
-- Run by switchboard.ingest.responses.refresh_responses(con), a full rebuild after _attempt_facts.
-- The linking window is the variable reply_window_hours (SET VARIABLE, bound; 168 when unset).
--
-- THE KEYWORD RULE (Twilio's default handling, extended by the localised keywords an account
-- configures with Advanced Opt-Out):
--   * only the whole message counts: "STOP" opts out, "Stop texting me please" does not;
--   * case does not matter, leading and trailing whitespace and punctuation are ignored
--     ("  stop. " and "Stop!" are STOP), accents are ignored ("Arrêt" is ARRET);
--   * STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT opt out; START, YES, UNSTOP opt
--     back in; HELP and INFO ask for help (Twilio's defaults, English); BAJA, PARAR, ALTO, SAIR,
--     CANCELAR, ARRET, STOPP, ABMELDEN, ANNULLA, BERHENTI, ALTA, INICIO, VOLTAR, DEMARRER, ANMELDEN,
--     AYUDA, AJUDA, AIDE, HILFE, AIUTO are the localised ones (Spanish, Portuguese, French, German,
--     Italian, Indonesian);
--   * anything else is 'other'. The ingest keeps an inbound body only when it is one word of letters
--     (twilio_messages.reply_word), so free text is classified 'other' without ever being stored.
--
-- THE LINKING RULE: a reply answers the member's last outbound message FROM THE NUMBER THEY TEXTED
-- (reply To = message From, reply From = message To) that was sent at or before the reply, within
-- reply_window_hours, and that Twilio did not refuse (status failed, e.g. 21610: the member never
-- saw it). Through that message's send-log attempt the reply gets its template, variant, campaign,
-- purpose and member. No such message: the link columns are NULL.

CREATE OR REPLACE TABLE _reply_keywords AS
SELECT * FROM (VALUES
    ('STOP', 'opt_out', 'en', true), ('STOPALL', 'opt_out', 'en', true), ('UNSUBSCRIBE', 'opt_out', 'en', true),
    ('CANCEL', 'opt_out', 'en', true), ('END', 'opt_out', 'en', true), ('QUIT', 'opt_out', 'en', true),
    ('REVOKE', 'opt_out', 'en', true), ('OPTOUT', 'opt_out', 'en', true),
    ('START', 'opt_in', 'en', true), ('YES', 'opt_in', 'en', true), ('UNSTOP', 'opt_in', 'en', true),
    ('HELP', 'help', 'en', true), ('INFO', 'help', 'en', true),
    ('BAJA', 'opt_out', 'es', false), ('PARAR', 'opt_out', 'es pt', false), ('ALTO', 'opt_out', 'es', false),
    ('SAIR', 'opt_out', 'pt', false), ('CANCELAR', 'opt_out', 'es pt', false), ('ARRET', 'opt_out', 'fr', false),
    ('STOPP', 'opt_out', 'de', false), ('ABMELDEN', 'opt_out', 'de', false), ('ANNULLA', 'opt_out', 'it', false),
    ('BERHENTI', 'opt_out', 'id', false),
    ('ALTA', 'opt_in', 'es', false), ('INICIO', 'opt_in', 'es', false), ('VOLTAR', 'opt_in', 'pt', false),
    ('DEMARRER', 'opt_in', 'fr', false), ('ANMELDEN', 'opt_in', 'de', false),
    ('AYUDA', 'help', 'es', false), ('AJUDA', 'help', 'pt', false), ('AIDE', 'help', 'fr', false),
    ('HILFE', 'help', 'de', false), ('AIUTO', 'help', 'it', false)
) AS k(keyword, classification, languages, twilio_default);

CREATE OR REPLACE TABLE _response_facts AS
WITH inbound AS (
    SELECT sid, account_sid, messaging_service_sid, from_number AS member_number, to_number AS our_number,
           coalesce(date_sent, date_created) AS received_at, to_country AS country_iso2,
           -- the keyword rule: trim whitespace and punctuation, ignore case and accents
           nullif(upper(strip_accents(regexp_replace(reply_word, '^[\s\p{P}\p{S}]+|[\s\p{P}\p{S}]+$', '', 'g'))),
                  '') AS word
    FROM twilio_messages
    WHERE direction = 'inbound'
),
outbound AS (
    SELECT sid AS out_sid, to_number AS member_number, from_number AS our_number,
           coalesce(date_sent, date_created) AS out_at
    FROM twilio_messages
    WHERE (direction IS NULL OR direction LIKE 'outbound%') AND status <> 'failed'
      AND to_number IS NOT NULL AND from_number IS NOT NULL
      -- only members who ever replied can be linked: the ASOF join then sorts their messages, not history
      AND to_number IN (SELECT member_number FROM inbound)
),
linked AS (
    SELECT i.*, o.out_sid, o.out_at
    FROM inbound i ASOF LEFT JOIN outbound o
      ON o.member_number = i.member_number AND o.our_number = i.our_number AND o.out_at <= i.received_at
),
windowed AS (
    SELECT *, CASE WHEN out_at >= received_at - to_hours(CAST(coalesce(getvariable('reply_window_hours'), 168)
                                                               AS BIGINT))
                   THEN out_sid END AS linked_sid
    FROM linked
)
SELECT w.sid, w.account_sid, w.received_at, CAST(timezone('UTC', w.received_at) AS DATE) AS received_day,
       w.member_number, w.our_number, coalesce(w.messaging_service_sid, w.our_number) AS sender,
       w.messaging_service_sid,
       coalesce(w.country_iso2, a.country_iso2) AS country_iso2,
       coalesce(k.classification, 'other') AS classification,
       CASE WHEN k.keyword IS NOT NULL THEN w.word END AS keyword,
       k.twilio_default AS is_twilio_default_keyword,
       w.linked_sid, a.event_id AS linked_event_id,
       CASE WHEN w.linked_sid IS NOT NULL
            THEN date_diff('second', w.out_at, w.received_at) / 60.0 END AS minutes_after_message,
       a.template_id, a.experiment_id, a.variant, a.campaign_id, a.purpose, a.user_id
FROM windowed w
LEFT JOIN _reply_keywords k ON k.keyword = w.word
LEFT JOIN (SELECT * FROM _attempt_facts WHERE channel = 'sms' AND provider_sid IS NOT NULL
             AND provider_sid IN (SELECT linked_sid FROM windowed)
           QUALIFY row_number() OVER (PARTITION BY provider_sid ORDER BY sent_at DESC, event_id) = 1) a
       ON a.provider_sid = w.linked_sid;

-- The messages members answered with an opt-out keyword, with every column of message_facts (internal, not
-- part of the contract): analytics.responses.opt_out_cells counts a cell's opt-outs from these few rows instead
-- of joining every SMS of the period to the replies.
CREATE OR REPLACE TABLE _opt_out_messages AS
SELECT * FROM _message_facts
WHERE sid IN (SELECT linked_sid FROM _response_facts WHERE classification = 'opt_out' AND linked_sid IS NOT NULL);

-- Who is opted out now, per (member, our number): the last word on it was an opt-out keyword, or
-- Twilio's 21610 refusal (the member opted out before our history, or the reply was not ingested).
CREATE OR REPLACE TABLE _opted_out_members AS
WITH events AS (
    SELECT member_number, our_number, received_at AS event_at, classification AS event_kind, keyword, country_iso2, user_id
    FROM _response_facts WHERE classification IN ('opt_out', 'opt_in')
    UNION ALL
    SELECT to_number, from_number, coalesce(date_sent, date_created), 'refused_21610', NULL, to_country, NULL
    FROM twilio_messages
    WHERE error_code = 21610 AND (direction IS NULL OR direction LIKE 'outbound%') AND to_number IS NOT NULL
),
latest AS (
    SELECT *, row_number() OVER (PARTITION BY member_number, our_number ORDER BY event_at DESC, event_kind) AS rn,
           max(user_id) OVER (PARTITION BY member_number) AS any_user_id
    FROM events
)
SELECT member_number, our_number, country_iso2, coalesce(user_id, any_user_id) AS user_id, event_at AS since,
       CASE event_kind WHEN 'opt_out' THEN 'keyword' ELSE 'error_21610' END AS evidence, keyword
FROM latest
WHERE rn = 1 AND event_kind IN ('opt_out', 'refused_21610');

CREATE OR REPLACE VIEW responses AS SELECT * FROM _response_facts;
CREATE OR REPLACE VIEW opted_out_members AS SELECT * FROM _opted_out_members;

COMMENT ON VIEW responses IS 'One row per inbound SMS (a member''s reply), classified by Twilio''s keyword rule (whole message, case, surrounding whitespace, punctuation and accents ignored; Twilio''s English defaults plus localised Advanced Opt-Out keywords) and linked to the member''s last outbound message from the number they texted, within the window (default 168 h), that Twilio did not refuse.';
COMMENT ON COLUMN responses.sid IS 'Twilio SID of the inbound message.';
COMMENT ON COLUMN responses.account_sid IS 'Account or subaccount that owns the number that received it.';
COMMENT ON COLUMN responses.received_at IS 'When Twilio received the reply.';
COMMENT ON COLUMN responses.received_day IS 'UTC day of received_at.';
COMMENT ON COLUMN responses.member_number IS 'The member who replied (From), E.164. PII: mask before showing.';
COMMENT ON COLUMN responses.our_number IS 'Our number the member texted (To): the opt-out applies to it.';
COMMENT ON COLUMN responses.sender IS 'Messaging service SID when the number belongs to one, otherwise our number (as message_facts.sender).';
COMMENT ON COLUMN responses.messaging_service_sid IS 'Messaging service of that number, if any.';
COMMENT ON COLUMN responses.country_iso2 IS 'The member''s country (from their number), ISO 3166-1 alpha-2.';
COMMENT ON COLUMN responses.classification IS 'opt_out, opt_in, help or other. Keyword rule: the whole message, case-insensitive, surrounding whitespace and punctuation and accents ignored: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT opt out; START, YES, UNSTOP opt in; HELP, INFO; plus localised keywords (BAJA, PARAR, SAIR, ARRET, STOPP, AYUDA, AIDE, HILFE, …). "Stop texting me" is other.';
COMMENT ON COLUMN responses.keyword IS 'The normalised keyword (upper case, no accents or punctuation) when the reply is one; NULL for other.';
COMMENT ON COLUMN responses.is_twilio_default_keyword IS 'True for Twilio''s own English keywords, false for a localised one; NULL for other.';
COMMENT ON COLUMN responses.linked_sid IS 'SID of the outbound message the reply answers: the member''s last one from that number, sent at or before the reply, within the window (default 168 h), not failed. NULL when none.';
COMMENT ON COLUMN responses.linked_event_id IS 'Send-log event of that message (attempt_facts.event_id).';
COMMENT ON COLUMN responses.minutes_after_message IS 'Minutes from that message to the reply.';
COMMENT ON COLUMN responses.template_id IS 'Template of the linked message.';
COMMENT ON COLUMN responses.experiment_id IS 'A/B experiment of the linked message, if any.';
COMMENT ON COLUMN responses.variant IS 'A/B variant of the linked message, if any.';
COMMENT ON COLUMN responses.campaign_id IS 'Campaign of the linked message, if any.';
COMMENT ON COLUMN responses.purpose IS 'Purpose of the linked message.';
COMMENT ON COLUMN responses.user_id IS 'Member identifier, from the linked message''s send-log attempt.';
COMMENT ON VIEW opted_out_members IS 'Members opted out now, per our number: their last opt-out keyword to it was not followed by an opt-in keyword, or Twilio refused our last message to them from it with 21610.';
COMMENT ON COLUMN opted_out_members.member_number IS 'The member, E.164. PII: mask before showing.';
COMMENT ON COLUMN opted_out_members.our_number IS 'Our number they opted out of: Twilio refuses SMS from it to them (21610).';
COMMENT ON COLUMN opted_out_members.country_iso2 IS 'The member''s country, ISO 3166-1 alpha-2.';
COMMENT ON COLUMN opted_out_members.user_id IS 'Member identifier, when a linked reply names it.';
COMMENT ON COLUMN opted_out_members.since IS 'Time of the evidence: the opt-out reply, or the 21610 refusal.';
COMMENT ON COLUMN opted_out_members.evidence IS 'keyword (an opt-out reply) or error_21610 (Twilio refused a message: opted out before our data).';
COMMENT ON COLUMN opted_out_members.keyword IS 'The opt-out keyword, when the evidence is a reply.';

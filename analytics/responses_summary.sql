-- responses_summary: replies received in the period (by received_at), per classification, and how many
-- were linked to a message (the rest answer no message of ours within the window).
-- Output columns: classification, replies, linked, members
SELECT classification,
       count(*)::BIGINT                 AS replies,
       count(linked_sid)::BIGINT        AS linked,
       count(DISTINCT member_number)::BIGINT AS members
FROM responses
WHERE received_at >= $f_start AND received_at < $f_end {country}
GROUP BY classification
ORDER BY replies DESC, classification

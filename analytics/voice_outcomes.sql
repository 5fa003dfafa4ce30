-- voice_outcomes: calls and cost per ({key}, status, machine) cell: a few hundred rows, pivoted into
-- outcome columns in Python (analytics.voice._pivot). The pivot as FILTERed sums in SQL cost more to
-- plan than the whole scan (6 of 12 ms at 10M messages). The durations of completed calls are
-- voice_durations.sql.
-- Reads the calls relation: a counted relation (analytics._sql.counted: _daily_call_rollup or call_facts).
-- Output columns: key, status, is_machine, n, cost_usd
SELECT {key} AS key, status, is_machine, sum(n)::BIGINT AS n, sum(cost_usd) AS cost_usd
FROM {calls}
GROUP BY ALL

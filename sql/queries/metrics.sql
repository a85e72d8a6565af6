-- name: metrics_window_counts
-- Incidents per agency, severity and SLA state at $5, for the fiscal year [$1, $2) and the month [$3, $4) inside it.
-- Same scope as sla_figures: an incident belongs to the period in which its clock started (else its detection).
SELECT i.agency_code AS agency,
       a.sector,
       i.severity,
       certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, $5) AS state,
       count(*) AS fiscal_year,
       count(*) FILTER (WHERE coalesce(i.clock_start, i.detected_at) >= $3
                          AND coalesce(i.clock_start, i.detected_at) < $4) AS month
FROM incidents i
JOIN agencies a ON a.code = i.agency_code
WHERE coalesce(i.clock_start, i.detected_at) >= $1
  AND coalesce(i.clock_start, i.detected_at) < $2
GROUP BY 1, 2, 3, 4;

-- name: metrics_open_counts
-- Running clocks at $1 per agency, severity and state (pending, at_risk or breached), whenever they started.
SELECT i.agency_code AS agency,
       a.sector,
       i.severity,
       certmon_sla_state(false, i.clock_start, i.at_risk_at, i.due_at, NULL, $1) AS state,
       count(*) AS n
FROM incidents i
JOIN agencies a ON a.code = i.agency_code
WHERE i.stopped_at IS NULL AND NOT i.excluded AND i.clock_start IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- name: metrics_decided_counts
-- Every incident ever decided (met, or breached: stopped late or overdue) by sector and severity, at $1.
-- Decisions only accumulate, so these counts behave as counters for rate() and increase().
SELECT a.sector,
       i.severity,
       certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, $1) AS state,
       count(*) AS n
FROM incidents i
JOIN agencies a ON a.code = i.agency_code
WHERE NOT i.excluded AND i.clock_start IS NOT NULL AND (i.stopped_at IS NOT NULL OR i.due_at < $1)
GROUP BY 1, 2, 3;

-- name: metrics_delay_buckets
-- Cumulative histogram of the SLA delay of every stopped clock by severity; $1 holds the bucket bounds, +Infinity last.
SELECT i.severity,
       le,
       count(*) FILTER (WHERE i.delay_seconds <= le) AS cumulative,
       sum(i.delay_seconds) AS total_seconds
FROM incidents i
CROSS JOIN unnest($1::float8[]) AS le
WHERE i.delay_seconds IS NOT NULL AND NOT i.excluded
GROUP BY 1, 2
ORDER BY 1, 2;

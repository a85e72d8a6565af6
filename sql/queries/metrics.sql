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

-- name: metrics_objective_window_counts
-- The metrics_objective_* queries give the figures of the queries above for the objectives other than the KPI
-- (their names in the last parameter), read from incident_clocks; the KPI's stay on the incidents row.
-- metrics_window_counts per objective in $6, with sla_figures_objective's scope: an incident belongs to the period
-- in which that objective's clock started; one whose clock has not started (no row, or no start), to its detection.
-- Started clocks come through incident_clocks_objective_start; the rest are the fiscal year's incidents without a
-- started clock of the objective.
WITH scoped AS (
    SELECT c.objective, c.incident_id, c.clock_start AS starts,
           c.clock_start, c.at_risk_at, c.due_at, c.stopped_at
    FROM incident_clocks c
    WHERE c.objective = ANY($6::text[])
      AND c.clock_start >= $1
      AND c.clock_start < $2
    UNION ALL
    SELECT o.objective, i.id, i.detected_at, NULL, NULL, NULL, NULL
    FROM incidents i
    CROSS JOIN unnest($6::text[]) AS o (objective)
    WHERE i.detected_at >= $1
      AND i.detected_at < $2
      -- Implied by the line above (no milestone precedes detection); it lets incidents_clock_start find the rows.
      AND coalesce(i.clock_start, i.detected_at) >= $1
      AND NOT EXISTS (
          SELECT 1 FROM incident_clocks c
          WHERE c.incident_id = i.id AND c.objective = o.objective AND c.clock_start IS NOT NULL
      )
)
SELECT s.objective,
       i.agency_code AS agency,
       a.sector,
       i.severity,
       certmon_sla_state(i.excluded, s.clock_start, s.at_risk_at, s.due_at, s.stopped_at, $5) AS state,
       count(*) AS fiscal_year,
       count(*) FILTER (WHERE s.starts >= $3 AND s.starts < $4) AS month
FROM scoped s
JOIN incidents i ON i.id = s.incident_id
JOIN agencies a ON a.code = i.agency_code
GROUP BY 1, 2, 3, 4, 5;

-- name: metrics_objective_open_counts
-- metrics_open_counts per objective in $2: started, unstopped clocks (pending, at_risk, paused or breached) at $1.
SELECT c.objective,
       i.agency_code AS agency,
       a.sector,
       i.severity,
       certmon_sla_state(false, c.clock_start, c.at_risk_at, c.due_at, NULL, $1) AS state,
       count(*) AS n
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.objective = ANY($2::text[]) AND c.stopped_at IS NULL AND c.clock_start IS NOT NULL AND NOT i.excluded
GROUP BY 1, 2, 3, 4, 5;

-- name: metrics_objective_decided_counts
-- metrics_decided_counts per objective in $2. A paused clock has no due time, so it is not decided until it stops
-- or, resumed, runs past its due time.
SELECT c.objective,
       a.sector,
       i.severity,
       certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $1) AS state,
       count(*) AS n
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.objective = ANY($2::text[])
  AND NOT i.excluded
  AND c.clock_start IS NOT NULL
  AND (c.stopped_at IS NOT NULL OR c.due_at < $1)
GROUP BY 1, 2, 3, 4;

-- name: metrics_objective_delay_buckets
-- metrics_delay_buckets per objective in $2: delays on the objective's calendar, paused time left out. Each delay is
-- counted once, in the first bucket whose bound is at or above it, and the buckets are then summed up to each bound:
-- a pass over the clocks rather than one per bound. width_bucket counts the bounds at or below its operand, so it is
-- given the delay and the bounds negated, largest first, to count the bounds at or above the delay.
WITH bucketed AS (
    SELECT c.objective,
           i.severity,
           c.delay_seconds,
           cardinality($1::float8[]) + 1
               - width_bucket(-c.delay_seconds, ARRAY(SELECT -b FROM unnest($1::float8[]) AS b ORDER BY b DESC))
               AS bucket
    FROM incident_clocks c
    JOIN incidents i ON i.id = c.incident_id
    WHERE c.objective = ANY($2::text[]) AND c.delay_seconds IS NOT NULL AND NOT i.excluded
), per_bucket AS (
    SELECT objective, severity, bucket, count(*) AS n, sum(delay_seconds) AS total
    FROM bucketed
    GROUP BY 1, 2, 3
)
SELECT p.objective,
       p.severity,
       b.le,
       coalesce(sum(p.n) FILTER (WHERE p.bucket <= b.k), 0) AS cumulative,
       sum(p.total) AS total_seconds
FROM per_bucket p
CROSS JOIN unnest($1::float8[]) WITH ORDINALITY AS b (le, k)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

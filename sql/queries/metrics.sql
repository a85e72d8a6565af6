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


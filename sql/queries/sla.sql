-- name: sla_figures
-- One period's figures, grouped by $6 ('agency', 'sector', 'severity', 'month' or '' for none).
-- An incident belongs to the period in which its clock started; one without a clock, to its detection's.
WITH scoped AS (
    SELECT i.*, a.sector,
           certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, $3) AS state
    FROM incidents i
    JOIN agencies a ON a.code = i.agency_code
    WHERE coalesce(i.clock_start, i.detected_at) >= $1
      AND coalesce(i.clock_start, i.detected_at) < $2
      AND ($4::text IS NULL OR i.agency_code = $4)
      AND ($5::text IS NULL OR a.sector = $5)
      AND ($7::text IS NULL OR i.severity = $7)
)
SELECT CASE $6::text
           WHEN 'agency' THEN agency_code
           WHEN 'sector' THEN sector
           WHEN 'severity' THEN severity
           WHEN 'month' THEN to_char(coalesce(clock_start, detected_at) AT TIME ZONE $8, 'YYYY-MM')
           ELSE ''
       END AS key,
       count(*) AS total,
       count(*) FILTER (WHERE state = 'met') AS met,
       count(*) FILTER (WHERE state = 'breached') AS breached,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'at_risk') AS at_risk,
       count(*) FILTER (WHERE state = 'excluded') AS excluded,
       count(*) FILTER (WHERE state = 'no_clock') AS no_clock,
       count(*) FILTER (WHERE state = 'paused') AS paused,
       percentile_cont(ARRAY[0.5, 0.9, 0.95]) WITHIN GROUP (ORDER BY delay_seconds)
           FILTER (WHERE state IN ('met', 'breached') AND delay_seconds IS NOT NULL) AS delay_percentiles,
       max(delay_seconds) FILTER (WHERE state IN ('met', 'breached')) AS delay_max
FROM scoped
GROUP BY 1
ORDER BY 1;

-- name: sla_figures_objective
-- sla_figures for one objective ($9) of incident_clocks: an incident belongs to the period in which that
-- objective's clock started; one whose clock has not started (no row, or no start), to its detection's.
WITH scoped AS (
    SELECT i.agency_code, i.severity, a.sector, c.delay_seconds,
           coalesce(c.clock_start, i.detected_at) AS starts,
           certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $3) AS state
    FROM incidents i
    JOIN agencies a ON a.code = i.agency_code
    LEFT JOIN incident_clocks c ON c.incident_id = i.id AND c.objective = $9
    WHERE coalesce(c.clock_start, i.detected_at) >= $1
      AND coalesce(c.clock_start, i.detected_at) < $2
      AND ($4::text IS NULL OR i.agency_code = $4)
      AND ($5::text IS NULL OR a.sector = $5)
      AND ($7::text IS NULL OR i.severity = $7)
)
SELECT CASE $6::text
           WHEN 'agency' THEN agency_code
           WHEN 'sector' THEN sector
           WHEN 'severity' THEN severity
           WHEN 'month' THEN to_char(starts AT TIME ZONE $8, 'YYYY-MM')
           ELSE ''
       END AS key,
       count(*) AS total,
       count(*) FILTER (WHERE state = 'met') AS met,
       count(*) FILTER (WHERE state = 'breached') AS breached,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'at_risk') AS at_risk,
       count(*) FILTER (WHERE state = 'excluded') AS excluded,
       count(*) FILTER (WHERE state = 'no_clock') AS no_clock,
       count(*) FILTER (WHERE state = 'paused') AS paused,
       percentile_cont(ARRAY[0.5, 0.9, 0.95]) WITHIN GROUP (ORDER BY delay_seconds)
           FILTER (WHERE state IN ('met', 'breached') AND delay_seconds IS NOT NULL) AS delay_percentiles,
       max(delay_seconds) FILTER (WHERE state IN ('met', 'breached')) AS delay_max
FROM scoped
GROUP BY 1
ORDER BY 1;

-- name: sla_open_crossings
-- Open clocks that became at risk or breached between two sweeps.
SELECT id, agency_code, severity,
       CASE WHEN due_at <= $2 THEN 'breached' ELSE 'at_risk' END AS state
FROM incidents
WHERE stopped_at IS NULL AND NOT excluded AND clock_start IS NOT NULL
  AND ((due_at > $1 AND due_at <= $2) OR (at_risk_at > $1 AND at_risk_at <= $2))
ORDER BY id;

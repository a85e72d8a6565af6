-- name: rollup_counts
-- Rolled-up facts (migration 0012) of objective $3 and of the incidents themselves for the local months [$1, $2),
-- by key ($6 as in sla_figures), folded and not yet folded alike; filters $4 agency, $5 sector, $7 severity. When
-- the months are the fiscal year $8 (and no month key is asked), the year's rows are read instead of its months'.
WITH cells AS (
    SELECT objective, month, agency_code, severity, detected, detected_excluded, started, started_excluded, excluded,
           met, breached
    FROM sla_rollup_month
    WHERE $8::smallint IS NULL AND objective IN ('', $3) AND month >= $1 AND month < $2
    UNION ALL
    SELECT objective, NULL, agency_code, severity, detected, detected_excluded, started, started_excluded, excluded,
           met, breached
    FROM sla_rollup_year
    WHERE objective IN ('', $3) AND fiscal_year = $8
    UNION ALL
    SELECT objective, date_trunc('month', day)::date, agency_code, severity,
           CASE state WHEN 'detected' THEN n ELSE 0 END,
           CASE state WHEN 'detected_excluded' THEN n ELSE 0 END,
           CASE state WHEN 'started' THEN n ELSE 0 END,
           CASE state WHEN 'started_excluded' THEN n ELSE 0 END,
           CASE state WHEN 'excluded' THEN n ELSE 0 END,
           CASE state WHEN 'met' THEN n ELSE 0 END,
           CASE state WHEN 'breached' THEN n ELSE 0 END
    FROM sla_rollup_delta
    WHERE objective IN ('', $3) AND day >= $1 AND day < $2
)
SELECT CASE $6::text
           WHEN 'agency' THEN c.agency_code
           WHEN 'sector' THEN a.sector
           WHEN 'severity' THEN c.severity
           WHEN 'month' THEN to_char(c.month, 'YYYY-MM')
           ELSE ''
       END AS key,
       sum(c.detected)::bigint AS detected,
       sum(c.detected_excluded)::bigint AS detected_excluded,
       sum(c.started)::bigint AS started,
       sum(c.started_excluded)::bigint AS started_excluded,
       sum(c.excluded)::bigint AS excluded,
       sum(c.met)::bigint AS met,
       sum(c.breached)::bigint AS breached
FROM cells c
JOIN agencies a ON a.code = c.agency_code
WHERE ($4::text IS NULL OR c.agency_code = $4)
  AND ($5::text IS NULL OR a.sector = $5)
  AND ($7::text IS NULL OR c.severity = $7)
GROUP BY 1;

-- name: rollup_delays
-- The fine delay histogram of rollup_counts' decided clocks, by key, per month: the buckets in use in order, with
-- their counts, sums and means (rounded to the microsecond, so that equal delays read back as themselves).
WITH cells AS (
    SELECT to_char(month, 'YYYY-MM') AS month, agency_code, severity, bucket, n, delay_sum
    FROM sla_delay_month
    WHERE objective = $3 AND month >= $1 AND month < $2
    UNION ALL
    SELECT to_char(day, 'YYYY-MM'), agency_code, severity, bucket, n, delay_sum
    FROM sla_rollup_delta
    WHERE objective = $3 AND day >= $1 AND day < $2 AND bucket >= 0
), histogram AS (
    SELECT CASE $6::text
               WHEN 'agency' THEN c.agency_code
               WHEN 'sector' THEN a.sector
               WHEN 'severity' THEN c.severity
               WHEN 'month' THEN c.month
               ELSE ''
           END AS key,
           c.bucket,
           sum(c.n) AS n,
           sum(c.delay_sum) AS delay_sum
    FROM cells c
    JOIN agencies a ON a.code = c.agency_code
    WHERE ($4::text IS NULL OR c.agency_code = $4)
      AND ($5::text IS NULL OR a.sector = $5)
      AND ($7::text IS NULL OR c.severity = $7)
    GROUP BY 1, 2
    HAVING sum(c.n) > 0
)
SELECT key,
       array_agg(bucket ORDER BY bucket) AS buckets,
       array_agg(n::bigint ORDER BY bucket) AS counts,
       array_agg(delay_sum ORDER BY bucket) AS sums,
       array_agg(round((delay_sum / n)::numeric, 6)::float8 ORDER BY bucket) AS means
FROM histogram
GROUP BY key;

-- name: rollup_year_delays
-- The fiscal year $2's folded histograms of objective $1: of all agencies together ($3 true), or each agency's.
SELECT y.agency_code, a.sector, y.buckets, y.counts, y.sums, y.means
FROM sla_delay_year y
LEFT JOIN agencies a ON a.code = y.agency_code
WHERE y.objective = $1 AND y.fiscal_year = $2 AND (y.agency_code = '') = $3;

-- name: rollup_delta_delays
-- The delays of objective $1 not yet folded, for the local days [$2, $3), by agency and bucket.
SELECT d.agency_code, a.sector, d.bucket, sum(d.n)::bigint AS n, sum(d.delay_sum) AS delay_sum
FROM sla_rollup_delta d
JOIN agencies a ON a.code = d.agency_code
WHERE d.objective = $1 AND d.day >= $2 AND d.day < $3 AND d.bucket >= 0
GROUP BY 1, 2, 3
HAVING sum(d.n) <> 0;

-- name: rollup_running
-- Running clocks of objective $3 that started in [$1, $2) (timestamps), by key and state at $9, through
-- incident_clocks_running; $8 is the policy's timezone.
SELECT CASE $6::text
           WHEN 'agency' THEN i.agency_code
           WHEN 'sector' THEN a.sector
           WHEN 'severity' THEN i.severity
           WHEN 'month' THEN to_char(c.clock_start AT TIME ZONE $8, 'YYYY-MM')
           ELSE ''
       END AS key,
       certmon_sla_state(false, c.clock_start, c.at_risk_at, c.due_at, NULL, $9) AS state,
       count(*) AS n
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.objective = $3
  AND c.stopped_at IS NULL
  AND c.clock_start IS NOT NULL
  AND c.clock_start >= $1
  AND c.clock_start < $2
  AND NOT i.excluded
  AND ($4::text IS NULL OR i.agency_code = $4)
  AND ($5::text IS NULL OR a.sector = $5)
  AND ($7::text IS NULL OR i.severity = $7)
GROUP BY 1, 2;

-- name: rollup_window_counts
-- Rolled-up facts of the objectives $4 (and of the incidents themselves) in the metrics' windows, by window,
-- objective, agency and severity: the fiscal year $1 from its year rows, the local month [$2, $3) from its month
-- rows, and the deltas not yet folded in either.
WITH cells AS (
    SELECT 'fiscal_year' AS window, objective, agency_code, severity, detected, detected_excluded, started,
           started_excluded, excluded, met, breached
    FROM sla_rollup_year
    WHERE (objective = '' OR objective = ANY($4::text[])) AND fiscal_year = $1
    UNION ALL
    SELECT 'month', objective, agency_code, severity, detected, detected_excluded, started, started_excluded,
           excluded, met, breached
    FROM sla_rollup_month
    WHERE (objective = '' OR objective = ANY($4::text[])) AND month = $2
    UNION ALL
    SELECT w.window, d.objective, d.agency_code, d.severity,
           CASE d.state WHEN 'detected' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'detected_excluded' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'started' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'started_excluded' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'excluded' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'met' THEN d.n ELSE 0 END,
           CASE d.state WHEN 'breached' THEN d.n ELSE 0 END
    FROM sla_rollup_delta d
    CROSS JOIN LATERAL (
        SELECT 'fiscal_year' AS window WHERE certmon_fiscal_year(d.day) = $1
        UNION ALL
        SELECT 'month' WHERE d.day >= $2 AND d.day < $3
    ) AS w
    WHERE d.objective = '' OR d.objective = ANY($4::text[])
)
SELECT c.window, c.objective, c.agency_code AS agency, a.sector, c.severity,
       sum(c.detected)::bigint AS detected,
       sum(c.detected_excluded)::bigint AS detected_excluded,
       sum(c.started)::bigint AS started,
       sum(c.started_excluded)::bigint AS started_excluded,
       sum(c.excluded)::bigint AS excluded,
       sum(c.met)::bigint AS met,
       sum(c.breached)::bigint AS breached
FROM cells c
JOIN agencies a ON a.code = c.agency_code
GROUP BY 1, 2, 3, 4, 5;

-- name: rollup_window_running
-- Running clocks of the objectives $3 that started in [$1, $2), by objective, local month ($4 the timezone),
-- agency, severity and state at $5.
SELECT c.objective,
       date_trunc('month', c.clock_start AT TIME ZONE $4)::date AS month,
       i.agency_code AS agency,
       a.sector,
       i.severity,
       certmon_sla_state(false, c.clock_start, c.at_risk_at, c.due_at, NULL, $5) AS state,
       count(*) AS n
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.objective = ANY($3::text[])
  AND c.stopped_at IS NULL
  AND c.clock_start IS NOT NULL
  AND c.clock_start >= $1
  AND c.clock_start < $2
  AND NOT i.excluded
GROUP BY 1, 2, 3, 4, 5, 6;

-- name: rollup_decided_counts
-- Every clock ever decided, by objective in $2, sector, severity and state: stopped ones from the all-time
-- rollup, overdue running ones (breached at $1) live.
WITH cells AS (
    SELECT objective, agency_code, severity, 'met' AS state, met AS n
    FROM sla_rollup_total
    WHERE objective = ANY($2::text[])
    UNION ALL
    SELECT objective, agency_code, severity, 'breached', breached
    FROM sla_rollup_total
    WHERE objective = ANY($2::text[])
    UNION ALL
    SELECT objective, agency_code, severity, state, n
    FROM sla_rollup_delta
    WHERE objective = ANY($2::text[]) AND state IN ('met', 'breached')
    UNION ALL
    SELECT c.objective, i.agency_code, i.severity, 'breached', 1
    FROM incident_clocks c
    JOIN incidents i ON i.id = c.incident_id
    WHERE c.objective = ANY($2::text[])
      AND c.stopped_at IS NULL
      AND c.clock_start IS NOT NULL
      AND c.due_at < $1
      AND NOT i.excluded
)
SELECT c.objective, a.sector, c.severity, c.state, sum(c.n)::bigint AS n
FROM cells c
JOIN agencies a ON a.code = c.agency_code
GROUP BY 1, 2, 3, 4
HAVING sum(c.n) <> 0;

-- name: rollup_delay_buckets
-- The delay of every stopped clock by objective in $1 and severity, counted per metrics bucket (le: the index of
-- the first bound at or above the delay), with the seconds.
WITH cells AS (
    SELECT objective, severity, le, n, delay_sum FROM sla_delay_total WHERE objective = ANY($1::text[])
    UNION ALL
    SELECT objective, severity, le, n, delay_sum FROM sla_rollup_delta WHERE objective = ANY($1::text[]) AND le >= 0
)
SELECT objective, severity, le, sum(n)::bigint AS n, sum(delay_sum) AS delay_sum
FROM cells
GROUP BY 1, 2, 3;

-- name: rollup_compact
SELECT certmon_rollup_compact();

-- name: rollup_timezone
SELECT timezone FROM sla_rollup_settings;

-- name: rollup_set_timezone
UPDATE sla_rollup_settings SET timezone = $1;

-- name: rollup_rebuild
SELECT certmon_rollup_rebuild();

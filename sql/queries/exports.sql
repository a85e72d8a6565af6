-- name: export_incidents
-- The month's incidents with their SLA state at the export's evaluation instant $3, oldest id first.
-- An incident belongs to the month in which its clock started; one without a clock, to its detection's.
-- The clock is the KPI's, on the incidents row; its pauses are kept with the KPI objective's ($4) clock row.
SELECT i.id, i.agency_code, i.severity, i.category,
       i.detected_at, i.analysed_at, i.notified_at, i.acknowledged_at, i.contained_at, i.resolved_at,
       i.clock_start, i.due_at, i.stopped_at, i.delay_seconds, i.exclusion_reason,
       certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, $3) AS state,
       coalesce(k.paused_seconds, 0) AS paused_seconds, k.paused_since
FROM incidents i
LEFT JOIN incident_clocks k ON k.incident_id = i.id AND k.objective = $4
WHERE coalesce(i.clock_start, i.detected_at) >= $1
  AND coalesce(i.clock_start, i.detected_at) < $2
ORDER BY i.id;

-- name: export_incident_objectives
-- The clocks of the objectives in $4 (not the KPI's: export_incidents has it) that belong to the month [$1, $2),
-- with their state at the evaluation instant $3. As in sla_figures_objective, an incident belongs to the month in
-- which that objective's clock started; one whose clock has not started, to the month of its detection.
SELECT i.id, i.agency_code, i.severity, o.objective,
       c.clock_start, c.due_at, c.stopped_at, c.delay_seconds,
       coalesce(c.paused_seconds, 0) AS paused_seconds, c.paused_since,
       certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $3) AS state
FROM incidents i
CROSS JOIN unnest($4::text[]) AS o (objective)
LEFT JOIN incident_clocks c ON c.incident_id = i.id AND c.objective = o.objective
WHERE coalesce(c.clock_start, i.detected_at) >= $1
  AND coalesce(c.clock_start, i.detected_at) < $2
ORDER BY i.id, o.objective;

-- name: export_agencies
SELECT code, name, name_th, sector FROM agencies ORDER BY code;

-- name: export_reasons
-- Timeline events that can change exported figures, recorded after $2, of the incidents in $1.
SELECT incident_id, type, milestone, at, reason, note, actor, recorded_at
FROM incident_events
WHERE incident_id = ANY($1::bigint[])
  AND recorded_at > $2
  AND type <> 'comment'
ORDER BY incident_id, id;

-- name: export_latest
-- The newest revision of a month.
SELECT * FROM exports WHERE month = $1 ORDER BY revision DESC LIMIT 1;

-- name: export_by_revision
SELECT * FROM exports WHERE month = $1 AND revision = $2;

-- name: export_insert
INSERT INTO exports (
    month, revision, period_start, period_end, evaluated_at, content_sha256, policy_hash,
    manifest, signature, public_key, restated, generated_at, generated_by
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: export_file_insert
INSERT INTO export_files (export_id, name, media_type, size, sha256, content) VALUES ($1, $2, $3, $4, $5, $6);

-- name: export_files
SELECT name, media_type, size, sha256, content FROM export_files WHERE export_id = $1 ORDER BY name;

-- name: export_file
SELECT name, media_type, size, sha256, content FROM export_files WHERE export_id = $1 AND name = $2;

-- name: export_list
-- Every revision, newest month first, with its files' names, sizes and hashes but not their bytes.
SELECT e.month, e.revision, e.period_start, e.period_end, e.evaluated_at, e.content_sha256, e.policy_hash,
       e.restated, e.generated_at, e.generated_by,
       coalesce(
           (SELECT jsonb_agg(jsonb_build_object('name', f.name, 'media_type', f.media_type, 'size', f.size,
                                                'sha256', f.sha256) ORDER BY f.name)
            FROM export_files f WHERE f.export_id = e.id),
           '[]'::jsonb
       )::text AS files
FROM exports e
WHERE ($1::text IS NULL OR e.month = $1)
ORDER BY e.month DESC, e.revision DESC;

-- name: export_months
-- Months that have at least one revision, with the newest generation time.
SELECT month, max(revision) AS revision, max(generated_at) AS generated_at
FROM exports
GROUP BY month
ORDER BY month;

-- name: export_last_success
SELECT max(generated_at) AS generated_at, max(month) AS month FROM exports;

-- name: export_latest_within
-- The newest revision of each month inside [$1, $2), with its signed manifest and its figures.csv: what a
-- fiscal-year report names as its sources.
SELECT DISTINCT ON (e.month) e.month, e.revision, e.manifest, f.content AS figures
FROM exports e
JOIN export_files f ON f.export_id = e.id AND f.name = 'figures.csv'
WHERE e.period_start >= $1 AND e.period_end <= $2
ORDER BY e.month, e.revision DESC;

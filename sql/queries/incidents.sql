-- name: incident_insert
-- One round trip: the row and its initial timeline (detection and every milestone given at creation).
WITH ins AS (
    INSERT INTO incidents (
        agency_code, title, severity, category, tlp, description, source, external_id, body_hash,
        detected_at, analysed_at, notified_at, acknowledged_at, contained_at, resolved_at,
        clock_start, at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by
    )
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO incident_events (incident_id, type, milestone, at, actor, note)
    SELECT ins.id, m.name, m.name, m.at, ins.created_by, 'recorded at creation'
    FROM ins
    CROSS JOIN LATERAL (VALUES
        ('detected', ins.detected_at), ('analysed', ins.analysed_at), ('notified', ins.notified_at),
        ('acknowledged', ins.acknowledged_at), ('contained', ins.contained_at), ('resolved', ins.resolved_at)
    ) AS m (name, at)
    WHERE m.at IS NOT NULL
)
SELECT * FROM ins;

-- name: incident_by_key
SELECT * FROM incidents WHERE source = $1 AND external_id = $2;

-- name: incident_by_id
SELECT * FROM incidents WHERE id = $1;

-- name: incident_for_update
SELECT * FROM incidents WHERE id = $1 FOR UPDATE;

-- name: incident_events
SELECT id, type, milestone, at, note, reason, actor, recorded_at
FROM incident_events
WHERE incident_id = $1
ORDER BY id;

-- name: incident_event_insert
INSERT INTO incident_events (incident_id, type, milestone, at, note, reason, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: incident_update_state
UPDATE incidents
SET detected_at = $2, analysed_at = $3, notified_at = $4, acknowledged_at = $5, contained_at = $6,
    resolved_at = $7, excluded = $8, exclusion_reason = $9,
    clock_start = $10, at_risk_at = $11, due_at = $12, stopped_at = $13, delay_seconds = $14,
    policy_hash = $15, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: incident_page
-- Newest first, keyset-paginated on id.
SELECT *
FROM incidents
WHERE ($1::text IS NULL OR agency_code = $1)
  AND ($2::text IS NULL OR severity = $2)
  AND ($3::text IS NULL OR ($3 = 'open') = (resolved_at IS NULL))
  AND ($4::text IS NULL OR certmon_sla_state(excluded, clock_start, at_risk_at, due_at, stopped_at, $5) = $4)
  AND ($6::timestamptz IS NULL OR detected_at >= $6)
  AND ($7::timestamptz IS NULL OR detected_at < $7)
  AND ($8::bigint IS NULL OR id < $8)
ORDER BY id DESC
LIMIT $9;

-- name: incidents_stale_policy
SELECT * FROM incidents WHERE policy_hash <> $1 ORDER BY id LIMIT $2;

-- name: incident_bulk_stage
CREATE TEMPORARY TABLE incident_stage (
    line integer NOT NULL,
    agency_code text NOT NULL, title text NOT NULL, severity text NOT NULL, category text NOT NULL,
    tlp text, description text, source text NOT NULL, external_id text, body_hash text,
    detected_at timestamptz NOT NULL, analysed_at timestamptz, notified_at timestamptz,
    acknowledged_at timestamptz, contained_at timestamptz, resolved_at timestamptz,
    clock_start timestamptz, at_risk_at timestamptz, due_at timestamptz, stopped_at timestamptz,
    delay_seconds double precision, policy_hash text NOT NULL, created_by text NOT NULL
) ON COMMIT DROP;

-- name: incident_bulk_insert
-- Rows whose (source, external_id) already exists are skipped here and sorted into duplicates and
-- conflicts by incident_bulk_leftovers; the first of two equal keys within one body wins.
WITH ins AS (
    INSERT INTO incidents (
        agency_code, title, severity, category, tlp, description, source, external_id, body_hash,
        detected_at, analysed_at, notified_at, acknowledged_at, contained_at, resolved_at,
        clock_start, at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by
    )
    SELECT agency_code, title, severity, category, tlp, description, source, external_id, body_hash,
           detected_at, analysed_at, notified_at, acknowledged_at, contained_at, resolved_at,
           clock_start, at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by
    FROM incident_stage
    ORDER BY line
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id, source, external_id, created_by, detected_at, analysed_at, notified_at,
              acknowledged_at, contained_at, resolved_at
), ev AS (
    INSERT INTO incident_events (incident_id, type, milestone, at, actor, note)
    SELECT ins.id, m.name, m.name, m.at, ins.created_by, 'recorded at creation'
    FROM ins
    CROSS JOIN LATERAL (VALUES
        ('detected', ins.detected_at), ('analysed', ins.analysed_at), ('notified', ins.notified_at),
        ('acknowledged', ins.acknowledged_at), ('contained', ins.contained_at), ('resolved', ins.resolved_at)
    ) AS m (name, at)
    WHERE m.at IS NOT NULL
)
SELECT source, external_id FROM ins WHERE external_id IS NOT NULL;

-- name: incident_bulk_keys
-- Each staged keyed row with the body hash of the incident that holds its key now.
SELECT s.line, s.source, s.external_id, s.body_hash AS staged_hash, i.body_hash AS stored_hash
FROM incident_stage s
JOIN incidents i ON i.source = s.source AND i.external_id = s.external_id
WHERE s.external_id IS NOT NULL
ORDER BY s.line;

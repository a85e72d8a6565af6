-- name: incident_insert
-- The incident and its objectives' clocks ($23-$30, one array per column of incident_clocks) in one statement.
WITH incident AS (
    INSERT INTO incidents (
        agency_code, title, severity, category, tlp, description, source, external_id, body_hash,
        detected_at, analysed_at, notified_at, acknowledged_at, contained_at, resolved_at,
        clock_start, at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by
    )
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING *
), clocks AS (
    INSERT INTO incident_clocks (
        incident_id, objective, clock_start, at_risk_at, due_at, stopped_at, delay_seconds, paused_seconds,
        paused_since
    )
    SELECT incident.id, c.*
    FROM incident,
         unnest($23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[], $27::timestamptz[],
                $28::float8[], $29::float8[], $30::timestamptz[]) AS c
)
SELECT * FROM incident;

-- name: incident_by_key
SELECT * FROM incidents WHERE source = $1 AND external_id = $2;

-- name: incident_by_id
SELECT * FROM incidents WHERE id = $1;

-- name: incident_for_update
SELECT * FROM incidents WHERE id = $1 FOR UPDATE;

-- name: incident_events
SELECT id, type, milestone, at, previous_at, note, reason, actor, recorded_at, pause_id, detail
FROM incident_events
WHERE incident_id = $1
ORDER BY id;

-- name: incident_event_insert
INSERT INTO incident_events (incident_id, type, milestone, at, previous_at, note, reason, actor, pause_id, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: incident_clocks_for
SELECT incident_id, objective, clock_start, at_risk_at, due_at, stopped_at, delay_seconds, paused_seconds,
       paused_since
FROM incident_clocks
WHERE incident_id = ANY($1::bigint[]);

-- name: incident_clocks_delete
DELETE FROM incident_clocks WHERE incident_id = ANY($1::bigint[]);

-- name: incident_clocks_insert
INSERT INTO incident_clocks (
    incident_id, objective, clock_start, at_risk_at, due_at, stopped_at, delay_seconds, paused_seconds, paused_since
)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
                     $6::timestamptz[], $7::float8[], $8::float8[], $9::timestamptz[]);

-- name: incident_pauses_for
SELECT id, incident_id, paused_at, resumed_at, reason
FROM incident_pauses
WHERE incident_id = ANY($1::bigint[])
ORDER BY incident_id, paused_at, id;

-- name: incident_pause_insert
INSERT INTO incident_pauses (incident_id, paused_at, reason) VALUES ($1, $2, $3) RETURNING id;

-- name: incident_pause_update
UPDATE incident_pauses SET paused_at = $2, resumed_at = $3 WHERE id = $1;

-- name: incident_ids_reserve
-- Ids for a bulk COPY, drawn before it so that the clock rows copied beside can name their incidents.
SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1);

-- name: incident_update_state
UPDATE incidents
SET detected_at = $2, analysed_at = $3, notified_at = $4, acknowledged_at = $5, contained_at = $6,
    resolved_at = $7, excluded = $8, exclusion_reason = $9,
    clock_start = $10, at_risk_at = $11, due_at = $12, stopped_at = $13, delay_seconds = $14,
    policy_hash = $15, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: incidents_recompute_update
-- A recompute batch's KPI clocks, one array per column, in one statement (one audit entry for the batch): only the
-- clocks and the fingerprint change, the rows being locked since they were read.
UPDATE incidents AS i
SET clock_start = u.clock_start, at_risk_at = u.at_risk_at, due_at = u.due_at, stopped_at = u.stopped_at,
    delay_seconds = u.delay_seconds, policy_hash = $7, updated_at = now()
FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
            $6::float8[]) AS u (id, clock_start, at_risk_at, due_at, stopped_at, delay_seconds)
WHERE i.id = u.id;

-- name: incident_page
-- Newest first, keyset-paginated on id. $4 is a list of states (any of them), $10 a text searched in the title
-- and the external id.
SELECT *
FROM incidents
WHERE ($1::text IS NULL OR agency_code = $1)
  AND ($2::text IS NULL OR severity = $2)
  AND ($3::text IS NULL OR ($3 = 'open') = (resolved_at IS NULL))
  AND ($4::text[] IS NULL OR certmon_sla_state(excluded, clock_start, at_risk_at, due_at, stopped_at, $5) = ANY($4))
  AND ($6::timestamptz IS NULL OR detected_at >= $6)
  AND ($7::timestamptz IS NULL OR detected_at < $7)
  AND ($8::bigint IS NULL OR id < $8)
  -- strpos, not LIKE: what is typed is text to find, never a pattern
  AND ($10::text IS NULL OR strpos(lower(title), lower($10)) > 0
       OR strpos(lower(coalesce(external_id, '')), lower($10)) > 0)
ORDER BY id DESC
LIMIT $9;

-- name: incident_page_by_time
-- The same filters, sorted by a time ($11: 'due_at', 'detected_at', or 'id' for none; $12: true for ascending),
-- ties by id.
-- Incidents without that time (no clock yet) come last either way; the keyset ($13, $8) is the last row's
-- (time, id), with NULL times written as +infinity ascending and -infinity descending so that rows compare.
WITH filtered AS (
    SELECT *,
           CASE $11::text WHEN 'due_at' THEN due_at WHEN 'detected_at' THEN detected_at
                          ELSE 'epoch'::timestamptz END AS sort_time
    FROM incidents
    WHERE ($1::text IS NULL OR agency_code = $1)
      AND ($2::text IS NULL OR severity = $2)
      AND ($3::text IS NULL OR ($3 = 'open') = (resolved_at IS NULL))
      AND ($4::text[] IS NULL
           OR certmon_sla_state(excluded, clock_start, at_risk_at, due_at, stopped_at, $5) = ANY($4))
      AND ($6::timestamptz IS NULL OR detected_at >= $6)
      AND ($7::timestamptz IS NULL OR detected_at < $7)
      -- strpos, not LIKE: what is typed is text to find, never a pattern
      AND ($10::text IS NULL OR strpos(lower(title), lower($10)) > 0
           OR strpos(lower(coalesce(external_id, '')), lower($10)) > 0)
), keyed AS (
    SELECT *, coalesce(sort_time, CASE WHEN $12::boolean THEN 'infinity'::timestamptz
                                       ELSE '-infinity'::timestamptz END) AS sort_key
    FROM filtered
)
SELECT *
FROM keyed
WHERE $8::bigint IS NULL
   OR ($12 AND (sort_key, id) > ($13::timestamptz, $8))
   OR (NOT $12 AND (sort_key, id) < ($13::timestamptz, $8))
ORDER BY CASE WHEN $12 THEN sort_key END ASC, CASE WHEN $12 THEN id END ASC,
         CASE WHEN NOT $12 THEN sort_key END DESC, CASE WHEN NOT $12 THEN id END DESC
LIMIT $9;

-- name: incidents_stale_probe
-- Whether any incident's clocks are stored under another policy than $1: the nearest fingerprint below it and the
-- nearest above, two probes of incidents_policy whatever the table's size and whatever its statistics say.
SELECT (SELECT max(policy_hash) FROM incidents WHERE policy_hash < $1) IS NOT NULL
    OR (SELECT min(policy_hash) FROM incidents WHERE policy_hash > $1) IS NOT NULL;

-- name: incidents_stale_count
-- Two range scans of incidents_policy, either side of $1: the incidents in force are never read.
SELECT (SELECT count(*) FROM incidents WHERE policy_hash < $1)
     + (SELECT count(*) FROM incidents WHERE policy_hash > $1);

-- name: incidents_stale_below
-- The next batch of stale incidents whose fingerprint sorts below $1, after ($2, $3) in (policy_hash, id) order: a
-- range scan of incidents_policy that reads the batch and no more. Rows another transaction holds (a replica's
-- batch, an event being recorded) are left for a later pass; one that a replica recomputed meanwhile no longer
-- matches when it is locked.
SELECT * FROM incidents
WHERE policy_hash < $1 AND (policy_hash, id) > ($2, $3)
ORDER BY policy_hash, id
LIMIT $4
FOR UPDATE SKIP LOCKED;

-- name: incidents_stale_above
-- The same for the fingerprints that sort above $1.
SELECT * FROM incidents
WHERE policy_hash > $1 AND (policy_hash, id) > ($2, $3)
ORDER BY policy_hash, id
LIMIT $4
FOR UPDATE SKIP LOCKED;

-- name: incident_keys_taken
-- One probe of the unique key per asked key. As a plain join the planner prefers hashing a sequential scan of the
-- whole table once it has a few thousand rows, which makes every bulk chunk cost time in proportion to the table;
-- LIMIT 1 (harmless on a unique key) keeps each lookup an index probe.
SELECT i.source, i.external_id, i.body_hash
FROM unnest($1::text[], $2::text[]) AS k (source, external_id)
CROSS JOIN LATERAL (
    SELECT source, external_id, body_hash FROM incidents
    WHERE source = k.source AND external_id = k.external_id
    LIMIT 1
) AS i;

-- name: incidents_notified_not_contained
SELECT id, notified_at FROM incidents
WHERE notified_at > $1 AND contained_at IS NULL AND NOT excluded
ORDER BY id;

-- name: incidents_mark_history
-- Incidents a history import just opened: their clocks were closed at $2 (closed_by_history), and any later
-- recomputation closes them the same way.
UPDATE incidents SET history_closed_at = $2 WHERE id = ANY($1::bigint[]) AND history_closed_at IS NULL;

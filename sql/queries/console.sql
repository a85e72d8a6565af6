-- name: console_queue
-- Open clocks of incidents still worked on, soonest due first; a paused clock has no due time and comes last. The
-- predicates are those of incident_clocks_open and incidents_worked_on, so either index can lead (migration 0006).
-- $1 is now; $2-$6 filter (NULL: any); $7 is the SLA states asked for.
SELECT c.incident_id, c.objective, c.clock_start, c.at_risk_at, c.due_at, c.paused_since, c.paused_seconds,
       i.title, i.external_id, i.severity, i.category, i.agency_code, i.detected_at,
       a.name AS agency_name, a.name_th AS agency_name_th, a.sector,
       certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $1) AS state
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.stopped_at IS NULL
  AND c.clock_start IS NOT NULL
  AND NOT i.excluded
  AND i.resolved_at IS NULL
  AND ($2::text IS NULL OR i.agency_code = $2)
  AND ($3::text IS NULL OR a.sector = $3)
  AND ($4::text IS NULL OR i.severity = $4)
  AND ($5::text IS NULL OR c.objective = $5)
  -- strpos, not LIKE: what an analyst types is text to find, never a pattern
  AND ($6::text IS NULL OR strpos(lower(i.title), lower($6)) > 0
       OR strpos(lower(coalesce(i.external_id, '')), lower($6)) > 0)
  AND ($7::text[] IS NULL
       OR certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $1) = ANY($7::text[]))
ORDER BY c.due_at NULLS LAST, c.incident_id, c.objective
LIMIT $8;

-- name: console_queue_counts
-- How many open clocks of console_queue are in each state, whatever the state filter.
SELECT certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $1) AS state,
       count(*) AS clocks
FROM incident_clocks c
JOIN incidents i ON i.id = c.incident_id
JOIN agencies a ON a.code = i.agency_code
WHERE c.stopped_at IS NULL
  AND c.clock_start IS NOT NULL
  AND NOT i.excluded
  AND i.resolved_at IS NULL
  AND ($2::text IS NULL OR i.agency_code = $2)
  AND ($3::text IS NULL OR a.sector = $3)
  AND ($4::text IS NULL OR i.severity = $4)
  AND ($5::text IS NULL OR c.objective = $5)
  AND ($6::text IS NULL OR strpos(lower(i.title), lower($6)) > 0
       OR strpos(lower(coalesce(i.external_id, '')), lower($6)) > 0)
GROUP BY 1;

-- name: console_agencies
SELECT code, name, name_th, sector, cii FROM agencies ORDER BY code;

-- name: console_agency
-- An agency with whether certmon can reach it by e-mail and by webhook (the secret stays in the table).
SELECT code, name, name_th, sector, cii,
       jsonb_array_length(contacts) AS contact_count,
       webhook_url IS NOT NULL AS has_webhook
FROM agencies
WHERE code = $1;

-- name: console_incident_events
SELECT id, type, milestone, at, previous_at, note, reason, actor, recorded_at, pause_id, detail
FROM incident_events
WHERE incident_id = $1
ORDER BY id;

-- name: console_incident_clocks
SELECT incident_id, objective, clock_start, at_risk_at, due_at, stopped_at, delay_seconds, paused_seconds,
       paused_since
FROM incident_clocks
WHERE incident_id = $1;

-- name: console_open_pause
SELECT id, paused_at, reason FROM incident_pauses WHERE incident_id = $1 AND resumed_at IS NULL;

-- name: console_notifications
SELECT id, channel, status, recipients, response, actor, started_at, finished_at
FROM notifications
WHERE incident_id = $1
ORDER BY id;

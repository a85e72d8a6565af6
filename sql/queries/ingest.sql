-- name: agency_networks_all
SELECT agency_code, network::text AS network FROM agency_networks;

-- name: ingest_lock
-- Batches of one source are written one at a time, so two imports of one file cannot both open a group.
SELECT pg_advisory_xact_lock(hashtextextended('certmon.ingest:' || $1, 0));

-- name: ingested_alerts_new
-- The keys among $2 not taken in before; they are recorded as taken in by the same statement.
INSERT INTO ingested_alerts (source, alert_key)
SELECT $1, k FROM unnest($2::bytea[]) AS k
ON CONFLICT DO NOTHING
RETURNING alert_key;

-- name: ingested_alerts_forget
-- Keys lead with the alert's time, big-endian: every key below $2 belongs to an alert before that instant. Naming
-- the sources lets the primary key (source, alert_key) find the old keys as one range per source, with no scan.
DELETE FROM ingested_alerts WHERE source = ANY($1::text[]) AND alert_key < $2;

-- name: unmatched_alerts_forget
-- The same keys, the same range: an unmatched alert that old could not be imported again anyway.
DELETE FROM unmatched_alerts WHERE source = ANY($1::text[]) AND alert_key < $2;

-- name: alert_groups_near
-- Stored groups that alerts of a key seen between since and until may join: those opened within a window before.
SELECT g.incident_id, g.agency_code, g.signature, g.first_at, g.last_at, i.external_id
FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS k (agency_code, signature, since, until)
JOIN alert_groups g
  ON g.source = $1 AND g.agency_code = k.agency_code AND g.signature = k.signature
 AND g.first_at > k.since - $6::interval AND g.first_at <= k.until
JOIN incidents i ON i.id = g.incident_id;

-- name: incident_ids_by_keys
SELECT id, external_id FROM incidents WHERE source = $1 AND external_id = ANY($2::text[]);

-- name: alert_groups_upsert
INSERT INTO alert_groups (incident_id, source, agency_code, signature, first_at, last_at)
SELECT k.incident_id, $1, k.agency_code, k.signature, k.first_at, k.last_at
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
     AS k (incident_id, agency_code, signature, first_at, last_at)
ON CONFLICT (incident_id) DO UPDATE SET last_at = greatest(alert_groups.last_at, excluded.last_at);

-- name: incident_alerts_add
UPDATE incidents i
SET alert_count = i.alert_count + d.added, updated_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS d (id, added)
WHERE i.id = d.id
RETURNING i.id, i.agency_code, i.external_id, i.detected_at, i.alert_count;

-- name: incident_alert_counts
SELECT id, agency_code, external_id, detected_at, alert_count FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id;

-- name: unmatched_insert
INSERT INTO unmatched_alerts (source, alert_key, at, addresses, signature, reason, sample)
SELECT $1, k.alert_key, k.at, string_to_array(k.addresses, ' '), k.signature, k.reason, k.sample::jsonb
FROM unnest($2::bytea[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])
     AS k (alert_key, at, addresses, signature, reason, sample)
ON CONFLICT DO NOTHING;

-- name: unmatched_summary
SELECT source, reason, count(*) AS alerts, min(at) AS first_at, max(at) AS last_at
FROM unmatched_alerts
WHERE ($1::text IS NULL OR source = $1)
GROUP BY source, reason
ORDER BY source, reason;

-- name: unmatched_samples
SELECT source, reason, at, addresses, signature, sample, recorded_at
FROM unmatched_alerts
WHERE ($1::text IS NULL OR source = $1)
ORDER BY recorded_at DESC, at DESC
LIMIT $2;

-- name: ack_link_insert
INSERT INTO ack_links (token_hash, incident_id, agency_code, notification_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: ack_link_find
SELECT l.incident_id, l.agency_code, l.notification_id, l.created_at, l.expires_at, l.used_at,
       i.title, i.acknowledged_at, a.name AS agency_name, a.name_th AS agency_name_th
FROM ack_links l
JOIN incidents i ON i.id = l.incident_id
JOIN agencies a ON a.code = l.agency_code
WHERE l.token_hash = $1;

-- name: ack_link_use
-- A link is used once and only before it expires: a second use, or a late one, updates nothing.
UPDATE ack_links
SET used_at = $2
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
RETURNING incident_id, agency_code, notification_id;

-- name: notification_subject
-- What a notice says of an incident and whom it goes to; the webhook's secret is read here only, to sign with.
SELECT i.id, i.agency_code, i.title, i.severity, i.category, i.tlp, i.description, i.detected_at, i.notified_at,
       i.history_closed_at, a.name AS agency_name, a.name_th AS agency_name_th, a.contacts, a.webhook_url, a.webhook_secret
FROM incidents i
JOIN agencies a ON a.code = i.agency_code
WHERE i.id = $1;

-- name: notification_incident_lock
-- Claims and outcomes of an incident's sends take this lock first: a claim then sees either the send in progress
-- or its outcome, never the moment between, and the two cannot wait on each other.
SELECT notified_at FROM incidents WHERE id = $1 FOR UPDATE;

-- name: notification_last_sent
SELECT n.id, n.incident_id, n.channel, n.status, n.recipients, n.message_id, n.response, n.actor, n.started_at,
       n.finished_at, l.expires_at AS ack_expires_at
FROM notifications n
LEFT JOIN ack_links l ON l.notification_id = n.id
WHERE n.incident_id = $1 AND n.channel = $2 AND n.status = 'sent'
ORDER BY n.id DESC
LIMIT 1;

-- name: notification_abandon
-- A send still in progress since before $3 belongs to a process that stopped mid-send: it is closed as failed.
UPDATE notifications
SET status = 'failed', finished_at = $4, response = $5
WHERE incident_id = $1 AND channel = $2 AND status = 'sending' AND started_at < $3
RETURNING id;

-- name: notification_claim
-- The partial unique index notifications_one_sending refuses a second send in progress on the same channel.
INSERT INTO notifications (incident_id, channel, status, recipients, actor, started_at)
VALUES ($1, $2, 'sending', $3, $4, $5)
RETURNING id;

-- name: notification_finish
UPDATE notifications
SET status = $2, message_id = $3, response = $4, finished_at = $5
WHERE id = $1;

-- name: notification_by_id
SELECT n.id, n.incident_id, n.channel, n.status, n.recipients, n.message_id, n.response, n.actor, n.started_at,
       n.finished_at, l.expires_at AS ack_expires_at
FROM notifications n
LEFT JOIN ack_links l ON l.notification_id = n.id
WHERE n.id = $1;

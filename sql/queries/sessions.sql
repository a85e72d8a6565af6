-- name: session_token
-- The live API token a sign-in names.
SELECT id, name, role, agency_code
FROM api_tokens
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: session_insert
INSERT INTO console_sessions (id_hash, token_id, created_at, seen_at, expires_at)
VALUES ($1, $2, $3, $3, $4);

-- name: session_resolve
-- A live session at $2 (not past its absolute end, used within the last $3 seconds, its token not revoked); with
-- $4 its use is recorded, which the queue's background refresh does not do: only a person's request keeps a
-- session from going idle.
UPDATE console_sessions s
SET seen_at = CASE WHEN $4::boolean THEN greatest(s.seen_at, $2) ELSE s.seen_at END
FROM api_tokens t
WHERE s.id_hash = $1
  AND t.id = s.token_id
  AND t.revoked_at IS NULL
  AND s.expires_at > $2
  AND s.seen_at > $2 - make_interval(secs => $3)
RETURNING t.name, t.role, t.agency_code, s.expires_at;

-- name: session_delete
DELETE FROM console_sessions WHERE id_hash = $1;

-- name: sessions_ended_delete
-- Sessions that can no longer be used: past their end, idle too long, or opened with a revoked token.
DELETE FROM console_sessions s
USING api_tokens t
WHERE t.id = s.token_id
  AND (s.expires_at <= $1 OR s.seen_at <= $1 - make_interval(secs => $2) OR t.revoked_at IS NOT NULL);

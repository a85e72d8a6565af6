-- name: idempotency_key_lock
-- Held by the request working under a key until it has stored its answer; a duplicate that finds it taken is told to
-- come back. A session lock, not a transaction's: a notification's send spans several transactions.
SELECT pg_try_advisory_lock(hashtextextended('certmon.idempotency:' || $1 || E'\x1f' || $2 || E'\x1f' || $3, 0));

-- name: idempotency_key_unlock
SELECT pg_advisory_unlock(hashtextextended('certmon.idempotency:' || $1 || E'\x1f' || $2 || E'\x1f' || $3, 0));

-- name: idempotency_key_get
-- A key older than the retention counts as unused even before the nightly job removes it.
SELECT request_hash, status, content_type, body
FROM idempotency_keys
WHERE principal = $1 AND route = $2 AND key = $3 AND created_at >= $4;

-- name: idempotency_key_insert
-- An expired row still present under the key gives way to the new answer.
INSERT INTO idempotency_keys (principal, route, key, request_hash, status, content_type, body, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (principal, route, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, content_type = EXCLUDED.content_type,
    body = EXCLUDED.body, created_at = EXCLUDED.created_at;

-- name: idempotency_keys_forget
DELETE FROM idempotency_keys WHERE created_at < $1;

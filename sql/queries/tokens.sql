-- name: token_insert
INSERT INTO api_tokens (name, role, agency_code, token_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: token_by_hash
SELECT name, role, agency_code
FROM api_tokens
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: token_list
SELECT name, role, agency_code, created_at, revoked_at
FROM api_tokens
ORDER BY created_at, name;

-- name: token_revoke
UPDATE api_tokens SET revoked_at = now()
WHERE name = $1 AND revoked_at IS NULL
RETURNING name;

-- name: token_revoke_prefixed
UPDATE api_tokens SET revoked_at = now()
WHERE starts_with(name, $1) AND revoked_at IS NULL
RETURNING name;

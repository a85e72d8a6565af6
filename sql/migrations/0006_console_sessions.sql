-- Signed-in sessions of the analyst console. Only the SHA-256 of the random id in the browser's cookie is kept. A
-- session belongs to the API token it was opened with: revoking the token ends its sessions at their next request.
-- The idle limit is a setting, applied to seen_at when a session is used; expires_at is the absolute end, fixed at
-- sign-in.
CREATE TABLE console_sessions (
    id_hash    bytea PRIMARY KEY,
    token_id   bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- The console's queue reads the open clocks (incident_clocks_open) of incidents still worked on: neither resolved nor
-- excluded. Those are few beside the history, but the open clocks are not: a resolution leaves open every clock it
-- does not stop (an acknowledgement never recorded, say). With this index the queue finds the incidents still worked
-- on without reading the history, and the planner takes whichever of the two indexes is the smaller way in.
CREATE INDEX incidents_worked_on ON incidents (id) WHERE resolved_at IS NULL AND NOT excluded;

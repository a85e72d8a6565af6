-- Idempotency-Key (the IETF httpapi draft header) on POSTs that are not idempotent by their body alone: the first
-- answer to a key is kept, per caller and route, so that a retry of a request whose answer was lost gets that answer
-- again instead of a second effect or a conflict. request_hash is the SHA-256 of the path and the body: the same key
-- with another request is refused. Rows older than CERTMON_IDEMPOTENCY_KEY_HOURS are forgotten by a nightly job.
CREATE TABLE idempotency_keys (
    principal    text NOT NULL,
    route        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer NOT NULL,
    content_type text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (principal, route, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

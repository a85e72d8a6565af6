-- Agencies, their networks, API tokens, incidents and the append-only incident timeline.

CREATE TABLE agencies (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name        text NOT NULL,
    name_th     text NOT NULL DEFAULT '',
    sector      text NOT NULL,
    cii         boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per network so that an address lookup can use a GiST index and the longest prefix can win.
CREATE TABLE agency_networks (
    agency_code text NOT NULL REFERENCES agencies (code) ON DELETE CASCADE,
    network     cidr NOT NULL,
    PRIMARY KEY (agency_code, network)
);
CREATE INDEX agency_networks_network_gist ON agency_networks USING gist (network inet_ops);

CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor', 'agency')),
    agency_code text REFERENCES agencies (code),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((role = 'agency') = (agency_code IS NOT NULL))
);

-- Milestone columns and the clock columns are derived from incident_events and the SLA policy in force;
-- they are kept on the row so that period figures, filters and metrics are single indexed queries.
CREATE TABLE incidents (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_code      text NOT NULL REFERENCES agencies (code),
    title            text NOT NULL,
    severity         text NOT NULL,
    category         text NOT NULL,
    tlp              text,
    description      text,
    source           text NOT NULL DEFAULT 'api',
    external_id      text,
    body_hash        text,
    detected_at      timestamptz NOT NULL,
    analysed_at      timestamptz,
    notified_at      timestamptz,
    acknowledged_at  timestamptz,
    contained_at     timestamptz,
    resolved_at      timestamptz,
    excluded         boolean NOT NULL DEFAULT false,
    exclusion_reason text,
    clock_start      timestamptz,
    at_risk_at       timestamptz,
    due_at           timestamptz,
    stopped_at       timestamptz,
    delay_seconds    double precision,
    policy_hash      text NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_id)
);
CREATE INDEX incidents_clock_start ON incidents (coalesce(clock_start, detected_at));
CREATE INDEX incidents_agency_clock ON incidents (agency_code, coalesce(clock_start, detected_at));
CREATE INDEX incidents_open ON incidents (due_at) WHERE stopped_at IS NULL AND NOT excluded;

-- Everything that happened to an incident after it was recorded. What the sender said at creation is the
-- incident row itself (created_by, created_at and its milestones as first given); a correction keeps the
-- value it replaced in previous_at, so the creation values can always be shown even after corrections.
CREATE TABLE incident_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    type        text NOT NULL,
    milestone   text,
    at          timestamptz NOT NULL,
    previous_at timestamptz,
    note        text,
    reason      text,
    actor       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

-- The policy fingerprint the clock columns were computed with; a change of policy triggers a recompute.
CREATE TABLE service_state (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- The one definition of an incident's SLA state at a given instant; certmon/sla.py state_at() mirrors it.
CREATE FUNCTION certmon_sla_state(
    excluded boolean, clock_start timestamptz, at_risk_at timestamptz, due_at timestamptz,
    stopped_at timestamptz, at timestamptz
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN excluded THEN 'excluded'
        WHEN clock_start IS NULL THEN 'no_clock'
        WHEN stopped_at IS NOT NULL THEN CASE WHEN stopped_at <= due_at THEN 'met' ELSE 'breached' END
        WHEN at > due_at THEN 'breached'
        WHEN at >= at_risk_at THEN 'at_risk'
        ELSE 'pending'
    END
$$;

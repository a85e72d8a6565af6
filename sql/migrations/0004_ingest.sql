-- Alerts from sensors and monitoring: how many alerts each incident stands for, the grouping key of alert
-- incidents, the alerts already taken in (so that re-importing a file adds nothing), and the alerts that no
-- agency network matched (kept, so that they are reported and can be imported again once networks are added).

ALTER TABLE incidents ADD COLUMN alert_count integer NOT NULL DEFAULT 1 CHECK (alert_count >= 1);

CREATE TABLE alert_groups (
    incident_id bigint PRIMARY KEY REFERENCES incidents (id),
    source      text NOT NULL,
    agency_code text NOT NULL,  -- the incident's agency; its foreign key already guards it
    signature   text NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL
);
CREATE INDEX alert_groups_key ON alert_groups (source, agency_code, signature, first_at);

-- A 16-byte digest of each alert's identifying fields; the primary key is what makes imports idempotent.
CREATE TABLE ingested_alerts (
    source    text NOT NULL,
    alert_key bytea NOT NULL,
    PRIMARY KEY (source, alert_key)
);

CREATE TABLE unmatched_alerts (
    source      text NOT NULL,
    alert_key   bytea NOT NULL,
    at          timestamptz NOT NULL,
    addresses   text[] NOT NULL,
    signature   text NOT NULL,
    reason      text NOT NULL,
    sample      jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, alert_key)
);
CREATE INDEX unmatched_alerts_recorded ON unmatched_alerts (recorded_at DESC);

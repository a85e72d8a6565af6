-- Monthly SLA exports: one row per month and revision, never updated; the files' bytes live beside it.

CREATE TABLE exports (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month             text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    revision          integer NOT NULL CHECK (revision >= 1),
    period_start      timestamptz NOT NULL,
    period_end        timestamptz NOT NULL,
    evaluated_at      timestamptz NOT NULL,
    content_sha256    text NOT NULL,  -- of the month's data without the restatement: equal data, equal hash
    policy_hash       text NOT NULL,
    manifest          bytea NOT NULL,  -- the exact bytes that were signed
    signature         bytea NOT NULL,
    public_key        text NOT NULL,
    restated          boolean NOT NULL DEFAULT false,
    generated_at      timestamptz NOT NULL,
    generated_by      text NOT NULL,
    -- With the advisory lock this makes a month's revision exist once, however many replicas run the job.
    UNIQUE (month, revision)
);

CREATE TABLE export_files (
    export_id  bigint NOT NULL REFERENCES exports (id),
    name       text NOT NULL,
    media_type text NOT NULL,
    size       integer NOT NULL,
    sha256     text NOT NULL,
    content    bytea NOT NULL,
    PRIMARY KEY (export_id, name)
);

-- Earlier revisions are evidence: refuse to change or delete them.
CREATE FUNCTION certmon_exports_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exports are immutable: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER exports_immutable BEFORE UPDATE OR DELETE ON exports
    FOR EACH ROW EXECUTE FUNCTION certmon_exports_immutable();
CREATE TRIGGER export_files_immutable BEFORE UPDATE OR DELETE ON export_files
    FOR EACH ROW EXECUTE FUNCTION certmon_exports_immutable();

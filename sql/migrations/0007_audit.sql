-- The audit trail: who wrote what, when, with the rows before and after, kept append-only by the database itself and
-- sealed into a hash chain (docs/audit.md).

-- One entry per statement and table, written by the statement triggers below: a COPY of 10,000 incidents is one entry
-- (its rows in ``after``), not 10,000. ``xid`` is the writer's transaction: the sealer takes an entry into the chain
-- only once every transaction with a smaller id has ended, so entries are written concurrently and without order, and
-- sealed in one. before and after are JSON arrays of the rows (NULL where the statement has none): json, not jsonb,
-- because json_agg of a bulk upload's 10,000 rows costs a quarter of building the same jsonb, and text is what the
-- chain hashes anyway.
CREATE TABLE audit_entries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at         timestamptz NOT NULL DEFAULT statement_timestamp(),
    actor      text NOT NULL,
    actor_role text,
    action     text NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'truncate')),
    table_name text NOT NULL,
    kind       text NOT NULL,
    entity_ids text[] NOT NULL,
    row_count  integer NOT NULL,
    before     json,
    after      json
);
-- lz4 compresses a bulk upload's rows faster than the default, where the server has it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE audit_entries ALTER COLUMN before SET COMPRESSION lz4, ALTER COLUMN after SET COMPRESSION lz4;
    END IF;
END
$$;
CREATE INDEX audit_entries_order ON audit_entries (xid, id);
CREATE INDEX audit_entries_at ON audit_entries (at);
CREATE INDEX audit_entries_entities ON audit_entries USING gin (entity_ids);

-- The chain: position seq holds entry_id and sha256(hash at seq - 1, the entry's canonical form), in (xid, id) order.
CREATE TABLE audit_chain (
    seq       bigint PRIMARY KEY CHECK (seq >= 1),
    entry_id  bigint NOT NULL UNIQUE,
    entry_xid xid8 NOT NULL,
    hash      text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    sealed_at timestamptz NOT NULL DEFAULT now()
);

-- Statement-level, so that it costs nothing per row and refuses even a statement that would touch no row.
CREATE FUNCTION certmon_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_append_only();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_append_only();

-- A row as the audit keeps it: the columns named in hidden (credentials' hashes, secrets, file contents) only say
-- whether they were set, so that changing a secret shows without the secret.
CREATE FUNCTION certmon_audit_row(j jsonb, hidden text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(hidden) = 0 THEN j
                ELSE j || coalesce((SELECT jsonb_object_agg(k, 'redacted') FROM unnest(hidden) AS k
                                    WHERE j ->> k IS NOT NULL), '{}')
           END
$$;

-- The capture: TG_ARGV = (kind, the column naming the entity, hidden columns, columns whose change alone is not
-- recorded). The actor is what the connection's owner set (certmon.actor, certmon.actor_role); a write from outside
-- certmon (psql, say) is recorded under the database user.
CREATE FUNCTION certmon_audit_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind    text := TG_ARGV[0];
    key     text := TG_ARGV[1];
    hidden  text[] := TG_ARGV[2]::text[];
    ignored text[] := TG_ARGV[3]::text[];
    rows_before json;
    rows_after  json;
    ids text[];
    n integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- no transition table: the entry says that everything went
        ids := '{}';
        n := 0;
    ELSE
        -- Nested, not one condition: a condition is one query, planned whole, and old_rows exists only here.
        IF TG_OP = 'UPDATE' AND cardinality(ignored) > 0 THEN
            IF NOT EXISTS (
                SELECT to_jsonb(r) - ignored FROM new_rows AS r EXCEPT SELECT to_jsonb(r) - ignored FROM old_rows AS r
            ) THEN
                RETURN NULL;
            END IF;
        END IF;
        -- The entity ids come from the rows the statement wrote: the old ones for a delete, the new ones otherwise.
        EXECUTE format('SELECT array_agg(DISTINCT r.%I::text), count(*) FROM %I AS r', key,
                       CASE TG_OP WHEN 'DELETE' THEN 'old_rows' ELSE 'new_rows' END)
            INTO ids, n;
        IF n = 0 THEN
            RETURN NULL;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF cardinality(hidden) = 0 THEN
                SELECT json_agg(r) INTO rows_before FROM old_rows AS r;
            ELSE
                SELECT json_agg(certmon_audit_row(to_jsonb(r), hidden)) INTO rows_before FROM old_rows AS r;
            END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            IF cardinality(hidden) = 0 THEN
                SELECT json_agg(r) INTO rows_after FROM new_rows AS r;
            ELSE
                SELECT json_agg(certmon_audit_row(to_jsonb(r), hidden)) INTO rows_after FROM new_rows AS r;
            END IF;
        END IF;
    END IF;
    INSERT INTO audit_entries (actor, actor_role, action, table_name, kind, entity_ids, row_count, before, after)
    VALUES (
        coalesce(nullif(current_setting('certmon.actor', true), ''), 'db:' || session_user),
        nullif(current_setting('certmon.actor_role', true), ''),
        lower(TG_OP), TG_TABLE_NAME, kind, ids, n, rows_before, rows_after
    );
    RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger, hence three triggers (and one for TRUNCATE) per audited table.
CREATE PROCEDURE certmon_audit_table(tbl regclass, kind text, key text, hidden text[], ignored text[])
LANGUAGE plpgsql AS $$
DECLARE
    args text := format('%L, %L, %L, %L', kind, key, hidden, ignored);
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_capture(%s)', name || '_audit_insert', tbl, args);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_capture(%s)', name || '_audit_update', tbl, args);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_capture(%s)', name || '_audit_delete', tbl, args);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION certmon_audit_capture(%s)', name || '_audit_truncate', tbl, args);
END
$$;

CALL certmon_audit_table('incidents', 'incident', 'id', '{}', '{}');
CALL certmon_audit_table('incident_events', 'incident', 'incident_id', '{}', '{}');
CALL certmon_audit_table('incident_clocks', 'incident', 'incident_id', '{}', '{}');
CALL certmon_audit_table('incident_pauses', 'incident', 'incident_id', '{}', '{}');
CALL certmon_audit_table('alert_groups', 'incident', 'incident_id', '{}', '{}');
CALL certmon_audit_table('notifications', 'incident', 'incident_id', '{}', '{}');
CALL certmon_audit_table('ack_links', 'incident', 'incident_id', '{token_hash}', '{}');
CALL certmon_audit_table('agencies', 'agency', 'code', '{webhook_secret}', '{}');
CALL certmon_audit_table('agency_networks', 'agency', 'agency_code', '{}', '{}');
CALL certmon_audit_table('api_tokens', 'token', 'id', '{token_hash}', '{}');
-- Sign-in and sign-out; each use of a session moves seen_at only, which is not recorded.
CALL certmon_audit_table('console_sessions', 'token', 'token_id', '{id_hash}', '{seen_at}');
CALL certmon_audit_table('survey_responses', 'survey', 'id', '{}', '{}');
CALL certmon_audit_table('exports', 'export', 'id', '{}', '{}');
CALL certmon_audit_table('export_files', 'export', 'export_id', '{content}', '{}');
CALL certmon_audit_table('service_state', 'service', 'key', '{}', '{}');
DROP PROCEDURE certmon_audit_table;

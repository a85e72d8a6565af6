-- The audit capture without dynamic SQL for the keys the audited tables use.
--
-- A statement run by EXECUTE is planned on every call; one written in the function keeps its plan for the session
-- (per table, as PL/pgSQL compiles a trigger function per table it fires on). Naming the entities of a single
-- incident POST's two entries cost more than the rest of the audit and the rollups together.
CREATE OR REPLACE FUNCTION certmon_audit_capture() RETURNS trigger
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
        -- Each branch is planned only on the tables whose key it names.
        IF TG_OP = 'DELETE' THEN
            EXECUTE format('SELECT array_agg(DISTINCT r.%I::text), count(*) FROM old_rows AS r', key) INTO ids, n;
        ELSIF key = 'id' THEN
            SELECT array_agg(DISTINCT r.id::text), count(*) INTO ids, n FROM new_rows AS r;
        ELSIF key = 'incident_id' THEN
            SELECT array_agg(DISTINCT r.incident_id::text), count(*) INTO ids, n FROM new_rows AS r;
        ELSE
            EXECUTE format('SELECT array_agg(DISTINCT r.%I::text), count(*) FROM new_rows AS r', key) INTO ids, n;
        END IF;
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

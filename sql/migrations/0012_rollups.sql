-- Rollups: a period's SLA figures read from counts per objective, agency, severity, local month and decided state
-- rather than from every incident of the period, kept exact in the transaction of every write.
--
-- Writers only ever append to sla_rollup_delta, from statement-level triggers on incidents and incident_clocks:
-- two writers of one agency's incidents never wait on each other's counter row. certmon_rollup_compact() folds the
-- deltas into the month, histogram and all-time tables in one statement, so a reader (which adds the deltas not yet
-- folded) sees the same sums before and after it.
--
-- The facts, each counted +1 when a row is written and -1 when it is replaced or removed:
--   * per incident, objective '': 'detected' or 'detected_excluded', on the local day of its detection;
--   * per started clock (an incident_clocks row with a clock_start): 'started' or 'started_excluded', on the day of
--     the incident's detection, and, on the day its clock started, 'excluded' for an excluded incident, or 'met' or
--     'breached' once it stopped, with the delay's histogram bucket and its seconds.
-- An incident belongs to the period its objective's clock started in, or to its detection's when the clock has not
-- started; so a period's not-started incidents are its detected ones less those whose clock started. Running
-- clocks are few and their state moves with time: they are read live (incident_clocks_running).

-- The local day of every fact is in the policy's timezone; certmon rebuilds the rollups when that changes.
CREATE TABLE sla_rollup_settings (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    timezone text NOT NULL
);
INSERT INTO sla_rollup_settings (timezone) VALUES ('Asia/Bangkok');

-- bucket is the delay's fine histogram bucket (certmon_delay_bucket), le the index of the first metrics bucket
-- bound at or above it (certmon_delay_le); both -1 for facts without a delay.
CREATE TABLE sla_rollup_delta (
    objective   text NOT NULL,
    agency_code text NOT NULL,
    severity    text NOT NULL,
    day         date NOT NULL,
    state       text NOT NULL,
    bucket      smallint NOT NULL,
    le          smallint NOT NULL,
    n           bigint NOT NULL,
    delay_sum   double precision NOT NULL
);
CREATE INDEX sla_rollup_delta_day ON sla_rollup_delta (objective, day);
-- Every fold empties it: vacuumed after a thousand dead rows, not after a fifth of a table that is always small.
ALTER TABLE sla_rollup_delta SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);

-- The folded facts, one row per objective, local month, agency and severity with a column per fact; incident facts
-- under objective ''. A fiscal year by agency reads twelve rows per agency and severity.
CREATE TABLE sla_rollup_month (
    objective         text NOT NULL,
    month             date NOT NULL,
    agency_code       text NOT NULL,
    severity          text NOT NULL,
    detected          bigint NOT NULL,
    detected_excluded bigint NOT NULL,
    started           bigint NOT NULL,
    started_excluded  bigint NOT NULL,
    excluded          bigint NOT NULL,
    met               bigint NOT NULL,
    breached          bigint NOT NULL,
    PRIMARY KEY (objective, month, agency_code, severity)
);

-- The same facts per Thai fiscal year: a year's figures read one row per agency and severity.
CREATE TABLE sla_rollup_year (
    objective         text NOT NULL,
    fiscal_year       smallint NOT NULL,
    agency_code       text NOT NULL,
    severity          text NOT NULL,
    detected          bigint NOT NULL,
    detected_excluded bigint NOT NULL,
    started           bigint NOT NULL,
    started_excluded  bigint NOT NULL,
    excluded          bigint NOT NULL,
    met               bigint NOT NULL,
    breached          bigint NOT NULL,
    PRIMARY KEY (objective, fiscal_year, agency_code, severity)
);

-- Decided clocks' delays per fine bucket, by month, agency and severity, for any period of whole months.
CREATE TABLE sla_delay_month (
    objective   text NOT NULL,
    month       date NOT NULL,
    agency_code text NOT NULL,
    severity    text NOT NULL,
    bucket      smallint NOT NULL,
    n           bigint NOT NULL,
    delay_sum   double precision NOT NULL,
    PRIMARY KEY (objective, month, agency_code, severity, bucket)
);

-- The fiscal year's histogram of each agency (and, under agency '', of all of them), the figures the desk and the
-- dashboards read most: one row each, its buckets in use in order with their counts, sums and means, so that a
-- year by agency reads one row per agency whatever its incidents.
CREATE TABLE sla_delay_year (
    objective   text NOT NULL,
    fiscal_year smallint NOT NULL,
    agency_code text NOT NULL,
    buckets     smallint[] NOT NULL,
    counts      bigint[] NOT NULL,
    sums        double precision[] NOT NULL,
    means       double precision[] NOT NULL,
    PRIMARY KEY (objective, fiscal_year, agency_code)
);

-- Two histograms as one, buckets in order; buckets left empty are dropped. A bucket reads as the mean of its
-- delays, rounded to the microsecond that timestamps have, so that equal delays read back as themselves.
CREATE FUNCTION certmon_histogram_merge(
    b1 smallint[], n1 bigint[], s1 double precision[], b2 smallint[], n2 bigint[], s2 double precision[],
    OUT buckets smallint[], OUT counts bigint[], OUT sums double precision[], OUT means double precision[]
)
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(b ORDER BY b), '{}'), coalesce(array_agg(n ORDER BY b), '{}'),
           coalesce(array_agg(s ORDER BY b), '{}'), coalesce(array_agg(round((s / n)::numeric, 6)::float8 ORDER BY b), '{}')
    FROM (
        SELECT b, sum(n) AS n, sum(s) AS s
        FROM (SELECT * FROM unnest(b1, n1, s1) UNION ALL SELECT * FROM unnest(b2, n2, s2)) AS u (b, n, s)
        GROUP BY b
        HAVING sum(n) <> 0
    ) AS m
$$;

-- All history, for the metrics' counters: decided counts per agency and the delay histogram on the metrics' bounds.
CREATE TABLE sla_rollup_total (
    objective   text NOT NULL,
    agency_code text NOT NULL,
    severity    text NOT NULL,
    met         bigint NOT NULL,
    breached    bigint NOT NULL,
    PRIMARY KEY (objective, agency_code, severity)
);

CREATE TABLE sla_delay_total (
    objective text NOT NULL,
    severity  text NOT NULL,
    le        smallint NOT NULL,
    n         bigint NOT NULL,
    delay_sum double precision NOT NULL,
    PRIMARY KEY (objective, severity, le)
);

-- The Thai fiscal year (Buddhist Era) of a local day: it starts on 1 October (certmon/core/periods.py).
CREATE FUNCTION certmon_fiscal_year(day date) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(year FROM day + interval '3 months') + 543)::smallint
$$;

-- Bucket 0 holds zero delays, 1 those under a millisecond, and k >= 2 [0.001 * 1.01^(k-2), 0.001 * 1.01^(k-1)):
-- certmon/core/histogram.py reads a bucket as the mean of its delays, within 1 % of any delay in it.
CREATE FUNCTION certmon_delay_bucket(delay double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN delay <= 0 THEN 0
        WHEN delay < 0.001 THEN 1
        ELSE least(2 + floor(ln(delay / 0.001) / ln(1.01)), 32767)
    END::smallint
$$;

-- The index in the metrics' bucket bounds (certmon/telemetry/conventions.py DELAY_BUCKETS, then +Inf) of the first
-- bound at or above the delay; a test holds the two lists equal. A plain expression, so that it is inlined.
CREATE FUNCTION certmon_delay_le(delay double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN delay <= 300 THEN 0 WHEN delay <= 900 THEN 1 WHEN delay <= 1800 THEN 2 WHEN delay <= 2700 THEN 3
        WHEN delay <= 3600 THEN 4 WHEN delay <= 5400 THEN 5 WHEN delay <= 7200 THEN 6 WHEN delay <= 14400 THEN 7
        WHEN delay <= 21600 THEN 8 WHEN delay <= 28800 THEN 9 WHEN delay <= 86400 THEN 10
        WHEN delay <= 259200 THEN 11 ELSE 12
    END::smallint
$$;

-- The facts below are single SELECTs of their arguments, so that the planner inlines them into the triggers'
-- statements (a trigger's statements are planned once per connection; a function called on its own, per call).
CREATE FUNCTION certmon_incident_facts(
    agency_code text, severity text, detected_at timestamptz, excluded boolean, sign integer, zone text
) RETURNS TABLE (objective text, agency_code text, severity text, day date, state text, bucket smallint,
                 le smallint, n bigint, delay_sum double precision)
LANGUAGE sql IMMUTABLE AS $$
    SELECT '', agency_code, severity, (detected_at AT TIME ZONE zone)::date,
           CASE WHEN excluded THEN 'detected_excluded' ELSE 'detected' END, -1::smallint, -1::smallint,
           sign::bigint, 0::float8
$$;

CREATE FUNCTION certmon_clock_facts(
    agency_code text, severity text, detected_at timestamptz, excluded boolean, objective text,
    clock_start timestamptz, due_at timestamptz, stopped_at timestamptz, delay_seconds double precision,
    sign integer, zone text
) RETURNS TABLE (objective text, agency_code text, severity text, day date, state text, bucket smallint,
                 le smallint, n bigint, delay_sum double precision)
LANGUAGE sql IMMUTABLE AS $$
    SELECT objective, agency_code, severity, (detected_at AT TIME ZONE zone)::date,
           CASE WHEN excluded THEN 'started_excluded' ELSE 'started' END, -1::smallint, -1::smallint,
           sign::bigint, 0::float8
    WHERE clock_start IS NOT NULL
    UNION ALL
    SELECT objective, agency_code, severity, (clock_start AT TIME ZONE zone)::date,
           CASE WHEN excluded THEN 'excluded' WHEN stopped_at <= due_at THEN 'met' ELSE 'breached' END,
           CASE WHEN excluded OR delay_seconds IS NULL THEN -1 ELSE certmon_delay_bucket(delay_seconds) END,
           CASE WHEN excluded OR delay_seconds IS NULL THEN -1 ELSE certmon_delay_le(delay_seconds) END,
           sign::bigint,
           CASE WHEN excluded THEN 0 ELSE sign * coalesce(delay_seconds, 0) END
    WHERE clock_start IS NOT NULL AND (excluded OR stopped_at IS NOT NULL)
$$;

-- A new incident has no clock rows yet as far as its own facts go: the clocks' trigger adds theirs, whichever of
-- the two fires first when one statement writes both. Facts that cancel out (a row rewritten as it was) are not
-- written.
CREATE FUNCTION certmon_rollup_incidents_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM new_rows r
    CROSS JOIN LATERAL certmon_incident_facts(r.agency_code, r.severity, r.detected_at, r.excluded, 1, zone) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END
$$;

-- An update moves an incident's facts, and those of its clocks as they stand, only when what keys them changed.
CREATE FUNCTION certmon_rollup_incidents_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM (
        SELECT o.id, o.agency_code, o.severity, o.detected_at, o.excluded, -1 AS sign
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.agency_code, o.severity, o.detected_at, o.excluded)
              IS DISTINCT FROM (n.agency_code, n.severity, n.detected_at, n.excluded)
        UNION ALL
        SELECT n.id, n.agency_code, n.severity, n.detected_at, n.excluded, 1
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.agency_code, o.severity, o.detected_at, o.excluded)
              IS DISTINCT FROM (n.agency_code, n.severity, n.detected_at, n.excluded)
    ) AS r
    CROSS JOIN LATERAL (
        SELECT * FROM certmon_incident_facts(r.agency_code, r.severity, r.detected_at, r.excluded, r.sign, zone)
        UNION ALL
        SELECT cf.*
        FROM incident_clocks c
        CROSS JOIN LATERAL certmon_clock_facts(
            r.agency_code, r.severity, r.detected_at, r.excluded, c.objective, c.clock_start, c.due_at,
            c.stopped_at, c.delay_seconds, r.sign, zone) AS cf
        WHERE c.incident_id = r.id
    ) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(f.n) <> 0;
    RETURN NULL;
END
$$;

-- Clock rows go before their incident (the foreign key), so a deleted incident has only its own facts left.
CREATE FUNCTION certmon_rollup_incidents_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM old_rows r
    CROSS JOIN LATERAL certmon_incident_facts(r.agency_code, r.severity, r.detected_at, r.excluded, -1, zone) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END
$$;

-- Clock rows' facts are keyed by their incident as it stands.
CREATE FUNCTION certmon_rollup_clocks_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM new_rows c
    JOIN incidents i ON i.id = c.incident_id
    CROSS JOIN LATERAL certmon_clock_facts(
        i.agency_code, i.severity, i.detected_at, i.excluded, c.objective, c.clock_start, c.due_at, c.stopped_at,
        c.delay_seconds, 1, zone) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END
$$;

CREATE FUNCTION certmon_rollup_clocks_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM old_rows c
    JOIN incidents i ON i.id = c.incident_id
    CROSS JOIN LATERAL certmon_clock_facts(
        i.agency_code, i.severity, i.detected_at, i.excluded, c.objective, c.clock_start, c.due_at, c.stopped_at,
        c.delay_seconds, -1, zone) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END
$$;

CREATE FUNCTION certmon_rollup_clocks_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM (
        SELECT incident_id, objective, clock_start, due_at, stopped_at, delay_seconds, -1 AS sign FROM old_rows
        UNION ALL
        SELECT incident_id, objective, clock_start, due_at, stopped_at, delay_seconds, 1 FROM new_rows
    ) AS c
    JOIN incidents i ON i.id = c.incident_id
    CROSS JOIN LATERAL certmon_clock_facts(
        i.agency_code, i.severity, i.detected_at, i.excluded, c.objective, c.clock_start, c.due_at, c.stopped_at,
        c.delay_seconds, c.sign, zone) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(f.n) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER incidents_rollup_insert AFTER INSERT ON incidents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_incidents_insert();
CREATE TRIGGER incidents_rollup_update AFTER UPDATE ON incidents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_incidents_update();
CREATE TRIGGER incidents_rollup_delete AFTER DELETE ON incidents
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_incidents_delete();
CREATE TRIGGER incident_clocks_rollup_insert AFTER INSERT ON incident_clocks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_clocks_insert();
CREATE TRIGGER incident_clocks_rollup_update AFTER UPDATE ON incident_clocks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_clocks_update();
CREATE TRIGGER incident_clocks_rollup_delete AFTER DELETE ON incident_clocks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_clocks_delete();

-- Folds every delta this transaction sees into the month, histogram and all-time tables, in one statement; a
-- delta written meanwhile stays for the next fold. Rows whose counts all come to zero are removed.
CREATE FUNCTION certmon_rollup_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    -- One folder at a time: another one's fold is as good.
    IF NOT pg_try_advisory_xact_lock(hashtext('certmon_rollup_compact')) THEN
        RETURN 0;
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS rollup_emptied (
        kind text, objective text, month date, agency_code text, severity text, bucket smallint
    ) ON COMMIT DELETE ROWS;
    WITH moved AS (
        DELETE FROM sla_rollup_delta RETURNING *
    ), month AS (
        INSERT INTO sla_rollup_month AS m
        SELECT objective, date_trunc('month', day)::date, agency_code, severity,
               coalesce(sum(n) FILTER (WHERE state = 'detected'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'detected_excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'started'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'started_excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'met'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'breached'), 0)
        FROM moved GROUP BY 1, 2, 3, 4
        ON CONFLICT (objective, month, agency_code, severity) DO UPDATE SET
            detected = m.detected + excluded.detected,
            detected_excluded = m.detected_excluded + excluded.detected_excluded,
            started = m.started + excluded.started,
            started_excluded = m.started_excluded + excluded.started_excluded,
            excluded = m.excluded + excluded.excluded,
            met = m.met + excluded.met,
            breached = m.breached + excluded.breached
        RETURNING m.objective, m.month, m.agency_code, m.severity,
                  (m.detected, m.detected_excluded, m.started, m.started_excluded, m.excluded, m.met, m.breached)
                  = (0, 0, 0, 0, 0, 0, 0) AS empty
    ), delay_month AS (
        INSERT INTO sla_delay_month AS m
        SELECT objective, date_trunc('month', day)::date, agency_code, severity, bucket, sum(n), sum(delay_sum)
        FROM moved WHERE bucket >= 0 GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (objective, month, agency_code, severity, bucket)
        DO UPDATE SET n = m.n + excluded.n, delay_sum = m.delay_sum + excluded.delay_sum
        RETURNING m.objective, m.month, m.agency_code, m.severity, m.bucket, m.n = 0 AS empty
    ), year AS (
        INSERT INTO sla_rollup_year AS y
        SELECT objective, certmon_fiscal_year(day), agency_code, severity,
               coalesce(sum(n) FILTER (WHERE state = 'detected'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'detected_excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'started'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'started_excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'excluded'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'met'), 0),
               coalesce(sum(n) FILTER (WHERE state = 'breached'), 0)
        FROM moved GROUP BY 1, 2, 3, 4
        ON CONFLICT (objective, fiscal_year, agency_code, severity) DO UPDATE SET
            detected = y.detected + excluded.detected,
            detected_excluded = y.detected_excluded + excluded.detected_excluded,
            started = y.started + excluded.started,
            started_excluded = y.started_excluded + excluded.started_excluded,
            excluded = y.excluded + excluded.excluded,
            met = y.met + excluded.met,
            breached = y.breached + excluded.breached
        RETURNING y.objective, y.fiscal_year, y.agency_code, y.severity,
                  (y.detected, y.detected_excluded, y.started, y.started_excluded, y.excluded, y.met, y.breached)
                  = (0, 0, 0, 0, 0, 0, 0) AS empty
    ), delay_year AS (
        INSERT INTO sla_delay_year AS y
        SELECT d.objective, d.fiscal_year, d.agency_code, m.*
        FROM (
            SELECT objective, fiscal_year, agency_code,
                   array_agg(bucket ORDER BY bucket) AS buckets, array_agg(n::bigint ORDER BY bucket) AS counts,
                   array_agg(s ORDER BY bucket) AS sums
            FROM (
                SELECT objective, certmon_fiscal_year(day) AS fiscal_year, agency_code, bucket, sum(n) AS n,
                       sum(delay_sum) AS s
                FROM moved WHERE bucket >= 0 GROUP BY 1, 2, 3, 4
                UNION ALL
                SELECT objective, certmon_fiscal_year(day), '', bucket, sum(n), sum(delay_sum)
                FROM moved WHERE bucket >= 0 GROUP BY 1, 2, 4
            ) AS per_bucket
            GROUP BY 1, 2, 3
        ) AS d
        CROSS JOIN LATERAL certmon_histogram_merge('{}'::smallint[], '{}'::bigint[], '{}'::float8[], d.buckets, d.counts,
                                                   d.sums) AS m
        ON CONFLICT (objective, fiscal_year, agency_code) DO UPDATE SET (buckets, counts, sums, means) = (
            SELECT * FROM certmon_histogram_merge(y.buckets, y.counts, y.sums, excluded.buckets, excluded.counts,
                                                  excluded.sums)
        )
        RETURNING y.objective, y.fiscal_year, y.agency_code, cardinality(y.buckets) = 0 AS empty
    ), total AS (
        INSERT INTO sla_rollup_total AS t
        SELECT objective, agency_code, severity,
               coalesce(sum(n) FILTER (WHERE state = 'met'), 0), coalesce(sum(n) FILTER (WHERE state = 'breached'), 0)
        FROM moved WHERE state IN ('met', 'breached') GROUP BY 1, 2, 3
        ON CONFLICT (objective, agency_code, severity)
        DO UPDATE SET met = t.met + excluded.met, breached = t.breached + excluded.breached
    ), delay_total AS (
        INSERT INTO sla_delay_total AS t
        SELECT objective, severity, le, sum(n), sum(delay_sum)
        FROM moved WHERE le >= 0 GROUP BY 1, 2, 3
        ON CONFLICT (objective, severity, le)
        DO UPDATE SET n = t.n + excluded.n, delay_sum = t.delay_sum + excluded.delay_sum
    )
    , emptied AS (
        -- Rows whose facts cancelled out: removed below, by key, so that a fold never scans a whole table.
        INSERT INTO pg_temp.rollup_emptied
        SELECT 'month', objective, month, agency_code, severity, -1 FROM month WHERE empty
        UNION ALL
        SELECT 'delay_month', objective, month, agency_code, severity, bucket FROM delay_month WHERE empty
        UNION ALL
        SELECT 'delay_year', objective, make_date(fiscal_year - 543, 1, 1), agency_code, '', -1
        FROM delay_year WHERE empty
        UNION ALL
        SELECT 'year', objective, make_date(fiscal_year - 543, 1, 1), agency_code, severity, -1 FROM year WHERE empty
    )
    SELECT count(*) INTO folded FROM moved;
    DELETE FROM sla_rollup_month m USING pg_temp.rollup_emptied e
    WHERE e.kind = 'month' AND (m.objective, m.month, m.agency_code, m.severity)
                               = (e.objective, e.month, e.agency_code, e.severity);
    DELETE FROM sla_delay_month m USING pg_temp.rollup_emptied e
    WHERE e.kind = 'delay_month' AND (m.objective, m.month, m.agency_code, m.severity, m.bucket)
                                     = (e.objective, e.month, e.agency_code, e.severity, e.bucket);
    DELETE FROM sla_delay_year y USING pg_temp.rollup_emptied e
    WHERE e.kind = 'delay_year' AND (y.objective, y.fiscal_year, y.agency_code)
                                    = (e.objective, extract(year FROM e.month) + 543, e.agency_code);
    DELETE FROM sla_rollup_year y USING pg_temp.rollup_emptied e
    WHERE e.kind = 'year' AND (y.objective, y.fiscal_year, y.agency_code, y.severity)
                              = (e.objective, extract(year FROM e.month) + 543, e.agency_code, e.severity);
    TRUNCATE pg_temp.rollup_emptied;
    -- The all-time tables hold agencies x severities rows at most: a scan is cheaper than keeping their keys.
    IF folded > 0 THEN
        DELETE FROM sla_rollup_total WHERE met = 0 AND breached = 0;
        DELETE FROM sla_delay_total WHERE n = 0;
    END IF;
    RETURN folded;
END
$$;

-- Every fact again from the rows as they stand, for a new timezone or a database that had incidents before.
CREATE FUNCTION certmon_rollup_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text := (SELECT timezone FROM sla_rollup_settings);
BEGIN
    LOCK TABLE sla_rollup_delta, sla_rollup_month, sla_rollup_year, sla_delay_month, sla_delay_year,
        sla_rollup_total, sla_delay_total IN ACCESS EXCLUSIVE MODE;
    TRUNCATE sla_rollup_delta, sla_rollup_month, sla_rollup_year, sla_delay_month, sla_delay_year, sla_rollup_total,
        sla_delay_total;
    INSERT INTO sla_rollup_delta
    SELECT f.objective, f.agency_code, f.severity, f.day, f.state, f.bucket, f.le, sum(f.n), sum(f.delay_sum)
    FROM (
        SELECT f.* FROM incidents i
        CROSS JOIN LATERAL certmon_incident_facts(i.agency_code, i.severity, i.detected_at, i.excluded, 1, zone) AS f
        UNION ALL
        SELECT f.* FROM incident_clocks c
        JOIN incidents i ON i.id = c.incident_id
        CROSS JOIN LATERAL certmon_clock_facts(
            i.agency_code, i.severity, i.detected_at, i.excluded, c.objective, c.clock_start, c.due_at,
            c.stopped_at, c.delay_seconds, 1, zone) AS f
    ) AS f
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    PERFORM certmon_rollup_compact();
    -- The fold deleted every delta: start the table afresh rather than leave its dead rows to readers.
    TRUNCATE sla_rollup_delta;
END
$$;

SELECT certmon_rollup_rebuild();

-- Emptied tables leave no facts behind.
CREATE FUNCTION certmon_rollup_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM certmon_rollup_rebuild();
    RETURN NULL;
END
$$;
CREATE TRIGGER incidents_rollup_truncate AFTER TRUNCATE ON incidents
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_truncated();
CREATE TRIGGER incident_clocks_rollup_truncate AFTER TRUNCATE ON incident_clocks
    FOR EACH STATEMENT EXECUTE FUNCTION certmon_rollup_truncated();

-- Running clocks of an objective by when they started: the live part of a period's figures.
CREATE INDEX incident_clocks_running ON incident_clocks (objective, clock_start)
    WHERE stopped_at IS NULL AND clock_start IS NOT NULL;

-- name: survey_response_insert
INSERT INTO survey_responses (
    service, agency_code, submitted_at, answers, answer_count, score_sum, top2_count, comment, channel,
    external_id, body_hash, created_by
)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (service, (coalesce(agency_code, '')), external_id) DO NOTHING
RETURNING *;

-- name: survey_response_by_key
-- The key is scoped to the agency: another agency's response under the same external_id is not this one.
SELECT * FROM survey_responses
WHERE service = $1 AND coalesce(agency_code, '') = coalesce($2::text, '') AND external_id = $3;

-- name: survey_response_page
-- Newest first, keyset-paginated on id; each bound is optional.
SELECT *
FROM survey_responses
WHERE ($1::timestamptz IS NULL OR submitted_at >= $1)
  AND ($2::timestamptz IS NULL OR submitted_at < $2)
  AND ($3::text IS NULL OR service = $3)
  AND ($4::text IS NULL OR agency_code = $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6;

-- name: survey_bulk_stage
CREATE TEMP TABLE survey_stage (
    line integer, service text, agency_code text, submitted_at timestamptz, answers jsonb, answer_count integer,
    score_sum integer, top2_count integer, comment text, channel text, external_id text, body_hash text,
    created_by text
) ON COMMIT DROP;

-- name: survey_bulk_insert
-- The first line of each key wins; lines without an external_id are all kept.
INSERT INTO survey_responses (
    service, agency_code, submitted_at, answers, answer_count, score_sum, top2_count, comment, channel,
    external_id, body_hash, created_by
)
SELECT service, agency_code, submitted_at, answers, answer_count, score_sum, top2_count, comment, channel,
       external_id, body_hash, created_by
FROM (
    SELECT DISTINCT ON (service, coalesce(agency_code, ''), coalesce(external_id, '#' || line)) *
    FROM survey_stage
    ORDER BY service, coalesce(agency_code, ''), coalesce(external_id, '#' || line), line
) first_lines
ON CONFLICT (service, (coalesce(agency_code, '')), external_id) DO NOTHING
RETURNING service, agency_code, external_id;

-- name: survey_bulk_keys
SELECT s.line, s.service, s.agency_code, s.external_id, s.body_hash AS staged_hash, r.body_hash AS stored_hash
FROM survey_stage s
JOIN survey_responses r
  ON r.service = s.service AND coalesce(r.agency_code, '') = coalesce(s.agency_code, '')
  AND r.external_id = s.external_id
ORDER BY s.line;

-- name: survey_figures
-- One period's totals, grouped by $5 ('service', 'agency', 'sector', 'month' or '' for none).
-- The sector is looked up per row only when asked for: a join would be planned for all groupings alike.
SELECT CASE $5::text
           WHEN 'service' THEN r.service
           WHEN 'agency' THEN r.agency_code
           WHEN 'sector' THEN (SELECT a.sector FROM agencies a WHERE a.code = r.agency_code)
           WHEN 'month' THEN to_char(r.submitted_at AT TIME ZONE $6, 'YYYY-MM')
           ELSE ''
       END AS key,
       count(*) AS responses,
       count(DISTINCT r.agency_code) AS agencies,
       sum(r.answer_count) AS answers,
       sum(r.score_sum) AS score_sum,
       sum(r.top2_count) AS top2_count
FROM survey_responses r
WHERE r.submitted_at >= $1 AND r.submitted_at < $2
  AND ($3::text IS NULL OR r.service = $3)
  AND ($4::text IS NULL OR r.agency_code = $4)
GROUP BY 1
ORDER BY 1;

-- name: survey_sla_outcome_figures
-- One period's totals split by SLA outcome: an agency "breached" if any of its incidents whose clock started in
-- the period (the SLA report's rule) breached its SLA; "kept" otherwise; "no_agency" for anonymous responses.
SELECT CASE
           WHEN r.agency_code IS NULL THEN 'no_agency'
           WHEN r.agency_code IN (
               SELECT i.agency_code
               FROM incidents i
               WHERE coalesce(i.clock_start, i.detected_at) >= $1
                 AND coalesce(i.clock_start, i.detected_at) < $2
                 AND certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, now())
                     = 'breached'
           ) THEN 'breached'
           ELSE 'kept'
       END AS key,
       count(*) AS responses,
       count(DISTINCT r.agency_code) AS agencies,
       sum(r.answer_count) AS answers,
       sum(r.score_sum) AS score_sum,
       sum(r.top2_count) AS top2_count
FROM survey_responses r
WHERE r.submitted_at >= $1 AND r.submitted_at < $2
  AND ($3::text IS NULL OR r.service = $3)
  AND ($4::text IS NULL OR r.agency_code = $4)
GROUP BY 1
ORDER BY 1;

-- name: survey_question_figures
-- One period's totals per service and question. No distinct count of agencies here: it would force a sort of
-- every answer instead of a hash aggregate.
SELECT r.service, a.question,
       count(*) AS responses,
       NULL::bigint AS agencies,
       count(*) AS answers,
       sum(a.score::integer) AS score_sum,
       count(*) FILTER (WHERE a.score::integer >= 4) AS top2_count
FROM survey_responses r
CROSS JOIN LATERAL jsonb_each_text(r.answers) AS a (question, score)
WHERE r.submitted_at >= $1 AND r.submitted_at < $2
  AND ($3::text IS NULL OR r.service = $3)
  AND ($4::text IS NULL OR r.agency_code = $4)
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: survey_service_totals
-- Totals per service for one window; the metrics snapshot runs it for the month and the fiscal year.
SELECT service, count(*) AS responses, sum(answer_count) AS answers, sum(score_sum) AS score_sum
FROM survey_responses
WHERE submitted_at >= $1 AND submitted_at < $2
GROUP BY 1
ORDER BY 1;

-- name: survey_demo_agencies
-- Every agency with the local months (YYYY-MM) in which it had a breached incident.
SELECT a.code, a.cii,
       coalesce(array_agg(DISTINCT to_char(coalesce(i.clock_start, i.detected_at) AT TIME ZONE $1, 'YYYY-MM'))
                FILTER (WHERE i.id IS NOT NULL), '{}') AS breached_months
FROM agencies a
LEFT JOIN incidents i
       ON i.agency_code = a.code
      AND certmon_sla_state(i.excluded, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, now()) = 'breached'
GROUP BY a.code
ORDER BY a.code;

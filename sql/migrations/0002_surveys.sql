-- Satisfaction survey responses. Respondents stay anonymous: no name or e-mail column exists, and e-mail addresses
-- typed into comments are masked before they are stored.
-- Per-response totals are kept next to the answers so that period figures need not unpack every answer.
CREATE TABLE survey_responses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service      text NOT NULL,
    agency_code  text REFERENCES agencies (code),
    submitted_at timestamptz NOT NULL,
    answers      jsonb NOT NULL CHECK (jsonb_typeof(answers) = 'object'),
    answer_count integer NOT NULL CHECK (answer_count > 0),
    score_sum    integer NOT NULL CHECK (score_sum BETWEEN answer_count AND 5 * answer_count),
    top2_count   integer NOT NULL CHECK (top2_count BETWEEN 0 AND answer_count),
    comment      text,
    channel      text NOT NULL DEFAULT 'api',
    external_id  text,
    body_hash    text NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service, external_id)
);
CREATE INDEX survey_responses_submitted ON survey_responses (submitted_at);
CREATE INDEX survey_responses_agency ON survey_responses (agency_code, submitted_at);

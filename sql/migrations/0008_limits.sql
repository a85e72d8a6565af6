-- A survey response's external_id is the agency's own reference: it is unique within the agency (and among
-- responses without an agency), no longer across agencies, so one agency can neither take another's ids first nor
-- learn them from a conflict. coalesce gives the responses without an agency one scope of their own.
ALTER TABLE survey_responses DROP CONSTRAINT survey_responses_service_external_id_key;
CREATE UNIQUE INDEX survey_responses_key ON survey_responses (service, (coalesce(agency_code, '')), external_id);

-- The metrics role: a token that may read /metrics and nothing else, for Prometheus.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'analyst', 'auditor', 'agency', 'metrics'));

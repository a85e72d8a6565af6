-- name: agency_list
-- The webhook's secret stays in the table: only whether one is set leaves it.
SELECT a.code, a.name, a.name_th, a.sector, a.cii, a.created_at, a.updated_at, a.contacts, a.webhook_url,
       a.webhook_secret IS NOT NULL AS webhook_secret_set,
       coalesce(array_agg(n.network::text ORDER BY n.network) FILTER (WHERE n.network IS NOT NULL), '{}') AS networks
FROM agencies a
LEFT JOIN agency_networks n ON n.agency_code = a.code
WHERE ($1::text IS NULL OR a.code = $1)
GROUP BY a.code
ORDER BY a.code;

-- name: agency_insert
INSERT INTO agencies (code, name, name_th, sector, cii, contacts, webhook_url, webhook_secret)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
ON CONFLICT (code) DO NOTHING
RETURNING code;

-- name: agency_update
-- A webhook given without a secret keeps the stored one; no webhook ($7 NULL) removes both.
UPDATE agencies
SET name = $2, name_th = $3, sector = $4, cii = $5, contacts = $6::jsonb, webhook_url = $7,
    webhook_secret = CASE WHEN $7::text IS NULL THEN NULL ELSE coalesce($8, webhook_secret) END, updated_at = now()
WHERE code = $1
RETURNING code;

-- name: agency_networks_delete
DELETE FROM agency_networks WHERE agency_code = $1;

-- name: agency_networks_insert
INSERT INTO agency_networks (agency_code, network)
SELECT $1, unnest($2::cidr[])
ON CONFLICT DO NOTHING;

-- name: agency_codes
SELECT code FROM agencies;

-- name: agency_for_address
-- The most specific registered network containing the address wins.
SELECT agency_code
FROM agency_networks
WHERE network >>= $1::inet
ORDER BY masklen(network) DESC, agency_code
LIMIT 1;

-- name: agency_names
SELECT code, name, name_th FROM agencies WHERE code = ANY($1::text[]);

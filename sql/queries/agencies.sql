-- name: agency_list
SELECT a.code, a.name, a.name_th, a.sector, a.cii, a.created_at, a.updated_at,
       coalesce(array_agg(n.network::text ORDER BY n.network) FILTER (WHERE n.network IS NOT NULL), '{}') AS networks
FROM agencies a
LEFT JOIN agency_networks n ON n.agency_code = a.code
WHERE ($1::text IS NULL OR a.code = $1)
GROUP BY a.code
ORDER BY a.code;

-- name: agency_insert
INSERT INTO agencies (code, name, name_th, sector, cii)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (code) DO NOTHING
RETURNING code;

-- name: agency_update
UPDATE agencies
SET name = $2, name_th = $3, sector = $4, cii = $5, updated_at = now()
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

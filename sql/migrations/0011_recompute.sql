-- The incidents whose clocks were computed under another policy than the one in force, found without reading the
-- others: "is any stale?" is one probe at either side of the fingerprint in force, and each batch of the recompute a
-- range scan that resumes after the last (policy_hash, id) the previous batch took. Without it, the recompute read
-- and sorted the whole table for each batch, even when nothing was stale.
CREATE INDEX incidents_policy ON incidents (policy_hash, id);

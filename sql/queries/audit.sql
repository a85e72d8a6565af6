-- name: audit_seal_lock
-- One sealer at a time across replicas; a replica that finds it taken leaves this round to the other.
SELECT pg_try_advisory_xact_lock(hashtextextended('certmon.audit.seal', 0));

-- name: audit_seal_wait
SELECT pg_advisory_xact_lock(hashtextextended('certmon.audit.seal', 0));

-- name: audit_chain_head
SELECT seq, entry_id, entry_xid, hash FROM audit_chain ORDER BY seq DESC LIMIT 1;

-- name: audit_sealable
-- Entries past the chain's head, in chain order, whose writers have all ended: every transaction with an id below
-- the snapshot's xmin has committed or rolled back, so no entry can appear before these any more.
SELECT e.id, e.xid, e.at, e.actor, e.actor_role, e.action, e.table_name, e.kind, e.entity_ids, e.row_count,
       e.before, e.after
FROM audit_entries e
WHERE (e.xid, e.id) > ($1::xid8, $2::bigint)
  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.xid, e.id
LIMIT $3;

-- name: audit_chain_append
INSERT INTO audit_chain (seq, entry_id, entry_xid, hash)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::xid8[], $4::text[]);

-- name: audit_chain_links
-- The chain from position $1 on, each link with its entry (NULLs when the entry is gone).
SELECT c.seq, c.entry_id, c.hash,
       e.id, e.xid, e.at, e.actor, e.actor_role, e.action, e.table_name, e.kind, e.entity_ids, e.row_count,
       e.before, e.after
FROM audit_chain c
LEFT JOIN audit_entries e ON e.id = c.entry_id
WHERE c.seq >= $1
ORDER BY c.seq
LIMIT $2;

-- name: audit_unchained_behind_head
-- An entry that sorts before the head but is not in the chain was added behind the sealer's back.
SELECT e.id FROM audit_entries e
WHERE (e.xid, e.id) < ($1::xid8, $2::bigint)
  AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.entry_id = e.id)
ORDER BY e.id
LIMIT 1;

-- name: audit_pending
SELECT count(*) FROM audit_entries WHERE (xid, id) > ($1::xid8, $2::bigint);

-- name: audit_page
-- Newest first, keyset-paginated on id; every filter optional. $1 matches the whole actor or its name alone
-- (alice for token:alice). $4: an entity id, matched through the GIN index.
SELECT e.id, e.at, e.actor, e.actor_role, e.action, e.table_name, e.kind, e.entity_ids, e.row_count,
       e.before, e.after, c.seq AS chain_seq, c.hash AS chain_hash
FROM audit_entries e
LEFT JOIN audit_chain c ON c.entry_id = e.id
WHERE ($1::text IS NULL OR e.actor = $1 OR split_part(e.actor, ':', 2) = $1)
  AND ($2::text IS NULL OR e.table_name = $2)
  AND ($3::text IS NULL OR e.kind = $3)
  AND ($4::text IS NULL OR e.entity_ids @> ARRAY[$4::text])
  AND ($5::text IS NULL OR e.action = $5)
  AND ($6::timestamptz IS NULL OR e.at >= $6)
  AND ($7::timestamptz IS NULL OR e.at < $7)
  AND ($8::bigint IS NULL OR e.id < $8)
ORDER BY e.id DESC
LIMIT $9;

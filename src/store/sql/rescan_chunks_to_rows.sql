-- A run that marked its seen objects in chunks (snapshot path) continues on the streaming path: its
-- chunks become seen rows, one per id (16 bytes each), and are removed.
WITH chunks AS (
    DELETE FROM sync_run_seen_chunks WHERE run_id = $1 RETURNING ids
)
INSERT INTO sync_run_seen_objects (run_id, object_id)
SELECT $1::uuid, encode(substring(c.ids FROM g * 16 + 1 FOR 16), 'hex')::uuid
FROM chunks c
CROSS JOIN LATERAL generate_series(0, length(c.ids) / 16 - 1) AS g
ON CONFLICT DO NOTHING

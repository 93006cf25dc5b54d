-- The next rows to publish, oldest first (docs/events-relay.md). The relay merges `seq` into the body
-- text itself: `body || jsonb_build_object('seq', seq)` here rebuilt every document and doubled the
-- statement's cost (bench-events, docs/events-relay.md "Throughput and memory").
-- $1: the highest seq already handed out in this pass (0 starts from the oldest row); $2: the batch size.
-- The primary key gives the order; rows deleted by earlier batches are skipped by the index bound.
SELECT seq, event_id, routing_key, body::text AS body
FROM change_outbox
WHERE seq > $1
ORDER BY seq
LIMIT $2

-- The next rows to publish, oldest first, each body with its `seq` merged in (docs/events-relay.md).
-- $1: the highest seq already handed out in this pass (0 starts from the oldest row); $2: the batch size.
-- The primary key gives the order; rows deleted by earlier batches are skipped by the index bound.
SELECT seq, event_id, routing_key, (body || jsonb_build_object('seq', seq))::text AS body
FROM change_outbox
WHERE seq > $1
ORDER BY seq
LIMIT $2

-- Deletes the rows RabbitMQ confirmed, given as inclusive ranges of seq ($1 starts, $2 ends): a batch is
-- almost always one contiguous range, and a range scan of the primary key costs about half of probing it
-- once per seq (`seq = ANY(…)`). Only published seqs are in a range, so a row that committed late with a
-- seq in a gap between two ranges stays.
DELETE FROM change_outbox o
USING unnest($1::bigint[], $2::bigint[]) AS r (lo, hi)
WHERE o.seq BETWEEN r.lo AND r.hi

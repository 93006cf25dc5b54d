-- The outbox's backlog for the metrics: rows waiting, the age of the oldest (by seq: the next to go out)
-- and the table's size on disk with its index and TOAST.
SELECT
    (SELECT count(*) FROM change_outbox) AS rows,
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - created_at)::float8
              FROM change_outbox ORDER BY seq LIMIT 1), 0) AS oldest_age_seconds,
    pg_total_relation_size('change_outbox') AS bytes

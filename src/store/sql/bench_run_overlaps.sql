-- Pairs of runs of one (tenant, class) whose intervals overlap (an unfinished run lasts forever), in total
-- and between two instances.
SELECT count(*), count(*) FILTER (WHERE a.instance_id IS DISTINCT FROM b.instance_id)
FROM sync_runs a JOIN sync_runs b
  ON a.tenant_id = b.tenant_id AND a.object_class = b.object_class AND a.id < b.id
 AND a.started_at < COALESCE(b.finished_at, 'infinity') AND b.started_at < COALESCE(a.finished_at, 'infinity')

-- The benchmark's audit of `sync_runs`: runs, full runs, distinct (tenant, class) pairs, objects, pages and
-- Graph requests summed, the last finish, and the runs' durations in seconds (sum, p50, p95, max).
SELECT count(*), count(*) FILTER (WHERE mode = 'full'), count(DISTINCT (tenant_id, object_class)),
       COALESCE(sum(total), 0)::bigint, COALESCE(sum(pages), 0)::bigint, COALESCE(sum(graph_requests), 0)::bigint,
       max(finished_at),
       COALESCE(sum(EXTRACT(EPOCH FROM finished_at - started_at)), 0)::float8,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))::float8,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))::float8,
       max(EXTRACT(EPOCH FROM finished_at - started_at))::float8
FROM sync_runs

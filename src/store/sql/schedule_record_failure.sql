-- Counts one more failed run of ($1 tenant, $2 class) with error $3; returns the failures in a row.
INSERT INTO sync_schedules AS s (tenant_id, object_class, consecutive_failures, last_failure_at, last_error)
VALUES ($1, $2::text::object_class, 1, now(), $3)
ON CONFLICT (tenant_id, object_class) DO UPDATE
    SET consecutive_failures = s.consecutive_failures + 1, last_failure_at = now(), last_error = $3
RETURNING consecutive_failures

-- The shared Graph rate budget: one token bucket per application (all tenants) and per
-- (application, tenant), leased in batches by every entrasync instance (src/store/rate_budget.rs).
-- UNLOGGED: the state is a few seconds of pacing; after a crash the buckets simply start full again,
-- and skipping the WAL keeps the lease hot path cheap.

CREATE UNLOGGED TABLE graph_rate_budget (
    bucket_key   text PRIMARY KEY CHECK (length(bucket_key) BETWEEN 1 AND 500),
    -- Units left at refreshed_at; negative after Graph reported us above our target (a debt).
    tokens       double precision NOT NULL,
    refreshed_at timestamptz NOT NULL
);

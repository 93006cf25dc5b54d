-- Issue 16: the seen set of a full round on the snapshot path (src/sync/snapshot.rs). The round keeps a
-- bitmap over the (tenant, class)'s stored objects in memory; what each batch adds to it is written in
-- the batch's transaction as one row holding the ids it saw first (16 bytes each, concatenated), so a
-- resumed run reads the snapshot again and restores its marks from these rows. One row per batch instead
-- of one row (and index entry) per object in sync_run_seen_objects. Rows are removed when the run ends
-- (run_scratch::clear) or its listing restarts.
CREATE TABLE sync_run_seen_chunks (
    run_id uuid NOT NULL,
    seq    bigint GENERATED ALWAYS AS IDENTITY,
    ids    bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Random ids do not compress: skip pglz's attempt; the values go out of line (TOAST) as they are.
ALTER TABLE sync_run_seen_chunks ALTER COLUMN ids SET STORAGE EXTERNAL;

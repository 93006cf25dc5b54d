-- A job's end on its run-lock session (src/store/run_lock/start.rs): releases the run lock and takes and
-- clears the coalesced sync rerun and re-map requests of ($1 tenant, $2 class), in one message and one
-- transaction. The function (V65) takes them with a snapshot after the release.
SELECT rerun_mode, remap_requested FROM run_lock_release_taking_requests($1, $2::text::object_class)

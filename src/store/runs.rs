//! Run history (`sync_runs`): one row per run, created at start, updated per page, finished once.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{During, Pool, StoreError};
use crate::model::{RunCounts, RunFinished, RunStarted, SyncMode};

/// Creates the run row, or reopens it for a resumed run (status back to running), and records the job
/// behind it. Only a later start reopens it (a resume): a start event held up in a stalled connection and
/// delivered after the run finished (its retry on another connection landed first, or the run was
/// resumed elsewhere) must not reopen it.
pub async fn insert_started(db: &impl super::Db, run: &RunStarted) -> Result<(), StoreError> {
    // One statement for both rows (a run's start is a fixed cost of every run, issue 16). The job's row
    // is written whether or not the run row changes; its foreign key is checked at the statement's end,
    // when the run row is there.
    let statement = db
        .prepare_cached(
            "WITH run AS ( \
                 INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, \
                                        instance_id, reason, total, changed, deleted, filtered, pages, \
                                        graph_requests, throttled_waits) \
                 VALUES ($1, $2, $3::text::object_class, $4::text::sync_mode, $5, 'running', $6, $7, $8, \
                         $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (id) DO UPDATE SET status = 'running', finished_at = NULL, error = NULL, \
                     mode = EXCLUDED.mode, instance_id = EXCLUDED.instance_id, \
                     reason = COALESCE(EXCLUDED.reason, sync_runs.reason), updated_at = now() \
                 WHERE sync_runs.started_at < EXCLUDED.started_at) \
             INSERT INTO sync_run_jobs (job_id, run_id) SELECT $9::uuid, $1 WHERE $9::uuid IS NOT NULL \
             ON CONFLICT DO NOTHING",
        )
        .await
        .during("recording a run start")?;
    let (class, mode, trigger) = (run.class.as_str(), run.mode.as_str(), run.trigger.as_str());
    let counts = counts_i64(&run.counts);
    let head: [&(dyn ToSql + Sync); 9] = [
        &run.run_id,
        &run.tenant_id,
        &class,
        &mode,
        &trigger,
        &run.started_at,
        &run.instance_id,
        &run.reason,
        &run.job_id,
    ];
    db.execute(&statement, &with_counts(&head, &counts)).await.during("recording a run start")?;
    Ok(())
}

/// What became of the run a queued job started: its job id is the idempotency key (docs/queue.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRun {
    /// The job started no run yet.
    None,
    /// Its run is running (here or on another worker), or its worker died and left it `running`.
    Running,
    /// Its run failed or was cancelled and the job was not acknowledged (given back to the queue after
    /// an outage or an interruption): run it again.
    GivenBack,
    /// Its run did what it was asked (success, warning, held: the worker acknowledges such a job), or
    /// the job was acknowledged after its run: a republished copy must not run again.
    Settled,
}

pub async fn job_run(pool: &Pool, job_id: Uuid) -> Result<JobRun, StoreError> {
    let client = pool.get().await.during("looking up a job's run")?;
    let statement = client
        .prepare_cached(
            "SELECT bool_or(j.settled_at IS NOT NULL OR r.status IN ('success', 'warning', 'held')), \
                    bool_or(r.status = 'running') \
             FROM sync_run_jobs j JOIN sync_runs r ON r.id = j.run_id WHERE j.job_id = $1",
        )
        .await
        .during("looking up a job's run")?;
    let row = client.query_one(&statement, &[&job_id]).await.during("looking up a job's run")?;
    // No row of the job: both aggregates are NULL.
    Ok(match (row.get::<_, Option<bool>>(0), row.get::<_, Option<bool>>(1)) {
        (None, _) => JobRun::None,
        (Some(true), _) => JobRun::Settled,
        (_, Some(true)) => JobRun::Running,
        _ => JobRun::GivenBack,
    })
}

/// Marks the job `job_id` as acknowledged after its run (see [`JobRun::Settled`]).
pub async fn settle_job(pool: &Pool, job_id: Uuid) -> Result<(), StoreError> {
    let client = pool.get().await.during("settling a job")?;
    let statement = client
        .prepare_cached("UPDATE sync_run_jobs SET settled_at = now() WHERE job_id = $1")
        .await
        .during("settling a job")?;
    client.execute(&statement, &[&job_id]).await.during("settling a job")?;
    Ok(())
}

/// The counts columns in statement order: total, changed, deleted, filtered, pages, graph_requests,
/// throttled_waits.
fn counts_i64(c: &RunCounts) -> [i64; 7] {
    [c.total, c.changed, c.deleted, c.filtered, c.pages, c.graph_requests, c.throttled_waits]
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// A statement's parameters: `head`, then the counts.
fn with_counts<'a>(head: &[&'a (dyn ToSql + Sync)], counts: &'a [i64; 7]) -> Vec<&'a (dyn ToSql + Sync)> {
    head.iter().copied().chain(counts.iter().map(|count| count as &(dyn ToSql + Sync))).collect()
}

/// Updates the counts of a running run (and its mode and reason, which a restart as full changes).
pub async fn update_progress(
    db: &impl GenericClient,
    run_id: Uuid,
    mode: SyncMode,
    reason: Option<&str>,
    counts: &RunCounts,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE sync_runs SET mode = $2::text::sync_mode, reason = COALESCE($3, reason), \
                 total = $4, changed = $5, deleted = $6, filtered = $7, pages = $8, graph_requests = $9, \
                 throttled_waits = $10, updated_at = now() \
             WHERE id = $1 AND status = 'running'",
        )
        .await
        .during("recording run progress")?;
    let mode = mode.as_str();
    let counts = counts_i64(counts);
    db.execute(&statement, &with_counts(&[&run_id, &mode, &reason], &counts)).await.during("recording run progress")?;
    Ok(())
}

/// Records a run's final state.
pub async fn finish(db: &impl GenericClient, end: &RunFinished) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE sync_runs SET status = $2::text::run_status, mode = $3::text::sync_mode, \
                 reason = COALESCE($4, reason), error = $5, finished_at = $6, \
                 total = $7, changed = $8, deleted = $9, filtered = $10, pages = $11, graph_requests = $12, \
                 throttled_waits = $13, updated_at = now() \
             WHERE id = $1",
        )
        .await
        .during("recording a run's end")?;
    let (status, mode) = (end.status.as_str(), end.mode.as_str());
    let counts = counts_i64(&end.counts);
    let head: [&(dyn ToSql + Sync); 6] = [&end.run_id, &status, &mode, &end.reason, &end.error, &end.finished_at];
    db.execute(&statement, &with_counts(&head, &counts)).await.during("recording a run's end")?;
    Ok(())
}

/// A run as recorded, for the API and tests.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: String,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub counts: RunCounts,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn get(db: &impl GenericClient, run_id: Uuid) -> Result<Option<RunRecord>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT id, tenant_id, object_class::text, mode::text, trigger, status::text, total, changed, deleted, \
                    filtered, pages, graph_requests, throttled_waits, reason, error, started_at, finished_at \
             FROM sync_runs WHERE id = $1",
        )
        .await
        .during("reading a run")?;
    let row = db.query_opt(&statement, &[&run_id]).await.during("reading a run")?;
    let count = |row: &tokio_postgres::Row, i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(row.map(|r| RunRecord {
        run_id: r.get(0),
        tenant_id: r.get(1),
        class: r.get(2),
        mode: r.get(3),
        trigger: r.get(4),
        status: r.get(5),
        counts: RunCounts {
            total: count(&r, 6),
            changed: count(&r, 7),
            deleted: count(&r, 8),
            filtered: count(&r, 9),
            pages: count(&r, 10),
            graph_requests: count(&r, 11),
            throttled_waits: count(&r, 12),
            rows_written: 0,
        },
        reason: r.get(13),
        error: r.get(14),
        started_at: r.get(15),
        finished_at: r.get(16),
    }))
}

/// The runs of one mode, as the fleet benchmark's unchanged pass polls and audits them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModeTally {
    pub runs: u64,
    pub running: u64,
    pub succeeded: u64,
    /// Distinct (tenant, class) pairs with a run of the mode.
    pub pairs: u64,
    /// Objects the runs changed (an unchanged pass: 0).
    pub changed: u64,
}

impl ModeTally {
    /// The runs since `earlier` was tallied (`pairs` stays the distinct pairs of all runs).
    pub fn since(&self, earlier: &ModeTally) -> ModeTally {
        ModeTally {
            runs: self.runs.saturating_sub(earlier.runs),
            running: self.running,
            succeeded: self.succeeded.saturating_sub(earlier.succeeded),
            pairs: self.pairs,
            changed: self.changed.saturating_sub(earlier.changed),
        }
    }
}

/// Tallies the runs of `mode`.
pub async fn mode_tally(pool: &Pool, mode: SyncMode) -> Result<ModeTally, StoreError> {
    let client = pool.get().await.during("tallying runs")?;
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'running'), \
                    count(*) FILTER (WHERE status = 'success'), \
                    count(DISTINCT (tenant_id, object_class)), COALESCE(sum(changed), 0)::bigint \
             FROM sync_runs WHERE mode = $1::text::sync_mode",
            &[&mode.as_str()],
        )
        .await
        .during("tallying runs")?;
    let count = |i: usize| -> Result<u64, StoreError> { Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0)) };
    Ok(ModeTally { runs: count(0)?, running: count(1)?, succeeded: count(2)?, pairs: count(3)?, changed: count(4)? })
}

//! A sync job's start and end on its run-lock session, each one transaction and one round trip
//! (issue 16, target 5: the fixed cost of a small run).
//!
//! Start ([`RunLocks::begin`]): `BEGIN`, the tenant with the job's state and the lock
//! (`run_start_claim.sql`), then everything the run needs before Graph with its start bookkeeping
//! (`run_start_state.sql`: close interrupted runs, take the coalesced rerun request, mapping presence,
//! credential profile version, user count, schedule state) — pipelined. The second statement reads with a
//! snapshot taken after the first took the lock, so it sees the previous holder's last commit, exactly as
//! the separate statements did; it acts only if the first took the lock (which marks it taken in a setting
//! local to the transaction, `entrasync.run_lock`, cheaper to read than `pg_locks`). Without the lock the start
//! commits at once; with it the transaction stays open for the run's start to join (`open`), and the job
//! start commits with the run's start.
//!
//! End ([`RunLock::release_taking_requests`]): one statement (`run_end_take_requests.sql`) releases the lock
//! and takes both coalesced requests, in a function whose take reads after the release (V65), as
//! `schedule::take_rerun` did after `release`.

use std::sync::atomic::AtomicU8;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use super::{class_key, connect, put_back, RunLock, RunLocks, Session, REUSE_DEADLINE};

/// How long a job's start may take on a reused session before a fresh one is tried. Longer than
/// [`REUSE_DEADLINE`] (a lock statement alone): the start also writes, and a busy server must not make a
/// job give up a lock it took (its session is closed, but its backend may hold the lock a little longer).
const BEGIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
use crate::model::{ObjectClass, SyncMode};
use crate::store::cursors::{self, CursorState};
use crate::store::runs::JobRun;
use crate::store::tenants::{self, Tenant};
use crate::store::{During, StoreError};

/// The statements a session prepares once, so a start or an end is sent in one flush.
pub(super) struct Prepared {
    claim: Statement,
    state: Statement,
    take: Statement,
}

impl Prepared {
    pub(super) async fn on(client: &tokio_postgres::Client) -> Result<Prepared, StoreError> {
        let (claim, state, take) = futures::try_join!(
            client.prepare(include_str!("../sql/run_start_claim.sql")),
            client.prepare(include_str!("../sql/run_start_state.sql")),
            client.prepare(include_str!("../sql/run_end_take_requests.sql")),
        )
        .during("preparing the run-lock session's statements")?;
        Ok(Prepared { claim, state, take })
    }
}

/// A credential profile as stored now: any change to its row gives another version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileVersion {
    pub id: i64,
    pub updated_at: DateTime<Utc>,
    /// The row version's transaction id (changes on every update).
    pub xmin: String,
}

/// What a run needs before Graph, read under its lock.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// Runs of the (tenant, class) left `running` by a holder that is gone, closed as interrupted.
    pub closed_interrupted: u64,
    /// The coalesced sync rerun request taken (only when asked to take it).
    pub rerun: Option<SyncMode>,
    /// The (tenant, class) has a stored mapping set (else the policy is `PassThrough` without reading).
    pub has_mappings: bool,
    /// The tenant's credential profile as stored now; `None` without one.
    pub profile: Option<ProfileVersion>,
    /// Live users stored, up to the cap asked for (the tenant's Graph size).
    pub users: u64,
    /// No failure counted, no error kept, tenant not quarantined: a success has nothing to reset.
    pub schedule_clean: bool,
}

/// What a job's start read under the lock for its run's start, which would otherwise read it in
/// statements of its own (`sync::start`).
#[derive(Debug, Clone)]
pub struct StartRead {
    /// The (tenant, class)'s cursor, as `cursors::load` reads it.
    pub cursor: CursorState,
    /// Deletions are held for an operator (as `held_deletions::any_held`).
    pub held_deletions: bool,
}

/// The outcome of a job's first statement.
pub enum Begun {
    /// No tenant with this Entra tenant id.
    UnknownTenant,
    Found {
        tenant: Tenant,
        job: JobRun,
        /// The lock and the run's start state; `None` when the lock was not tried (tenant disabled or
        /// blocked, job settled) or is held elsewhere.
        locked: Option<Box<(RunLock, RunStart)>>,
    },
}

/// What a released lock's holder found asked of it meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requests {
    pub rerun: Option<SyncMode>,
    pub remap: bool,
}

fn mode_of(text: &str) -> SyncMode {
    if text == "full" {
        SyncMode::Full
    } else {
        SyncMode::Delta
    }
}

impl RunLocks {
    /// A job's start in one transaction: the tenant, its job's state, the lock and the run's start state
    /// (see the module). `take_rerun`: a sync job takes the coalesced rerun request with the lock.
    /// `users_cap`: live users counted up to this many.
    pub async fn begin(
        &self,
        entra_tenant: Uuid,
        class: ObjectClass,
        job_id: Uuid,
        take_rerun: bool,
        users_cap: u64,
    ) -> Result<Begun, StoreError> {
        let ask = Ask { entra_tenant, class, job_id, take_rerun, users_cap };
        // An idle session may have died unnoticed or be frozen: then a new one is opened. A session whose
        // statements failed is dropped, which also releases a lock it may have taken.
        if let Some(session) = self.take_idle() {
            if let Ok(Ok(begun)) = tokio::time::timeout(BEGIN_DEADLINE, self.begin_on(session, &ask)).await {
                return Ok(begun);
            }
        }
        self.begin_on(connect(&self.settings).await?, &ask).await
    }

    async fn begin_on(&self, session: Session, ask: &Ask) -> Result<Begun, StoreError> {
        let prepared = session.prepared().await?;
        let client = &session.client;
        let cap = i64::try_from(ask.users_cap).unwrap_or(i64::MAX);
        let key = class_key(ask.class);
        let class = ask.class.as_str();
        // Sent in this order in one flush (the statements are prepared): one transaction, one round trip.
        let claim_params: [&(dyn ToSql + Sync); 3] = [&ask.entra_tenant, &ask.job_id, &key];
        let state_params: [&(dyn ToSql + Sync); 5] = [&ask.entra_tenant, &class, &key, &ask.take_rerun, &cap];
        // The transaction stays open when the lock is taken: the run's start joins it (`open`).
        let ((), claim, state) = futures::try_join!(
            client.batch_execute("BEGIN"),
            client.query_opt(&prepared.claim, &claim_params),
            client.query_opt(&prepared.state, &state_params),
        )
        .during("starting a job")?;
        let Some(claim) = claim else {
            self.end_unlocked(session).await?;
            return Ok(Begun::UnknownTenant);
        };
        let tenant = tenants::from_row(&claim)?;
        let job = match (claim.try_get::<_, Option<bool>>(10)?, claim.try_get::<_, Option<bool>>(11)?) {
            (None, _) => JobRun::None,
            (Some(true), _) => JobRun::Settled,
            (_, Some(true)) => JobRun::Running,
            _ => JobRun::GivenBack,
        };
        let locked: bool = claim.try_get(12)?;
        let locked = match (locked, state) {
            (true, Some(state)) => {
                let (start, read) = start_of(&state)?;
                let start_open = AtomicU8::new(super::open::OPEN);
                Some(Box::new((
                    RunLock { session, home: self.idle.clone(), start: start_open, read: Some(read) },
                    start,
                )))
            }
            (false, None) => {
                self.end_unlocked(session).await?;
                None
            }
            // The lock and the state disagree (cannot happen: the state statement checks the lock). The
            // session is dropped, which releases whatever it holds.
            (locked, _) => {
                return Err(StoreError::Unexpected(anyhow::anyhow!(
                    "run start: lock taken {locked}, but the start state says otherwise"
                )))
            }
        };
        Ok(Begun::Found { tenant, job, locked })
    }
}

impl RunLocks {
    /// Ends a job start that took no lock (it wrote nothing) and keeps the session for the next one.
    async fn end_unlocked(&self, session: Session) -> Result<(), StoreError> {
        session.client.batch_execute("COMMIT").await.during("starting a job")?;
        put_back(&self.idle, session);
        Ok(())
    }
}

struct Ask {
    entra_tenant: Uuid,
    class: ObjectClass,
    job_id: Uuid,
    take_rerun: bool,
    users_cap: u64,
}

fn start_of(row: &Row) -> Result<(RunStart, StartRead), StoreError> {
    let profile = match row.try_get::<_, Option<i64>>(3)? {
        Some(id) => Some(ProfileVersion { id, updated_at: row.try_get(4)?, xmin: row.try_get(5)? }),
        None => None,
    };
    let start = RunStart {
        closed_interrupted: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or_default(),
        rerun: row.try_get::<_, Option<String>>(1)?.as_deref().map(mode_of),
        has_mappings: row.try_get(2)?,
        profile,
        users: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or_default(),
        schedule_clean: row.try_get::<_, Option<bool>>(7)?.unwrap_or(false),
    };
    let read = StartRead { cursor: cursors::from_row(row, 8), held_deletions: row.try_get(15)? };
    Ok((start, read))
}

impl RunLock {
    /// Releases the lock and takes the (tenant, class)'s coalesced requests in one transaction (see the
    /// module). `None` when that failed: the session is dropped (so the lock is released) and the
    /// requests stay stored for the caller to take the usual way.
    pub async fn release_taking_requests(self, tenant_id: i64, class: ObjectClass) -> Option<Requests> {
        let taken = async {
            self.commit_start().await?;
            let prepared = self.session.prepared().await?;
            let client = &self.session.client;
            let class = class.as_str();
            let params: [&(dyn ToSql + Sync); 2] = [&tenant_id, &class];
            let rows = client.query(&prepared.take, &params).await.during("releasing a run lock")?;
            let mut requests = Requests::default();
            for row in &rows {
                requests.rerun = row.try_get::<_, Option<String>>(0)?.as_deref().map(mode_of);
                requests.remap = row.try_get(1)?;
            }
            Ok::<_, StoreError>(requests)
        };
        match tokio::time::timeout(REUSE_DEADLINE, taken).await {
            Ok(Ok(requests)) => {
                put_back(&self.home, self.session);
                Some(requests)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot release the run lock with its requests; closing its session");
                None
            }
            Err(_) => {
                tracing::warn!("releasing the run lock took too long; closing its session");
                None
            }
        }
    }
}

//! The (tenant, class) run lock: at most one sync run per tenant and class across all instances.
//!
//! A session advisory lock on a connection of its own (not the shared pool's): when the holder dies, or
//! loses its connection, Postgres releases the lock, so no lock outlives its holder. Released locks' sessions
//! are reused ([`RunLocks`]). The holder must stop its run
//! when [`RunLock::lost`] fires, because from then on another worker may take the lock.
//!
//! A holder that vanishes without closing its socket (host gone, NAT or load-balancer state lost, a
//! frozen connection) is found by the server itself: the session sets the server's TCP keepalives,
//! `tcp_user_timeout` and `idle_session_timeout` ([`connect::run_lock_idle_limit`]), and every session
//! sends a heartbeat a sixth of that limit apart. A heartbeat unanswered within that sixth marks the lock
//! lost and closes the session, so the holder stops before the server lets another instance in. The holder
//! then ends its own server session from a new connection (`pg_terminate_backend`, matched by pid and
//! backend start), so the lock is free at once and the job it gives back can resume the run, instead of
//! waiting for `idle_session_timeout` (a connection frozen in the network can leave the server's end open).

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

mod open;
mod start;

pub use open::OpenStart;
pub use start::{Begun, ProfileVersion, Requests, RunStart, StartRead};

use super::connect::{self, Purpose};
use super::{During, StoreError};
use crate::config::DatabaseSettings;
use crate::model::ObjectClass;

/// First key of the two-key advisory lock: "SYN" and the class, clear of other entrasync locks.
fn class_key(class: ObjectClass) -> i32 {
    let index = ObjectClass::ALL.iter().position(|c| *c == class).unwrap_or_default() as i32;
    0x5359_4e00 + index
}

/// Second key: the tenant id, folded into the positive int4 range.
fn tenant_key(tenant_id: i64) -> i32 {
    (tenant_id & 0x7fff_ffff) as i32
}

/// Lock keys as `store::schedule` passes them to SQL to see whether a class is running.
pub(super) fn lock_keys(tenant_id: i64) -> (Vec<String>, Vec<i32>, i64) {
    let classes = ObjectClass::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let class_keys = ObjectClass::ALL.iter().map(|c| class_key(*c)).collect();
    (classes, class_keys, i64::from(tenant_key(tenant_id)))
}

/// Idle sessions kept for reuse at most: opening a Postgres session costs the server ~11 CPU-ms (fork,
/// backend start, catalogue caches), a third of a small tenant's whole run (docs/benchmarks.md).
const MAX_IDLE_SESSIONS: usize = 16;

/// How long a reused idle session may take to answer; one that does not is dropped (which closes it).
const REUSE_DEADLINE: Duration = Duration::from_secs(2);

/// A connection of its own for run locks, and the token that fires when it ends or stops answering.
/// Only the session holds the client strongly: dropping it closes the connection.
struct Session {
    client: Arc<Client>,
    lost: CancellationToken,
    /// The job start's and end's statements, prepared on first use (`start`).
    prepared: tokio::sync::OnceCell<start::Prepared>,
    /// The statements a run's start prepared in a job start's open transaction (`open`).
    cached: open::Cache,
}

impl Session {
    async fn prepared(&self) -> Result<&start::Prepared, StoreError> {
        self.prepared.get_or_try_init(|| start::Prepared::on(&self.client)).await
    }
}

/// Takes run locks for one process, reusing the sessions of released locks. A session is reused only
/// after `pg_advisory_unlock_all()` answered on it and its connection is alive, so it holds no lock;
/// "lock lost ⇒ connection gone" still holds, because a reused session is never closed under a holder.
/// Clones share the idle sessions.
#[derive(Clone)]
pub struct RunLocks {
    settings: DatabaseSettings,
    idle: Arc<Mutex<Vec<Session>>>,
}

impl RunLocks {
    pub fn new(settings: DatabaseSettings) -> RunLocks {
        RunLocks { settings, idle: Arc::default() }
    }

    /// Takes the lock if nobody holds it: `Ok(None)` means a run of this tenant and class is in progress.
    pub async fn try_acquire(&self, tenant_id: i64, class: ObjectClass) -> Result<Option<RunLock>, StoreError> {
        let keys = (class_key(class), tenant_key(tenant_id));
        let try_lock = |session: Session| async move {
            let row = session.client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&keys.0, &keys.1]).await;
            row.map(|row| (session, row.get::<_, bool>(0)))
        };
        // An idle session may have died unnoticed (the server restarted) or be frozen in the network: then a
        // new one is opened.
        let reused = match self.take_idle() {
            Some(session) => match tokio::time::timeout(REUSE_DEADLINE, try_lock(session)).await {
                Ok(Ok(reused)) => Some(reused),
                Ok(Err(_)) | Err(_) => None,
            },
            None => None,
        };
        let (session, locked) = match reused {
            Some(reused) => reused,
            None => try_lock(connect(&self.settings).await?).await.during("taking a run lock")?,
        };
        if locked {
            Ok(Some(RunLock { session, home: self.idle.clone(), start: AtomicU8::new(open::CLOSED), read: None }))
        } else {
            put_back(&self.idle, session);
            Ok(None)
        }
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|session| !session.lost.is_cancelled());
        idle.pop()
    }
}

fn put_back(idle: &Mutex<Vec<Session>>, session: Session) {
    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
    if !session.lost.is_cancelled() && idle.len() < MAX_IDLE_SESSIONS {
        idle.push(session);
    }
}

async fn connect(settings: &DatabaseSettings) -> Result<Session, StoreError> {
    let config = connect::session_config(settings, Purpose::RunLock)?;
    let (client, connection) =
        config.postgres.connect(config.tls.clone()).await.map_err(|e| connect::unreachable(&config.postgres, &e))?;
    let lost = CancellationToken::new();
    let (on_close, give_up) = (lost.clone(), lost.clone());
    tokio::spawn(async move {
        tokio::select! {
            ended = connection => {
                if let Err(error) = ended {
                    tracing::warn!(%error, "run lock connection failed");
                }
            }
            // The heartbeat gave up: drop the socket rather than wait for the network to say so.
            () = give_up.cancelled() => {}
        }
        on_close.cancel();
    });
    // Who this session is on the server, to end it there if it ever stops answering.
    let identity =
        client.query_one("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[]);
    let backend = match identity.await {
        Ok(row) => Backend { pid: row.try_get(0)?, started: row.try_get(1)? },
        Err(error) => {
            lost.cancel();
            return Err(StoreError::from(error)).during("identifying a run-lock session");
        }
    };
    let client = Arc::new(client);
    // Loss is known within two periods (a third of the limit), well before the server would end the
    // session, and early enough for the job given back to resume the run within a minute.
    let period = connect::run_lock_idle_limit(settings) / 6;
    tokio::spawn(heartbeat(Arc::downgrade(&client), lost.clone(), period, settings.clone(), backend));
    Ok(Session { client, lost, prepared: tokio::sync::OnceCell::new(), cached: open::Cache::default() })
}

/// A session's identity on the server: a pid alone could be reused by a later session.
#[derive(Debug, Clone, Copy)]
struct Backend {
    pid: i32,
    started: chrono::DateTime<chrono::Utc>,
}

/// How long ending a silent session may take.
const END_DEADLINE: Duration = Duration::from_secs(10);

/// Ends a run-lock session that stopped answering, from a new connection, releasing its locks now. Best
/// effort: if this fails too, the server's `idle_session_timeout` ends it later.
async fn end_on_server(settings: &DatabaseSettings, backend: Backend) {
    let ended = async {
        let (client, connection) = connect::session_config(settings, Purpose::Pool)?.open().await?;
        let ended = client
            .query_opt(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
                &[&backend.pid, &backend.started],
            )
            .await;
        drop(client);
        connection.abort();
        Ok::<_, StoreError>(ended?.is_some_and(|row| row.get::<_, bool>(0)))
    };
    match tokio::time::timeout(END_DEADLINE, ended).await {
        Ok(Ok(true)) => tracing::info!(pid = backend.pid, "ended the silent run-lock session on the server"),
        Ok(Ok(false)) => tracing::debug!(pid = backend.pid, "the silent run-lock session had already ended"),
        Ok(Err(error)) => tracing::warn!(%error, pid = backend.pid, "cannot end the silent run-lock session"),
        Err(_) => tracing::warn!(pid = backend.pid, "ending the silent run-lock session timed out"),
    }
}

/// Keeps the session from counting as idle on the server, and finds a connection that stopped
/// answering (then ends it on the server). Ends with the session.
async fn heartbeat(
    client: Weak<Client>,
    lost: CancellationToken,
    period: Duration,
    settings: DatabaseSettings,
    backend: Backend,
) {
    loop {
        tokio::select! {
            () = lost.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let Some(client) = client.upgrade() else { return };
        let answered = tokio::time::timeout(period, client.simple_query("SELECT 1")).await;
        drop(client);
        match answered {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "run lock session failed its heartbeat; the lock counts as lost");
                lost.cancel();
                return;
            }
            Err(_) => {
                tracing::warn!(?period, "run lock session did not answer its heartbeat; the lock counts as lost");
                lost.cancel();
                end_on_server(&settings, backend).await;
                return;
            }
        }
    }
}

/// A held run lock. Dropping it without [`RunLock::release`] closes its connection, which releases the lock
/// (and rolls back a job start still open on it).
pub struct RunLock {
    session: Session,
    home: Arc<Mutex<Vec<Session>>>,
    /// Whether the job start's transaction ([`RunLocks::begin`]) is still open on the session (`open`): a
    /// sync run's start joins it ([`RunLock::open_start`]); anything else ends it first
    /// ([`RunLock::commit_start`]).
    start: AtomicU8,
    /// What the job start read for the run's start (`None` for a lock taken alone).
    read: Option<StartRead>,
}

impl RunLock {
    /// Resolves when the lock's connection is gone (and with it the lock), or stopped answering (and the
    /// server is about to end it).
    pub async fn lost(&self) {
        self.session.lost.cancelled().await;
    }

    pub fn is_lost(&self) -> bool {
        self.session.lost.is_cancelled()
    }

    /// A setting as the lock's own session sees it (`current_setting`), for checks and tests: the
    /// server-side keepalives and timeouts are per session.
    pub async fn session_setting(&self, name: &str) -> Result<String, StoreError> {
        let row = self
            .session
            .client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .during("reading a run-lock session setting")?;
        Ok(row.try_get(0)?)
    }

    /// Releases the lock; its session is kept for the next lock only when the unlock answered in time.
    pub async fn release(self) {
        let unlocked = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            self.commit_start().await?;
            self.session.client.simple_query("SELECT pg_advisory_unlock_all()").await.during("releasing a run lock")
        })
        .await;
        if matches!(unlocked, Ok(Ok(_))) {
            put_back(&self.home, self.session);
        }
        // Otherwise dropping the session closes it, and closing releases the lock.
    }
}

/// Closes runs left `running` whose holder is gone (nobody holds their run lock) as
/// `failed: interrupted`; the next run of the class resumes from their checkpoint. Returns how many.
/// A run's row is written only while its lock is held, and finished before the lock is released.
pub async fn close_orphaned_runs(pool: &super::Pool) -> Result<u64, StoreError> {
    let client = pool.get().await.during("closing orphaned runs")?;
    let classes: Vec<String> = ObjectClass::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let class_keys: Vec<i32> = ObjectClass::ALL.iter().map(|c| class_key(*c)).collect();
    let closed = client
        .execute(include_str!("sql/runs_close_orphaned.sql"), &[&classes, &class_keys])
        .await
        .during("closing orphaned runs")?;
    if closed > 0 {
        tracing::warn!(runs = closed, "closed runs whose worker is gone as failed: interrupted");
    }
    Ok(closed)
}

/// Closes the `running` runs of (tenant, class) as `failed: interrupted`: called by the new holder of
/// the run lock, so they can only be left over from a holder that is gone.
pub async fn close_interrupted(lock: &RunLock, tenant_id: i64, class: ObjectClass) -> Result<u64, StoreError> {
    lock.commit_start().await?;
    let closed = lock
        .session
        .client
        .execute(
            "UPDATE sync_runs SET status = 'failed', error = 'interrupted', finished_at = now(), updated_at = now()
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND status = 'running'",
            &[&tenant_id, &class.as_str()],
        )
        .await
        .during("closing interrupted runs")?;
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_class_and_stay_positive() {
        let keys: Vec<i32> = ObjectClass::ALL.iter().map(|c| class_key(*c)).collect();
        assert_eq!(keys, vec![0x5359_4e00, 0x5359_4e01, 0x5359_4e02]);
        assert_eq!(tenant_key(7), 7);
        assert!(tenant_key(i64::MAX) >= 0);
    }
}

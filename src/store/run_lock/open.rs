//! A job start's transaction left open on its run-lock session, so the sync run's start joins it: the job's
//! start and the run's start (cursor, checkpoint, run row, page hints, the first budget lease) commit as
//! one transaction (issue 16, target 5). Everything else a job does under the lock commits it first
//! ([`RunLock::commit_start`]): the open transaction may hold row locks (the coalesced rerun request it
//! took) that the job's own writes on other connections would wait for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement, ToStatement};

use super::{RunLock, StartRead};
use crate::store::{Db, During, StoreError};

/// The statements prepared on one run-lock session by the run starts that joined its job starts.
#[derive(Default)]
pub(super) struct Cache(Mutex<HashMap<String, Statement>>);

impl Cache {
    fn get(&self, query: &str) -> Option<Statement> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(query).cloned()
    }

    fn keep(&self, query: &str, statement: Statement) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(query.to_owned(), statement);
    }
}

/// The job start's transaction, still open on the lock's session. Its statements run in that transaction;
/// [`OpenStart::commit`] ends it.
pub struct OpenStart<'a> {
    lock: &'a RunLock,
}

/// Where the job start's transaction stands ([`RunLock`]'s `start`).
pub(super) const CLOSED: u8 = 0;
pub(super) const OPEN: u8 = 1;
/// An [`OpenStart`] was dropped before it committed (its round was cancelled mid-start): what it wrote
/// may be half a run's start, so the transaction is rolled back.
const ABANDONED: u8 = 2;

impl RunLock {
    /// The job start's transaction, if it is still open: a sync run's start joins it.
    pub fn open_start(&self) -> Option<OpenStart<'_>> {
        (self.start.load(Ordering::Acquire) == OPEN).then_some(OpenStart { lock: self })
    }

    /// Commits the job start's transaction if it is still open (rolls it back if its run's start was
    /// abandoned). When that fails the session counts as lost: the holder stops, and closing the session
    /// releases the lock and rolls the start back.
    pub async fn commit_start(&self) -> Result<(), StoreError> {
        let end = match self.start.swap(CLOSED, Ordering::AcqRel) {
            OPEN => "COMMIT",
            ABANDONED => "ROLLBACK",
            _ => return Ok(()),
        };
        let ended = self.session.client.batch_execute(end).await.during("ending a job's start");
        if ended.is_err() {
            self.session.lost.cancel();
        }
        ended
    }
}

impl OpenStart<'_> {
    /// What the job start read for the run's start, in this transaction.
    pub fn read(&self) -> Option<&StartRead> {
        self.lock.read.as_ref()
    }

    /// Commits the job's and the run's start; dropped instead, the start is rolled back at the release.
    pub async fn commit(self) -> Result<(), StoreError> {
        let lock = self.lock;
        std::mem::forget(self);
        lock.commit_start().await
    }
}

impl Drop for OpenStart<'_> {
    fn drop(&mut self) {
        // Only an open start can be abandoned; a commit in flight has already closed it.
        self.lock.start.compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire).ok();
    }
}

impl Db for OpenStart<'_> {
    fn prepare_cached<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<Statement, Error>> + Send + 'a {
        let session = &self.lock.session;
        async move {
            if let Some(statement) = session.cached.get(query) {
                return Ok(statement);
            }
            let statement = session.client.prepare(query).await?;
            session.cached.keep(query, statement.clone());
            Ok(statement)
        }
    }

    fn execute<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        self.lock.session.client.execute(statement, params)
    }

    fn query_one<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        self.lock.session.client.query_one(statement, params)
    }

    fn query_opt<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        self.lock.session.client.query_opt(statement, params)
    }
}

//! [`Db`]: what a store function needs of the connection it is handed. Most take deadpool's
//! `GenericClient` (a pooled client or a transaction on one). The statements a sync run's start writes
//! take a `Db`, so they can also run in a job start's transaction, still open on its run-lock session
//! ([`super::run_lock::OpenStart`]): the job's start and its run's start are then one transaction.

use std::future::Future;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement, ToStatement};

/// A connection, or a transaction on one, that runs statements and caches prepared ones.
pub trait Db: Sync {
    fn prepare_cached<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<Statement, Error>> + Send + 'a;

    fn execute<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a;

    fn query_one<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a;

    fn query_opt<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a;
}

impl<C: deadpool_postgres::GenericClient> Db for C {
    fn prepare_cached<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<Statement, Error>> + Send + 'a {
        deadpool_postgres::GenericClient::prepare_cached(self, query)
    }

    fn execute<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        deadpool_postgres::GenericClient::execute(self, statement, params)
    }

    fn query_one<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        deadpool_postgres::GenericClient::query_one(self, statement, params)
    }

    fn query_opt<'a, T: ?Sized + ToStatement + Sync + Send>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        deadpool_postgres::GenericClient::query_opt(self, statement, params)
    }
}

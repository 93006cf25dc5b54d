//! The statements of the COPY limit: a tenant's rows of a sync table exported with `COPY … TO STDOUT
//! (FORMAT binary)`, and loaded with `COPY … FROM STDIN (FORMAT binary)` into a scratch table with the
//! same columns, defaults, primary key and indexes (`LIKE … INCLUDING ALL`). Every statement of one
//! table runs on one connection, each in its own transaction; the caller moves the bytes and keeps time.

use std::pin::Pin;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use tokio_postgres::CopyInSink;

use super::super::{Pool, StoreError};

/// A sync table whose rows the COPY limit copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyTable {
    DirectoryObjects,
    GroupMembers,
}

impl CopyTable {
    pub fn name(self) -> &'static str {
        match self {
            CopyTable::DirectoryObjects => "directory_objects",
            CopyTable::GroupMembers => "group_members",
        }
    }

    /// The scratch table the rows are loaded into: `bench_copy_<table>`.
    pub fn scratch(self) -> &'static str {
        match self {
            CopyTable::DirectoryObjects => "bench_copy_directory_objects",
            CopyTable::GroupMembers => "bench_copy_group_members",
        }
    }
}

/// One pooled connection for the COPY limit of one table.
pub struct CopySession {
    client: deadpool_postgres::Client,
}

/// A `COPY … FROM STDIN (FORMAT binary)` in progress: send the data, then finish.
pub struct CopyIn {
    sink: Pin<Box<CopyInSink<Bytes>>>,
}

impl CopySession {
    /// The connection is the benchmark pool's: its bulk COPYs may outrun the pool's statement_timeout,
    /// so the session's limit is raised for as long as the benchmark keeps the connection.
    pub async fn open(pool: &Pool) -> Result<CopySession, StoreError> {
        let client = pool.get().await?;
        let limit = super::super::BULK_STATEMENT_TIMEOUT.as_millis();
        client.batch_execute(&format!("SET statement_timeout = {limit}")).await?;
        Ok(CopySession { client })
    }

    /// The tenant's rows of `table`, in COPY binary format, as the server sends them.
    pub async fn export(
        &self,
        table: CopyTable,
        tenant_id: i64,
    ) -> Result<impl Stream<Item = Result<Bytes, StoreError>>, StoreError> {
        // COPY takes no parameters; the tenant id is an integer.
        let export =
            format!("COPY (SELECT * FROM {} WHERE tenant_id = {tenant_id}) TO STDOUT (FORMAT binary)", table.name());
        let stream = self.client.copy_out(export.as_str()).await?;
        Ok(stream.map(|chunk| chunk.map_err(StoreError::from)))
    }

    /// (Re)creates the empty scratch table of `table`.
    pub async fn create_scratch(&self, table: CopyTable) -> Result<(), StoreError> {
        let (scratch, table) = (table.scratch(), table.name());
        self.client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {scratch}; CREATE TABLE {scratch} (LIKE {table} INCLUDING ALL)"
            ))
            .await?;
        Ok(())
    }

    /// Starts loading COPY binary data into the scratch table of `table`.
    pub async fn import_scratch(&self, table: CopyTable) -> Result<CopyIn, StoreError> {
        let sink =
            self.client.copy_in::<_, Bytes>(&format!("COPY {} FROM STDIN (FORMAT binary)", table.scratch())).await?;
        Ok(CopyIn { sink: Box::pin(sink) })
    }

    pub async fn drop_scratch(&self, table: CopyTable) -> Result<(), StoreError> {
        self.client.batch_execute(&format!("DROP TABLE IF EXISTS {}", table.scratch())).await?;
        Ok(())
    }
}

impl CopyIn {
    pub async fn send(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.sink.send(data).await?;
        Ok(())
    }

    /// Ends the COPY; returns the rows loaded.
    pub async fn finish(mut self) -> Result<u64, StoreError> {
        Ok(self.sink.as_mut().finish().await?)
    }
}

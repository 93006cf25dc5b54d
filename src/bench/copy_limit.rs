//! The physical limit of a full round: the time Postgres takes to `COPY` the round's own object rows
//! (exported once, untimed, in binary) into a scratch table with the same columns, defaults, primary key
//! and indexes as `directory_objects` (`LIKE … INCLUDING ALL`: one tenant's rows land in one hash
//! partition, which is what this table stands for). Foreign keys are not copied; the sync's table has none
//! on these columns.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::{pin_mut, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::store::Pool;

const SCRATCH_TABLE: &str = "bench_copy_limit";
const CHUNK: usize = 1 << 20;

/// What the COPY took.
#[derive(Debug, Clone, Copy)]
pub struct CopyLimit {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Exports the tenant's object rows to a temporary file, then times `COPY … FROM STDIN (FORMAT binary)`
/// of that file into the scratch table; the table and the file are removed afterwards.
pub async fn measure(pool: &Pool, tenant_id: i64) -> anyhow::Result<CopyLimit> {
    let client = pool.get().await.context("a connection for the COPY limit")?;
    let path = std::env::temp_dir().join(format!("entrasync-bench-{}.copy", uuid::Uuid::new_v4().simple()));
    let export =
        format!("COPY (SELECT * FROM directory_objects WHERE tenant_id = {tenant_id}) TO STDOUT (FORMAT binary)");
    {
        let mut file = tokio::fs::File::create(&path).await.context("creating the COPY file")?;
        let stream = client.copy_out(export.as_str()).await.context("exporting the rows")?;
        pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.context("exporting the rows")?).await?;
        }
        file.flush().await?;
    }
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {SCRATCH_TABLE}; CREATE TABLE {SCRATCH_TABLE} (LIKE directory_objects INCLUDING ALL)"
        ))
        .await
        .context("creating the scratch table")?;
    let timed = copy_file_in(&client, &path).await;
    let _ = tokio::fs::remove_file(&path).await;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {SCRATCH_TABLE}"))
        .await
        .context("dropping the scratch table")?;
    timed
}

async fn copy_file_in(client: &tokio_postgres::Client, path: &std::path::Path) -> anyhow::Result<CopyLimit> {
    let mut file = tokio::fs::File::open(path).await.context("opening the COPY file")?;
    let started = Instant::now();
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {SCRATCH_TABLE} FROM STDIN (FORMAT binary)"))
        .await
        .context("starting the COPY")?;
    pin_mut!(sink);
    loop {
        let mut buffer = vec![0u8; CHUNK];
        let read = file.read(&mut buffer).await.context("reading the COPY file")?;
        if read == 0 {
            break;
        }
        buffer.truncate(read);
        sink.send(Bytes::from(buffer)).await.context("sending COPY data")?;
    }
    let rows = sink.as_mut().finish().await.context("finishing the COPY")?;
    Ok(CopyLimit { rows, elapsed: started.elapsed() })
}

//! The physical limit of a full round: the time Postgres takes to `COPY` the round's own rows (exported
//! once, untimed, in binary) into scratch tables with the same columns, defaults, primary key and indexes
//! as the sync's (`LIKE … INCLUDING ALL`: one tenant's rows land in one hash partition, which is what each
//! table stands for). The object rows go to a copy of `directory_objects`; a group round's memberships also
//! to a copy of `group_members`, timed separately. Foreign keys are not copied; the sync's tables have
//! none on these columns.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::{pin_mut, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::store::bench::copy::{CopySession, CopyTable};
use crate::store::Pool;

const CHUNK: usize = 1 << 20;

/// One table's COPY.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyTimed {
    pub rows: u64,
    pub elapsed: Duration,
}

/// What the COPY of a round's rows took.
#[derive(Debug, Clone, Copy)]
pub struct CopyLimit {
    pub objects: CopyTimed,
    /// The tenant's `group_members` rows, when asked for (group rounds).
    pub members: Option<CopyTimed>,
}

impl CopyLimit {
    /// Both COPYs together: what a round writing the same rows would at least take.
    pub fn elapsed(&self) -> Duration {
        self.objects.elapsed + self.members.map_or(Duration::ZERO, |m| m.elapsed)
    }
}

/// Times the COPY of the tenant's object rows and, with `memberships`, of its membership rows.
pub async fn measure(pool: &Pool, tenant_id: i64, memberships: bool) -> anyhow::Result<CopyLimit> {
    let objects = measure_table(pool, CopyTable::DirectoryObjects, tenant_id).await.context("directory_objects")?;
    let members = if memberships {
        Some(measure_table(pool, CopyTable::GroupMembers, tenant_id).await.context("group_members")?)
    } else {
        None
    };
    Ok(CopyLimit { objects, members })
}

/// Exports the tenant's rows of `table` (binary COPY format) to a temporary file, then times loading
/// that file into the scratch table `bench_copy_<table>`, all on one connection; the scratch table and
/// the file are removed afterwards.
async fn measure_table(pool: &Pool, table: CopyTable, tenant_id: i64) -> anyhow::Result<CopyTimed> {
    let session = CopySession::open(pool).await.context("a connection for the COPY limit")?;
    let path = std::env::temp_dir().join(format!("entrasync-bench-{}.copy", uuid::Uuid::new_v4().simple()));
    {
        let mut file = tokio::fs::File::create(&path).await.context("creating the COPY file")?;
        let stream = session.export(table, tenant_id).await.context("exporting the rows")?;
        pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.context("exporting the rows")?).await?;
        }
        file.flush().await?;
    }
    session.create_scratch(table).await.context("creating the scratch table")?;
    let timed = copy_file_in(&session, table, &path).await;
    if let Err(error) = tokio::fs::remove_file(&path).await {
        tracing::warn!(path = %path.display(), %error, "cannot remove the COPY scratch file");
    }
    session.drop_scratch(table).await.context("dropping the scratch table")?;
    timed
}

async fn copy_file_in(session: &CopySession, table: CopyTable, path: &std::path::Path) -> anyhow::Result<CopyTimed> {
    let mut file = tokio::fs::File::open(path).await.context("opening the COPY file")?;
    let started = Instant::now();
    let mut copy = session.import_scratch(table).await.context("starting the COPY")?;
    loop {
        let mut buffer = vec![0u8; CHUNK];
        let read = file.read(&mut buffer).await.context("reading the COPY file")?;
        if read == 0 {
            break;
        }
        buffer.truncate(read);
        copy.send(Bytes::from(buffer)).await.context("sending COPY data")?;
    }
    let rows = copy.finish().await.context("finishing the COPY")?;
    Ok(CopyTimed { rows, elapsed: started.elapsed() })
}

//! The Postgres side of the Graph rate budget: token buckets shared by every instance.
//!
//! Each lease locks one bucket row, refills it for the time since it was last touched (database
//! time, so instance clocks do not matter), takes units and writes it back — once per lease batch,
//! not per Graph request. The bucket arithmetic is `graph::TokenBucket`, shared with the
//! in-process coordinator.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures::future::BoxFuture;

use super::{Pool, StoreError};
use crate::graph::{BucketSpec, BudgetCoordinator, Grant, TokenBucket};

/// Locks the bucket row (creating it full) and returns its tokens and the seconds since its refresh.
const LOCK_BUCKET: &str = "\
    INSERT INTO graph_rate_budget AS b (bucket_key, tokens, refreshed_at) VALUES ($1, $2, clock_timestamp()) \
    ON CONFLICT (bucket_key) DO UPDATE SET bucket_key = b.bucket_key \
    RETURNING b.tokens, GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.refreshed_at))::float8";

/// Stores the new level, advancing the refresh time by exactly the refill just credited.
const STORE_BUCKET: &str = "\
    UPDATE graph_rate_budget SET tokens = $2, refreshed_at = refreshed_at + make_interval(secs => $3) \
    WHERE bucket_key = $1";

/// [`BudgetCoordinator`] over Postgres, for several instances sharing one app registration.
#[derive(Clone)]
pub struct PostgresBudgetCoordinator {
    pool: Pool,
}

impl PostgresBudgetCoordinator {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Runs `change` on the bucket's refilled state inside one transaction holding the row lock.
    async fn modify<T>(
        &self,
        bucket: &BucketSpec,
        change: impl FnOnce(TokenBucket) -> (T, TokenBucket),
    ) -> Result<T, StoreError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let result = modify_in(&transaction, bucket, change).await?;
        transaction.commit().await?;
        Ok(result)
    }

    /// The bucket's stored level (for tests and diagnostics), without refill.
    pub async fn stored_tokens(&self, bucket_key: &str) -> Result<Option<f64>, StoreError> {
        let client = self.pool.get().await?;
        let row =
            client.query_opt("SELECT tokens FROM graph_rate_budget WHERE bucket_key = $1", &[&bucket_key]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

/// Takes up to `wanted` units of the bucket in the caller's transaction (a sync run's start): the row stays
/// locked until that transaction ends, and a rollback takes nothing.
pub async fn lease_in(db: &impl super::Db, bucket: &BucketSpec, wanted: u32) -> Result<Grant, StoreError> {
    modify_in(db, bucket, |state| state.take(bucket, wanted)).await
}

/// Locks the bucket's row, refills it for the time since its refresh, applies `change`, stores the result.
async fn modify_in<T>(
    db: &impl super::Db,
    bucket: &BucketSpec,
    change: impl FnOnce(TokenBucket) -> (T, TokenBucket),
) -> Result<T, StoreError> {
    let row = db.query_one(LOCK_BUCKET, &[&bucket.key, &bucket.capacity]).await?;
    let tokens: f64 = row.try_get(0)?;
    let elapsed_seconds: f64 = row.try_get(1)?;
    let refilled = TokenBucket { tokens }.refilled(bucket, Duration::from_secs_f64(elapsed_seconds.max(0.0)));
    let (result, next) = change(refilled);
    db.execute(STORE_BUCKET, &[&bucket.key, &next.tokens, &elapsed_seconds]).await?;
    Ok(result)
}

impl BudgetCoordinator for PostgresBudgetCoordinator {
    fn stored_in_postgres(&self) -> bool {
        true
    }

    fn lease<'a>(&'a self, bucket: &'a BucketSpec, wanted: u32) -> BoxFuture<'a, anyhow::Result<Grant>> {
        Box::pin(async move { Ok(self.modify(bucket, |state| state.take(bucket, wanted)).await?) })
    }

    fn lower_to<'a>(&'a self, bucket: &'a BucketSpec, tokens: f64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.modify(bucket, |state| ((), TokenBucket { tokens: state.tokens.min(tokens) })).await?;
            Ok(())
        })
    }
}

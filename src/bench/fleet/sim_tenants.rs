//! The fleet's directories in the child emulator: one process serves every tenant. The emulator's
//! start-up tenant is the first; the others are created through its admin API
//! ([`ChildEmulator::add_tenant`]), a few requests at a time.

use futures::stream::{self, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::bench::emulator::ChildEmulator;

/// Admin requests in flight at once: enough to hide the round trip, few enough for 2 emulator workers.
const IN_FLIGHT: usize = 8;

/// Creates `count - 1` more tenants of `users` users beside the start-up one, each consented to
/// `app_id`; answers every tenant's id, the start-up tenant first.
pub async fn create(
    emulator: &ChildEmulator,
    app_id: &str,
    count: usize,
    users: usize,
    seed: u64,
) -> anyhow::Result<Vec<Uuid>> {
    let mut created: Vec<Uuid> = stream::iter(1..count)
        .map(|index| emulator.add_tenant(app_id, users, seed.wrapping_add(index as u64)))
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    created.sort_unstable();
    let mut all = Vec::with_capacity(count);
    all.push(emulator.tenant_id);
    all.extend(created);
    Ok(all)
}

//! Decrypted app credentials of the credential profiles, kept per process and reused while the
//! profile's row is unchanged (the run's start statement reads its version, `store::run_lock::RunStart`).
//! A fleet's tenants usually share one or a few profiles: reading and decrypting the profile for every
//! run was one Postgres transaction and an AES decryption per run (issue 16, target 5).
//!
//! Keyed by the profile id with its version (`updated_at` and the row's `xmin`): any change to the row
//! (a new secret, a renamed profile) gives another version and the profile is read again. The process
//! already holds the secrets key and the access tokens these credentials obtain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::graph::AppCredentials;
use crate::store::run_lock::ProfileVersion;

/// More profiles than this in one process: the cache starts over (a bound, never reached in practice).
const MAX_PROFILES: usize = 1024;

type Cache = Mutex<HashMap<i64, (ProfileVersion, Arc<AppCredentials>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// The credentials of `version`, if they were read at that version.
pub(super) fn cached(version: &ProfileVersion) -> Option<Arc<AppCredentials>> {
    let cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
    cache.get(&version.id).filter(|(stored, _)| stored == version).map(|(_, credentials)| credentials.clone())
}

/// Keeps `credentials`, read after `version` was seen (a later change gives another version, so a
/// newer read kept under an older version is only read again, never used stale).
pub(super) fn keep(version: ProfileVersion, credentials: Arc<AppCredentials>) {
    let mut cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_PROFILES && !cache.contains_key(&version.id) {
        cache.clear();
    }
    cache.insert(version.id, (version, credentials));
}

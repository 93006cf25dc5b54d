//! Sync history pages (placeholder until the module lands).

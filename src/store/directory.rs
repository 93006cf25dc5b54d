//! Directory objects (placeholder).

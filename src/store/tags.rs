//! External tag mappings, tag values, object tags and asset groups (docs/mappings.md).

//! Attribute mappings and scoping filters of a tenant: compiled from their stored definitions into a `sync::ObjectPolicy` (docs/mappings.md).

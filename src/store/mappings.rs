//! Attribute mappings and scoping filters per (tenant, class) (docs/mappings.md).

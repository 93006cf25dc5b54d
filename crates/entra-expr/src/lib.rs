//! The Microsoft Entra provisioning expression language (docs/mappings.md): parse once, evaluate many
//! times against an object's attributes.

//! The rules a mapping set must meet before it is stored or compiled (docs/mappings.md). Every problem
//! is reported at once, with the path of the field it is about; [`check`] is what the API runs.

use super::MappingProblem;
use crate::model::mapping::MappingSet;
use crate::model::ObjectClass;

/// Keys that identify the stored object; a mapping may not produce them.
pub const IDENTITY_KEYS: [&str; 1] = ["id"];

/// The longest attribute name accepted.
pub const MAX_ATTRIBUTE_NAME: usize = 256;

/// An attribute name: 1 to 256 characters, starting with a letter, then letters, digits, `_`, `.`,
/// `:` and `-` (extension attributes, `onPremisesExtensionAttributes.extensionAttribute1`, SCIM URNs;
/// reference A30). No spaces or brackets.
pub fn attribute_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an attribute name is required".to_owned());
    }
    if name.chars().count() > MAX_ATTRIBUTE_NAME {
        return Err(format!("an attribute name is at most {MAX_ATTRIBUTE_NAME} characters"));
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(format!("attribute name {name:?} must start with a letter"));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
        return Err(format!("attribute name {name:?} contains {bad:?}; use letters, digits, '_', '.', ':' and '-'"));
    }
    Ok(())
}

/// Checks a target attribute name, including that it is not one of the object's identity keys.
pub fn target_name(name: &str) -> Result<(), String> {
    attribute_name(name)?;
    if IDENTITY_KEYS.iter().any(|key| key.eq_ignore_ascii_case(name)) {
        return Err(format!("{name:?} identifies the stored object and cannot be a mapping's target"));
    }
    Ok(())
}

/// Every problem of `set` for objects of `class`; empty when it can be stored.
pub fn check(class: ObjectClass, set: &MappingSet) -> Vec<MappingProblem> {
    match super::compile(class, set) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        for good in [
            "mail",
            "extension_a1b2_costCenter",
            "onPremisesExtensionAttributes.extensionAttribute1",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "x-y",
        ] {
            assert_eq!(attribute_name(good), Ok(()), "{good}");
        }
        assert!(attribute_name("").unwrap_err().contains("required"));
        assert!(attribute_name("1abc").unwrap_err().contains("start with a letter"));
        assert!(attribute_name("given name").unwrap_err().contains("' '"));
        assert!(attribute_name("a]").unwrap_err().contains("']'"));
        assert!(attribute_name(&"a".repeat(257)).unwrap_err().contains("at most 256"));
        assert!(target_name("ID").unwrap_err().contains("identifies the stored object"));
        assert_eq!(target_name("idNumber"), Ok(()));
    }
}

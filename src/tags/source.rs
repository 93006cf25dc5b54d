//! The third-party properties a tag mapping reads: a user attribute of Entra, an extension attribute
//! (`extensionAttribute1` … `extensionAttribute15`, stored under `onPremisesExtensionAttributes`), a
//! directory extension (`extension_<appid>_<name>`), or `group_membership`. Names are accepted in any
//! case and stored canonically, so `Department` and `department` are the same source.

use crate::store::tags::SourceSpec;

/// The plain user attributes a mapping may read (Graph's names).
pub const ATTRIBUTES: [&str; 7] =
    ["department", "companyName", "officeLocation", "city", "country", "jobTitle", "employeeType"];

/// The source whose values are the display names of the groups a user is a direct member of.
pub const GROUP_MEMBERSHIP: &str = "group_membership";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSource {
    /// One of [`ATTRIBUTES`].
    Attribute(&'static str),
    /// `extensionAttribute1` … `extensionAttribute15`.
    ExtensionAttribute(u8),
    /// `extension_<appid>_<name>`: the app id as 32 lower-case hex digits, the name as written.
    DirectoryExtension(String),
    GroupMembership,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a tag mapping source; use one of {attributes}, extensionAttribute1 to extensionAttribute15, \
     extension_<appid>_<name> (a directory extension) or group_membership",
    attributes = ATTRIBUTES.join(", ")
)]
pub struct SourceError(pub String);

impl TagSource {
    pub fn parse(name: &str) -> Result<TagSource, SourceError> {
        let trimmed = name.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower == GROUP_MEMBERSHIP {
            return Ok(TagSource::GroupMembership);
        }
        if let Some(attribute) = ATTRIBUTES.iter().find(|a| a.eq_ignore_ascii_case(trimmed)) {
            return Ok(TagSource::Attribute(attribute));
        }
        let extension = lower.strip_prefix("onpremisesextensionattributes.").unwrap_or(&lower);
        if let Some(digits) = extension.strip_prefix("extensionattribute").filter(|d| !d.starts_with('0')) {
            if let Ok(n @ 1..=15) = digits.parse::<u8>() {
                return Ok(TagSource::ExtensionAttribute(n));
            }
        }
        if let Some(rest) = trimmed.get("extension_".len()..).filter(|_| lower.starts_with("extension_")) {
            if let Some((app, attribute)) = rest.split_once('_') {
                let app_ok = app.len() == 32 && app.chars().all(|c| c.is_ascii_hexdigit());
                let name_ok = !attribute.is_empty()
                    && attribute.len() <= 120
                    && attribute.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if app_ok && name_ok {
                    return Ok(TagSource::DirectoryExtension(format!(
                        "extension_{}_{attribute}",
                        app.to_ascii_lowercase()
                    )));
                }
            }
        }
        Err(SourceError(name.to_owned()))
    }

    /// The canonical name, as stored and shown.
    pub fn name(&self) -> String {
        match self {
            TagSource::Attribute(attribute) => (*attribute).to_owned(),
            TagSource::ExtensionAttribute(n) => format!("extensionAttribute{n}"),
            TagSource::DirectoryExtension(name) => name.clone(),
            TagSource::GroupMembership => GROUP_MEMBERSHIP.to_owned(),
        }
    }

    /// How the store reads it: the mapped attribute of the same name wins over the raw one.
    pub fn spec(&self) -> SourceSpec {
        match self {
            TagSource::GroupMembership => SourceSpec::GroupMembership,
            TagSource::ExtensionAttribute(_) => SourceSpec::Attribute {
                path: vec!["onPremisesExtensionAttributes".to_owned(), self.name()],
                mapped_key: self.name(),
            },
            _ => SourceSpec::Attribute { path: vec![self.name()], mapped_key: self.name() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_accepted_in_any_case_and_stored_canonically() {
        assert_eq!(TagSource::parse("Department").unwrap().name(), "department");
        assert_eq!(TagSource::parse(" companyname ").unwrap().name(), "companyName");
        assert_eq!(TagSource::parse("GROUP_MEMBERSHIP").unwrap(), TagSource::GroupMembership);
        assert_eq!(TagSource::parse("ExtensionAttribute15").unwrap(), TagSource::ExtensionAttribute(15));
        assert_eq!(
            TagSource::parse("onPremisesExtensionAttributes.extensionAttribute3").unwrap().name(),
            "extensionAttribute3"
        );
        let extension = "extension_B7D8E648520F41D3B9C0FDEB91768A0A_jobGroup";
        assert_eq!(TagSource::parse(extension).unwrap().name(), "extension_b7d8e648520f41d3b9c0fdeb91768a0a_jobGroup");
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_names() {
        for bad in [
            "",
            "mail",
            "extensionAttribute0",
            "extensionAttribute16",
            "extensionAttribute03",
            "extension_123_name",
            "extension_b7d8e648520f41d3b9c0fdeb91768a0a_",
            "extension_b7d8e648520f41d3b9c0fdeb91768a0a_a-b",
        ] {
            let error = TagSource::parse(bad).unwrap_err();
            assert!(error.to_string().contains("group_membership"), "{bad}: {error}");
        }
    }

    #[test]
    fn extension_attributes_are_read_under_on_premises_extension_attributes() {
        let spec = TagSource::ExtensionAttribute(2).spec();
        assert_eq!(
            spec,
            SourceSpec::Attribute {
                path: vec!["onPremisesExtensionAttributes".to_owned(), "extensionAttribute2".to_owned()],
                mapped_key: "extensionAttribute2".to_owned()
            }
        );
        assert_eq!(TagSource::GroupMembership.spec(), SourceSpec::GroupMembership);
    }
}

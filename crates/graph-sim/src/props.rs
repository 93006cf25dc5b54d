//! The properties the emulator knows per object class, and which of them Graph returns by default.

use entrasync_model::ObjectClass;

/// Index of a property in its class's table.
pub type PropId = u8;

pub struct PropDef {
    pub name: &'static str,
    /// Returned without `$select` on list endpoints and delta.
    pub default: bool,
}

const fn p(name: &'static str, default: bool) -> PropDef {
    PropDef { name, default }
}

// Users: the 11 list defaults, then "returned only on $select" (graph-protocol.md §2, §6).
static USER_PROPS: &[PropDef] = &[
    p("businessPhones", true),
    p("displayName", true),
    p("givenName", true),
    p("jobTitle", true),
    p("mail", true),
    p("mobilePhone", true),
    p("officeLocation", true),
    p("preferredLanguage", true),
    p("surname", true),
    p("userPrincipalName", true),
    p("accountEnabled", false),
    p("department", false),
    p("companyName", false),
    p("employeeId", false),
    p("employeeType", false),
    p("mailNickname", false),
    p("userType", false),
    p("createdDateTime", false),
    p("onPremisesSyncEnabled", false),
    p("onPremisesImmutableId", false),
    p("onPremisesSamAccountName", false),
    p("usageLocation", false),
    p("city", false),
    p("country", false),
    p("state", false),
    p("postalCode", false),
    p("streetAddress", false),
    // Graph returns it as an object of extensionAttribute1…15 (the emulator sets the non-null ones).
    p("onPremisesExtensionAttributes", false),
];

static GROUP_PROPS: &[PropDef] = &[
    p("createdDateTime", true),
    p("description", true),
    p("displayName", true),
    p("groupTypes", true),
    p("mail", true),
    p("mailEnabled", true),
    p("mailNickname", true),
    p("securityEnabled", true),
    p("visibility", true),
    p("onPremisesSyncEnabled", true),
    p("proxyAddresses", true),
];

static DEVICE_PROPS: &[PropDef] = &[
    p("accountEnabled", true),
    p("approximateLastSignInDateTime", true),
    p("createdDateTime", true),
    p("deviceId", true),
    p("displayName", true),
    p("operatingSystem", true),
    p("operatingSystemVersion", true),
    p("trustType", true),
    p("isCompliant", true),
    p("isManaged", true),
    p("manufacturer", true),
    p("model", true),
    p("profileType", true),
    p("onPremisesSyncEnabled", true),
    p("alternativeSecurityIds", true),
];

/// Properties Graph knows but serves from outside the directory (graph-protocol.md §1.3).
static NOT_IMPLEMENTED_USER_PROPS: &[&str] =
    &["skills", "aboutMe", "interests", "schools", "pastProjects", "responsibilities"];

pub fn props(class: ObjectClass) -> &'static [PropDef] {
    match class {
        ObjectClass::User => USER_PROPS,
        ObjectClass::Group => GROUP_PROPS,
        ObjectClass::Device => DEVICE_PROPS,
    }
}

/// Looks a property up case-insensitively, as Graph does.
pub fn prop_id(class: ObjectClass, name: &str) -> Option<PropId> {
    props(class).iter().position(|d| d.name.eq_ignore_ascii_case(name)).map(|i| i as PropId)
}

/// Exact-case lookup for the emulator's own code (cheap: most names differ in length).
pub fn prop_id_exact(class: ObjectClass, name: &str) -> Option<PropId> {
    props(class).iter().position(|d| d.name == name).map(|i| i as PropId)
}

pub fn prop_name(class: ObjectClass, id: PropId) -> &'static str {
    props(class)[usize::from(id)].name
}

pub fn default_props(class: ObjectClass) -> Vec<PropId> {
    props(class).iter().enumerate().filter(|(_, d)| d.default).map(|(i, _)| i as PropId).collect()
}

pub fn is_not_implemented(class: ObjectClass, name: &str) -> bool {
    class == ObjectClass::User && NOT_IMPLEMENTED_USER_PROPS.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The OData type name used in errors and `@odata.type`.
pub fn odata_type(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::User => "#microsoft.graph.user",
        ObjectClass::Group => "#microsoft.graph.group",
        ObjectClass::Device => "#microsoft.graph.device",
    }
}

pub fn type_name(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::User => "microsoft.graph.user",
        ObjectClass::Group => "microsoft.graph.group",
        ObjectClass::Device => "microsoft.graph.device",
    }
}

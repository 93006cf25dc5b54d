//! Synthesises an object's generated attributes from (tenant seed, class, index). Nothing here is stored:
//! a million users cost no attribute memory until an attribute is overridden.

use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use crate::props::{prop_id_exact, props};
use crate::rng::SplitMix;
use crate::words::*;
use entrasync_model::ObjectClass;

/// What a generated group is: decides its attributes and how deleting it behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Security,
    Microsoft365,
    MailEnabledSecurity,
    Distribution,
}

pub fn group_kind(seed: u64, index: u32) -> GroupKind {
    if index == 0 {
        return GroupKind::Microsoft365;
    }
    let r = SplitMix::for_object(seed, 0x6b1d, u64::from(index)).unit();
    match r {
        r if r < 0.50 => GroupKind::Security,
        r if r < 0.80 => GroupKind::Microsoft365,
        r if r < 0.92 => GroupKind::MailEnabledSecurity,
        _ => GroupKind::Distribution,
    }
}

/// `2018-01-01T00:00:00Z`, Graph's form. Not `format("%Y-…")`: parsing the format string for every object
/// was ~6 % of the emulator's CPU in a delta walk.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2018, 1, 1, 0, 0, 0).single().unwrap_or_default()
}

fn created_at(rng: &mut SplitMix) -> DateTime<Utc> {
    epoch() + Duration::seconds(rng.below(6 * 365 * 86_400) as i64)
}

fn slug(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase()
}

/// Fills `values` (one slot per property of the class) with generated attributes.
pub fn synthesize(class: ObjectClass, seed: u64, domain: &str, index: u32) -> Vec<Option<Value>> {
    let mut out = vec![None; props(class).len()];
    let mut set = |name: &str, value: Value| {
        if let Some(id) = prop_id_exact(class, name) {
            out[usize::from(id)] = Some(value);
        }
    };
    match class {
        ObjectClass::User => user(seed, domain, index, &mut set),
        ObjectClass::Group => group(seed, domain, index, &mut set),
        ObjectClass::Device => device(seed, index, &mut set),
    }
    out
}

fn user(seed: u64, domain: &str, index: u32, set: &mut impl FnMut(&str, Value)) {
    let mut rng = SplitMix::for_object(seed, 1, u64::from(index));
    let given = *rng.pick(GIVEN_NAMES);
    let surname = *rng.pick(SURNAMES);
    let nick = format!("{}.{}{}", slug(given), slug(surname), index);
    let guest = rng.chance(0.04);
    set("displayName", json!(format!("{given} {surname}")));
    set("givenName", json!(given));
    set("surname", json!(surname));
    set("mailNickname", json!(nick));
    if guest {
        set("userPrincipalName", json!(format!("{nick}_fabrikam.com#EXT#@{domain}")));
        set("mail", json!(format!("{nick}@fabrikam.com")));
        set("userType", json!("Guest"));
    } else {
        set("userPrincipalName", json!(format!("{nick}@{domain}")));
        set("mail", json!(format!("{nick}@{domain}")));
        set("userType", json!("Member"));
    }
    let phones = if rng.chance(0.7) { vec![format!("+1 425 555 {:04}", rng.below(10_000))] } else { Vec::new() };
    set("businessPhones", json!(phones));
    if rng.chance(0.5) {
        set("mobilePhone", json!(format!("+1 206 555 {:04}", rng.below(10_000))));
    }
    if rng.chance(0.9) {
        set("jobTitle", json!(rng.pick(JOB_TITLES)));
    }
    if rng.chance(0.9) {
        set("department", json!(rng.pick(DEPARTMENTS)));
    }
    if rng.chance(0.8) {
        set("officeLocation", json!(format!("{}/{}", rng.below(40) + 1, rng.below(12) + 1)));
    }
    if rng.chance(0.6) {
        set("preferredLanguage", json!(rng.pick(PREFERRED_LANGUAGES)));
    }
    set("accountEnabled", json!(rng.chance(0.96)));
    if !guest {
        if rng.chance(0.85) {
            set("companyName", json!(rng.pick(COMPANIES)));
        }
        if rng.chance(0.8) {
            set("employeeId", json!(format!("{:07}", 1_000_000 + u64::from(index))));
        }
        if rng.chance(0.85) {
            set("employeeType", json!(rng.pick(EMPLOYEE_TYPES)));
        }
    }
    set("createdDateTime", json!(format_time(created_at(&mut rng))));
    let synced = !guest && rng.chance(0.6);
    if synced {
        set("onPremisesSyncEnabled", json!(true));
        let immutable = base64::engine::general_purpose::STANDARD.encode(rng.next_u64().to_le_bytes());
        set("onPremisesImmutableId", json!(immutable));
        set("onPremisesSamAccountName", json!(nick.chars().take(20).collect::<String>()));
    }
    let (city, state, country, usage, postal) = *rng.pick(CITIES);
    set("city", json!(city));
    set("state", json!(state));
    set("country", json!(country));
    set("usageLocation", json!(usage));
    set("postalCode", json!(format!("{postal}{:02}", rng.below(100))));
    set("streetAddress", json!(format!("{} {}", rng.below(9_000) + 1, rng.pick(STREETS))));
    // Drawn last, so every property above stays what it was for a given seed.
    if synced && rng.chance(0.5) {
        let cost_center = format!("CC-{:04}", rng.below(10_000));
        set("onPremisesExtensionAttributes", json!({ "extensionAttribute1": cost_center }));
    }
}

fn group(seed: u64, domain: &str, index: u32, set: &mut impl FnMut(&str, Value)) {
    let kind = group_kind(seed, index);
    let mut rng = SplitMix::for_object(seed, 2, u64::from(index));
    let topic = *rng.pick(GROUP_TOPICS);
    let (name, description) = if index == 0 {
        ("All Company".to_owned(), "This is the default group for everyone in the network".to_owned())
    } else {
        match kind {
            GroupKind::Security => (format!("SG-{}-{index}", topic.replace(' ', "")), format!("Access for {topic}")),
            GroupKind::Microsoft365 => (format!("{topic} Team {index}"), format!("Collaboration space for {topic}")),
            GroupKind::MailEnabledSecurity => {
                (format!("MESG {topic} {index}"), format!("Mail-enabled security for {topic}"))
            }
            GroupKind::Distribution => (format!("DL {topic} {index}"), format!("Announcements for {topic}")),
        }
    };
    let nick = format!("{}{index}", slug(&name).chars().take(40).collect::<String>());
    let mail_enabled = kind != GroupKind::Security;
    set("displayName", json!(name));
    set("description", json!(description));
    set("mailNickname", json!(nick));
    set("mailEnabled", json!(mail_enabled));
    set("securityEnabled", json!(matches!(kind, GroupKind::Security | GroupKind::MailEnabledSecurity)));
    let group_types: Vec<&str> = if kind == GroupKind::Microsoft365 { vec!["Unified"] } else { Vec::new() };
    set("groupTypes", json!(group_types));
    if mail_enabled {
        let mail = format!("{nick}@{domain}");
        set("proxyAddresses", json!([format!("SMTP:{mail}")]));
        set("mail", json!(mail));
    } else {
        set("proxyAddresses", json!([]));
    }
    if kind == GroupKind::Microsoft365 {
        set("visibility", json!(if rng.chance(0.7) { "Private" } else { "Public" }));
    }
    set("createdDateTime", json!(format_time(created_at(&mut rng))));
    if kind != GroupKind::Microsoft365 && rng.chance(0.4) {
        set("onPremisesSyncEnabled", json!(true));
    }
}

fn device(seed: u64, index: u32, set: &mut impl FnMut(&str, Value)) {
    let mut rng = SplitMix::for_object(seed, 3, u64::from(index));
    let os_roll = rng.unit();
    let device_uuid = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
    let device_id = uuid::Builder::from_random_bytes(*device_uuid.as_bytes()).into_uuid();
    let suffix: String =
        (0..7).map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"[rng.below(34) as usize])).collect();
    let (os, version, name, trust, maker_idx) = if os_roll < 0.60 {
        let build = if rng.chance(0.6) { "10.0.22631" } else { "10.0.19045" };
        let prefix = if rng.chance(0.7) { "LAPTOP" } else { "DESKTOP" };
        let trust = match rng.unit() {
            t if t < 0.5 => "AzureAd",
            t if t < 0.85 => "ServerAd",
            _ => "Workplace",
        };
        ("Windows", format!("{build}.{}", rng.below(4000)), format!("{prefix}-{suffix}"), trust, rng.below(4) as usize)
    } else if os_roll < 0.75 {
        ("iOS", format!("17.{}.{}", rng.below(6), rng.below(3)), format!("iPhone-{suffix}"), "Workplace", 4)
    } else if os_roll < 0.87 {
        ("Android", format!("{}", 12 + rng.below(3)), format!("Galaxy-{suffix}"), "Workplace", 5)
    } else if os_roll < 0.95 {
        ("MacMDM", format!("14.{}", rng.below(6)), format!("MacBook-{suffix}"), "Workplace", 4)
    } else {
        ("Linux", "22.04".to_owned(), format!("ubuntu-{}", suffix.to_ascii_lowercase()), "Workplace", 2)
    };
    let (maker, models) = MANUFACTURERS[maker_idx];
    let created = created_at(&mut rng);
    let last_sign_in = created + Duration::seconds(rng.below(365 * 86_400) as i64);
    set("deviceId", json!(device_id.to_string()));
    set("displayName", json!(name));
    set("operatingSystem", json!(os));
    set("operatingSystemVersion", json!(version));
    set("trustType", json!(trust));
    set("accountEnabled", json!(rng.chance(0.97)));
    set("createdDateTime", json!(format_time(created)));
    set("approximateLastSignInDateTime", json!(format_time(last_sign_in)));
    set("isCompliant", json!(rng.chance(0.8)));
    set("isManaged", json!(rng.chance(0.85)));
    set("manufacturer", json!(maker));
    set("model", json!(rng.pick(models)));
    set("profileType", json!("RegisteredDevice"));
    if trust == "ServerAd" {
        set("onPremisesSyncEnabled", json!(true));
    }
    let key = base64::engine::general_purpose::STANDARD.encode(rng.next_u64().to_le_bytes());
    set("alternativeSecurityIds", json!([{"type": 2, "identityProvider": null, "key": key}]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_is_generated_for_some_object() {
        for class in ObjectClass::ALL {
            let mut seen = vec![false; props(class).len()];
            for index in 0..500 {
                for (slot, value) in synthesize(class, 3, "contoso.example", index).iter().enumerate() {
                    seen[slot] |= value.is_some();
                }
            }
            let missing: Vec<&str> =
                seen.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| props(class)[i].name).collect();
            assert!(missing.is_empty(), "{class}: never generated {missing:?}");
        }
    }

    #[test]
    fn times_are_written_as_graph_writes_them() {
        let t = Utc.with_ymd_and_hms(2021, 3, 4, 5, 6, 7).single().unwrap_or_default();
        assert_eq!(format_time(t), "2021-03-04T05:06:07Z");
        assert_eq!(format_time(epoch()), "2018-01-01T00:00:00Z");
    }

    #[test]
    fn attributes_are_deterministic_per_seed_and_index() {
        assert_eq!(synthesize(ObjectClass::User, 1, "a.example", 5), synthesize(ObjectClass::User, 1, "a.example", 5));
        assert_ne!(synthesize(ObjectClass::User, 1, "a.example", 5), synthesize(ObjectClass::User, 2, "a.example", 5));
    }
}

//! Label values. Every label takes its value from a closed set or from the tenant list, so the number of
//! series is bounded by (tenants × a constant); object ids and error texts are never labels.

use uuid::Uuid;

/// The `tenant` label: the Entra tenant id (directory id), lowercase and hyphenated. Chosen over the
/// internal key because it is what operators search for and it survives a database restore.
pub fn tenant(tenant: Uuid) -> String {
    tenant.hyphenated().to_string()
}

/// HTTP statuses worth a series of their own; any other is folded into its class (`4xx`).
const DISTINCT_CODES: &[u16] = &[200, 400, 401, 403, 404, 410, 429, 500, 502, 503, 504];

/// The `code` label of a Graph request: the status when it is one operators act on, else its class;
/// `error` when no response came back (connection failure, timeout).
pub fn status_code(status: Option<u16>) -> String {
    match status {
        Some(code) if DISTINCT_CODES.contains(&code) => code.to_string(),
        Some(code @ 100..=599) => format!("{}xx", code / 100),
        Some(_) => "invalid".to_owned(),
        None => "error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_fold_into_a_bounded_set() {
        assert_eq!(status_code(Some(429)), "429");
        assert_eq!(status_code(Some(410)), "410");
        assert_eq!(status_code(Some(204)), "2xx");
        assert_eq!(status_code(Some(418)), "4xx");
        assert_eq!(status_code(Some(599)), "5xx");
        assert_eq!(status_code(Some(1000)), "invalid");
        assert_eq!(status_code(None), "error");
        let all: std::collections::HashSet<String> = (0..2000).map(|c| status_code(Some(c))).collect();
        assert!(all.len() <= DISTINCT_CODES.len() + 6, "{all:?}");
    }

    #[test]
    fn tenant_label_is_the_canonical_guid() {
        let id = Uuid::parse_str("6F1C2A4E-0000-4000-8000-00000000ABCD").expect("uuid");
        assert_eq!(tenant(id), "6f1c2a4e-0000-4000-8000-00000000abcd");
    }
}

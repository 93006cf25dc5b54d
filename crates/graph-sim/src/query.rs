//! OData query options as the emulated endpoints accept them: `$select`, `$filter=id eq '…'`, `$top`,
//! and the state tokens (names matched case-insensitively: older docs spell `$deltaToken`).

use actix_web::http::StatusCode;

use crate::error::GraphError;
use crate::props::{default_props, is_not_implemented, prop_id, type_name};
use crate::token::Selection;
use entrasync_model::ObjectClass;

#[derive(Debug, Default)]
pub struct GraphQuery {
    pub select: Option<String>,
    pub filter: Option<String>,
    pub top: Option<String>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    pub expand: Option<String>,
    pub orderby: Option<String>,
}

impl GraphQuery {
    pub fn parse(query_string: &str) -> Self {
        let mut q = GraphQuery::default();
        for (key, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
            let key = key.trim_start_matches('$').to_ascii_lowercase();
            let value = value.into_owned();
            // A repeated parameter (clients re-applying their query to a nextLink) keeps the first value.
            let slot = match key.as_str() {
                "select" => &mut q.select,
                "filter" => &mut q.filter,
                "top" => &mut q.top,
                "skiptoken" => &mut q.skiptoken,
                "deltatoken" => &mut q.deltatoken,
                "expand" => &mut q.expand,
                "orderby" => &mut q.orderby,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        q
    }
}

pub fn bad_request(code: &str, message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, code, message)
}

pub fn unsupported_query(message: impl Into<String>) -> GraphError {
    bad_request("Request_UnsupportedQuery", message)
}

/// `$select` → the properties to emit. `with_members` says whether groups carry members by default.
pub fn parse_select(
    class: ObjectClass,
    select: Option<&str>,
    members_by_default: bool,
) -> Result<Selection, GraphError> {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return Ok(Selection {
            props: default_props(class),
            members: members_by_default && class == ObjectClass::Group,
            explicit: false,
        });
    };
    let mut selection = Selection { props: Vec::new(), members: false, explicit: true };
    for name in select.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case("id") {
            continue;
        }
        if class == ObjectClass::Group && name.eq_ignore_ascii_case("members") {
            selection.members = true;
            continue;
        }
        if is_not_implemented(class, name) {
            return Err(GraphError::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "This operation target is not yet supported.",
            ));
        }
        let id = prop_id(class, name).ok_or_else(|| {
            bad_request(
                "Request_BadRequest",
                format!("Could not find a property named '{name}' on type '{}'.", type_name(class)),
            )
        })?;
        if !selection.props.contains(&id) {
            selection.props.push(id);
        }
    }
    Ok(selection)
}

/// `$filter=id eq 'a' or id eq 'b'` → the ids; anything else is unsupported on delta.
pub fn parse_id_filter(filter: &str) -> Result<Vec<String>, GraphError> {
    let unsupported =
        || unsupported_query("Unsupported query. Only 'id eq' filters joined by 'or' are supported on delta.");
    let mut ids = Vec::new();
    let lowered = filter.to_ascii_lowercase();
    let mut rest = 0usize;
    let mut terms = Vec::new();
    while let Some(pos) = lowered[rest..].find(" or ") {
        terms.push(&filter[rest..rest + pos]);
        rest += pos + 4;
    }
    terms.push(&filter[rest..]);
    for term in terms {
        let term = term.trim().trim_start_matches('(').trim_end_matches(')').trim();
        let mut words = term.splitn(3, char::is_whitespace);
        let (Some(field), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
            return Err(unsupported());
        };
        let value = value.trim();
        if !field.eq_ignore_ascii_case("id")
            || !op.eq_ignore_ascii_case("eq")
            || value.len() < 2
            || !value.starts_with('\'')
            || !value.ends_with('\'')
        {
            return Err(unsupported());
        }
        ids.push(value[1..value.len() - 1].to_owned());
    }
    Ok(ids)
}

/// `$top` for list endpoints: 1..=999, else Graph's observed 400.
pub fn parse_top(top: Option<&str>, default: u32) -> Result<u32, GraphError> {
    let Some(top) = top else { return Ok(default) };
    match top.trim().parse::<i64>() {
        Ok(n) if (1..=999).contains(&n) => Ok(n as u32),
        _ => Err(unsupported_query(format!(
            "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_filters_parse_and_reject_other_expressions() {
        let ids = parse_id_filter("id eq 'a' or id eq 'b' OR (id eq 'c')").map_err(|e| e.code).unwrap();
        assert_eq!(ids, vec!["a", "b", "c"]);
        assert!(parse_id_filter("displayName eq 'x'").is_err());
        assert!(parse_id_filter("id ne 'x'").is_err());
    }

    #[test]
    fn token_names_are_case_insensitive() {
        let q = GraphQuery::parse("%24deltaToken=latest&$select=displayName");
        assert_eq!(q.deltatoken.as_deref(), Some("latest"));
        assert_eq!(q.select.as_deref(), Some("displayName"));
    }

    #[test]
    fn top_accepts_1_to_999() {
        assert_eq!(parse_top(Some("999"), 100).map_err(|e| e.code).unwrap(), 999);
        assert_eq!(parse_top(Some("1000"), 100).unwrap_err().code, "Request_UnsupportedQuery");
        assert!(parse_top(Some("0"), 100).is_err());
    }
}

//! Scoping filters (reference §4): groups of clauses, AND within a group, OR across groups, no group =
//! every object in scope. Null semantics follow A13: `is_null` / `is_not_null` test emptiness, every
//! other operator is false on a null or empty attribute (`not_equals` and `not_regex_match` too).
//! String comparisons are case-sensitive; `regex_match` is unanchored (A11: anchor with `^…$`);
//! multi-valued attributes (a non-empty JSON array) and objects cannot be filtered: every operator is
//! false on them.

use fancy_regex::Regex;
use serde_json::{Map, Value};

use super::MappingProblem;
use crate::model::mapping::{ScopeClause, ScopeGroup, ScopeOperator};

/// A validated scoping filter, its regexes compiled.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    groups: Vec<Vec<Clause>>,
}

#[derive(Debug, Clone)]
struct Clause {
    attribute: String,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Equals(String),
    NotEquals(String),
    Includes(String),
    EndsWith(String),
    Regex(Box<Regex>),
    NotRegex(Box<Regex>),
    IsNull,
    IsNotNull,
    IsTrue,
    IsFalse,
    GreaterThan(i64),
    GreaterThanOrEquals(i64),
    ContainsIn(String),
    NotContainsIn(String),
}

/// An attribute's value as a scoping clause sees it.
enum Operand<'a> {
    /// Absent, JSON null, `""` or `[]`.
    Empty,
    Text(std::borrow::Cow<'a, str>),
    Bool(bool),
    /// A non-empty array or an object: not filterable.
    Unfilterable,
}

impl Scope {
    /// Compiles the groups; every problem at once (paths `scoping[g].clauses[c].…`).
    pub fn compile(groups: &[ScopeGroup]) -> Result<Scope, Vec<MappingProblem>> {
        let mut problems = Vec::new();
        let mut compiled = Vec::with_capacity(groups.len());
        for (g, group) in groups.iter().enumerate() {
            if group.clauses.is_empty() {
                problems.push(MappingProblem::new(
                    format!("scoping[{g}].clauses"),
                    "a scoping group needs at least one clause (an empty group would put every object in scope)",
                ));
            }
            let mut clauses = Vec::with_capacity(group.clauses.len());
            for (c, clause) in group.clauses.iter().enumerate() {
                match compile_clause(clause, &format!("scoping[{g}].clauses[{c}]")) {
                    Ok(clause) => clauses.push(clause),
                    Err(mut more) => problems.append(&mut more),
                }
            }
            compiled.push(clauses);
        }
        if problems.is_empty() {
            Ok(Scope { groups: compiled })
        } else {
            Err(problems)
        }
    }

    /// No groups: everything is in scope.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The attributes the clauses test.
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(|clause| clause.attribute.as_str())
    }

    /// Whether the object is in scope.
    pub fn admits(&self, attrs: &Map<String, Value>) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|group| group.iter().all(|clause| clause.holds(attrs)))
    }
}

fn compile_clause(clause: &ScopeClause, path: &str) -> Result<Clause, Vec<MappingProblem>> {
    let mut problems = Vec::new();
    if let Err(message) = super::validate::attribute_name(&clause.attribute) {
        problems.push(MappingProblem::new(format!("{path}.attribute"), message));
    }
    let operator = clause.operator;
    let value = match (&clause.value, operator.needs_value()) {
        (Some(value), true) => value.as_str(),
        (None, true) => {
            problems.push(MappingProblem::new(
                format!("{path}.value"),
                format!("the operator {operator} compares with a value; give one"),
            ));
            ""
        }
        (Some(_), false) => {
            problems.push(MappingProblem::new(
                format!("{path}.value"),
                format!("the operator {operator} takes no value; leave it out"),
            ));
            ""
        }
        (None, false) => "",
    };
    let regex = |value: &str, problems: &mut Vec<MappingProblem>| match Regex::new(value) {
        Ok(regex) => Some(Box::new(regex)),
        Err(e) => {
            problems.push(MappingProblem::new(
                format!("{path}.value"),
                format!("the regular expression {value:?} does not compile: {e}"),
            ));
            None
        }
    };
    let integer = |value: &str, problems: &mut Vec<MappingProblem>| match value.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push(MappingProblem::new(
                format!("{path}.value"),
                format!("the operator {operator} compares integers; {value:?} is not one"),
            ));
            None
        }
    };
    let text = value.to_owned();
    let test = match operator {
        ScopeOperator::Equals => Some(Test::Equals(text)),
        ScopeOperator::NotEquals => Some(Test::NotEquals(text)),
        ScopeOperator::Includes => Some(Test::Includes(text)),
        ScopeOperator::EndsWith => Some(Test::EndsWith(text)),
        ScopeOperator::RegexMatch => regex(value, &mut problems).map(Test::Regex),
        ScopeOperator::NotRegexMatch => regex(value, &mut problems).map(Test::NotRegex),
        ScopeOperator::IsNull => Some(Test::IsNull),
        ScopeOperator::IsNotNull => Some(Test::IsNotNull),
        ScopeOperator::IsTrue => Some(Test::IsTrue),
        ScopeOperator::IsFalse => Some(Test::IsFalse),
        ScopeOperator::GreaterThan => integer(value, &mut problems).map(Test::GreaterThan),
        ScopeOperator::GreaterThanOrEquals => integer(value, &mut problems).map(Test::GreaterThanOrEquals),
        ScopeOperator::ContainsIn => Some(Test::ContainsIn(text)),
        ScopeOperator::NotContainsIn => Some(Test::NotContainsIn(text)),
    };
    match test {
        Some(test) if problems.is_empty() => Ok(Clause { attribute: clause.attribute.clone(), test }),
        _ => Err(problems),
    }
}

/// An attribute by its exact name, else the first whose name matches case-insensitively (A1).
pub(crate) fn lookup<'a>(attrs: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    attrs.get(name).or_else(|| attrs.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn operand(value: Option<&Value>) -> Operand<'_> {
    match value {
        None | Some(Value::Null) => Operand::Empty,
        Some(Value::String(s)) if s.is_empty() => Operand::Empty,
        Some(Value::String(s)) => Operand::Text(std::borrow::Cow::Borrowed(s)),
        Some(Value::Bool(b)) => Operand::Bool(*b),
        Some(Value::Number(n)) => Operand::Text(std::borrow::Cow::Owned(n.to_string())),
        Some(Value::Array(items)) if items.is_empty() => Operand::Empty,
        Some(Value::Array(_) | Value::Object(_)) => Operand::Unfilterable,
    }
}

impl Clause {
    fn holds(&self, attrs: &Map<String, Value>) -> bool {
        let operand = operand(lookup(attrs, &self.attribute));
        let text = match (&self.test, operand) {
            (Test::IsNull, Operand::Empty) => return true,
            (Test::IsNull, _) | (_, Operand::Unfilterable | Operand::Empty) => return false,
            (Test::IsNotNull, _) => return true,
            (Test::IsTrue, Operand::Bool(b)) => return b,
            (Test::IsFalse, Operand::Bool(b)) => return !b,
            (Test::IsTrue, Operand::Text(t)) => return t.eq_ignore_ascii_case("true"),
            (Test::IsFalse, Operand::Text(t)) => return t.eq_ignore_ascii_case("false"),
            // A boolean compares as .NET renders it (A24): "True" / "False".
            (_, Operand::Bool(b)) => std::borrow::Cow::Borrowed(if b { "True" } else { "False" }),
            (_, Operand::Text(t)) => t,
        };
        let text = text.as_ref();
        match &self.test {
            Test::Equals(v) => text == v,
            Test::NotEquals(v) => text != v,
            Test::Includes(v) => text.contains(v.as_str()),
            Test::EndsWith(v) => text.ends_with(v.as_str()),
            Test::Regex(r) => regex_matches(r, text, &self.attribute),
            Test::NotRegex(r) => !regex_matches(r, text, &self.attribute),
            Test::GreaterThan(n) => text.trim().parse::<i64>().is_ok_and(|x| x > *n),
            Test::GreaterThanOrEquals(n) => text.trim().parse::<i64>().is_ok_and(|x| x >= *n),
            // A12, read literally: the attribute's value occurs in the clause's value.
            Test::ContainsIn(v) => v.contains(text),
            Test::NotContainsIn(v) => !v.contains(text),
            Test::IsNull | Test::IsNotNull | Test::IsTrue | Test::IsFalse => false,
        }
    }
}

/// A pattern that gives up (fancy-regex's backtracking limit) matches nothing, and is logged; for
/// `not_regex_match` that puts the object in scope rather than silently dropping it.
fn regex_matches(regex: &Regex, text: &str, attribute: &str) -> bool {
    match regex.is_match(text) {
        Ok(matched) => matched,
        Err(e) => {
            tracing::warn!(attribute, pattern = regex.as_str(), error = %e, "scoping regex gave up on a value");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn clause(attribute: &str, operator: ScopeOperator, value: Option<&str>) -> ScopeClause {
        ScopeClause { attribute: attribute.to_owned(), operator, value: value.map(str::to_owned) }
    }

    fn scope(groups: Vec<Vec<ScopeClause>>) -> Scope {
        Scope::compile(&groups.into_iter().map(|clauses| ScopeGroup { clauses }).collect::<Vec<_>>()).unwrap()
    }

    fn holds(operator: ScopeOperator, value: Option<&str>, attrs: Value) -> bool {
        let Value::Object(attrs) = attrs else { panic!("attrs must be an object") };
        scope(vec![vec![clause("a", operator, value)]]).admits(&attrs)
    }

    use ScopeOperator as Op;

    #[test]
    fn equality_operators_are_case_sensitive_and_false_on_null() {
        assert!(holds(Op::Equals, Some("Sales"), json!({"a": "Sales"})));
        assert!(!holds(Op::Equals, Some("Sales"), json!({"a": "sales"})));
        assert!(!holds(Op::Equals, Some(""), json!({"a": ""})));
        assert!(holds(Op::NotEquals, Some("Sales"), json!({"a": "sales"})));
        assert!(!holds(Op::NotEquals, Some("Sales"), json!({"a": "Sales"})));
        // A13: NOT EQUALS is false on null and empty.
        assert!(!holds(Op::NotEquals, Some("Sales"), json!({})));
        assert!(!holds(Op::NotEquals, Some("Sales"), json!({"a": null})));
        assert!(!holds(Op::NotEquals, Some("Sales"), json!({"a": ""})));
        // Numbers and booleans compare as their text ("True"/"False", A24).
        assert!(holds(Op::Equals, Some("42"), json!({"a": 42})));
        assert!(holds(Op::Equals, Some("True"), json!({"a": true})));
        assert!(!holds(Op::Equals, Some("true"), json!({"a": true})));
    }

    #[test]
    fn includes_ends_with_and_the_ampersand_operators() {
        assert!(holds(Op::Includes, Some("ale"), json!({"a": "Sales"})));
        assert!(!holds(Op::Includes, Some("ALE"), json!({"a": "Sales"})));
        assert!(!holds(Op::Includes, Some(""), json!({})));
        assert!(holds(Op::EndsWith, Some("@contoso.com"), json!({"a": "ada@contoso.com"})));
        assert!(!holds(Op::EndsWith, Some("@Contoso.com"), json!({"a": "ada@contoso.com"})));
        assert!(!holds(Op::EndsWith, Some("x"), json!({"a": null})));
        // `&`: the attribute's value occurs in the clause's value (A12).
        assert!(holds(Op::ContainsIn, Some("Sales,Marketing"), json!({"a": "Sales"})));
        assert!(!holds(Op::ContainsIn, Some("Sales,Marketing"), json!({"a": "Finance"})));
        assert!(!holds(Op::ContainsIn, Some("Sales"), json!({"a": ""})));
        assert!(holds(Op::NotContainsIn, Some("Sales,Marketing"), json!({"a": "Finance"})));
        assert!(!holds(Op::NotContainsIn, Some("Sales,Marketing"), json!({"a": "Sales"})));
        assert!(!holds(Op::NotContainsIn, Some("Sales"), json!({})));
    }

    #[test]
    fn regex_operators_are_unanchored_and_false_on_null() {
        assert!(holds(Op::RegexMatch, Some(r".*\@contoso.com"), json!({"a": "ada@contoso.com"})));
        assert!(holds(Op::RegexMatch, Some("([1-9][0-9])"), json!({"a": "worker 123"})));
        assert!(!holds(Op::RegexMatch, Some("^([1-9][0-9])$"), json!({"a": "123"})));
        assert!(!holds(Op::RegexMatch, Some("[a-z]"), json!({"a": "ABC"})));
        assert!(!holds(Op::RegexMatch, Some(".*"), json!({})));
        assert!(holds(Op::NotRegexMatch, Some(r"\@contoso.com$"), json!({"a": "ada@fabrikam.com"})));
        assert!(!holds(Op::NotRegexMatch, Some(r"\@contoso.com$"), json!({"a": "ada@contoso.com"})));
        // A13: NOT REGEX MATCH is false on null or empty.
        assert!(!holds(Op::NotRegexMatch, Some("x"), json!({"a": ""})));
        assert!(!holds(Op::NotRegexMatch, Some("x"), json!({})));
        // .NET-style lookaround works (fancy-regex).
        assert!(holds(Op::RegexMatch, Some("^(?!admin).*$"), json!({"a": "ada"})));
    }

    #[test]
    fn null_and_boolean_operators() {
        assert!(holds(Op::IsNull, None, json!({})));
        assert!(holds(Op::IsNull, None, json!({"a": null})));
        assert!(holds(Op::IsNull, None, json!({"a": ""})));
        assert!(holds(Op::IsNull, None, json!({"a": []})));
        assert!(!holds(Op::IsNull, None, json!({"a": "x"})));
        assert!(!holds(Op::IsNull, None, json!({"a": false})));
        assert!(holds(Op::IsNotNull, None, json!({"a": "x"})));
        assert!(holds(Op::IsNotNull, None, json!({"a": false})));
        assert!(!holds(Op::IsNotNull, None, json!({"a": ""})));
        assert!(!holds(Op::IsNotNull, None, json!({})));
        assert!(holds(Op::IsTrue, None, json!({"a": true})));
        assert!(holds(Op::IsTrue, None, json!({"a": "True"})));
        assert!(!holds(Op::IsTrue, None, json!({"a": false})));
        assert!(!holds(Op::IsTrue, None, json!({})));
        assert!(holds(Op::IsFalse, None, json!({"a": false})));
        assert!(holds(Op::IsFalse, None, json!({"a": "false"})));
        assert!(!holds(Op::IsFalse, None, json!({"a": true})));
        // A13: IS FALSE is false on null, not "not true".
        assert!(!holds(Op::IsFalse, None, json!({"a": null})));
        assert!(!holds(Op::IsFalse, None, json!({"a": "no"})));
    }

    #[test]
    fn greater_than_compares_integers_only() {
        assert!(holds(Op::GreaterThan, Some("10"), json!({"a": 11})));
        assert!(holds(Op::GreaterThan, Some("10"), json!({"a": "11"})));
        assert!(!holds(Op::GreaterThan, Some("10"), json!({"a": 10})));
        assert!(holds(Op::GreaterThanOrEquals, Some("10"), json!({"a": 10})));
        assert!(!holds(Op::GreaterThanOrEquals, Some("10"), json!({"a": 9})));
        assert!(!holds(Op::GreaterThan, Some("10"), json!({"a": "eleven"})));
        assert!(!holds(Op::GreaterThan, Some("10"), json!({"a": 10.5})));
        assert!(!holds(Op::GreaterThan, Some("-1"), json!({})));
    }

    #[test]
    fn multi_valued_attributes_cannot_be_filtered() {
        let multi = json!({"a": ["Sales", "x"]});
        for (op, value) in [
            (Op::Equals, Some("Sales")),
            (Op::NotEquals, Some("y")),
            (Op::Includes, Some("S")),
            (Op::RegexMatch, Some(".*")),
            (Op::NotRegexMatch, Some("zzz")),
            (Op::IsNull, None),
            (Op::IsNotNull, None),
        ] {
            assert!(!holds(op, value, multi.clone()), "{op} on a multi-valued attribute");
        }
        assert!(!holds(Op::IsNotNull, None, json!({"a": {"b": 1}})));
    }

    #[test]
    fn attribute_names_match_exactly_then_case_insensitively() {
        let s = scope(vec![vec![clause("department", Op::Equals, Some("Sales"))]]);
        let Value::Object(attrs) = json!({"Department": "Sales"}) else { unreachable!() };
        assert!(s.admits(&attrs));
        let Value::Object(both) = json!({"Department": "Sales", "department": "HR"}) else { unreachable!() };
        assert!(!s.admits(&both));
    }

    #[test]
    fn and_within_a_group_or_across_groups_and_empty_is_everything() {
        let s = scope(vec![
            vec![clause("dept", Op::Equals, Some("Sales")), clause("country", Op::Equals, Some("DE"))],
            vec![clause("title", Op::Includes, Some("Chief"))],
        ]);
        let object = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        assert!(s.admits(&object(json!({"dept": "Sales", "country": "DE"}))));
        assert!(!s.admits(&object(json!({"dept": "Sales", "country": "FR"}))));
        assert!(s.admits(&object(json!({"dept": "HR", "title": "Chief of Staff"}))));
        assert!(!s.admits(&object(json!({}))));
        assert!(Scope::compile(&[]).unwrap().admits(&object(json!({}))));
    }

    #[test]
    fn compile_reports_every_problem_with_its_path() {
        let groups = vec![
            ScopeGroup { clauses: vec![] },
            ScopeGroup {
                clauses: vec![
                    clause("mail", Op::Equals, None),
                    clause("mail", Op::IsNull, Some("x")),
                    clause("n", Op::GreaterThan, Some("1.5")),
                    clause("upn", Op::RegexMatch, Some("(unclosed")),
                    clause("", Op::IsTrue, None),
                ],
            },
        ];
        let problems = Scope::compile(&groups).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "scoping[0].clauses",
                "scoping[1].clauses[0].value",
                "scoping[1].clauses[1].value",
                "scoping[1].clauses[2].value",
                "scoping[1].clauses[3].value",
                "scoping[1].clauses[4].attribute",
            ]
        );
        assert!(problems[1].message.contains("give one"), "{}", problems[1].message);
        assert!(problems[2].message.contains("takes no value"), "{}", problems[2].message);
        assert!(problems[3].message.contains("integers"), "{}", problems[3].message);
        assert!(problems[4].message.contains("does not compile"), "{}", problems[4].message);
    }
}

//! A tenant's mapping set compiled into a `sync::ObjectPolicy`, in the order of reference §8: scope
//! first (out of scope → `Filter`), then every mapping. `mapped` holds the results of the mappings
//! applied always (not null: a null result leaves the key out), `on_create` the results of the mappings
//! applied only during creation and the `default_if_null` of every mapping whose result is null (a
//! `none` mapping contributes only its default). `IgnoreFlowIfNullOrEmpty` and `IgnoreAttributeFlow`
//! leave the key out; `IgnoreObjectFlow` puts the object out of scope.
//!
//! An expression that fails for one object (an `Item` index past the end, say) does not fail the
//! round: its result is taken as null (so its default applies on creation) and a warning names the
//! tenant, class and target (the first ten per policy, then every power of two).
//!
//! `mapped` is written straight into its canonical JSON text (mappings kept sorted by target, so the
//! keys come out in the order `sync::marker::canonical_json` sorts them, byte for byte the same text):
//! no map of values is built, and the text is hashed into the marker and stored as it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entra_expr::{Context, EvalError, Expression, Value as ExprValue};
use serde_json::{Map, Value};

use super::scope::{lookup, Scope};
use super::validate::{attribute_name, target_name};
use super::{MappingError, MappingProblem};
use crate::model::mapping::{ApplyWhen, MappingSet, MappingSource};
use crate::model::ObjectClass;
use crate::store::wire::JsonText;
use crate::store::{self, Pool};
use crate::sync::marker::{write_canonical, write_string};
use crate::sync::{Admission, ObjectPolicy, PassThrough, Reads};

/// What expressions see besides the object: the time (fixed when the policy is compiled, so one
/// round's `Now()` is one value) and the tenant's default domain (`DefaultDomain()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContext {
    pub now: DateTime<Utc>,
    pub default_domain: Option<String>,
    /// For the logs only.
    pub tenant_id: Option<i64>,
}

impl PolicyContext {
    pub fn at(now: DateTime<Utc>) -> Self {
        PolicyContext { now, default_domain: None, tenant_id: None }
    }
}

/// Scoping and mappings of one (tenant, class), ready to run.
#[derive(Debug)]
pub struct TenantPolicy {
    class: ObjectClass,
    scope: Scope,
    /// Sorted by target (bytes), the order of `mapped`'s keys in canonical text.
    mappings: Vec<Compiled>,
    /// Whether any mapping applies always: then `mapped` is an object (maybe empty), else `None`, so a
    /// set with only create-time mappings or only scoping leaves every change marker as it was.
    has_always: bool,
    /// The attributes scoping and mappings read, so a round parses only those.
    reads: Reads,
    context: PolicyContext,
    failures: AtomicU64,
}

#[derive(Debug)]
struct Compiled {
    target: String,
    /// `"target":` as JSON, written before the value in `mapped`.
    key_json: Vec<u8>,
    source: Source,
    default: Option<Value>,
    apply: ApplyWhen,
}

#[derive(Debug)]
enum Source {
    Direct(String),
    Constant(Value),
    Expression(Box<Expression>),
    None,
}

enum Outcome<'a> {
    Value(Produced<'a>),
    Null,
    Omit,
    IgnoreObject,
}

/// A mapping's non-null result: borrowed where it is a constant or an attribute, so it is copied only
/// into `mapped`'s text.
enum Produced<'a> {
    Json(&'a Value),
    Expr(ExprValue),
}

impl Produced<'_> {
    /// Appends the canonical text of [`Produced::to_json`]'s value.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Produced::Json(value) => write_canonical(out, value),
            Produced::Expr(ExprValue::Str(text)) => write_string(out, text),
            Produced::Expr(ExprValue::Multi(values)) => {
                out.push(b'[');
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_string(out, value);
                }
                out.push(b']');
            }
            Produced::Expr(other) => write_canonical(out, &other.to_json()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Produced::Json(value) => (*value).clone(),
            Produced::Expr(value) => value.to_json(),
        }
    }
}

/// Compiles `set` with the current time; every problem at once when it does not compile.
pub fn compile(class: ObjectClass, set: &MappingSet) -> Result<TenantPolicy, Vec<MappingProblem>> {
    compile_at(class, set, PolicyContext::at(Utc::now()))
}

/// Compiles `set` with the given context.
pub fn compile_at(
    class: ObjectClass,
    set: &MappingSet,
    context: PolicyContext,
) -> Result<TenantPolicy, Vec<MappingProblem>> {
    let mut problems = Vec::new();
    let mut mappings = Vec::with_capacity(set.mappings.len());
    let mut targets: Vec<(String, usize)> = Vec::with_capacity(set.mappings.len());
    for (i, mapping) in set.mappings.iter().enumerate() {
        let path = format!("mappings[{i}]");
        match target_name(&mapping.target) {
            Err(message) => problems.push(MappingProblem::new(format!("{path}.target"), message)),
            Ok(()) => {
                let folded = mapping.target.to_lowercase();
                if let Some((_, first)) = targets.iter().find(|(t, _)| *t == folded) {
                    problems.push(MappingProblem::new(
                        format!("{path}.target"),
                        format!(
                            "{:?} is already the target of mappings[{first}]; map each target once",
                            mapping.target
                        ),
                    ));
                } else {
                    targets.push((folded, i));
                }
            }
        }
        let source = match &mapping.source {
            MappingSource::Direct { attribute } => match attribute_name(attribute) {
                Ok(()) => Some(Source::Direct(attribute.clone())),
                Err(message) => {
                    problems.push(MappingProblem::new(format!("{path}.source.attribute"), message));
                    None
                }
            },
            MappingSource::Constant { value } => Some(Source::Constant(Value::String(value.clone()))),
            MappingSource::Expression { expression } => match Expression::parse(expression) {
                Ok(parsed) => {
                    if !parsed.is_deterministic() && mapping.apply == ApplyWhen::Always {
                        problems.push(MappingProblem::new(
                            format!("{path}.apply"),
                            "this expression gives a new value every time (Now, Guid, RandomString or \
                             SelectUniqueValue), which would rewrite every object on every round; apply it \
                             \"on_create\"",
                        ));
                    }
                    Some(Source::Expression(Box::new(parsed)))
                }
                Err(e) => {
                    problems.push(MappingProblem::at(format!("{path}.source.expression"), e.to_string(), e.position));
                    None
                }
            },
            MappingSource::None => {
                if mapping.default_if_null.is_none() {
                    problems.push(MappingProblem::new(
                        format!("{path}.default_if_null"),
                        "a \"none\" mapping only writes its default value when an object is created; give \
                         default_if_null",
                    ));
                }
                Some(Source::None)
            }
        };
        if let Some(source) = source {
            let mut key_json = Vec::with_capacity(mapping.target.len() + 3);
            write_string(&mut key_json, &mapping.target);
            key_json.push(b':');
            mappings.push(Compiled {
                target: mapping.target.clone(),
                key_json,
                source,
                default: mapping.default_if_null.clone().map(Value::String),
                apply: mapping.apply,
            });
        }
    }
    let scope = match Scope::compile(&set.scoping) {
        Ok(scope) => Some(scope),
        Err(mut more) => {
            problems.append(&mut more);
            None
        }
    };
    match scope {
        Some(scope) if problems.is_empty() => Ok(TenantPolicy {
            class,
            reads: attributes_read(&scope, &mappings),
            has_always: mappings.iter().any(|m| m.apply == ApplyWhen::Always && !matches!(m.source, Source::None)),
            // Evaluation order does not matter (each mapping sees only the object); the output's does.
            mappings: sorted_by_target(mappings),
            scope,
            context,
            failures: AtomicU64::new(0),
        }),
        _ => Err(problems),
    }
}

fn sorted_by_target(mut mappings: Vec<Compiled>) -> Vec<Compiled> {
    mappings.sort_by(|a, b| a.target.cmp(&b.target));
    mappings
}

/// Every attribute the scope's clauses and the mappings reference (Direct sources and `[name]`s in
/// expressions: nothing else reads an object).
fn attributes_read(scope: &Scope, mappings: &[Compiled]) -> Reads {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
            names.push(name.to_owned());
        }
    };
    scope.attributes().for_each(&mut add);
    for mapping in mappings {
        match &mapping.source {
            Source::Direct(name) => add(name),
            Source::Expression(expression) => expression.attributes().into_iter().for_each(&mut add),
            Source::Constant(_) | Source::None => {}
        }
    }
    if names.is_empty() {
        Reads::Nothing
    } else {
        Reads::Attributes(names)
    }
}

/// The policy for (tenant, class): [`PassThrough`] when nothing (or an empty set) is stored. A stored
/// set that no longer compiles is [`MappingError::Invalid`], naming its problems.
pub async fn load_policy(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<Arc<dyn ObjectPolicy>, MappingError> {
    let Some(stored) = store::mappings::get(pool, tenant_id, class).await? else {
        return Ok(Arc::new(PassThrough));
    };
    if stored.set.is_empty() {
        return Ok(Arc::new(PassThrough));
    }
    let default_domain = store::mappings::default_domain(pool, tenant_id).await?;
    let context = PolicyContext { now: Utc::now(), default_domain, tenant_id: Some(tenant_id) };
    match compile_at(class, &stored.set, context) {
        Ok(policy) => Ok(Arc::new(policy)),
        Err(problems) => Err(MappingError::Invalid { tenant_id, class, problems }),
    }
}

impl TenantPolicy {
    pub fn class(&self) -> ObjectClass {
        self.class
    }

    /// Evaluations that failed since the policy was compiled (each taken as null).
    pub fn evaluation_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn evaluate<'a>(&self, mapping: &'a Compiled, attrs: &'a Map<String, Value>, context: &Context<'_>) -> Outcome<'a> {
        match &mapping.source {
            Source::None => Outcome::Null,
            Source::Constant(value) => Outcome::Value(Produced::Json(value)),
            Source::Direct(name) => match lookup(attrs, name) {
                None | Some(Value::Null) => Outcome::Null,
                Some(value) => Outcome::Value(Produced::Json(value)),
            },
            Source::Expression(expression) => match expression.evaluate(attrs, context) {
                Ok(ExprValue::IgnoreObject) => Outcome::IgnoreObject,
                Ok(ExprValue::Drop | ExprValue::IgnoreAttribute) => Outcome::Omit,
                Ok(value) if value.is_null() => Outcome::Null,
                Ok(value) => Outcome::Value(Produced::Expr(value)),
                Err(error) => {
                    self.failed(mapping, &error);
                    Outcome::Null
                }
            },
        }
    }

    fn failed(&self, mapping: &Compiled, error: &EvalError) {
        let count = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if count <= 10 || count.is_power_of_two() {
            tracing::warn!(
                tenant_id = self.context.tenant_id,
                class = %self.class,
                target = %mapping.target,
                failures = count,
                error = %error,
                "a mapping's expression failed for an object; its value is taken as null"
            );
        }
    }
}

impl ObjectPolicy for TenantPolicy {
    fn reads(&self) -> Reads {
        self.reads.clone()
    }

    fn admit(&self, _class: ObjectClass, attrs: &Map<String, Value>) -> Admission {
        if !self.scope.admits(attrs) {
            return Admission::Filter;
        }
        if self.mappings.is_empty() {
            return Admission::Admit { mapped: None, on_create: None };
        }
        let mut context = Context::at(self.context.now);
        context.default_domain = self.context.default_domain.as_deref();
        // `mapped`'s canonical text, keys in the mappings' (sorted) order.
        let mut mapped = Vec::with_capacity(192);
        mapped.push(b'{');
        let mut on_create = Map::new();
        for mapping in &self.mappings {
            match (self.evaluate(mapping, attrs, &context), mapping.apply) {
                (Outcome::IgnoreObject, _) => return Admission::Filter,
                (Outcome::Value(value), ApplyWhen::Always) => {
                    if mapped.len() > 1 {
                        mapped.push(b',');
                    }
                    mapped.extend_from_slice(&mapping.key_json);
                    value.write(&mut mapped);
                }
                (Outcome::Value(value), ApplyWhen::OnCreate) => {
                    on_create.insert(mapping.target.clone(), value.to_json());
                }
                (Outcome::Null, _) => {
                    if let Some(default) = &mapping.default {
                        on_create.insert(mapping.target.clone(), default.clone());
                    }
                }
                (Outcome::Omit, _) => {}
            }
        }
        mapped.push(b'}');
        Admission::Admit {
            mapped: self.has_always.then(|| JsonText::from_json_bytes(mapped)),
            on_create: (!on_create.is_empty()).then_some(Value::Object(on_create)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::model::mapping::{AttributeMapping, ScopeClause, ScopeGroup, ScopeOperator};
    use crate::sync::marker::canonical_json;

    fn mapping(target: &str, source: MappingSource, default: Option<&str>, apply: ApplyWhen) -> AttributeMapping {
        AttributeMapping { target: target.to_owned(), source, default_if_null: default.map(str::to_owned), apply }
    }

    fn direct(attribute: &str) -> MappingSource {
        MappingSource::Direct { attribute: attribute.to_owned() }
    }

    fn expression(text: &str) -> MappingSource {
        MappingSource::Expression { expression: text.to_owned() }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn at_noon() -> PolicyContext {
        PolicyContext::at(Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap())
    }

    fn policy(set: &MappingSet) -> TenantPolicy {
        compile_at(ObjectClass::User, set, at_noon()).unwrap()
    }

    /// Prepares the same 200-user pages as `sync::page`'s measurement with the benchmark's five
    /// Expression mappings and two scoping groups, handing the policy every attribute or only those it
    /// reads: `cargo test --release --lib preparing_with_mappings_cost -- --ignored --nocapture`.
    #[test]
    #[cfg(feature = "emulator")]
    #[ignore = "a measurement, not a check"]
    fn preparing_with_mappings_cost() {
        struct Everything<'p>(&'p TenantPolicy);
        impl ObjectPolicy for Everything<'_> {
            fn admit(&self, class: ObjectClass, attrs: &Map<String, Value>) -> Admission {
                self.0.admit(class, attrs)
            }
        }
        let body = crate::sync::graph_shaped_user_page();
        let policy = policy(&crate::bench::remap::benchmark_mappings());
        let everything = Everything(&policy);
        let pages = 1_000;
        // This thread's CPU seconds (utime + stime, in 1/100 s): a busy machine does not inflate them.
        let cpu_seconds = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
            (fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime")) / 100.0
        };
        let cost = |policy: &dyn ObjectPolicy| {
            let started = cpu_seconds();
            for _ in 0..pages {
                let (items, _) = crate::graph::parse_page_canonical("u", body.as_bytes()).expect("page");
                let page = crate::sync::prepare(ObjectClass::User, items, policy);
                assert_eq!(page.objects.len(), 200);
            }
            (cpu_seconds() - started) * 1e6 / f64::from(pages * 200)
        };
        // CPU time, the fastest of five rounds.
        let best = |policy: &dyn ObjectPolicy| (0..5).map(|_| cost(policy)).fold(f64::MAX, f64::min);
        let (none, all, read) = (best(&PassThrough), best(&everything), best(&policy));
        println!(
            "µs per object, fastest of 5: pass-through {none:.2}, mappings with every attribute {all:.2}, \
             with the attributes read {read:.2}"
        );
    }

    #[test]
    fn a_policy_reads_only_what_it_references_and_decides_the_same_on_those_attributes_alone() {
        let set = MappingSet {
            mappings: vec![
                mapping("alias", expression(r#"Join(".", [GIVENNAME], [surname])"#), None, ApplyWhen::Always),
                mapping("mailNickname", direct("Mail"), None, ApplyWhen::Always),
                mapping("company", MappingSource::Constant { value: "Contoso".into() }, None, ApplyWhen::Always),
            ],
            scoping: vec![ScopeGroup {
                clauses: vec![ScopeClause {
                    attribute: "department".into(),
                    operator: ScopeOperator::Equals,
                    value: Some("Sales".into()),
                }],
            }],
        };
        let policy = policy(&set);
        let Reads::Attributes(names) = policy.reads() else { panic!("reads {:?}", policy.reads()) };
        assert_eq!(names, ["department", "GIVENNAME", "surname", "Mail"]);
        for text in [
            r#"{"givenName":"Ada","surname":"Lovelace","mail":"ada@x","department":"Sales","jobTitle":"Countess"}"#,
            r#"{"givenName":"Ada","department":"Legal","businessPhones":["1"]}"#,
        ] {
            let canonical = crate::graph::canonical_text(text).unwrap();
            let whole = policy.admit(ObjectClass::User, &canonical.to_map());
            assert_eq!(policy.admit(ObjectClass::User, &canonical.to_map_of(&names)), whole, "{text}");
        }
        let constants_only = MappingSet {
            mappings: vec![mapping("company", MappingSource::Constant { value: "C".into() }, None, ApplyWhen::Always)],
            scoping: vec![],
        };
        assert_eq!(self::policy(&constants_only).reads(), Reads::Nothing);
    }

    #[test]
    fn mapped_holds_always_results_and_on_create_the_rest_with_defaults() {
        let set = MappingSet {
            mappings: vec![
                mapping("mailNickname", direct("mail"), None, ApplyWhen::Always),
                mapping("company", MappingSource::Constant { value: "Contoso".into() }, None, ApplyWhen::Always),
                mapping("alias", expression(r#"Join(".", [givenName], [surname])"#), None, ApplyWhen::Always),
                mapping("office", direct("officeLocation"), Some("HQ"), ApplyWhen::Always),
                mapping("firstName", direct("givenName"), Some("?"), ApplyWhen::OnCreate),
                mapping("country", MappingSource::None, Some("DE"), ApplyWhen::Always),
                mapping("dropped", expression("IgnoreFlowIfNullOrEmpty([missing])"), Some("never"), ApplyWhen::Always),
            ],
            scoping: vec![],
        };
        let admission = policy(&set).admit(
            ObjectClass::User,
            &object(json!({"givenName": "Ada", "surname": "Lovelace", "mail": "ada@contoso.com"})),
        );
        assert_eq!(
            admission,
            Admission::Admit {
                mapped: Some(canonical_json(
                    &json!({"mailNickname": "ada@contoso.com", "company": "Contoso", "alias": "Ada.Lovelace"})
                )),
                on_create: Some(json!({"office": "HQ", "firstName": "Ada", "country": "DE"})),
            }
        );
    }

    /// `mapped` is written as text directly; it must be byte for byte the canonical text of the map of
    /// values it stands for (else every stored marker would change once), whatever the declared order
    /// of the targets and the kinds of values.
    #[test]
    fn mapped_text_is_the_canonical_text_of_the_results() {
        let set = MappingSet {
            mappings: vec![
                mapping("zeta", expression(r#"Join(" ", [givenName], "\"q\" é 😀 \\")"#), None, ApplyWhen::Always),
                mapping("Upper", direct("proxyAddresses"), None, ApplyWhen::Always),
                mapping("alpha", expression(r#"Split([mail], "@")"#), None, ApplyWhen::Always),
                mapping("count", expression("Count([proxyAddresses])"), None, ApplyWhen::Always),
                mapping("flag", expression(r#"CBool("true")"#), None, ApplyWhen::Always),
                mapping("when", expression(r#"CDate("2025-08-10T10:00:00Z")"#), None, ApplyWhen::Always),
                mapping("half", expression(r#"CDate(DateFromNum(0))"#), None, ApplyWhen::Always),
                mapping("nested", direct("onPremisesExtensionAttributes"), None, ApplyWhen::Always),
                mapping("number", direct("n"), None, ApplyWhen::Always),
                mapping("company", MappingSource::Constant { value: "Con\"to\u{1}so".into() }, None, ApplyWhen::Always),
                mapping("missing", direct("absent"), Some("d"), ApplyWhen::Always),
                mapping("a.b:c-d_e", expression("[givenName]"), None, ApplyWhen::Always),
                mapping("created", expression("[givenName]"), None, ApplyWhen::OnCreate),
            ],
            scoping: vec![],
        };
        let p = policy(&set);
        let attrs = object(json!({
            "givenName": "Ada", "mail": "ada@contoso.com", "proxyAddresses": ["SMTP:a@b", "smtp:c@d"],
            "onPremisesExtensionAttributes": {"z": 1, "a": [true, null, 2.5]}, "n": -12.5e3,
        }));
        let Admission::Admit { mapped: Some(mapped), on_create } = p.admit(ObjectClass::User, &attrs) else {
            panic!("admitted with mapped attributes")
        };
        // The reference: each result as a JSON value, in a map, serialised canonically.
        let context = Context::at(at_noon().now);
        let mut expected = Map::new();
        for m in &p.mappings {
            if m.apply == ApplyWhen::Always {
                if let Outcome::Value(value) = p.evaluate(m, &attrs, &context) {
                    expected.insert(m.target.clone(), value.to_json());
                }
            }
        }
        assert_eq!(expected.len(), 11, "{expected:?}");
        assert_eq!(mapped, canonical_json(&Value::Object(expected)));
        let parsed: Value = serde_json::from_slice(mapped.as_bytes()).expect("mapped is JSON");
        assert_eq!(parsed["zeta"], json!("Ada \"q\" é 😀 \\"));
        assert_eq!(parsed["company"], json!("Con\"to\u{1}so"));
        assert_eq!(parsed["alpha"], json!(["ada", "contoso.com"]));
        assert_eq!(on_create, Some(json!({"missing": "d", "created": "Ada"})));
    }

    #[test]
    fn direct_copies_the_json_value_and_finds_names_case_insensitively() {
        let set = MappingSet {
            mappings: vec![
                mapping("enabled", direct("accountEnabled"), None, ApplyWhen::Always),
                mapping("addresses", direct("PROXYADDRESSES"), None, ApplyWhen::Always),
            ],
            scoping: vec![],
        };
        let admission = policy(&set)
            .admit(ObjectClass::User, &object(json!({"accountEnabled": false, "proxyAddresses": ["SMTP:a@b"]})));
        assert_eq!(
            admission,
            Admission::Admit {
                mapped: Some(canonical_json(&json!({"enabled": false, "addresses": ["SMTP:a@b"]}))),
                on_create: None
            }
        );
    }

    #[test]
    fn out_of_scope_is_filtered_and_scoping_alone_maps_nothing() {
        let set = MappingSet {
            mappings: vec![],
            scoping: vec![ScopeGroup {
                clauses: vec![ScopeClause {
                    attribute: "department".into(),
                    operator: ScopeOperator::Equals,
                    value: Some("Sales".into()),
                }],
            }],
        };
        let p = policy(&set);
        assert_eq!(p.admit(ObjectClass::User, &object(json!({"department": "HR"}))), Admission::Filter);
        assert_eq!(
            p.admit(ObjectClass::User, &object(json!({"department": "Sales"}))),
            Admission::Admit { mapped: None, on_create: None }
        );
    }

    #[test]
    fn only_create_time_mappings_leave_mapped_none() {
        let set = MappingSet {
            mappings: vec![mapping(
                "createdBy",
                MappingSource::Constant { value: "x".into() },
                None,
                ApplyWhen::OnCreate,
            )],
            scoping: vec![],
        };
        assert_eq!(
            policy(&set).admit(ObjectClass::User, &object(json!({}))),
            Admission::Admit { mapped: None, on_create: Some(json!({"createdBy": "x"})) }
        );
    }

    #[test]
    fn now_is_fixed_when_compiled_and_non_deterministic_expressions_apply_on_create() {
        let set = MappingSet {
            mappings: vec![mapping(
                "stamp",
                expression(r#"FormatDateTime(Now(), , "yyyyMMdd")"#),
                None,
                ApplyWhen::OnCreate,
            )],
            scoping: vec![],
        };
        let p = policy(&set);
        let first = p.admit(ObjectClass::User, &object(json!({})));
        assert_eq!(first, Admission::Admit { mapped: None, on_create: Some(json!({"stamp": "20261206"})) });
        assert_eq!(p.admit(ObjectClass::User, &object(json!({}))), first);

        let always = MappingSet {
            mappings: vec![mapping("id2", expression("Guid()"), None, ApplyWhen::Always)],
            scoping: vec![],
        };
        let problems = compile_at(ObjectClass::User, &always, at_noon()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "mappings[0].apply");
        assert!(problems[0].message.contains("on_create"), "{}", problems[0].message);
    }

    #[test]
    fn a_failing_expression_is_null_for_that_object_and_counted() {
        let set = MappingSet {
            mappings: vec![
                mapping("third", expression("Item([proxyAddresses], 3)"), Some("none"), ApplyWhen::Always),
                mapping("mail", direct("mail"), None, ApplyWhen::Always),
            ],
            scoping: vec![],
        };
        let p = policy(&set);
        let admission = p.admit(ObjectClass::User, &object(json!({"proxyAddresses": ["a"], "mail": "m"})));
        assert_eq!(
            admission,
            Admission::Admit {
                mapped: Some(canonical_json(&json!({"mail": "m"}))),
                on_create: Some(json!({"third": "none"}))
            }
        );
        assert_eq!(p.evaluation_failures(), 1);
    }

    #[test]
    fn ignore_object_flow_filters_the_object() {
        let set = MappingSet {
            mappings: vec![mapping(
                "x",
                expression(r#"IIF([userType]="Guest", IgnoreObjectFlow, [mail])"#),
                None,
                ApplyWhen::Always,
            )],
            scoping: vec![],
        };
        let p = policy(&set);
        assert_eq!(p.admit(ObjectClass::User, &object(json!({"userType": "Guest"}))), Admission::Filter);
        assert_eq!(
            p.admit(ObjectClass::User, &object(json!({"userType": "Member", "mail": "m"}))),
            Admission::Admit { mapped: Some(canonical_json(&json!({"x": "m"}))), on_create: None }
        );
    }

    #[test]
    fn validation_reports_every_problem_with_paths_and_positions() {
        let set = MappingSet {
            mappings: vec![
                mapping("", direct("mail"), None, ApplyWhen::Always),
                mapping("mail", direct("bad name"), None, ApplyWhen::Always),
                mapping("MAIL", MappingSource::Constant { value: "x".into() }, None, ApplyWhen::Always),
                mapping("id", MappingSource::Constant { value: "x".into() }, None, ApplyWhen::Always),
                mapping("upn", expression(r#"Join(".", [givenName]"#), None, ApplyWhen::Always),
                mapping("country", MappingSource::None, None, ApplyWhen::Always),
            ],
            scoping: vec![ScopeGroup {
                clauses: vec![ScopeClause {
                    attribute: "n".into(),
                    operator: ScopeOperator::GreaterThan,
                    value: Some("x".into()),
                }],
            }],
        };
        let problems = compile_at(ObjectClass::User, &set, at_noon()).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "mappings[0].target",
                "mappings[1].source.attribute",
                "mappings[2].target",
                "mappings[3].target",
                "mappings[4].source.expression",
                "mappings[5].default_if_null",
                "scoping[0].clauses[0].value",
            ]
        );
        assert!(problems[2].message.contains("mappings[1]"), "{}", problems[2].message);
        assert!(problems[3].message.contains("identifies the stored object"), "{}", problems[3].message);
        let parse = &problems[4];
        assert!(parse.position.is_some_and(|p| p > 1), "{parse:?}");
        assert!(problems.iter().filter(|p| p.field != "mappings[4].source.expression").all(|p| p.position.is_none()));
    }

    #[test]
    fn the_wire_shape_is_snake_case_tagged_and_strict() {
        let text = r#"{"mappings":[
            {"target":"mailNickname","source":{"type":"direct","attribute":"mail"}},
            {"target":"company","source":{"type":"constant","value":"Contoso"},"apply":"on_create"},
            {"target":"upn","source":{"type":"expression","expression":"Join(\".\", [givenName], [surname])"},
             "default_if_null":"unknown"},
            {"target":"country","source":{"type":"none"},"default_if_null":"DE"}],
          "scoping":[{"clauses":[{"attribute":"department","operator":"equals","value":"Sales"},
                                 {"attribute":"mail","operator":"is_not_null"}]}]}"#;
        let set: MappingSet = serde_json::from_str(text).unwrap();
        assert_eq!(set.mappings[0].apply, ApplyWhen::Always);
        assert_eq!(set.mappings[1].apply, ApplyWhen::OnCreate);
        assert_eq!(set.mappings[3].source, MappingSource::None);
        assert_eq!(set.scoping[0].clauses[1].value, None);
        let again: MappingSet = serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
        assert_eq!(again, set);
        for op in ScopeOperator::ALL {
            assert_eq!(serde_json::to_value(op).unwrap(), Value::String(op.as_str().to_owned()));
        }
        assert!(compile_at(ObjectClass::User, &set, at_noon()).is_ok());
        assert!(serde_json::from_str::<MappingSet>(r#"{"mappings":[],"extra":1}"#).is_err());
        assert!(serde_json::from_str::<MappingSet>(
            r#"{"mappings":[{"target":"a","source":{"type":"direct","attribute":"b","x":1}}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<MappingSet>(r#"{"mappings":[{"target":"a","source":{"type":"lcw"}}]}"#).is_err());
        assert_eq!(serde_json::from_str::<MappingSet>("{}").unwrap(), MappingSet::default());
    }
}

//! Mapping sets in the store and as the round's policy: versions, optimistic concurrency, the audit row
//! and the full-scan flag of a scoping change; `load_policy` (PassThrough when nothing is configured, an
//! error naming the problems of a stored set that no longer compiles); and a full round through the
//! Graph emulator with a `TenantPolicy` storing the mapped values and counting what the scoping filter
//! leaves out.

use std::collections::BTreeMap;

use entrasync::mapping::{load_policy, MappingError};
use entrasync::model::mapping::{
    ApplyWhen, AttributeMapping, MappingSet, MappingSource, ScopeClause, ScopeGroup, ScopeOperator,
};
use entrasync::model::{ObjectClass, RunStatus};
use entrasync::store::audit::{self, Actor, AuditQuery};
use entrasync::store::tenants::{self, TenantChanges};
use entrasync::store::{mappings, StoreError};
use entrasync::sync::marker::canonical_json;
use entrasync::sync::{run_round, Admission, RoundDeps};
use serde_json::{json, Map, Value};

use crate::sync_support::{spec, SyncWorld};

const CLASS: ObjectClass = ObjectClass::User;

fn mapping(target: &str, source: MappingSource, default: Option<&str>, apply: ApplyWhen) -> AttributeMapping {
    AttributeMapping { target: target.to_owned(), source, default_if_null: default.map(str::to_owned), apply }
}

fn clause(attribute: &str, operator: ScopeOperator, value: Option<&str>) -> ScopeClause {
    ScopeClause { attribute: attribute.to_owned(), operator, value: value.map(str::to_owned) }
}

/// Members that are enabled, or anyone without a department.
fn the_set() -> MappingSet {
    MappingSet {
        mappings: vec![
            mapping(
                "alias",
                MappingSource::Expression { expression: r#"Join(".", [givenName], [surname])"#.into() },
                None,
                ApplyWhen::Always,
            ),
            mapping("mailCopy", MappingSource::Direct { attribute: "mail".into() }, None, ApplyWhen::Always),
            mapping(
                "office",
                MappingSource::Direct { attribute: "officeLocation".into() },
                Some("remote"),
                ApplyWhen::Always,
            ),
            mapping("origin", MappingSource::Constant { value: "entra".into() }, None, ApplyWhen::OnCreate),
        ],
        scoping: vec![
            ScopeGroup {
                clauses: vec![
                    clause("userType", ScopeOperator::Equals, Some("Member")),
                    clause("accountEnabled", ScopeOperator::IsTrue, None),
                ],
            },
            ScopeGroup { clauses: vec![clause("department", ScopeOperator::IsNull, None)] },
        ],
    }
}

#[tokio::test]
async fn a_stored_set_keeps_versions_refuses_stale_writes_audits_and_asks_for_a_full_scan_on_a_scoping_change() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(11, 5, 0, 0), 50).await;
    let id = tenant.tenant_id;
    let actor = Actor::new("token:ops");
    assert_eq!(mappings::get(&world.pool, id, CLASS).await.unwrap(), None);

    // The first write is version 1; a writer that read version 0 again is refused.
    let mut set = the_set();
    assert_eq!(mappings::put(&world.pool, &actor, id, CLASS, &set, Some(0)).await.unwrap(), 1);
    let stored = mappings::get(&world.pool, id, CLASS).await.unwrap().unwrap();
    assert_eq!((stored.set.clone(), stored.version), (set.clone(), 1));
    let stale = mappings::put(&world.pool, &actor, id, CLASS, &MappingSet::default(), Some(0)).await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict(m)) if m.contains("version 0") && m.contains("version is 1")),
        "{stale:?}"
    );
    assert_eq!(mappings::get(&world.pool, id, CLASS).await.unwrap().unwrap().set, set);
    // Other classes are separate sets.
    assert_eq!(mappings::get(&world.pool, id, ObjectClass::Group).await.unwrap(), None);

    // A mappings-only change leaves the full-scan flag alone; a scoping change sets it.
    let cleared = TenantChanges { full_scan_next_run: Some(false), ..TenantChanges::default() };
    tenants::update(&world.pool, id, &cleared, &actor).await.unwrap();
    set.mappings.pop();
    assert_eq!(mappings::put(&world.pool, &actor, id, CLASS, &set, Some(1)).await.unwrap(), 2);
    assert!(!tenants::get(&world.pool, id).await.unwrap().unwrap().full_scan_next_run);
    set.scoping.pop();
    assert_eq!(mappings::put(&world.pool, &actor, id, CLASS, &set, None).await.unwrap(), 3);
    assert!(tenants::get(&world.pool, id).await.unwrap().unwrap().full_scan_next_run);

    // Every write has its audit row, with the state before and after.
    let query = AuditQuery {
        limit: 50,
        target_type: Some(mappings::AUDIT_TARGET.to_owned()),
        target_id: Some(mappings::audit_target_id(id, CLASS)),
        ..AuditQuery::default()
    };
    let entries = audit::list(&world.pool, &query).await.unwrap();
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert!(entries.iter().all(|e| e.action == "mapping_set.update" && e.actor == "token:ops"));
    assert_eq!(entries[2].before, None);
    assert_eq!(entries[0].before.as_ref().unwrap()["version"], 2);
    assert_eq!(entries[0].after.as_ref().unwrap()["version"], 3);
    assert_eq!(entries[0].after.as_ref().unwrap()["scoping"].as_array().unwrap().len(), 1);

    // The set goes with its tenant.
    tenants::delete(&world.pool, id, &actor).await.unwrap();
    assert_eq!(mappings::get(&world.pool, id, CLASS).await.unwrap(), None);
}

#[tokio::test]
async fn load_policy_passes_through_without_a_set_and_names_the_problems_of_one_that_no_longer_compiles() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(12, 5, 0, 0), 50).await;
    let id = tenant.tenant_id;
    let object: Map<String, Value> = json!({"mail": "a@b", "department": "Sales"}).as_object().unwrap().clone();

    let nothing = load_policy(&world.pool, id, CLASS).await.unwrap();
    assert_eq!(nothing.admit(CLASS, &object), Admission::Admit { mapped: None, on_create: None });
    // An empty stored set is the same as none.
    mappings::put(&world.pool, &Actor::new("test"), id, CLASS, &MappingSet::default(), None).await.unwrap();
    let empty = load_policy(&world.pool, id, CLASS).await.unwrap();
    assert_eq!(empty.admit(CLASS, &object), Admission::Admit { mapped: None, on_create: None });

    let stored = MappingSet {
        mappings: vec![mapping(
            "mailCopy",
            MappingSource::Direct { attribute: "mail".into() },
            None,
            ApplyWhen::Always,
        )],
        scoping: vec![ScopeGroup { clauses: vec![clause("department", ScopeOperator::Equals, Some("Sales"))] }],
    };
    mappings::put(&world.pool, &Actor::new("test"), id, CLASS, &stored, None).await.unwrap();
    let policy = load_policy(&world.pool, id, CLASS).await.unwrap();
    assert_eq!(
        policy.admit(CLASS, &object),
        Admission::Admit { mapped: Some(canonical_json(&json!({"mailCopy": "a@b"}))), on_create: None }
    );
    let mut hr = object.clone();
    hr.insert("department".into(), json!("HR"));
    assert_eq!(policy.admit(CLASS, &hr), Admission::Filter);

    // A definition written around the validation (an older, laxer version): the error names the field.
    let client = world.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE mapping_sets SET definition = $2 WHERE tenant_id = $1 AND object_class = 'user'",
            &[
                &id,
                &json!({"mappings": [{"target": "x", "source": {"type": "expression", "expression": "Join(\".\""}}]}),
            ],
        )
        .await
        .unwrap();
    let Err(error) = load_policy(&world.pool, id, CLASS).await else { panic!("a broken set must not load") };
    assert!(
        matches!(&error, MappingError::Invalid { problems, .. } if problems[0].field == "mappings[0].source.expression")
    );
    let message = error.to_string();
    assert!(message.contains("mappings[0].source.expression") && message.contains("PUT /api/v1/tenants/"), "{message}");
}

#[tokio::test]
async fn a_round_with_the_tenant_policy_stores_mapped_values_and_counts_what_the_filter_leaves_out() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(13, 120, 0, 0), 40).await;
    let id = tenant.tenant_id;
    mappings::put(&world.pool, &Actor::new("test"), id, CLASS, &the_set(), None).await.unwrap();
    let policy = load_policy(&world.pool, id, CLASS).await.unwrap();
    let deps = RoundDeps { pool: &world.pool, graph: &world.graph, policy: policy.clone(), recorder: &world.recorder };
    let report = run_round(&deps, &world.request(&tenant, CLASS)).await.unwrap();
    assert_eq!(report.status, RunStatus::Success);

    // What the filter should admit and the mappings should produce, computed from the emulator's truth.
    let truth = world.sim.state().truth(&tenant.sim_tenant, CLASS).unwrap();
    let text = |attrs: &Map<String, Value>, name: &str| attrs.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut expected = BTreeMap::new();
    for (object_id, attrs) in &truth.objects {
        let member_enabled =
            text(attrs, "userType").as_deref() == Some("Member") && attrs.get("accountEnabled") == Some(&json!(true));
        let no_department = text(attrs, "department").is_none_or(|d| d.is_empty());
        if !(member_enabled || no_department) {
            continue;
        }
        let alias =
            [text(attrs, "givenName"), text(attrs, "surname")].into_iter().flatten().collect::<Vec<_>>().join(".");
        let mut mapped = json!({"alias": alias});
        if let Some(mail) = attrs.get("mail").filter(|m| !m.is_null()) {
            mapped["mailCopy"] = mail.clone();
        }
        let mut on_create = json!({"origin": "entra"});
        match text(attrs, "officeLocation") {
            Some(office) => mapped["office"] = json!(office),
            None => on_create["office"] = json!("remote"),
        }
        expected.insert(object_id.clone(), (mapped, on_create));
    }
    let filtered = truth.objects.len() - expected.len();
    assert!(
        filtered > 0 && !expected.is_empty(),
        "the seed gives both kinds: {filtered} out of {}",
        truth.objects.len()
    );
    assert_eq!(report.counts.filtered, filtered as u64, "{:?}", report.counts);

    let client = world.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT object_id::text, mapped, mapped_on_create FROM directory_objects \
             WHERE tenant_id = $1 AND object_class = 'user' AND deleted_at IS NULL",
            &[&id],
        )
        .await
        .unwrap();
    let stored: BTreeMap<String, (Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (
                    r.get::<_, Option<Value>>(1).unwrap_or(Value::Null),
                    r.get::<_, Option<Value>>(2).unwrap_or(Value::Null),
                ),
            )
        })
        .collect();
    assert_eq!(stored.len(), expected.len(), "only objects in scope are stored");
    for (object_id, want) in &expected {
        assert_eq!(stored.get(object_id), Some(want), "{object_id}");
    }
    // Extension attributes are selected and stored, so mappings and tag mappings can read them.
    let extension_rows = client
        .query(
            "SELECT object_id::text, attrs->'onPremisesExtensionAttributes' FROM directory_objects \
             WHERE tenant_id = $1 AND object_class = 'user' AND attrs ? 'onPremisesExtensionAttributes'",
            &[&id],
        )
        .await
        .unwrap();
    assert!(!extension_rows.is_empty(), "the emulator gives some users extension attributes");
    for row in &extension_rows {
        let object_id: String = row.get(0);
        assert_eq!(Some(&row.get::<_, Value>(1)), truth.objects[&object_id].get("onPremisesExtensionAttributes"));
    }
    // The run's history row carries the filtered count.
    let history: i64 =
        client.query_one("SELECT filtered FROM sync_runs WHERE id = $1", &[&report.run_id]).await.unwrap().get(0);
    assert_eq!(history, filtered as i64);

    // The same directory and the same mappings again: nothing to write.
    let before = world.row_versions(&tenant).await;
    let again = run_round(&deps, &world.request(&tenant, CLASS)).await.unwrap();
    assert_eq!(again.counts.changed, 0, "{:?}", again.counts);
    assert_eq!(crate::sync_support::row_writes(&before, &world.row_versions(&tenant).await), 0);
}

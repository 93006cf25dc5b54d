//! The emulator's HTTP admin API under `/_sim/` (not part of Graph): tenants, generation, mutations,
//! truth readback, counters, settings, faults, resource-unit limits and the clock. Each route is a thin
//! wrapper over the matching `SimState` method. Documented in `docs/graph-sim.md`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::directory::DirectoryError;
use crate::faults::FaultRule;
use crate::generate::GenerateSpec;
use crate::mutate::MutationBatch;
use crate::settings::SettingsPatch;
use crate::state::{SimError, SimState, TenantSpec};
use crate::throttle::ResourceLimits;
use entrasync_model::ObjectClass;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/tenants", web::post().to(create_tenant))
        .route("/_sim/tenants", web::get().to(list_tenants))
        .route("/_sim/tenants/{tenant}", web::get().to(tenant_info))
        .route("/_sim/tenants/{tenant}/generate", web::post().to(generate))
        .route("/_sim/tenants/{tenant}/settings", web::get().to(settings))
        .route("/_sim/tenants/{tenant}/settings", web::patch().to(update_settings))
        .route("/_sim/tenants/{tenant}/users", web::post().to(create_user))
        .route("/_sim/tenants/{tenant}/groups", web::post().to(create_group))
        .route("/_sim/tenants/{tenant}/devices", web::post().to(create_device))
        .route("/_sim/tenants/{tenant}/objects/{id}", web::get().to(object))
        .route("/_sim/tenants/{tenant}/objects/{id}", web::patch().to(update_object))
        .route("/_sim/tenants/{tenant}/objects/{id}", web::delete().to(delete_object))
        .route("/_sim/tenants/{tenant}/objects/{id}/restore", web::post().to(restore_object))
        .route("/_sim/tenants/{tenant}/groups/{group}/members", web::post().to(add_member))
        .route("/_sim/tenants/{tenant}/groups/{group}/members/{member}", web::delete().to(remove_member))
        .route("/_sim/tenants/{tenant}/mutations", web::post().to(mutations))
        .route("/_sim/tenants/{tenant}/truth/{collection}", web::get().to(truth))
        .route("/_sim/tenants/{tenant}/ids/{collection}", web::get().to(ids))
        .route("/_sim/tenants/{tenant}/counters", web::get().to(tenant_counters))
        .route("/_sim/counters", web::get().to(global_counters))
        .route("/_sim/faults", web::post().to(add_fault))
        .route("/_sim/faults", web::get().to(list_faults))
        .route("/_sim/faults", web::delete().to(clear_faults))
        .route("/_sim/faults/{id}", web::delete().to(remove_fault))
        .route("/_sim/resource-limits", web::put().to(resource_limits))
        .route("/_sim/clock", web::get().to(clock))
        .route("/_sim/clock/advance", web::post().to(advance_clock));
}

fn error(e: SimError) -> HttpResponse {
    let status = match &e {
        SimError::UnknownTenant(_) | SimError::Directory(DirectoryError::NotFound(_)) => StatusCode::NOT_FOUND,
        SimError::TenantExists(_) | SimError::Directory(DirectoryError::WrongState { .. }) => StatusCode::CONFLICT,
        SimError::Directory(_) | SimError::Fault(_) | SimError::Settings(_) => StatusCode::BAD_REQUEST,
    };
    HttpResponse::build(status).json(json!({ "error": e.to_string() }))
}

fn reply<T: serde::Serialize>(result: Result<T, SimError>) -> HttpResponse {
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(e) => error(e),
    }
}

fn class_of(collection: &str) -> Result<ObjectClass, String> {
    collection.parse::<ObjectClass>().map_err(|e| e.to_string())
}

fn bad_collection(message: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message }))
}

async fn create_tenant(state: web::Data<SimState>, spec: web::Json<TenantSpec>) -> HttpResponse {
    match state.create_tenant(spec.into_inner()) {
        Ok(info) => HttpResponse::Created().json(info),
        Err(e) => error(e),
    }
}

async fn list_tenants(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.tenants())
}

async fn tenant_info(state: web::Data<SimState>, tenant: web::Path<String>) -> HttpResponse {
    reply(state.tenant_info(&tenant))
}

async fn generate(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    spec: web::Json<GenerateSpec>,
) -> HttpResponse {
    // Generating a large tenant takes seconds: keep it off the async workers.
    let state = state.into_inner();
    let result = web::block(move || state.generate(&tenant, &spec)).await;
    match result {
        Ok(r) => reply(r),
        Err(e) => HttpResponse::InternalServerError().json(json!({ "error": e.to_string() })),
    }
}

async fn settings(state: web::Data<SimState>, tenant: web::Path<String>) -> HttpResponse {
    reply(state.settings(&tenant))
}

async fn update_settings(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    patch: web::Json<SettingsPatch>,
) -> HttpResponse {
    reply(state.update_settings(&tenant, &patch))
}

fn create(state: &SimState, tenant: &str, class: ObjectClass, attrs: &Map<String, Value>) -> HttpResponse {
    match state.create_object(tenant, class, attrs) {
        Ok(id) => HttpResponse::Created().json(json!({ "id": id })),
        Err(e) => error(e),
    }
}

async fn create_user(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    attrs: web::Json<Map<String, Value>>,
) -> HttpResponse {
    create(&state, &tenant, ObjectClass::User, &attrs)
}

async fn create_group(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    attrs: web::Json<Map<String, Value>>,
) -> HttpResponse {
    create(&state, &tenant, ObjectClass::Group, &attrs)
}

async fn create_device(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    attrs: web::Json<Map<String, Value>>,
) -> HttpResponse {
    create(&state, &tenant, ObjectClass::Device, &attrs)
}

async fn object(state: web::Data<SimState>, path: web::Path<(String, String)>) -> HttpResponse {
    match state.object(&path.0, &path.1) {
        Ok(Some(attrs)) => HttpResponse::Ok().json(attrs),
        Ok(None) => HttpResponse::NotFound().json(json!({ "error": format!("object {} is deleted", path.1) })),
        Err(e) => error(e),
    }
}

async fn update_object(
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    attrs: web::Json<Map<String, Value>>,
) -> HttpResponse {
    match state.update_object(&path.0, &path.1, &attrs) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    permanent: bool,
}

async fn delete_object(
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    q: web::Query<DeleteQuery>,
) -> HttpResponse {
    reply(state.delete_object(&path.0, &path.1, q.permanent).map(|outcome| json!({ "outcome": outcome })))
}

async fn restore_object(state: web::Data<SimState>, path: web::Path<(String, String)>) -> HttpResponse {
    match state.restore_object(&path.0, &path.1) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct MemberBody {
    id: String,
}

async fn add_member(
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    body: web::Json<MemberBody>,
) -> HttpResponse {
    reply(state.add_member(&path.0, &path.1, &body.id).map(|changed| json!({ "changed": changed })))
}

async fn remove_member(state: web::Data<SimState>, path: web::Path<(String, String, String)>) -> HttpResponse {
    reply(state.remove_member(&path.0, &path.1, &path.2).map(|changed| json!({ "changed": changed })))
}

async fn mutations(
    state: web::Data<SimState>,
    tenant: web::Path<String>,
    batch: web::Json<MutationBatch>,
) -> HttpResponse {
    reply(state.random_mutations(&tenant, &batch))
}

async fn truth(state: web::Data<SimState>, path: web::Path<(String, String)>) -> HttpResponse {
    match class_of(&path.1) {
        Ok(class) => reply(state.truth(&path.0, class)),
        Err(message) => bad_collection(message),
    }
}

#[derive(Deserialize)]
struct IdsQuery {
    #[serde(default)]
    live: bool,
}

async fn ids(state: web::Data<SimState>, path: web::Path<(String, String)>, q: web::Query<IdsQuery>) -> HttpResponse {
    match class_of(&path.1) {
        Ok(class) => reply(state.ids(&path.0, class, q.live)),
        Err(message) => bad_collection(message),
    }
}

async fn tenant_counters(state: web::Data<SimState>, tenant: web::Path<String>) -> HttpResponse {
    reply(state.tenant_counters(&tenant))
}

async fn global_counters(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.global_counters())
}

async fn add_fault(state: web::Data<SimState>, rule: web::Json<FaultRule>) -> HttpResponse {
    match state.add_fault(rule.into_inner()) {
        Ok(id) => HttpResponse::Created().json(json!({ "id": id })),
        Err(e) => error(e),
    }
}

async fn list_faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.list_faults())
}

#[derive(Deserialize)]
struct ClearQuery {
    tenant: Option<String>,
}

async fn clear_faults(state: web::Data<SimState>, q: web::Query<ClearQuery>) -> HttpResponse {
    state.clear_faults(q.tenant.as_deref());
    HttpResponse::NoContent().finish()
}

async fn remove_fault(state: web::Data<SimState>, id: web::Path<u64>) -> HttpResponse {
    if state.remove_fault(*id) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().json(json!({ "error": format!("fault {} does not exist", *id) }))
    }
}

#[derive(Deserialize)]
struct LimitsBody {
    enforce: bool,
    #[serde(flatten)]
    limits: ResourceLimits,
}

async fn resource_limits(state: web::Data<SimState>, body: web::Json<LimitsBody>) -> HttpResponse {
    let body = body.into_inner();
    state.set_resource_limits(body.enforce, body.limits.clone());
    HttpResponse::Ok().json(json!({ "enforce": body.enforce, "limits": body.limits }))
}

async fn clock(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "now": state.now() }))
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: i64,
}

async fn advance_clock(state: web::Data<SimState>, body: web::Json<AdvanceBody>) -> HttpResponse {
    state.advance_clock(chrono::Duration::seconds(body.seconds));
    HttpResponse::Ok().json(json!({ "now": state.now() }))
}

//! The operator API, `/api/v1` (docs/api.md). Handlers are thin: parse and validate the request, check
//! the caller's role ([`auth::Caller`]), call `store` / `graph` / `queue`, and answer JSON or a problem
//! ([`problem::ApiError`]). The OpenAPI document is generated from these handlers and types (utoipa), so
//! it cannot drift from them.

mod audit_log;
pub mod auth;
mod connection;
mod credentials;
mod expressions;
mod held;
mod mappings;
mod membership;
mod objects;
mod page;
pub mod problem;
mod runs;
mod sync_now;
mod tags;
mod tenants;
mod tokens;

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Request bodies are small JSON documents; certificates and keys are the largest.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(web::JsonConfig::default().limit(BODY_LIMIT).error_handler(problem::json_error))
            .app_data(web::QueryConfig::default().error_handler(problem::query_error))
            .app_data(web::PathConfig::default().error_handler(problem::path_error))
            .route("/openapi.json", web::get().to(openapi))
            .configure(tokens::configure)
            .configure(credentials::configure)
            .configure(tenants::configure)
            .configure(connection::configure)
            .configure(sync_now::configure)
            .configure(runs::configure)
            .configure(membership::configure)
            .configure(objects::configure)
            .configure(held::configure)
            .configure(audit_log::configure)
            .configure(tags::configure)
            .configure(mappings::configure)
            .configure(expressions::configure)
            .default_service(web::to(unknown_route)),
    );
}

async fn unknown_route() -> Result<HttpResponse, problem::ApiError> {
    Err(problem::ApiError::not_found("no such API route; GET /api/v1/openapi.json lists them all"))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "entrasync operator API",
        description = "Tenants, credential profiles, permissions, manual syncs, sync history, directory objects, \
                       held deletions, API tokens and the audit log. Errors are RFC 9457 problem details. See docs/api.md.",
        version = "1"
    ),
    paths(
        tokens::session, tokens::list, tokens::create, tokens::revoke,
        credentials::list, credentials::create, credentials::get, credentials::rename, credentials::rotate,
        credentials::delete,
        tenants::list, tenants::create, tenants::get, tenants::update, tenants::delete,
        tenants::block, tenants::reset, tenants::lift_quarantine,
        connection::test_tenant, connection::test_new, connection::check_permissions, connection::consent,
        connection::consent_callback, connection::consent_for_new_tenant,
        sync_now::sync,
        runs::list, runs::csv,
        objects::list, objects::get,
        membership::members, membership::member_of, membership::is_member,
        held::list, held::allow, held::reject,
        audit_log::list,
        tags::list_mappings, tags::create_mapping, tags::delete_mapping, tags::sync, tags::list_tags,
        tags::create_tag, tags::delete_tag, tags::tag_objects, tags::assign, tags::unassign,
        tags::list_asset_groups, tags::create_asset_group, tags::delete_asset_group, tags::asset_group_members,
        tags::add_asset_group_members, tags::remove_asset_group_member, tags::object_tags,
        mappings::get, mappings::put, expressions::validate, expressions::evaluate,
    ),
    // Enums used only in query and path parameters are not collected from the paths.
    components(schemas(page::names::ClassName, page::names::ModeName, page::names::StatusName)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("es_…").build()),
        );
    }
}

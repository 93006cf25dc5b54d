//! `/session` (who am I) and `/tokens` (API tokens: list, create, revoke).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{generate_token, token_hash, Caller};
use super::page::names::RoleName;
use super::page::{self, Problems};
use super::problem::ApiError;
use crate::api::AppState;
use crate::store::api_tokens::{self, ApiToken, Role};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/session", web::get().to(session))
        .route("/tokens", web::get().to(list))
        .route("/tokens", web::post().to(create))
        .route("/tokens/{id}", web::delete().to(revoke));
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub token_name: String,
    /// `admin` or `viewer`.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        ApiTokenView {
            id: t.id,
            name: t.name,
            role: t.role.as_str().to_owned(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub role: RoleName,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The token itself: shown this once, stored only as a hash.
    pub token: String,
}

/// Who the presented token belongs to, and its role.
#[utoipa::path(get, path = "/api/v1/session", tag = "access",
    responses((status = 200, body = Session), Problems))]
pub async fn session(caller: Caller) -> web::Json<Session> {
    web::Json(Session { token_name: caller.name, role: caller.role.as_str().to_owned() })
}

/// API tokens, never their values.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, body = Vec<ApiTokenView>), Problems))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<web::Json<Vec<ApiTokenView>>, ApiError> {
    caller.admin()?;
    Ok(web::Json(api_tokens::list(&state.pool).await?.into_iter().map(ApiTokenView::from).collect()))
}

/// Creates a token; the answer is the only place its value appears.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, body = CreatedToken), Problems))]
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let name = page::name("name", &body.name)?;
    if name.eq_ignore_ascii_case(api_tokens::BOOTSTRAP_NAME) {
        return Err(ApiError::invalid(
            "name",
            "\"bootstrap\" is reserved for ENTRASYNC_ADMIN_TOKEN; choose another name",
        ));
    }
    let role = Role::from(body.role);
    let token = generate_token();
    let stored = api_tokens::create(&state.pool, &name, role, &token_hash(&token), &actor).await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        id: stored.id,
        name: stored.name,
        role: stored.role.as_str().to_owned(),
        token,
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204, description = "revoked"), Problems))]
pub async fn revoke(caller: Caller, state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    if api_tokens::revoke(&state.pool, *id, &actor).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no active token with id {id}")))
    }
}

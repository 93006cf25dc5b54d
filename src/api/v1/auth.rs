//! Who is calling: API tokens (`Authorization: Bearer es_…`), their role, and the limit on failed
//! sign-ins (a wrong token, not a missing one). Only a token's SHA-256 is stored; the bootstrap token from `ENTRASYNC_ADMIN_TOKEN` is
//! compared in constant time.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::ApiError;
use crate::api::AppState;
use crate::store::api_tokens::{self, Role};
use crate::store::audit::Actor;

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: Option<i64>,
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Writes need the admin role.
    pub fn admin(&self) -> Result<Actor, ApiError> {
        match self.role {
            Role::Admin => Ok(self.actor()),
            Role::Viewer => Err(ApiError::forbidden(format!(
                "token {:?} has the viewer role, which can only read; ask an admin for an admin token",
                self.name
            ))),
        }
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> Actor {
        Actor::new(format!("token:{}", self.name))
    }
}

/// A new token: `es_` and 32 random bytes in base64url (43 characters).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("es_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Failed sign-ins per client address: after `MAX_FAILURES` in a `WINDOW`, every request from that
/// address is refused (before its token is even looked at) until the window ends, so a guess that
/// happens to be right cannot be told apart from a wrong one.
pub struct SignInGuard {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Bounds the table under a spray from many addresses; stale entries are dropped first.
const MAX_TRACKED: usize = 100_000;

impl Default for SignInGuard {
    fn default() -> Self {
        SignInGuard { failures: Mutex::new(HashMap::new()) }
    }
}

impl SignInGuard {
    /// `Err(wait)` while the address is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Ok(table) = self.failures.lock() else { return Ok(()) };
        match table.get(&ip) {
            Some((since, count)) if *count >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err(WINDOW.saturating_sub(since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut table) = self.failures.lock() else { return };
        if table.len() >= MAX_TRACKED {
            table.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = table.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let trusted = state.as_ref().map(|s| s.trusted_proxies.as_slice()).unwrap_or_default();
        let ip = client_address(req, trusted);
        let presented = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"the API state is not configured"))?;
            if let Err(wait) = state.sign_ins.check(ip) {
                return Err(ApiError::too_many_sign_ins(wait));
            }
            let Some(token) = presented else {
                return Err(ApiError::unauthorized("sign in: send an API token as 'Authorization: Bearer es_…'"));
            };
            // Only a presented token that is wrong counts as a guess.
            authenticate(&state, &token).await?.ok_or_else(|| {
                state.sign_ins.failed(ip);
                ApiError::unauthorized("the API token is unknown or revoked; ask an admin for a new one")
            })
        })
    }
}

/// The address failed sign-ins are counted against: the TCP peer, or, when the peer is a trusted
/// proxy, the nearest address in `X-Forwarded-For` that is not one (proxies append, so entries
/// further left were written by the client and cannot be believed).
fn client_address(req: &HttpRequest, trusted: &[IpAddr]) -> IpAddr {
    let peer = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    let hops: Vec<IpAddr> = forwarded.flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|hop| !trusted.contains(hop)).unwrap_or(peer)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_owned())
}

async fn authenticate(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    let hash = token_hash(token);
    if let Some(bootstrap) = &state.bootstrap_hash {
        if bool::from(bootstrap.ct_eq(&hash)) {
            return Ok(Some(Caller { token_id: None, name: "bootstrap".to_owned(), role: Role::Admin }));
        }
    }
    let Some(found) = api_tokens::find_active_by_hash(&state.pool, &hash).await? else { return Ok(None) };
    // Looking up by SHA-256 leaks nothing usable through timing: the hash reveals nothing of the token.
    if let Err(e) = api_tokens::touch(&state.pool, found.id).await {
        tracing::warn!(error = %e, "recording a token's last use failed");
    }
    Ok(Some(Caller { token_id: Some(found.id), name: found.name, role: found.role }))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn address(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:40000").parse().expect("peer"));
        for value in forwarded {
            req = req.append_header(("X-Forwarded-For", *value));
        }
        let trusted: Vec<IpAddr> = trusted.iter().map(|a| a.parse().expect("ip")).collect();
        client_address(&req.to_http_request(), &trusted).to_string()
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_nearest_untrusted_forwarded_address() {
        // No trusted proxy: the header is anyone's to write.
        assert_eq!(address("10.0.0.9", &["203.0.113.7"], &[]), "10.0.0.9");
        assert_eq!(address("10.0.0.9", &["203.0.113.7"], &["10.0.0.9"]), "203.0.113.7");
        // A client-written entry on the left does not move its count to someone else.
        assert_eq!(address("10.0.0.9", &["198.51.100.1, 203.0.113.7"], &["10.0.0.9"]), "203.0.113.7");
        // Two proxies, one header each.
        assert_eq!(address("10.0.0.9", &["203.0.113.7", "10.0.0.8"], &["10.0.0.9", "10.0.0.8"]), "203.0.113.7");
        // Garbage or only proxies: the peer.
        assert_eq!(address("10.0.0.9", &["not an address"], &["10.0.0.9"]), "10.0.0.9");
    }
}

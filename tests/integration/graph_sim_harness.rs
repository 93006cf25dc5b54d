//! Shared helpers for the Graph emulator tests: a running emulator with one tenant and a token.

use std::sync::Arc;

use graph_sim::bench::token_for;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, RunningSim, SimOptions, SimState};
use serde_json::Value;

pub const ALL_READ_ROLES: &[&str] = &["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];

pub struct Sim {
    pub sim: RunningSim,
    pub tenant: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub async fn start_with(options: SimOptions, spec: TenantSpec, roles: &[&str]) -> Sim {
    let sim = GraphSim::start(options).expect("start graph-sim");
    let tenant = sim.state().create_tenant(spec).expect("create tenant").tenant_id;
    let token = token_for(&sim.base_url(), sim.state(), &tenant, roles).await.expect("token");
    Sim { sim, tenant, token, http: reqwest::Client::new() }
}

pub async fn start(users: usize, groups: usize, devices: usize) -> Sim {
    let spec = TenantSpec { seed: Some(7), users, groups, devices, ..TenantSpec::default() };
    start_with(SimOptions::default(), spec, ALL_READ_ROLES).await
}

/// One delta page as the client sees it.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Page {
    pub fn value(&self) -> &Vec<Value> {
        self.body["value"].as_array().expect("value array")
    }
    pub fn next(&self) -> Option<String> {
        self.body["@odata.nextLink"].as_str().map(str::to_owned)
    }
    pub fn delta(&self) -> Option<String> {
        self.body["@odata.deltaLink"].as_str().map(str::to_owned)
    }
}

impl Sim {
    pub fn state(&self) -> &Arc<SimState> {
        self.sim.state()
    }

    /// A fresh access token: advancing the emulator clock past an hour expires the old one.
    pub async fn renew_token(&mut self) {
        self.token =
            token_for(&self.sim.base_url(), self.sim.state(), &self.tenant, ALL_READ_ROLES).await.expect("token");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.http.get(url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Page { status, headers, body }
    }

    pub async fn get(&self, url: &str) -> Page {
        self.get_with(url, &[]).await
    }

    /// Follows nextLinks to the deltaLink; returns every page and the deltaLink.
    pub async fn walk_with(&self, url: &str, headers: &[(&str, &str)]) -> (Vec<Page>, String) {
        let mut pages = Vec::new();
        let mut url = url.to_owned();
        loop {
            let page = self.get_with(&url, headers).await;
            assert_eq!(page.status, 200, "{url}: {}", page.body);
            let (next, delta) = (page.next(), page.delta());
            assert!(next.is_some() != delta.is_some(), "exactly one link per page: {}", page.body);
            pages.push(page);
            match (next, delta) {
                (Some(next), _) => url = next,
                (_, Some(delta)) => return (pages, delta),
                _ => unreachable!(),
            }
            assert!(pages.len() < 100_000, "walk does not end");
        }
    }

    pub async fn walk(&self, url: &str) -> (Vec<Page>, String) {
        self.walk_with(url, &[]).await
    }
}

/// All objects of a walk, in order.
pub fn objects(pages: &[Page]) -> Vec<Value> {
    pages.iter().flat_map(|p| p.value().iter().cloned()).collect()
}

pub fn ids_of(objects: &[Value]) -> Vec<String> {
    objects.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect()
}

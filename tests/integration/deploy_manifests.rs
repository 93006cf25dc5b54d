//! The deploy manifests cannot run here (no container engine), so this keeps them consistent with the code:
//! `docker-compose.yml`, `deploy/Dockerfile`, `deploy/k8s/*.yaml` and `deploy/prometheus/prometheus.yml`.
//!
//! - every `ENTRASYNC_*` variable they set or mention is one `config::SETTINGS` knows, and the values each
//!   deployment unit ends up with are accepted by `Settings::from_sources` (a typo or a bad value fails);
//! - the HTTP port agrees everywhere: `ENTRASYNC_HTTP_LISTEN` (not loopback), exposed and container
//!   ports, probes (`/readyz`, `/healthz`), the Service, health checks and the Prometheus targets;
//! - the image's final stage runs as a non-root user, and Kubernetes insists on it.
//!
//! Every problem names the file and the variable or field. The last test mutates the real files in memory
//! to prove the checks catch what they claim to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;
use entrasync::config::{ConfigError, Settings, SETTINGS};
use serde::Deserialize;
use serde_yaml::Value;

const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "deploy/Dockerfile";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const K8S_DIR: &str = "deploy/k8s";

/// The texts checked, by path relative to the crate root.
#[derive(Clone)]
struct Sources {
    files: BTreeMap<String, String>,
}

impl Sources {
    fn load() -> Sources {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut paths = vec![COMPOSE.to_owned(), DOCKERFILE.to_owned(), PROMETHEUS.to_owned()];
        let k8s = std::fs::read_dir(root.join(K8S_DIR)).unwrap_or_else(|e| panic!("cannot list {K8S_DIR}: {e}"));
        let mut k8s: Vec<String> = k8s
            .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
            .map(|name| format!("{K8S_DIR}/{name}"))
            .collect();
        k8s.sort();
        assert!(!k8s.is_empty(), "{K8S_DIR} has no manifests");
        paths.extend(k8s);
        let files = paths
            .into_iter()
            .map(|path| {
                let text =
                    std::fs::read_to_string(root.join(&path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
                (path, text)
            })
            .collect();
        Sources { files }
    }

    fn text(&self, path: &str) -> &str {
        self.files.get(path).map(String::as_str).unwrap_or_else(|| panic!("{path} is missing"))
    }

    fn k8s_files(&self) -> impl Iterator<Item = (&String, &String)> {
        self.files.iter().filter(|(path, _)| path.starts_with(&format!("{K8S_DIR}/")))
    }

    /// A copy with `from` replaced by `to` in `path`; panics when `from` is not there (a stale test).
    fn mutated(&self, path: &str, from: &str, to: &str) -> Sources {
        let text = self.text(path);
        assert!(text.contains(from), "mutation test is stale: {path} no longer contains {from:?}");
        let mut copy = self.clone();
        copy.files.insert(path.to_owned(), text.replacen(from, to, 1));
        copy
    }
}

/// Problems found, each "file: what".
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, file: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{file}: {what}"));
    }
}

/// One `ENTRASYNC_*` variable a manifest sets; `value` is None when the platform fills it in (valueFrom).
#[derive(Clone, Debug)]
struct Var {
    value: Option<String>,
    file: String,
}

/// Variables by name, in the order they apply: later sources override earlier ones.
type Env = BTreeMap<String, Var>;

fn is_known(name: &str) -> bool {
    SETTINGS.iter().any(|s| s.env == name)
}

fn default_of(name: &str) -> &'static str {
    SETTINGS.iter().find(|s| s.env == name).map_or("", |s| s.default)
}

/// Names known; the values (as one deployment unit sees them) accepted by the configuration code.
fn check_env(p: &mut Problems, context: &str, env: &Env) {
    for (name, var) in env {
        if !is_known(name) {
            p.add(&var.file, format!("{context}: {name} is not a setting entrasync knows (config::SETTINGS)"));
        }
    }
    let values: Vec<(String, String)> = env
        .iter()
        .filter(|(name, _)| is_known(name))
        .filter_map(|(name, var)| var.value.clone().map(|value| (name.clone(), value)))
        .collect();
    if let Err(error) = Settings::from_sources(None, values) {
        let file = match &error {
            ConfigError::Invalid { env: name, .. } => env.get(*name).map_or(context, |v| v.file.as_str()),
            _ => context,
        };
        p.add(file, format!("{context}: entrasync rejects this configuration: {error}"));
    }
}

/// The port entrasync listens on with this environment; a loopback address is a problem in a container.
fn listen_port(p: &mut Problems, context: &str, env: &Env, fallback_file: &str) -> Option<u16> {
    let name = "ENTRASYNC_HTTP_LISTEN";
    let (value, file) = match env.get(name) {
        Some(Var { value: Some(value), file }) => (value.clone(), file.as_str()),
        _ => (default_of(name).to_owned(), fallback_file),
    };
    match value.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => {
            p.add(file, format!("{context}: {name}={value} listens on loopback only: unreachable from outside"));
            Some(addr.port())
        }
        Ok(addr) => Some(addr.port()),
        Err(_) => None, // check_env reports it
    }
}

/// Where the effective `ENTRASYNC_HTTP_LISTEN` comes from, for port messages.
fn listen_origin(env: &Env, fallback_file: &str) -> String {
    env.get("ENTRASYNC_HTTP_LISTEN").map_or(fallback_file, |v| v.file.as_str()).to_owned()
}

/// Every `ENTRASYNC_*` word in the text, comments included, so no place can hide a typo.
fn check_mentions(p: &mut Problems, file: &str, text: &str) {
    let mut mentioned = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find("ENTRASYNC_") {
        let start = from + found;
        let mut end = start + "ENTRASYNC_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        from = end;
        let word_start = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let name = text[start..end].trim_end_matches('_');
        if word_start && name.len() > "ENTRASYNC".len() {
            mentioned.insert(name.to_owned());
        }
    }
    for name in mentioned {
        if !is_known(&name) {
            p.add(file, format!("mentions {name}, which is not a setting entrasync knows (config::SETTINGS)"));
        }
    }
}

fn yaml_docs(p: &mut Problems, file: &str, text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(mut value) => {
                if let Err(e) = value.apply_merge() {
                    p.add(file, format!("YAML merge keys: {e}"));
                }
                if !value.is_null() {
                    docs.push(value);
                }
            }
            Err(e) => {
                p.add(file, format!("invalid YAML: {e}"));
                break;
            }
        }
    }
    docs
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    at(value, path).and_then(scalar)
}

fn seq(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_sequence).map_or(&[], Vec::as_slice)
}

/// The text of a health check command (`["CMD", ...]` or a string), for port and path checks.
fn command_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect::<Vec<_>>().join(" "),
        Some(other) => scalar(other).unwrap_or_default(),
        None => String::new(),
    }
}

fn check_health_command(p: &mut Problems, file: &str, context: &str, command: &str, port: u16) {
    if !(command.contains(&format!("/{port}")) || command.contains(&format!(":{port}"))) {
        p.add(file, format!("{context}: health check does not use the HTTP port {port}: {command}"));
    }
    if !(command.contains("/healthz") || command.contains("/readyz")) {
        p.add(file, format!("{context}: health check uses neither /healthz nor /readyz: {command}"));
    }
}

// ------------------------------------------------------------------------------------------ Dockerfile

struct Instruction {
    stage: usize,
    keyword: String,
    args: String,
}

/// Instructions with continuation lines joined and comments dropped; `stage` counts FROMs from 1.
fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut stage = 0;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage += 1;
        }
        out.push(Instruction { stage, keyword, args: args.trim().to_owned() });
    }
    out
}

/// Splits like a shell: whitespace separates, quotes group, a backslash escapes.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `ENV a=1 b=2` and the legacy `ENV a 1`.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let words = shell_words(args);
    match words.first() {
        Some(first) if !first.contains('=') => {
            vec![(first.clone(), words[1..].join(" "))]
        }
        _ => words.iter().filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect(),
    }
}

/// What the image gives every container: its `ENTRASYNC_*` environment, user and port.
struct Image {
    env: Env,
    /// The numeric uid of USER, when numeric.
    uid: Option<u32>,
    port: Option<u16>,
}

fn check_dockerfile(p: &mut Problems, text: &str) -> Image {
    let file = DOCKERFILE;
    check_mentions(p, file, text);
    let instructions = dockerfile_instructions(text);
    let last_stage = instructions.iter().map(|i| i.stage).max().unwrap_or(0);
    if last_stage == 0 {
        p.add(file, "no FROM instruction");
    }
    let final_stage: Vec<&Instruction> = instructions.iter().filter(|i| i.stage == last_stage).collect();
    let find_all = |keyword: &'static str| final_stage.iter().filter(move |i| i.keyword == keyword);

    let mut env = Env::new();
    for instruction in find_all("ENV") {
        for (name, value) in env_pairs(&instruction.args) {
            if name.starts_with("ENTRASYNC_") {
                env.insert(name, Var { value: Some(value), file: file.to_owned() });
            }
        }
    }
    check_env(p, "final stage ENV", &env);
    let port = listen_port(p, "final stage ENV", &env, file);

    // USER: the last one in the final stage decides; absent means root.
    let mut uid = None;
    match find_all("USER").next_back() {
        None => p.add(file, "the final stage has no USER instruction, so the container runs as root"),
        Some(user) => {
            let name = user.args.split(':').next().unwrap_or_default().trim();
            if name.is_empty() || name == "root" || name == "0" {
                p.add(file, format!("USER {} in the final stage runs as root", user.args));
            }
            uid = name.parse().ok();
        }
    }

    if let Some(port) = port {
        let exposed: Vec<u16> = find_all("EXPOSE")
            .flat_map(|i| i.args.split_whitespace().map(|w| w.trim_end_matches("/tcp").parse().unwrap_or(0)))
            .collect();
        if !exposed.contains(&port) {
            p.add(file, format!("EXPOSE {exposed:?} does not include the port of ENTRASYNC_HTTP_LISTEN ({port})"));
        }
        for check in find_all("HEALTHCHECK") {
            check_health_command(p, file, "HEALTHCHECK", &check.args, port);
        }
    }
    let entrypoint: String = find_all("ENTRYPOINT").map(|i| i.args.clone()).next_back().unwrap_or_default();
    if !entrypoint.contains("entrasync") {
        p.add(file, format!("ENTRYPOINT {entrypoint} does not run entrasync"));
    }
    Image { env, uid, port }
}

// ------------------------------------------------------------------------------------ docker compose

struct ComposeInstance {
    port: Option<u16>,
}

/// `environment:` as a map or as a list of `NAME=value`.
fn compose_env(file: &str, environment: Option<&Value>) -> Env {
    let mut env = Env::new();
    let var = |value: Option<String>| Var { value, file: file.to_owned() };
    match environment {
        Some(Value::Mapping(map)) => {
            for (name, value) in map {
                if let Some(name) = name.as_str().filter(|n| n.starts_with("ENTRASYNC_")) {
                    env.insert(name.to_owned(), var(scalar(value)));
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                let (name, value) = item.split_once('=').map_or((item, None), |(n, v)| (n, Some(v.to_owned())));
                if name.starts_with("ENTRASYNC_") {
                    env.insert(name.to_owned(), var(value));
                }
            }
        }
        _ => {}
    }
    env
}

/// (published, container) ports of a compose service.
fn compose_ports(service: &Value) -> Vec<(Option<u16>, Option<u16>)> {
    seq(service.get("ports"))
        .iter()
        .map(|entry| match entry {
            Value::Mapping(_) => (
                str_at(entry, &["published"]).and_then(|s| s.parse().ok()),
                str_at(entry, &["target"]).and_then(|s| s.parse().ok()),
            ),
            other => {
                let spec = scalar(other).unwrap_or_default();
                let spec = spec.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
                (parts.get(1).and_then(|s| s.parse().ok()), parts.first().and_then(|s| s.parse().ok()))
            }
        })
        .collect()
}

fn check_compose(p: &mut Problems, text: &str, image: &Image) -> BTreeMap<String, ComposeInstance> {
    let file = COMPOSE;
    check_mentions(p, file, text);
    let mut instances = BTreeMap::new();
    let Some(doc) = yaml_docs(p, file, text).into_iter().next() else {
        p.add(file, "empty");
        return instances;
    };
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        p.add(file, "no services");
        return instances;
    };
    let service_names: BTreeSet<String> = services.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect();
    let mut published_ports: BTreeMap<u16, String> = BTreeMap::new();

    for (name, service) in services {
        let name = name.as_str().unwrap_or_default().to_owned();
        for (published, _) in compose_ports(service) {
            if let Some(port) = published {
                if let Some(other) = published_ports.insert(port, name.clone()) {
                    p.add(file, format!("services {other} and {name} both publish host port {port}"));
                }
            }
        }
        let dockerfile = str_at(service, &["build", "dockerfile"]);
        let is_entrasync = dockerfile.as_deref().is_some_and(|d| d.ends_with("Dockerfile") && d.contains("deploy"))
            || str_at(service, &["image"]).is_some_and(|i| i.starts_with("entrasync"));
        let env = compose_env(file, service.get("environment"));
        if !is_entrasync {
            if let Some(var) = env.keys().next() {
                p.add(file, format!("service {name} sets {var} but does not run entrasync"));
            }
            continue;
        }
        let context = format!("service {name}");
        if let Some(dockerfile) = &dockerfile {
            let build_context = str_at(service, &["build", "context"]).unwrap_or_else(|| ".".to_owned());
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&build_context).join(dockerfile);
            if !path.is_file() {
                p.add(
                    file,
                    format!("{context}: build.dockerfile {dockerfile} (context {build_context}) does not exist"),
                );
            }
        }

        // The image's ENV applies first; the service's environment overrides it.
        let mut effective = image.env.clone();
        effective.extend(env);
        check_env(p, &context, &effective);
        let port = listen_port(p, &context, &effective, DOCKERFILE);
        if let Some(port) = port {
            let ports = compose_ports(service);
            if !ports.iter().any(|(_, target)| *target == Some(port)) {
                p.add(
                    file,
                    format!(
                        "{context}: ports {ports:?} map no host port to the container port {port} of ENTRASYNC_HTTP_LISTEN (set in {})",
                        listen_origin(&effective, DOCKERFILE)
                    ),
                );
            }
            match service.get("healthcheck") {
                Some(check) => check_health_command(p, file, &context, &command_text(check.get("test")), port),
                None if image.port.is_some() => {} // the image's HEALTHCHECK, checked with the Dockerfile
                None => p.add(file, format!("{context}: no healthcheck")),
            }
        }

        // The URLs must point at compose services this one waits for, on their standard ports.
        for (var, scheme_port) in [("ENTRASYNC_DATABASE_URL", 5432), ("ENTRASYNC_AMQP_URL", 5672)] {
            let Some(Var { value: Some(value), file: origin }) = effective.get(var) else {
                p.add(file, format!("{context}: {var} is not set, so entrasync would look on its own loopback"));
                continue;
            };
            let Ok(url) = url::Url::parse(value) else { continue }; // check_env reports it
            let host = url.host_str().unwrap_or_default().to_owned();
            if !service_names.contains(&host) {
                p.add(origin, format!("{context}: {var} points at host {host:?}, which is no service of {file}"));
                continue;
            }
            if url.port().unwrap_or(scheme_port) != scheme_port {
                p.add(
                    origin,
                    format!("{context}: {var} uses port {:?}; service {host} listens on {scheme_port}", url.port()),
                );
            }
            let condition = str_at(service, &["depends_on", &host, "condition"]);
            if condition.as_deref() != Some("service_healthy") {
                p.add(
                    file,
                    format!("{context}: depends_on.{host}.condition is {condition:?}, expected service_healthy"),
                );
            }
            if services.get(host.as_str()).and_then(|s| s.get("healthcheck")).is_none() {
                p.add(file, format!("service {host} has no healthcheck, so service_healthy never holds"));
            }
        }
        instances.insert(name, ComposeInstance { port });
    }

    if instances.len() < 2 {
        p.add(file, format!("expected two entrasync instances, found {:?}", instances.keys().collect::<Vec<_>>()));
    }
    let rabbit_images: Vec<String> =
        services.values().filter_map(|s| str_at(s, &["image"])).filter(|i| i.starts_with("rabbitmq")).collect();
    if !rabbit_images.iter().any(|i| i.contains("management")) {
        p.add(file, format!("no RabbitMQ service with the management plugin (images: {rabbit_images:?})"));
    }
    let mounts_prometheus_config = services.values().any(|s| {
        seq(s.get("volumes")).iter().filter_map(scalar).any(|v| v.trim_start_matches("./").starts_with(PROMETHEUS))
    });
    if !mounts_prometheus_config {
        p.add(file, format!("no service mounts {PROMETHEUS}"));
    }
    instances
}

fn check_prometheus(p: &mut Problems, text: &str, instances: &BTreeMap<String, ComposeInstance>) {
    let file = PROMETHEUS;
    let mut scraped = BTreeSet::new();
    for doc in yaml_docs(p, file, text) {
        for job in seq(doc.get("scrape_configs")) {
            let job_name = str_at(job, &["job_name"]).unwrap_or_default();
            let path = str_at(job, &["metrics_path"]).unwrap_or_else(|| "/metrics".to_owned());
            for target in seq(job.get("static_configs")).iter().flat_map(|c| seq(c.get("targets"))).filter_map(scalar) {
                let (host, port) = target.rsplit_once(':').unwrap_or((target.as_str(), "80"));
                let Some(instance) = instances.get(host) else { continue };
                scraped.insert(host.to_owned());
                if path != "/metrics" {
                    p.add(file, format!("job {job_name}: metrics_path {path} for {target}; entrasync serves /metrics"));
                }
                if instance.port.is_some_and(|expected| port.parse() != Ok(expected)) {
                    p.add(
                        file,
                        format!(
                            "job {job_name}: target {target} uses port {port}; compose service {host} listens on {:?} (ENTRASYNC_HTTP_LISTEN)",
                            instance.port.unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }
    for name in instances.keys().filter(|n| !scraped.contains(*n)) {
        p.add(file, format!("no scrape target for the compose service {name}"));
    }
}

// ---------------------------------------------------------------------------------------- Kubernetes

fn resolve_port(port: Option<&Value>, named: &BTreeMap<String, u16>) -> Option<u16> {
    let text = scalar(port?)?;
    text.parse().ok().or_else(|| named.get(&text).copied())
}

fn check_k8s(p: &mut Problems, sources: &Sources, image: &Image) {
    // kind/name -> (file, document)
    let mut objects: BTreeMap<(String, String), (String, Value)> = BTreeMap::new();
    let mut kustomizations = Vec::new();
    for (file, text) in sources.k8s_files() {
        check_mentions(p, file, text);
        for doc in yaml_docs(p, file, text) {
            let kind = str_at(&doc, &["kind"]).unwrap_or_default();
            if kind == "Kustomization" {
                kustomizations.push((file.clone(), doc));
                continue;
            }
            if at(&doc, &["metadata", "namespace"]).is_some() {
                p.add(file, format!("{kind} sets metadata.namespace; the manifests are namespace-free"));
            }
            let name = str_at(&doc, &["metadata", "name"]).unwrap_or_default();
            objects.insert((kind, name), (file.clone(), doc));
        }
    }
    if kustomizations.is_empty() {
        p.add(K8S_DIR, "no kustomization.yaml");
    }
    for (file, doc) in &kustomizations {
        for resource in seq(doc.get("resources")).iter().filter_map(scalar) {
            if !sources.files.contains_key(&format!("{K8S_DIR}/{resource}")) {
                p.add(file, format!("resource {resource} does not exist in {K8S_DIR}"));
            }
        }
    }

    // Strings only: Kubernetes rejects numbers and booleans in ConfigMap data and env values.
    let data_of = |p: &mut Problems, kind: &str, name: &str| -> Option<Env> {
        let (file, doc) = objects.get(&(kind.to_owned(), name.to_owned()))?;
        let mut env = Env::new();
        for field in ["data", "stringData"] {
            for (key, value) in doc.get(field).and_then(Value::as_mapping).into_iter().flatten() {
                let Some(key) = key.as_str().filter(|k| k.starts_with("ENTRASYNC_")) else { continue };
                let text = match (value, field, kind) {
                    (Value::String(s), "data", "Secret") => {
                        match base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                            Err(e) => {
                                p.add(file, format!("{kind} {name}: data.{key} is not base64: {e}"));
                                continue;
                            }
                        }
                    }
                    (Value::String(s), _, _) => s.clone(),
                    _ => {
                        p.add(file, format!("{kind} {name}: {field}.{key} must be a string (quote it)"));
                        scalar(value).unwrap_or_default()
                    }
                };
                env.insert(key.to_owned(), Var { value: Some(text), file: file.clone() });
            }
        }
        Some(env)
    };

    let deployments: Vec<(String, Value)> = objects
        .iter()
        .filter(|((kind, _), _)| kind == "Deployment")
        .map(|(_, (f, d))| (f.clone(), d.clone()))
        .collect();
    if deployments.is_empty() {
        p.add(K8S_DIR, "no Deployment");
    }
    for (file, deployment) in &deployments {
        let file = file.as_str();
        let name = str_at(deployment, &["metadata", "name"]).unwrap_or_default();
        let replicas = at(deployment, &["spec", "replicas"]).and_then(Value::as_u64).unwrap_or(1);
        if replicas < 2 {
            p.add(file, format!("Deployment {name}: replicas {replicas}; entrasync is meant to run at least two"));
        }
        let pod = at(deployment, &["spec", "template", "spec"]).cloned().unwrap_or(Value::Null);
        let pod_security = pod.get("securityContext");
        let pod_labels = at(deployment, &["spec", "template", "metadata", "labels"]).cloned().unwrap_or(Value::Null);
        let containers = seq(pod.get("containers"));
        if containers.is_empty() {
            p.add(file, format!("Deployment {name}: no containers"));
        }
        for container in containers {
            let cname = str_at(container, &["name"]).unwrap_or_default();
            let context = format!("Deployment {name} container {cname}");

            // Environment, in Kubernetes' order: envFrom sources, then env (which wins).
            let mut env = image.env.clone();
            for source in seq(container.get("envFrom")) {
                for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                    let Some(ref_name) = str_at(source, &[field, "name"]) else { continue };
                    match data_of(p, kind, &ref_name) {
                        Some(data) => env.extend(data),
                        None => p.add(file, format!("{context}: envFrom {kind} {ref_name} is not in {K8S_DIR}")),
                    }
                }
            }
            for item in seq(container.get("env")) {
                let Some(var) = str_at(item, &["name"]).filter(|n| n.starts_with("ENTRASYNC_")) else { continue };
                let value = match item.get("value") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => {
                        p.add(file, format!("{context}: env {var} must be a string (quote it)"));
                        scalar(other)
                    }
                    None => None, // valueFrom: filled in by Kubernetes
                };
                env.insert(var, Var { value, file: file.to_owned() });
            }
            for var in ["ENTRASYNC_DATABASE_URL", "ENTRASYNC_AMQP_URL"] {
                if !env.contains_key(var) {
                    p.add(file, format!("{context}: {var} is not set (it belongs in the Secret)"));
                }
            }
            check_env(p, &context, &env);
            let Some(port) = listen_port(p, &context, &env, file) else { continue };

            let named: BTreeMap<String, u16> = seq(container.get("ports"))
                .iter()
                .filter_map(|cp| Some((str_at(cp, &["name"])?, str_at(cp, &["containerPort"])?.parse().ok()?)))
                .collect();
            let container_ports: Vec<u16> = seq(container.get("ports"))
                .iter()
                .filter_map(|cp| str_at(cp, &["containerPort"])?.parse().ok())
                .collect();
            let origin = listen_origin(&env, file);
            if !container_ports.contains(&port) {
                p.add(
                    file,
                    format!("{context}: containerPort {container_ports:?} is not the port of ENTRASYNC_HTTP_LISTEN ({port}, set in {origin})"),
                );
            }
            for (probe, required, allowed) in [
                ("readinessProbe", true, &["/readyz"][..]),
                ("livenessProbe", true, &["/healthz"][..]),
                ("startupProbe", false, &["/healthz", "/readyz"][..]),
            ] {
                let Some(spec) = container.get(probe) else {
                    if required {
                        p.add(file, format!("{context}: no {probe}"));
                    }
                    continue;
                };
                let path = str_at(spec, &["httpGet", "path"]).unwrap_or_default();
                if !allowed.contains(&path.as_str()) {
                    p.add(file, format!("{context}: {probe}.httpGet.path is {path:?}, expected one of {allowed:?}"));
                }
                let probe_port = resolve_port(at(spec, &["httpGet", "port"]), &named);
                if probe_port != Some(port) {
                    p.add(
                        file,
                        format!(
                            "{context}: {probe}.httpGet.port is {probe_port:?}, not the HTTP port {port} ({origin})"
                        ),
                    );
                }
            }
            if let Some(annotated) =
                str_at(deployment, &["spec", "template", "metadata", "annotations", "prometheus.io/port"])
            {
                if annotated != port.to_string() {
                    p.add(
                        file,
                        format!(
                            "Deployment {name}: annotation prometheus.io/port {annotated} is not {port} ({origin})"
                        ),
                    );
                }
            }
            for limit in [["resources", "requests"], ["resources", "limits"]] {
                if at(container, &limit).is_none() {
                    p.add(file, format!("{context}: no {}", limit.join(".")));
                }
            }

            // Non-root, enforced by the kubelet; the uid agrees with the image's USER.
            let security = |key: &str| at(container, &["securityContext", key]).or_else(|| pod_security?.get(key));
            if security("runAsNonRoot").and_then(Value::as_bool) != Some(true) {
                p.add(file, format!("{context}: securityContext.runAsNonRoot is not true"));
            }
            let run_as = security("runAsUser").and_then(Value::as_u64);
            if run_as == Some(0) {
                p.add(file, format!("{context}: securityContext.runAsUser is 0 (root)"));
            }
            if let (Some(run_as), Some(uid)) = (run_as, image.uid) {
                if run_as != u64::from(uid) {
                    p.add(
                        file,
                        format!("{context}: runAsUser {run_as} differs from the image's USER {uid} ({DOCKERFILE})"),
                    );
                }
            }

            // Every Service selecting these pods sends its target port to the HTTP port.
            for ((kind, sname), (sfile, service)) in &objects {
                if kind != "Service" {
                    continue;
                }
                let selects = at(service, &["spec", "selector"]).and_then(Value::as_mapping).is_some_and(|selector| {
                    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
                });
                if !selects {
                    p.add(sfile, format!("Service {sname}: selector does not match the pods of Deployment {name}"));
                    continue;
                }
                for service_port in seq(at(service, &["spec", "ports"])) {
                    let target = service_port.get("targetPort").or_else(|| service_port.get("port"));
                    let resolved = resolve_port(target, &named);
                    if resolved != Some(port) {
                        p.add(
                            sfile,
                            format!("Service {sname}: targetPort resolves to {resolved:?}, not the HTTP port {port} ({origin})"),
                        );
                    }
                }
            }
        }
    }
}

fn check_all(sources: &Sources) -> Vec<String> {
    let mut p = Problems::default();
    let image = check_dockerfile(&mut p, sources.text(DOCKERFILE));
    let instances = check_compose(&mut p, sources.text(COMPOSE), &image);
    check_prometheus(&mut p, sources.text(PROMETHEUS), &instances);
    check_k8s(&mut p, sources, &image);
    p.0
}

#[test]
fn deploy_manifests_agree_with_the_code() {
    let problems = check_all(&Sources::load());
    assert!(problems.is_empty(), "the deploy manifests disagree with the code:\n  {}", problems.join("\n  "));
}

#[test]
fn a_typo_a_bad_value_or_a_wrong_port_in_a_manifest_is_named() {
    let sources = Sources::load();
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            COMPOSE,
            "ENTRASYNC_INSTANCE_ID: entrasync-2",
            "ENTRASYNC_INSTANCE_NAME: entrasync-2",
            &["ENTRASYNC_INSTANCE_NAME"],
        ),
        (COMPOSE, "ENTRASYNC_LOG_FORMAT: json", "ENTRASYNC_LOG_FORMAT: yaml", &["ENTRASYNC_LOG_FORMAT", "\"yaml\""]),
        (COMPOSE, "127.0.0.1:8081:8080", "127.0.0.1:8081:9090", &["entrasync-1", "8080"]),
        (COMPOSE, "127.0.0.1:8082:8080", "127.0.0.1:8081:8080", &["8081"]),
        (COMPOSE, "@rabbitmq:5672/", "@rabbit:5672/", &["ENTRASYNC_AMQP_URL", "rabbit"]),
        (DOCKERFILE, "USER 10001:10001", "USER root", &["USER"]),
        (DOCKERFILE, "ENTRASYNC_HTTP_LISTEN=0.0.0.0:8080", "ENTRASYNC_HTTP_LISTEN=127.0.0.1:8080", &["loopback"]),
        (DOCKERFILE, "ENTRASYNC_HTTP_LISTEN=0.0.0.0:8080", "ENTRASYNC_HTTP_LISTEN=0.0.0.0:9000", &["EXPOSE", "9000"]),
        (PROMETHEUS, "entrasync-2:8080", "entrasync-2:9100", &["entrasync-2", "9100"]),
        (
            "deploy/k8s/configmap.yaml",
            "ENTRASYNC_AMQP_PREFETCH: \"2\"",
            "ENTRASYNC_AMQP_PREFETCH: \"lots\"",
            &["ENTRASYNC_AMQP_PREFETCH", "\"lots\""],
        ),
        ("deploy/k8s/configmap.yaml", "ENTRASYNC_LOG_FILTER:", "ENTRASYNC_LOG_FILTR:", &["ENTRASYNC_LOG_FILTR"]),
        ("deploy/k8s/configmap.yaml", "\"0.0.0.0:8080\"", "\"0.0.0.0:9090\"", &["containerPort", "9090"]),
        (
            "deploy/k8s/secret.example.yaml",
            "ENTRASYNC_AMQP_URL: \"amqps:",
            "ENTRASYNC_AMQP_URL: \"http:",
            &["ENTRASYNC_AMQP_URL"],
        ),
        ("deploy/k8s/deployment.yaml", "path: /readyz", "path: /ready", &["readinessProbe", "/ready"]),
        ("deploy/k8s/deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", &["runAsNonRoot"]),
        ("deploy/k8s/service.yaml", "targetPort: http", "targetPort: 80", &["targetPort", "80"]),
    ];
    for (file, from, to, expected) in cases {
        let problems = check_all(&sources.mutated(file, from, to));
        let named = problems.iter().any(|problem| {
            let origin_named = problem.starts_with(&format!("{file}:")) || problem.contains(*file);
            origin_named && expected.iter().all(|e| problem.contains(e))
        });
        assert!(
            named,
            "changing {from:?} to {to:?} in {file} should give a problem naming {file} and {expected:?}; got:\n  {}",
            problems.join("\n  ")
        );
    }
}

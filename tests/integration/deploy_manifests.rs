//! The deploy manifests cannot run here (no container engine), so this keeps them consistent with the code:
//! `docker-compose.yml`, `deploy/Dockerfile`, `deploy/k8s/*.yaml`, `deploy/prometheus/prometheus.yml` and
//! the Grafana provisioning in `deploy/grafana/`.
//!
//! - every `ENTRASYNC_*` variable they set or mention is one `config::SETTINGS` knows, and the values each
//!   deployment unit ends up with are accepted by `Settings::from_sources` (a typo or a bad value fails);
//! - the HTTP port agrees everywhere: `ENTRASYNC_HTTP_LISTEN` (not loopback), exposed and container
//!   ports, probes (`/readyz`, `/healthz`), the Service, health checks and the Prometheus targets;
//! - the image's final stages run as a non-root user, and Kubernetes insists on it; the default target
//!   (the service image) builds with `--no-default-features`, the one that runs `graph-sim` without;
//! - the compose stack's emulator and registration command lines are accepted by the real `entrasync`
//!   binary (its clap definition), and agree with each other: the tenant the emulator generates, the app
//!   registered in it and its consent, the credential and tenant `entrasync` stores, the URLs and ports;
//! - Grafana's provisioning files parse, the datasource is the compose Prometheus, and the dashboard
//!   provider's path leads, through the compose mounts, to the dashboard JSON.
//!
//! Every problem names the file and the variable or field. The last test mutates the real files in memory
//! to prove the checks catch what they claim to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;
use clap::{Args, FromArgMatches};
use entrasync::config::{ConfigError, Settings, SETTINGS};
use graph_sim::cli::GraphSimArgs;
use serde::Deserialize;
use serde_yaml::Value;

const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "deploy/Dockerfile";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const K8S_DIR: &str = "deploy/k8s";
const GRAFANA_DIR: &str = "deploy/grafana";
const GRAFANA_PROVISIONING: &str = "deploy/grafana/provisioning";
/// Where Grafana reads its provisioning files.
const GRAFANA_PROVISIONING_MOUNT: &str = "/etc/grafana/provisioning";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (relative to the crate root), recursively, as relative paths.
fn files_under(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(root().join(&dir)).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The texts checked, by path relative to the crate root.
#[derive(Clone)]
struct Sources {
    files: BTreeMap<String, String>,
}

impl Sources {
    fn load() -> Sources {
        let mut paths = vec![COMPOSE.to_owned(), DOCKERFILE.to_owned(), PROMETHEUS.to_owned()];
        let k8s: Vec<String> =
            files_under(K8S_DIR).into_iter().filter(|name| name.ends_with(".yaml") || name.ends_with(".yml")).collect();
        assert!(!k8s.is_empty(), "{K8S_DIR} has no manifests");
        paths.extend(k8s);
        paths.extend(
            files_under(GRAFANA_DIR)
                .into_iter()
                .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")),
        );
        let files = paths
            .into_iter()
            .map(|path| {
                let text =
                    std::fs::read_to_string(root().join(&path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
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

    /// Files at `path` or under it.
    fn under<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (&'a String, &'a String)> + 'a {
        self.files.iter().filter(move |(file, _)| *file == path || file.starts_with(&format!("{path}/")))
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

fn uses_port(command: &str, port: u16) -> bool {
    command.contains(&format!("/{port}")) || command.contains(&format!(":{port}"))
}

fn check_health_command(p: &mut Problems, file: &str, context: &str, command: &str, port: u16) {
    if !uses_port(command, port) {
        p.add(file, format!("{context}: health check does not use the HTTP port {port}: {command}"));
    }
    if !(command.contains("/healthz") || command.contains("/readyz")) {
        p.add(file, format!("{context}: health check uses neither /healthz nor /readyz: {command}"));
    }
}

// ------------------------------------------------------------------------------------------ Dockerfile

struct Instruction {
    keyword: String,
    args: String,
}

/// One `FROM … [AS name]` and what follows it; `name` is lower-case (its index when unnamed).
struct Stage {
    name: String,
    base: String,
    instructions: Vec<Instruction>,
}

/// Instructions with continuation lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
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
        out.push(Instruction { keyword: keyword.to_ascii_uppercase(), args: args.trim().to_owned() });
    }
    out
}

fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in dockerfile_instructions(text) {
        if instruction.keyword == "FROM" {
            let words: Vec<String> =
                shell_words(&instruction.args).into_iter().filter(|w| !w.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_ascii_lowercase(),
                _ => stages.len().to_string(),
            };
            stages.push(Stage { name, base: words.first().cloned().unwrap_or_default(), instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

/// The stage and the earlier stages it is built `FROM`, base first.
fn stage_chain(stages: &[Stage], index: usize) -> Vec<&Stage> {
    let mut chain = vec![&stages[index]];
    let mut current = index;
    while let Some(base) = stages[..current].iter().rposition(|s| s.name == stages[current].base.to_ascii_lowercase()) {
        chain.push(&stages[base]);
        current = base;
    }
    chain.reverse();
    chain
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

/// `CMD`/`ENTRYPOINT` in exec form (a JSON array) or shell form.
fn exec_words(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args).unwrap_or_else(|_| shell_words(args))
}

/// The words of the `cargo build` command in a RUN instruction, up to the next shell operator.
fn cargo_build_words(run: &str) -> Option<Vec<String>> {
    let words = shell_words(run);
    let start = words.windows(2).position(|w| w[0] == "cargo" && w[1] == "build")?;
    Some(words[start..].iter().take_while(|w| !["&&", "||", ";", "|"].contains(&w.as_str())).cloned().collect())
}

/// Whether `cargo build` with these words builds the default feature `emulator` (`entrasync graph-sim`).
fn builds_emulator(cargo: &[String]) -> bool {
    let named = |list: &str| list.split([',', ' ']).any(|f| f == "emulator" || f == "entrasync/emulator");
    let features = cargo.windows(2).any(|w| (w[0] == "--features" || w[0] == "-F") && named(&w[1]))
        || cargo.iter().any(|w| w.strip_prefix("--features=").is_some_and(named) || w == "--all-features");
    features || !cargo.iter().any(|w| w == "--no-default-features")
}

/// What one final stage of the Dockerfile gives every container.
#[derive(Clone, Default)]
struct Image {
    /// Its `ENTRASYNC_*` environment.
    env: Env,
    /// Every ENV, e.g. GRAPH_SIM_LISTEN.
    all_env: BTreeMap<String, String>,
    /// The numeric uid of USER, when numeric.
    uid: Option<u32>,
    /// The port of ENTRASYNC_HTTP_LISTEN (service images).
    port: Option<u16>,
    healthcheck: Option<String>,
    cmd: Vec<String>,
    /// The `cargo build` command of the entrasync binary it carries.
    cargo: Vec<String>,
    /// That binary has `entrasync graph-sim`.
    emulator: bool,
}

/// The final stages of the Dockerfile by name, and the default target (the last stage).
#[derive(Default)]
struct Dockerfile {
    images: BTreeMap<String, Image>,
    default_target: String,
}

impl Dockerfile {
    /// The image `docker build` makes without --target: the service.
    fn service(&self) -> Image {
        self.images.get(&self.default_target).cloned().unwrap_or_default()
    }
}

fn check_dockerfile(p: &mut Problems, text: &str) -> Dockerfile {
    let file = DOCKERFILE;
    check_mentions(p, file, text);
    let stages = dockerfile_stages(text);
    let Some(last) = stages.last() else {
        p.add(file, "no FROM instruction");
        return Dockerfile::default();
    };
    let default_target = last.name.clone();
    // A stage another one builds FROM or copies from is an intermediate one; the rest are images.
    let copy_source = |i: &Instruction| {
        shell_words(&i.args).iter().find_map(|w| w.strip_prefix("--from=").map(str::to_ascii_lowercase))
    };
    let used: BTreeSet<String> = stages
        .iter()
        .flat_map(|s| {
            std::iter::once(s.base.to_ascii_lowercase())
                .chain(s.instructions.iter().filter(|i| i.keyword == "COPY").filter_map(copy_source))
        })
        .collect();

    let mut images = BTreeMap::new();
    for (index, stage) in stages.iter().enumerate().filter(|(_, s)| !used.contains(&s.name)) {
        let name = &stage.name;
        let context = format!("stage {name}");
        let instructions: Vec<&Instruction> =
            stage_chain(&stages, index).into_iter().flat_map(|s| s.instructions.iter()).collect();
        let find_all = |keyword: &'static str| instructions.iter().copied().filter(move |i| i.keyword == keyword);

        let mut env = Env::new();
        let mut all_env = BTreeMap::new();
        for instruction in find_all("ENV") {
            for (name, value) in env_pairs(&instruction.args) {
                if name.starts_with("ENTRASYNC_") {
                    env.insert(name.clone(), Var { value: Some(value.clone()), file: file.to_owned() });
                }
                all_env.insert(name, value);
            }
        }

        // USER: the last one decides; absent means root.
        let mut uid = None;
        match find_all("USER").next_back() {
            None => p.add(file, format!("{context} has no USER instruction, so the container runs as root")),
            Some(user) => {
                let name = user.args.split(':').next().unwrap_or_default().trim();
                if name.is_empty() || name == "root" || name == "0" {
                    p.add(file, format!("USER {} in {context} runs as root", user.args));
                }
                uid = name.parse().ok();
            }
        }
        let entrypoint = find_all("ENTRYPOINT").next_back().map(|i| exec_words(&i.args)).unwrap_or_default();
        if entrypoint.first().map(String::as_str) != Some("entrasync") {
            p.add(file, format!("{context}: ENTRYPOINT {entrypoint:?} does not run entrasync"));
        }
        let cmd = find_all("CMD").next_back().map(|i| exec_words(&i.args)).unwrap_or_default();
        let exposed: Vec<u16> = find_all("EXPOSE")
            .flat_map(|i| i.args.split_whitespace().map(|w| w.trim_end_matches("/tcp").parse().unwrap_or(0)))
            .collect();
        let healthcheck = find_all("HEALTHCHECK").next_back().map(|i| i.args.clone());

        // The binary: copied from a builder stage whose `cargo build` decides the features.
        let copy = find_all("COPY").rfind(|i| shell_words(&i.args).iter().any(|w| w.ends_with("/entrasync")));
        let builder = copy.and_then(copy_source);
        let cargo = builder.as_ref().and_then(|builder| stages.iter().position(|s| &s.name == builder)).and_then(|b| {
            stage_chain(&stages, b)
                .into_iter()
                .flat_map(|s| s.instructions.iter())
                .filter(|i| i.keyword == "RUN")
                .find_map(|i| cargo_build_words(&i.args))
        });
        let Some(cargo) = cargo else {
            p.add(
                file,
                format!(
                    "{context}: no COPY --from=<stage> of the entrasync binary from a stage that runs `cargo build`"
                ),
            );
            continue;
        };
        let emulator = builds_emulator(&cargo);
        let runs = cmd.first().map(String::as_str).unwrap_or_default();
        if *name == default_target && emulator {
            p.add(
                file,
                format!(
                    "{context} is the default target, the service image, but `{}` (stage {}) builds the emulator into it: build it with --no-default-features",
                    cargo.join(" "),
                    builder.as_deref().unwrap_or_default()
                ),
            );
        }
        if runs == "graph-sim" && !emulator {
            p.add(
                file,
                format!(
                    "{context} runs graph-sim, but `{}` (stage {}) builds with --no-default-features: that binary has no graph-sim",
                    cargo.join(" "),
                    builder.as_deref().unwrap_or_default()
                ),
            );
        }

        let mut port = None;
        if runs == "serve" || *name == default_target {
            check_env(p, &format!("{context} ENV"), &env);
            port = listen_port(p, &format!("{context} ENV"), &env, file);
            if let Some(port) = port {
                if !exposed.contains(&port) {
                    p.add(
                        file,
                        format!(
                            "{context}: EXPOSE {exposed:?} does not include the port of ENTRASYNC_HTTP_LISTEN ({port})"
                        ),
                    );
                }
                if let Some(check) = &healthcheck {
                    check_health_command(p, file, &format!("{context} HEALTHCHECK"), check, port);
                }
            }
        }
        if runs == "graph-sim" {
            if let Some(listen) = all_env.get("GRAPH_SIM_LISTEN") {
                match listen.parse::<SocketAddr>() {
                    Ok(addr) if addr.ip().is_loopback() => p.add(
                        file,
                        format!(
                            "{context}: GRAPH_SIM_LISTEN={listen} listens on loopback only: unreachable from outside"
                        ),
                    ),
                    Ok(addr) => {
                        if !exposed.contains(&addr.port()) {
                            p.add(
                                file,
                                format!("{context}: EXPOSE {exposed:?} does not include the port of GRAPH_SIM_LISTEN ({listen})"),
                            );
                        }
                        if healthcheck.as_ref().is_some_and(|c| !uses_port(c, addr.port())) {
                            p.add(
                                file,
                                format!("{context}: HEALTHCHECK does not use the port of GRAPH_SIM_LISTEN ({listen})"),
                            );
                        }
                    }
                    Err(e) => p.add(file, format!("{context}: GRAPH_SIM_LISTEN={listen} is no socket address: {e}")),
                }
            }
        }
        images.insert(name.clone(), Image { env, all_env, uid, port, healthcheck, cmd, cargo, emulator });
    }
    Dockerfile { images, default_target }
}

// ------------------------------------------------------------------------------------ docker compose

struct ComposeInstance {
    port: Option<u16>,
}

/// `environment:` as a map or as a list of `NAME=value`, every variable.
fn compose_env_all(environment: Option<&Value>) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    match environment {
        Some(Value::Mapping(map)) => {
            for (name, value) in map {
                if let Some(name) = name.as_str() {
                    env.insert(name.to_owned(), scalar(value));
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                let (name, value) = item.split_once('=').map_or((item, None), |(n, v)| (n, Some(v.to_owned())));
                env.insert(name.to_owned(), value);
            }
        }
        _ => {}
    }
    env
}

/// The `ENTRASYNC_*` variables of `environment:`.
fn compose_env(file: &str, environment: Option<&Value>) -> Env {
    compose_env_all(environment)
        .into_iter()
        .filter(|(name, _)| name.starts_with("ENTRASYNC_"))
        .map(|(name, value)| (name, Var { value, file: file.to_owned() }))
        .collect()
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

/// Bind mounts of a compose service: (host path relative to the crate root, container path).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    seq(service.get("volumes"))
        .iter()
        .filter_map(|volume| match volume {
            Value::Mapping(_) if str_at(volume, &["type"]).as_deref() == Some("bind") => {
                Some((str_at(volume, &["source"])?, str_at(volume, &["target"])?))
            }
            Value::Mapping(_) => None,
            other => {
                let spec = scalar(other)?;
                let mut parts = spec.split(':');
                let (source, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
                // A named volume has no path.
                (source.starts_with('.') || source.starts_with('/')).then_some((source, target))
            }
        })
        .map(|(source, target)| {
            let source = source.trim_start_matches("./").trim_end_matches('/').to_owned();
            (source, target.trim_end_matches('/').to_owned())
        })
        .collect()
}

/// The host path (relative) that a container path of a service comes from, through its bind mounts.
fn host_path(mounts: &[(String, String)], container: &str) -> Option<String> {
    let container = container.trim_end_matches('/');
    mounts
        .iter()
        .filter_map(|(host, target)| {
            let rest = container.strip_prefix(target.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| (target.len(), format!("{host}{rest}")))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, host)| host)
}

/// The container path a host file appears at, through the bind mounts.
fn container_path(mounts: &[(String, String)], host: &str) -> Option<String> {
    mounts.iter().find_map(|(source, target)| {
        let rest = host.strip_prefix(source.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{target}{rest}"))
    })
}

/// The host paths (relative) that make up a container directory: mounts at or below it, or the mount
/// it lies in.
fn hosts_under(mounts: &[(String, String)], container: &str) -> Vec<String> {
    let container = container.trim_end_matches('/');
    let below = |path: &str, dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    let mut hosts: Vec<String> =
        mounts.iter().filter(|(_, target)| below(target, container)).map(|(host, _)| host.clone()).collect();
    hosts.extend(host_path(mounts, container));
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A command line from compose (`command:`, `entrypoint:`): a list, or a string split like a shell.
fn compose_words(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::Sequence(items) => Some(items.iter().filter_map(scalar).collect()),
        other => Some(shell_words(&scalar(other)?)),
    }
}

/// One simple command of a script; `piped_from` is the command whose output it reads.
#[derive(Clone, Debug)]
struct SimpleCommand {
    words: Vec<String>,
    piped_from: Option<Vec<String>>,
}

/// The simple commands of a shell script, split at unquoted newlines, `;`, `&&`, `||`, `|` and `&`.
/// Leading keywords (`if`, `then`, `do`, …), `exec` and calls of functions the script defines (wrappers
/// such as `once entrasync …`) are dropped, so `words[0]` is the program that runs.
fn shell_commands(script: &str) -> Vec<SimpleCommand> {
    let chars: Vec<char> = script.chars().collect();
    let mut raw: Vec<(Vec<String>, bool)> = Vec::new(); // (words, piped into the next one)
    let (mut words, mut word) = (Vec::new(), String::new());
    let (mut in_word, mut quote) = (false, None::<char>);
    let mut i = 0;
    let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(&next) = chars.get(i + 1) {
                    if next != '\n' {
                        word.push(next);
                        in_word = true;
                    }
                    i += 1;
                }
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => {
                while i + 1 < chars.len() && chars[i + 1] != '\n' {
                    i += 1;
                }
            }
            // Redirections such as 2>&1 and >&3 are words, not separators.
            (None, '&') if i > 0 && (chars[i - 1] == '>' || chars[i - 1] == '<') => {
                word.push(c);
                in_word = true;
            }
            (None, '\n' | ';' | '&' | '|') => {
                end_word(&mut words, &mut word, &mut in_word);
                let double = chars.get(i + 1) == Some(&c) && c != '\n' && c != ';';
                let pipe = c == '|' && !double;
                if double {
                    i += 1;
                }
                raw.push((std::mem::take(&mut words), pipe));
            }
            (None, c) if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word),
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    end_word(&mut words, &mut word, &mut in_word);
    raw.push((words, false));

    let functions: BTreeSet<String> =
        raw.iter().filter_map(|(w, _)| w.first()?.strip_suffix("()").map(str::to_owned)).collect();
    let keywords = ["if", "then", "elif", "else", "while", "until", "do", "!", "{", "exec", "time"];
    let mut out = Vec::new();
    let mut previous: Option<(Vec<String>, bool)> = None;
    for (mut words, pipe) in raw {
        while words.first().is_some_and(|w| keywords.contains(&w.as_str()) || functions.contains(w)) {
            words.remove(0);
        }
        let piped_from = previous.as_ref().filter(|(_, piped)| *piped).map(|(w, _)| w.clone());
        previous = Some((words.clone(), pipe));
        if !words.is_empty() {
            out.push(SimpleCommand { words, piped_from });
        }
    }
    out
}

/// The commands a compose service runs: a `sh`/`bash -c` script split into its simple commands, or the
/// command line itself. `$$` is compose's escape for `$`.
fn service_commands(service: &Value, image_cmd: &[String]) -> Vec<SimpleCommand> {
    let entrypoint = compose_words(service.get("entrypoint"));
    let command = compose_words(service.get("command")).unwrap_or_else(|| {
        if entrypoint.is_some() {
            Vec::new()
        } else {
            image_cmd.to_vec()
        }
    });
    let words: Vec<String> = entrypoint.into_iter().flatten().chain(command).map(|w| w.replace("$$", "$")).collect();
    let is_shell = words.first().is_some_and(|w| ["sh", "bash", "/bin/sh", "/bin/bash"].contains(&w.as_str()));
    let script = words.iter().position(|w| w.starts_with('-') && !w.starts_with("--") && w.contains('c'));
    match (is_shell, script) {
        (true, Some(flag)) => shell_commands(words.get(flag + 1).map_or("", String::as_str)),
        _ => vec![SimpleCommand { words, piped_from: None }],
    }
}

/// `--flag value` and `--flag=value` of a command line; flags without a value map to "".
fn flags(words: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        if let Some(flag) = words[i].strip_prefix("--") {
            match flag.split_once('=') {
                Some((name, value)) => {
                    out.insert(name.to_owned(), value.to_owned());
                }
                None => {
                    let value = words.get(i + 1).filter(|v| !v.starts_with("--") || v.as_str() == "-");
                    out.insert(flag.to_owned(), value.cloned().unwrap_or_default());
                    if value.is_some() {
                        i += 1;
                    }
                }
            }
        }
        i += 1;
    }
    out
}

/// Runs the real binary with `args --help`: clap rejects an unknown subcommand or flag and a bad value
/// before it gets to `--help`. Returns clap's complaint.
fn entrasync_cli_rejects(args: &[String]) -> Option<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_entrasync"))
        .args(args)
        .arg("--help")
        .env_remove("ENTRASYNC_CONFIG")
        .env_remove("GRAPH_SIM_LISTEN")
        .output()
        .expect("run the entrasync binary");
    if output.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Some(stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("(no message)").trim().to_owned())
}

/// A `curl` command: method, URL and request body.
struct Curl {
    method: String,
    url: url::Url,
    data: Option<String>,
}

fn curl_of(words: &[String]) -> Option<Curl> {
    if words.first().map(String::as_str) != Some("curl") {
        return None;
    }
    let (mut method, mut url, mut data) = (None, None, None);
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "-X" | "--request" => method = rest.next().cloned(),
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--json" => data = rest.next().cloned(),
            "-H" | "--header" | "-o" | "--output" | "-w" | "--write-out" | "-u" | "--user" | "-m" | "--max-time"
            | "--retry" | "--cacert" => {
                rest.next();
            }
            w if w.starts_with("http://") || w.starts_with("https://") => url = url::Url::parse(w).ok(),
            _ => {}
        }
    }
    let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.to_owned());
    Some(Curl { method, url: url?, data })
}

/// The emulator service: where it listens and the tenant it generates.
struct Emulator {
    service: String,
    port: u16,
    tenant_id: Option<String>,
    domain: Option<String>,
}

/// An app registered in the emulator through its admin API, and the service that does it.
struct SimApp {
    service: String,
    secret: Option<String>,
}

/// `entrasync credential add` in a script.
struct CredentialAdd {
    client_id: String,
    /// The secret piped in (`printf … | entrasync credential add --secret-file -`).
    secret: Option<String>,
}

/// `entrasync tenant add` in a script.
struct TenantAdd {
    service: String,
    flags: BTreeMap<String, String>,
}

fn depends_condition(service: &Value, on: &str) -> Option<String> {
    match service.get("depends_on") {
        Some(Value::Sequence(items)) => {
            items.iter().any(|i| i.as_str() == Some(on)).then(|| "service_started".to_owned())
        }
        Some(deps) => deps.get(on).map(|d| str_at(d, &["condition"]).unwrap_or_else(|| "service_started".to_owned())),
        None => None,
    }
}

fn require_condition(p: &mut Problems, file: &str, name: &str, service: &Value, on: &str, expected: &str) {
    let condition = depends_condition(service, on);
    if condition.as_deref() != Some(expected) {
        p.add(file, format!("service {name}: depends_on.{on}.condition is {condition:?}, expected {expected}"));
    }
}

/// The compose file as the other checks need it.
#[derive(Default)]
struct Compose {
    services: serde_yaml::Mapping,
    instances: BTreeMap<String, ComposeInstance>,
}

impl Compose {
    fn service(&self, name: &str) -> Option<&Value> {
        self.services.get(name)
    }

    fn names_with_image(&self, prefix: &str) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.starts_with(prefix)))
            .filter_map(|(n, _)| n.as_str().map(str::to_owned))
            .collect()
    }
}

/// The URLs must point at compose services this one waits for, on their standard ports.
fn check_backing_url(
    p: &mut Problems,
    file: &str,
    (name, service): (&str, &Value),
    services: &serde_yaml::Mapping,
    effective: &Env,
    (var, standard_port): (&str, u16),
) {
    let Some(Var { value: Some(value), file: origin }) = effective.get(var) else {
        p.add(file, format!("service {name}: {var} is not set, so entrasync would look on its own loopback"));
        return;
    };
    let Ok(url) = url::Url::parse(value) else { return }; // check_env reports it
    let host = url.host_str().unwrap_or_default().to_owned();
    if !services.contains_key(host.as_str()) {
        p.add(origin, format!("service {name}: {var} points at host {host:?}, which is no service of {file}"));
        return;
    }
    if url.port().unwrap_or(standard_port) != standard_port {
        p.add(
            origin,
            format!("service {name}: {var} uses port {:?}; service {host} listens on {standard_port}", url.port()),
        );
    }
    require_condition(p, file, name, service, &host, "service_healthy");
    if services.get(host.as_str()).and_then(|s| s.get("healthcheck")).is_none() {
        p.add(file, format!("service {host} has no healthcheck, so service_healthy never holds"));
    }
}

fn check_compose(p: &mut Problems, text: &str, dockerfile: &Dockerfile) -> Compose {
    let file = COMPOSE;
    check_mentions(p, file, text);
    let mut compose = Compose::default();
    let Some(doc) = yaml_docs(p, file, text).into_iter().next() else {
        p.add(file, "empty");
        return compose;
    };
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        p.add(file, "no services");
        return compose;
    };
    compose.services = services.clone();
    let mut published_ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut image_targets: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut emulators = Vec::new();
    let mut credential_adds: BTreeMap<String, CredentialAdd> = BTreeMap::new();
    let mut tenant_adds = Vec::new();
    // ENTRASYNC_SECRETS_KEY of the services that serve or store credentials.
    let mut secrets_keys: Vec<(String, Option<String>)> = Vec::new();
    let mut stores_credentials = false;

    for (name, service) in services {
        let name = name.as_str().unwrap_or_default().to_owned();
        for (published, _) in compose_ports(service) {
            if let Some(port) = published {
                if let Some(other) = published_ports.insert(port, name.clone()) {
                    p.add(file, format!("services {other} and {name} both publish host port {port}"));
                }
            }
        }
        for (host, _) in bind_mounts(service) {
            if !root().join(&host).exists() {
                p.add(file, format!("service {name}: mounts {host}, which does not exist"));
            }
        }
        let dockerfile_path = str_at(service, &["build", "dockerfile"]);
        let is_entrasync =
            dockerfile_path.as_deref().is_some_and(|d| d.ends_with("Dockerfile") && d.contains("deploy"))
                || str_at(service, &["image"]).is_some_and(|i| i.starts_with("entrasync"));
        let env = compose_env(file, service.get("environment"));
        if !is_entrasync {
            if let Some(var) = env.keys().next() {
                p.add(file, format!("service {name} sets {var} but does not run entrasync"));
            }
            continue;
        }
        let context = format!("service {name}");
        if let Some(dockerfile_path) = &dockerfile_path {
            let build_context = str_at(service, &["build", "context"]).unwrap_or_else(|| ".".to_owned());
            if !root().join(&build_context).join(dockerfile_path).is_file() {
                p.add(
                    file,
                    format!("{context}: build.dockerfile {dockerfile_path} (context {build_context}) does not exist"),
                );
            }
        }
        let target = str_at(service, &["build", "target"])
            .map_or_else(|| dockerfile.default_target.clone(), |t| t.to_ascii_lowercase());
        if let Some(tag) = str_at(service, &["image"]) {
            if let Some((other, other_target)) = image_targets.insert(tag.clone(), (name.clone(), target.clone())) {
                if other_target != target {
                    p.add(
                        file,
                        format!("services {other} and {name} both tag image {tag} but build targets {other_target} and {target}"),
                    );
                }
            }
        }
        let Some(image) = dockerfile.images.get(&target) else {
            p.add(file, format!("{context}: build.target {target} is no final stage of {DOCKERFILE}"));
            continue;
        };
        let commands = service_commands(service, &image.cmd);
        let scripted = service.get("entrypoint").is_some();
        let runs = commands.first().and_then(|c| c.words.first()).cloned().unwrap_or_default();

        // The Graph emulator.
        if !scripted && runs == "graph-sim" {
            let words = &commands[0].words;
            if !image.emulator {
                p.add(
                    file,
                    format!(
                        "{context} runs graph-sim, but build.target {target} of {DOCKERFILE} is built with `{}`: that entrasync has no graph-sim",
                        image.cargo.join(" ")
                    ),
                );
            }
            if let Some(var) = env.keys().next() {
                p.add(file, format!("{context}: graph-sim reads no ENTRASYNC_* settings, yet it sets {var}"));
            }
            if let Some(complaint) = entrasync_cli_rejects(words) {
                p.add(
                    file,
                    format!("{context}: the entrasync CLI rejects `entrasync {}`: {complaint}", words.join(" ")),
                );
                continue;
            }
            // The same words through the emulator's own clap definition, for the values; GRAPH_SIM_LISTEN
            // from the service or the image stands in for --listen.
            let mut argv = words.clone();
            let listen_env = compose_env_all(service.get("environment"))
                .get("GRAPH_SIM_LISTEN")
                .cloned()
                .flatten()
                .or_else(|| image.all_env.get("GRAPH_SIM_LISTEN").cloned());
            if !flags(words).contains_key("listen") {
                if let Some(listen) = &listen_env {
                    argv.push(format!("--listen={listen}"));
                }
            }
            let parsed = GraphSimArgs::augment_args(clap::Command::new("graph-sim"))
                .try_get_matches_from(&argv)
                .and_then(|m| GraphSimArgs::from_arg_matches(&m));
            let args = match parsed {
                Ok(args) => args,
                Err(e) => {
                    let message = e.to_string();
                    p.add(
                        file,
                        format!(
                            "{context}: graph-sim rejects {argv:?}: {}",
                            message.lines().next().unwrap_or_default()
                        ),
                    );
                    continue;
                }
            };
            let port = args.listen.port();
            if args.listen.ip().is_loopback() {
                p.add(
                    file,
                    format!(
                        "{context}: graph-sim listens on {} (loopback only: unreachable from other services)",
                        args.listen
                    ),
                );
            }
            if !compose_ports(service).iter().any(|(_, target)| *target == Some(port)) {
                p.add(file, format!("{context}: ports map no host port to graph-sim's port {port}"));
            }
            match service.get("healthcheck").map(|c| command_text(c.get("test"))).or_else(|| image.healthcheck.clone())
            {
                Some(check) if !uses_port(&check, port) => {
                    p.add(file, format!("{context}: health check does not use graph-sim's port {port}: {check}"));
                }
                Some(_) => {}
                None => p.add(file, format!("{context}: no healthcheck, so service_healthy never holds")),
            }
            if args.tls_ca_out.is_some() {
                p.add(file, format!("{context}: graph-sim serves HTTPS (--tls-ca-out), but its clients here use http"));
            }
            match &args.tenant_id {
                None => p.add(file, format!("{context}: graph-sim generates no tenant with a known id (--tenant-id)")),
                Some(id) if uuid::Uuid::parse_str(id).is_err() => {
                    p.add(file, format!("{context}: --tenant-id {id} is no GUID; `entrasync tenant add` needs one"));
                }
                Some(_) => {}
            }
            if args.users + args.groups + args.devices == 0 {
                p.add(
                    file,
                    format!("{context}: graph-sim generates an empty directory (--users, --groups, --devices)"),
                );
            }
            emulators.push(Emulator {
                service: name.clone(),
                port,
                tenant_id: args.tenant_id.map(|t| t.to_ascii_lowercase()),
                domain: args.domain.map(|d| d.to_ascii_lowercase()),
            });
            continue;
        }

        // The image's ENV applies first; the service's environment overrides it.
        let mut effective = image.env.clone();
        effective.extend(env);
        check_env(p, &context, &effective);
        let secrets_key = effective.get("ENTRASYNC_SECRETS_KEY").and_then(|v| v.value.clone());

        // A one-shot (a script, or a command other than serve).
        if scripted || runs != "serve" {
            let restart = str_at(service, &["restart"]).unwrap_or_else(|| "no".to_owned());
            if restart == "always" || restart == "unless-stopped" {
                p.add(file, format!("{context}: a one-shot with restart: {restart} runs again and again"));
            }
            for command in &commands {
                let words = &command.words;
                if words.first().map(String::as_str) != Some("entrasync") {
                    continue;
                }
                let args = &words[1..];
                let shown = format!("`{}`", words.join(" "));
                if let Some(complaint) = entrasync_cli_rejects(args) {
                    p.add(file, format!("{context}: the entrasync CLI rejects {shown}: {complaint}"));
                    continue;
                }
                let given = flags(args);
                let sub: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
                match sub.as_slice() {
                    ["credential", "add"] => {
                        stores_credentials = true;
                        let secret = match given.get("secret-file").map(String::as_str) {
                            Some("-") => {
                                let from = command
                                    .piped_from
                                    .as_ref()
                                    .filter(|w| w.first().is_some_and(|p| p == "printf" || p == "echo"));
                                if from.is_none() {
                                    p.add(
                                        file,
                                        format!(
                                            "{context}: {shown} reads the secret from stdin; no printf pipes it in"
                                        ),
                                    );
                                }
                                from.and_then(|w| w.last().cloned())
                            }
                            _ => None,
                        };
                        credential_adds.insert(
                            given.get("name").cloned().unwrap_or_default(),
                            CredentialAdd {
                                client_id: given.get("client-id").cloned().unwrap_or_default().to_ascii_lowercase(),
                                secret,
                            },
                        );
                    }
                    ["tenant", "add"] => tenant_adds.push(TenantAdd { service: name.clone(), flags: given }),
                    _ => {}
                }
            }
            if effective.contains_key("ENTRASYNC_DATABASE_URL") {
                check_backing_url(p, file, (&name, service), services, &effective, ("ENTRASYNC_DATABASE_URL", 5432));
            }
            if commands.iter().any(|c| c.words.first().is_some_and(|w| w == "entrasync")) {
                secrets_keys.push((name.clone(), secrets_key));
            }
            continue;
        }

        // An instance: `entrasync serve`.
        if image.emulator {
            p.add(
                file,
                format!("{context} serves from build.target {target} of {DOCKERFILE}, which carries the emulator; use the service image (--no-default-features)"),
            );
        }
        secrets_keys.push((name.clone(), secrets_key));
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
        for url in [("ENTRASYNC_DATABASE_URL", 5432), ("ENTRASYNC_AMQP_URL", 5672)] {
            check_backing_url(p, file, (&name, service), services, &effective, url);
        }
        compose.instances.insert(name, ComposeInstance { port });
    }

    if compose.instances.len() < 2 {
        p.add(
            file,
            format!("expected two entrasync instances, found {:?}", compose.instances.keys().collect::<Vec<_>>()),
        );
    }
    let rabbit_images: Vec<String> =
        services.values().filter_map(|s| str_at(s, &["image"])).filter(|i| i.starts_with("rabbitmq")).collect();
    if !rabbit_images.iter().any(|i| i.contains("management")) {
        p.add(file, format!("no RabbitMQ service with the management plugin (images: {rabbit_images:?})"));
    }
    let mounts_prometheus_config = services.values().any(|s| bind_mounts(s).iter().any(|(host, _)| host == PROMETHEUS));
    if !mounts_prometheus_config {
        p.add(file, format!("no service mounts {PROMETHEUS}"));
    }

    // Credentials are stored with one key and read with it: every instance needs the same.
    if stores_credentials {
        let keys: BTreeSet<&Option<String>> = secrets_keys.iter().map(|(_, key)| key).collect();
        for (name, key) in &secrets_keys {
            if key.as_deref().unwrap_or_default().is_empty() {
                p.add(
                    file,
                    format!("service {name}: ENTRASYNC_SECRETS_KEY is not set, but the stack stores credentials"),
                );
            }
        }
        if keys.len() > 1 {
            p.add(
                file,
                format!(
                    "services {:?} do not share one ENTRASYNC_SECRETS_KEY: instances cannot decrypt the credentials another key stored",
                    secrets_keys.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ),
            );
        }
    }

    check_emulated_tenant(p, &compose, &emulators, &credential_adds, &tenant_adds);
    compose
}

/// The emulator, the app its admin API registers, the consent, and `entrasync credential add`/`tenant add`
/// must describe the same tenant and app, at the emulator's address.
fn check_emulated_tenant(
    p: &mut Problems,
    compose: &Compose,
    emulators: &[Emulator],
    credentials: &BTreeMap<String, CredentialAdd>,
    tenant_adds: &[TenantAdd],
) {
    let file = COMPOSE;
    let Some(emulator) = emulators.first() else { return };
    if emulators.len() > 1 {
        p.add(file, "more than one graph-sim service");
    }
    let tenant_names: BTreeSet<String> = emulator.tenant_id.iter().chain(emulator.domain.iter()).cloned().collect();

    // Every call of the emulator's admin API (curl in any service).
    let mut apps: BTreeMap<String, SimApp> = BTreeMap::new();
    let mut consents: BTreeMap<(String, String), (String, Vec<String>)> = BTreeMap::new();
    for (name, service) in &compose.services {
        let name = name.as_str().unwrap_or_default();
        for curl in service_commands(service, &[]).iter().filter_map(|c| curl_of(&c.words)) {
            let context = format!("service {name}: {} {}", curl.method, curl.url);
            if curl.url.host_str() != Some(emulator.service.as_str()) {
                continue;
            }
            if curl.url.port_or_known_default() != Some(emulator.port) {
                p.add(file, format!("{context}: service {} listens on port {}", emulator.service, emulator.port));
            }
            require_condition(p, file, name, service, &emulator.service, "service_healthy");
            let segments: Vec<&str> = curl.url.path_segments().map(Iterator::collect).unwrap_or_default();
            if let ["_sim", "tenants", tenant, ..] = segments.as_slice() {
                if !tenant_names.contains(&tenant.to_ascii_lowercase()) {
                    p.add(
                        file,
                        format!("{context}: tenant {tenant} is not the one graph-sim generates ({tenant_names:?})"),
                    );
                }
            }
            let body = curl.data.as_deref().map(serde_json::from_str::<serde_json::Value>);
            let body = match body {
                Some(Ok(body)) => body,
                Some(Err(e)) if segments.last() != Some(&"mutations") => {
                    p.add(file, format!("{context}: the body is not JSON: {e}"));
                    continue;
                }
                _ => continue,
            };
            let roles = |body: &serde_json::Value| -> Vec<String> {
                body["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect()
            };
            let app_id = body["app_id"].as_str().unwrap_or_default().to_ascii_lowercase();
            match (curl.method.as_str(), segments.as_slice()) {
                ("POST", ["_sim", "apps"]) => {
                    apps.insert(
                        app_id,
                        SimApp { service: name.to_owned(), secret: body["secret"].as_str().map(str::to_owned) },
                    );
                }
                ("POST", ["_sim", "tenants", tenant, "consent"]) => {
                    consents.insert((tenant.to_ascii_lowercase(), app_id), (name.to_owned(), roles(&body)));
                }
                _ => {}
            }
        }
    }

    let registers: Vec<&TenantAdd> = tenant_adds
        .iter()
        .filter(|t| {
            ["login-url", "graph-url"].iter().any(|f| {
                t.flags
                    .get(*f)
                    .and_then(|u| url::Url::parse(u).ok())
                    .is_some_and(|u| u.host_str() == Some(&emulator.service))
            })
        })
        .collect();
    if registers.is_empty() {
        p.add(
            file,
            format!(
                "no `entrasync tenant add` registers the tenant of service {} (--login-url/--graph-url)",
                emulator.service
            ),
        );
    }
    for add in registers {
        let context = format!("service {}: `entrasync tenant add`", add.service);
        let flag = |f: &str| add.flags.get(f).cloned().unwrap_or_default();
        if flag("cloud") != "custom" {
            p.add(file, format!("{context}: --cloud {:?}; the emulator is reached as --cloud custom", flag("cloud")));
        }
        for url_flag in ["login-url", "graph-url"] {
            let value = flag(url_flag);
            match url::Url::parse(&value) {
                Ok(url)
                    if url.scheme() == "http"
                        && url.host_str() == Some(&emulator.service)
                        && url.port_or_known_default() == Some(emulator.port)
                        && url.path().trim_end_matches('/').is_empty() => {}
                _ => p.add(
                    file,
                    format!(
                        "{context}: --{url_flag} {value} is not the emulator's root, http://{}:{}",
                        emulator.service, emulator.port
                    ),
                ),
            }
        }
        let tenant = flag("tenant-id").to_ascii_lowercase();
        if emulator.tenant_id.as_deref() != Some(tenant.as_str()) {
            p.add(
                file,
                format!(
                    "{context}: --tenant-id {tenant} is not the tenant graph-sim generates (--tenant-id {:?})",
                    emulator.tenant_id
                ),
            );
        }
        let credential_name = flag("credential");
        let Some(credential) = credentials.get(&credential_name) else {
            p.add(
                file,
                format!(
                    "{context}: --credential {credential_name} is no `entrasync credential add --name` of the stack"
                ),
            );
            continue;
        };
        let Some(app) = apps.get(&credential.client_id) else {
            p.add(
                file,
                format!(
                    "credential {credential_name}: --client-id {} is no app registered in the emulator (POST /_sim/apps), so the token endpoint answers unauthorized_client",
                    credential.client_id
                ),
            );
            continue;
        };
        if credential.secret.is_none() || credential.secret != app.secret {
            p.add(
                file,
                format!(
                    "credential {credential_name}: its secret is not the secret of app {} registered by service {}",
                    credential.client_id, app.service
                ),
            );
        }
        require_condition(
            p,
            file,
            &add.service,
            &compose.services[add.service.as_str()],
            &app.service,
            "service_completed_successfully",
        );
        let consented = tenant_names
            .iter()
            .find_map(|t| consents.get(&(t.clone(), credential.client_id.clone())))
            .map(|(_, roles)| roles.clone())
            .unwrap_or_default();
        for role in entrasync::demo::emulated::READ_ROLES {
            if !consented.iter().any(|r| r == role) {
                p.add(
                    file,
                    format!(
                        "tenant {tenant}: no consent to {role} for app {} (POST /_sim/tenants/{tenant}/consent)",
                        credential.client_id
                    ),
                );
            }
        }
    }
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

// --------------------------------------------------------------------------------------------- Grafana

/// The port Prometheus listens on in a compose service (`--web.listen-address`, default 9090).
fn prometheus_port(service: &Value) -> u16 {
    compose_words(service.get("command"))
        .unwrap_or_default()
        .iter()
        .find_map(|w| w.strip_prefix("--web.listen-address="))
        .and_then(|addr| addr.rsplit(':').next()?.parse().ok())
        .unwrap_or(9090)
}

/// Every `"datasource"` reference in a dashboard: (uid or name, where).
fn datasource_refs(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{key}");
                if key == "datasource" {
                    match child {
                        serde_json::Value::String(name) => out.push((name.clone(), here.clone())),
                        serde_json::Value::Object(ds) => {
                            if let Some(uid) = ds.get("uid").and_then(|u| u.as_str()) {
                                out.push((uid.to_owned(), here.clone()));
                            }
                        }
                        _ => {}
                    }
                }
                datasource_refs(child, &here, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasource_refs(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A provisioned datasource: uid, name, type.
struct Datasource {
    uid: String,
    name: String,
    kind: String,
}

fn check_dashboard(p: &mut Problems, file: &str, text: &str, datasources: &[Datasource]) {
    let dashboard: serde_json::Value = match serde_json::from_str(text) {
        Ok(dashboard) => dashboard,
        Err(e) => {
            p.add(file, format!("invalid JSON: {e}"));
            return;
        }
    };
    for field in ["uid", "title"] {
        if dashboard[field].as_str().unwrap_or_default().is_empty() {
            p.add(file, format!("the dashboard has no {field}"));
        }
    }
    // Template variables of type datasource, and the plugin each one picks.
    let variables: BTreeMap<String, String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "datasource")
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["query"].as_str().unwrap_or_default().to_owned())))
        .collect();
    let mut refs = Vec::new();
    datasource_refs(&dashboard, "", &mut refs);
    // One problem per reference, at its first use.
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (reference, at) in refs {
        uses.entry(reference).or_default().push(at);
    }
    for (reference, places) in uses {
        let at = match places.len() {
            1 => places[0].clone(),
            n => format!("{} (and {} more)", places[0], n - 1),
        };
        let variable = reference.trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
        if reference.starts_with('$') {
            match variables.get(variable) {
                None => p.add(file, format!("{at}: {reference} is no datasource variable of the dashboard")),
                Some(kind) if !datasources.iter().any(|d| &d.kind == kind) => p.add(
                    file,
                    format!("{at}: variable {reference} picks a {kind} datasource, and none is provisioned ({GRAFANA_PROVISIONING})"),
                ),
                Some(_) => {}
            }
        } else if reference != "-- Grafana --"
            && reference != "grafana"
            && !datasources.iter().any(|d| d.uid == reference || d.name == reference)
        {
            p.add(file, format!("{at}: datasource {reference:?} is not provisioned ({GRAFANA_PROVISIONING})"));
        }
    }
}

fn check_grafana(p: &mut Problems, sources: &Sources, compose: &Compose) {
    let file = COMPOSE;
    let grafanas = compose.names_with_image("grafana/");
    let Some(name) = grafanas.first() else {
        p.add(file, "no Grafana service (image grafana/…)");
        return;
    };
    let service = compose.service(name).cloned().unwrap_or(Value::Null);
    let context = format!("service {name}");
    let mounts = bind_mounts(&service);
    let prometheis = compose.names_with_image("prom/prometheus");
    if !prometheis.iter().any(|prom| depends_condition(&service, prom).is_some()) {
        p.add(file, format!("{context} does not depend on a Prometheus service ({prometheis:?})"));
    }
    let scrape_interval = yaml_docs(&mut Problems::default(), PROMETHEUS, sources.text(PROMETHEUS))
        .first()
        .and_then(|doc| str_at(doc, &["global", "scrape_interval"]));

    // Every provisioning file is mounted where Grafana reads it, and parses.
    let provisioning: Vec<(String, String)> = sources
        .under(GRAFANA_PROVISIONING)
        .filter(|(path, _)| path.ends_with(".yaml") || path.ends_with(".yml"))
        .map(|(path, text)| (path.clone(), text.clone()))
        .collect();
    if provisioning.is_empty() {
        p.add(GRAFANA_PROVISIONING, "no provisioning files");
    }
    let mut datasources = Vec::new();
    let mut providers = Vec::new();
    for (path, text) in &provisioning {
        let relative = path.strip_prefix(&format!("{GRAFANA_PROVISIONING}/")).unwrap_or(path);
        let expected = format!("{GRAFANA_PROVISIONING_MOUNT}/{relative}");
        let mounted = container_path(&mounts, path);
        if mounted.as_deref() != Some(expected.as_str()) {
            p.add(path, format!("{COMPOSE} {context} mounts it at {mounted:?}, but Grafana reads {expected}"));
        }
        let docs = yaml_docs(p, path, text);
        let Some(doc) = docs.first() else {
            p.add(path, "empty");
            continue;
        };
        if str_at(doc, &["apiVersion"]).as_deref() != Some("1") {
            p.add(path, format!("apiVersion is {:?}, expected 1", str_at(doc, &["apiVersion"])));
        }
        match relative.split('/').next().unwrap_or_default() {
            "datasources" => {
                let list = seq(doc.get("datasources"));
                if list.is_empty() {
                    p.add(path, "no datasources");
                }
                for ds in list {
                    let ds_name = str_at(ds, &["name"]).unwrap_or_default();
                    let kind = str_at(ds, &["type"]).unwrap_or_default();
                    let uid = str_at(ds, &["uid"]).unwrap_or_default();
                    datasources.push(Datasource { uid, name: ds_name.clone(), kind: kind.clone() });
                    if kind != "prometheus" {
                        continue;
                    }
                    let context = format!("datasource {ds_name}");
                    // Grafana's server queries it; the browser cannot resolve compose service names.
                    let access = str_at(ds, &["access"]).unwrap_or_else(|| "proxy".to_owned());
                    if access != "proxy" {
                        p.add(
                            path,
                            format!("{context}: access {access}: the browser cannot reach compose services, use proxy"),
                        );
                    }
                    let url_text = str_at(ds, &["url"]).unwrap_or_default();
                    let Ok(url) = url::Url::parse(&url_text) else {
                        p.add(path, format!("{context}: url {url_text:?} is no URL"));
                        continue;
                    };
                    let host = url.host_str().unwrap_or_default();
                    match compose.service(host) {
                        Some(prom) if prometheis.iter().any(|n| n == host) => {
                            let port = prometheus_port(prom);
                            if url.port_or_known_default() != Some(port) {
                                p.add(
                                    path,
                                    format!(
                                        "{context}: url {url_text} uses port {:?}; service {host} listens on {port}",
                                        url.port_or_known_default()
                                    ),
                                );
                            }
                        }
                        _ => p.add(
                            path,
                            format!("{context}: url {url_text} points at {host:?}, no Prometheus service of {COMPOSE}"),
                        ),
                    }
                    if let (Some(interval), Some(scrape)) =
                        (str_at(ds, &["jsonData", "timeInterval"]), &scrape_interval)
                    {
                        if &interval != scrape {
                            p.add(
                                path,
                                format!("{context}: jsonData.timeInterval {interval} is not {PROMETHEUS}'s {scrape}"),
                            );
                        }
                    }
                }
                let defaults =
                    list.iter().filter(|ds| at(ds, &["isDefault"]).and_then(Value::as_bool) == Some(true)).count();
                if defaults > 1 {
                    p.add(path, "more than one datasource has isDefault: true");
                }
            }
            "dashboards" => {
                let list = seq(doc.get("providers"));
                if list.is_empty() {
                    p.add(path, "no providers");
                }
                for provider in list {
                    providers.push((path.clone(), provider.clone()));
                }
            }
            other => p.add(path, format!("{other}/ is no provisioning kind this stack uses (datasources, dashboards)")),
        }
    }

    // Each provider's path leads, through the mounts, to dashboards in the repository.
    let mut provisioned = BTreeSet::new();
    for (path, provider) in &providers {
        let provider_name = str_at(provider, &["name"]).unwrap_or_default();
        let context = format!("provider {provider_name}");
        let kind = str_at(provider, &["type"]).unwrap_or_else(|| "file".to_owned());
        if kind != "file" {
            p.add(path, format!("{context}: type {kind}, expected file"));
            continue;
        }
        let Some(container) = str_at(provider, &["options", "path"]) else {
            p.add(path, format!("{context}: no options.path"));
            continue;
        };
        let hosts = hosts_under(&mounts, &container);
        if hosts.is_empty() {
            p.add(path, format!("{context}: options.path {container} is not mounted into {COMPOSE} service {name}"));
            continue;
        }
        let dashboards: Vec<(&String, &String)> =
            hosts.iter().flat_map(|host| sources.under(host)).filter(|(file, _)| file.ends_with(".json")).collect();
        if dashboards.is_empty() {
            p.add(
                path,
                format!(
                    "{context}: options.path {container} is {hosts:?} in the repository, which holds no dashboard JSON"
                ),
            );
        }
        for (dashboard, text) in dashboards {
            provisioned.insert(dashboard.clone());
            check_dashboard(p, dashboard, text, &datasources);
        }
    }
    if let Some(Some(home)) =
        compose_env_all(service.get("environment")).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    {
        match host_path(&mounts, home) {
            Some(host) if provisioned.contains(&host) => {}
            host => p.add(
                file,
                format!(
                    "{context}: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is {}, which is no provisioned dashboard",
                    host.unwrap_or_else(|| "mounted from nowhere".to_owned())
                ),
            ),
        }
    }
    // The dashboards in the repository are all provisioned.
    for (dashboard, _) in sources.under(GRAFANA_DIR).filter(|(f, _)| f.ends_with(".json")) {
        if !provisioned.contains(dashboard) {
            p.add(dashboard, format!("no dashboard provider of {GRAFANA_PROVISIONING} loads it into {context}"));
        }
    }
}

fn check_all(sources: &Sources) -> Vec<String> {
    let mut p = Problems::default();
    let dockerfile = check_dockerfile(&mut p, sources.text(DOCKERFILE));
    let compose = check_compose(&mut p, sources.text(COMPOSE), &dockerfile);
    check_prometheus(&mut p, sources.text(PROMETHEUS), &compose.instances);
    check_grafana(&mut p, sources, &compose);
    check_k8s(&mut p, sources, &dockerfile.service());
    p.0
}

#[test]
fn deploy_manifests_agree_with_the_code() {
    let problems = check_all(&Sources::load());
    assert!(problems.is_empty(), "the deploy manifests disagree with the code:\n  {}", problems.join("\n  "));
}

const DATASOURCE: &str = "deploy/grafana/provisioning/datasources/prometheus.yaml";
const DASHBOARD_PROVIDER: &str = "deploy/grafana/provisioning/dashboards/entrasync.yaml";
const DASHBOARD: &str = "deploy/grafana/entrasync.json";

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
        // The service image is lean; the emulator image has graph-sim.
        (
            DOCKERFILE,
            "cargo build --release --locked --no-default-features --bin entrasync",
            "cargo build --release --locked --bin entrasync",
            &["default target", "--no-default-features"],
        ),
        (
            DOCKERFILE,
            "id=entrasync-target-emulator \\\n    cargo build --release --locked --bin entrasync",
            "id=entrasync-target-emulator \\\n    cargo build --release --locked --no-default-features --bin entrasync",
            &["stage emulator runs graph-sim", "no graph-sim"],
        ),
        (DOCKERFILE, "FROM runtime AS emulator", "FROM runtime AS graph-sim", &["build.target emulator", DOCKERFILE]),
        (DOCKERFILE, "GRAPH_SIM_LISTEN=0.0.0.0:8089", "GRAPH_SIM_LISTEN=0.0.0.0:8090", &["GRAPH_SIM_LISTEN", "8090"]),
        (DOCKERFILE, "GRAPH_SIM_LISTEN=0.0.0.0:8089", "GRAPH_SIM_LISTEN=127.0.0.1:8089", &["loopback"]),
        (COMPOSE, "target: emulator", "target: service", &["graph-sim", "no graph-sim"]),
        // The emulator's command line, through the real CLI and the emulator's clap definition.
        (COMPOSE, "- --users=5000", "- --user-count=5000", &["service graph-sim", "--user-count"]),
        (COMPOSE, "- --seed=42", "- --seed=forty-two", &["service graph-sim", "forty-two"]),
        (COMPOSE, "- --tenant-id=6b1c2a4e-", "- --domain-id=6b1c2a4e-", &["service graph-sim", "--domain-id"]),
        // The registration: real `credential add`/`tenant add` flags, agreeing with the emulator.
        (COMPOSE, "--client-id e17a5c00", "--app-id e17a5c00", &["register-tenant", "credential add", "--app-id"]),
        (COMPOSE, "--secret-file -", "--secret -", &["register-tenant", "--secret"]),
        (COMPOSE, "--graph-url http://graph-sim:8089", "--graph-uri http://graph-sim:8089", &["--graph-uri"]),
        (COMPOSE, "--graph-url http://graph-sim:8089", "--graph-url http://graph-sim:9999", &["--graph-url", "9999"]),
        (COMPOSE, "--login-url http://graph-sim:8089", "--login-url http://graph-simulator:8089", &["--login-url"]),
        (
            COMPOSE,
            "--tenant-id 6b1c2a4e-0000-4000-8000-000000000001",
            "--tenant-id 6b1c2a4e-0000-4000-8000-000000000002",
            &["tenant add", "--tenant-id", "000000000002"],
        ),
        (COMPOSE, "--cloud custom", "--cloud global", &["--cloud"]),
        (COMPOSE, "--credential graph-sim", "--credential graph-simulator", &["--credential graph-simulator"]),
        (COMPOSE, "printf %s 'graph-sim-dev-only-secret'", "printf %s 'another-secret'", &["secret"]),
        (COMPOSE, "\"app_id\": \"e17a5c00-", "\"app_id\": \"e17a5c01-", &["--client-id", "no app registered"]),
        (
            COMPOSE,
            "0000000000a1\", \"roles\": [\"User.Read.All\", \"GroupMember.Read.All\", \"Device.Read.All\"]",
            "0000000000a1\", \"roles\": [\"User.Read.All\", \"GroupMember.Read.All\"]",
            &["consent", "Device.Read.All"],
        ),
        (
            COMPOSE,
            "/_sim/tenants/6b1c2a4e-0000-4000-8000-000000000001/consent",
            "/_sim/tenants/6b1c2a4e-0000-4000-8000-00000000000f/consent",
            &["tenant", "00000000000f"],
        ),
        (
            COMPOSE,
            "http://graph-sim:8089/_sim/apps -H",
            "http://graph-sim:8080/_sim/apps -H",
            &["graph-sim-app", "8080"],
        ),
        (
            COMPOSE,
            "condition: service_completed_successfully",
            "condition: service_started",
            &["service_completed_successfully"],
        ),
        (
            COMPOSE,
            "ENTRASYNC_SECRETS_KEY: *dev-secrets-key",
            "ENTRASYNC_SECRETS_KEY: c29tZS1vdGhlci1rZXktb2YtMzItYnl0ZXMtbG9uZyE=",
            &["ENTRASYNC_SECRETS_KEY"],
        ),
        (COMPOSE, "- \"127.0.0.1:8089:8089\"", "- \"127.0.0.1:8089:8090\"", &["graph-sim", "8089"]),
        // Grafana: provisioning files parse, are mounted, point at the compose Prometheus and the dashboard.
        (DATASOURCE, "url: http://prometheus:9090", "url: http://prometheus:9091", &["url", "9091"]),
        (DATASOURCE, "url: http://prometheus:9090", "url: http://prom:9090", &["\"prom\""]),
        (DATASOURCE, "    access: proxy", "    access: direct", &["access direct"]),
        (DATASOURCE, "timeInterval: 15s", "timeInterval: 30s", &["timeInterval", "30s"]),
        (DATASOURCE, "datasources:", "datasources: [", &["invalid YAML"]),
        (
            DASHBOARD_PROVIDER,
            "path: /etc/grafana/dashboards",
            "path: /var/lib/grafana/dashboards",
            &["options.path", "not mounted"],
        ),
        (DASHBOARD_PROVIDER, "providers:", "providers: {", &["invalid YAML"]),
        (
            COMPOSE,
            "./deploy/grafana/entrasync.json:/etc/grafana/dashboards/entrasync.json",
            "./deploy/grafana/entrasync-overview.json:/etc/grafana/dashboards/entrasync.json",
            &["entrasync-overview.json", "does not exist"],
        ),
        (
            COMPOSE,
            "./deploy/grafana/provisioning/datasources:/etc/grafana/provisioning/datasources",
            "./deploy/grafana/provisioning/datasources:/etc/grafana/provisioning/datasource",
            &[DATASOURCE, "/etc/grafana/provisioning/datasources/prometheus.yaml"],
        ),
        (
            COMPOSE,
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /etc/grafana/dashboards/entrasync.json",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /etc/grafana/dashboards/home.json",
            &["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        ),
        (DASHBOARD, "\"uid\": \"${datasource}\"", "\"uid\": \"loki\"", &["\"loki\"", "not provisioned"]),
        (DASHBOARD, "\"uid\": \"entrasync-overview\"", "\"uid\": \"\"", &["no uid"]),
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

//! `entrasync bench-nesting`: nested-group membership at scale (docs/benchmarks.md, "Nested-group
//! membership"; issue 17). A scratch database gets one tenant with `--groups` groups nested up to
//! `--levels` levels (each group below the top has one or two parents a level up, and a few deep groups
//! hold one of their ancestors: cycles), `--users` users and `--memberships` memberships in all, loaded
//! with COPY (no Graph, no ANALYZE: autovacuum may be off). 1 % of the users and 0.5 % of the groups
//! are soft-deleted. Then, `--requests` times each on one connection:
//!
//! - "is X a member of G" (`store::nesting::is_member`), half of them for pairs where X is a
//!   transitive member;
//! - an object's transitive groups (`store::nesting::member_of`, first page of 1,000 with its total);
//! - a group's transitive members: the first page of 50 with the total, for random groups and for the
//!   top-level ones;
//!
//! and the same two questions through a closure table of group nesting (the design not taken), with
//! the closure's rebuild after a delta of 1,000 membership changes. Prints p50/p95/max and the plans.
//!
//! ```sh
//! entrasync bench-nesting            # 5,000 groups, 6 levels, 1,000,000 memberships
//! ```

use std::collections::HashSet;
use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::database::ScratchDatabase;
use crate::config::Settings;
use crate::model::Cloud;
use crate::store::bench::nesting as sql;
use crate::store::nesting::{self, Scope};
use crate::store::tenants::{self, NewTenant};
use crate::store::Pool;

#[derive(Debug, Clone, clap::Args)]
pub struct NestingBenchArgs {
    /// Groups, spread over the levels (more further down).
    #[arg(long, default_value_t = 5_000)]
    pub groups: usize,
    /// Nesting depth.
    #[arg(long, default_value_t = 6)]
    pub levels: usize,
    /// Users the memberships are drawn from.
    #[arg(long, default_value_t = 200_000)]
    pub users: usize,
    /// Memberships in all (nesting edges included).
    #[arg(long, default_value_t = 1_000_000)]
    pub memberships: usize,
    /// Timed requests per question.
    #[arg(long, default_value_t = 1_000)]
    pub requests: usize,
    /// Keep the scratch database (its name is printed) to look at plans by hand.
    #[arg(long)]
    pub keep_database: bool,
    /// Seed of the generated nesting, memberships and questions.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The generated directory, by index: groups first, then users.
struct Generated {
    groups: Vec<Uuid>,
    users: Vec<Uuid>,
    /// Per group: its parent groups.
    parents: Vec<Vec<usize>>,
    /// Per group: its level (0 = top).
    level: Vec<usize>,
    /// (group, member index into groups or users, member is a group).
    edges: Vec<(usize, usize, bool)>,
    deleted_groups: HashSet<usize>,
    deleted_users: HashSet<usize>,
    /// Per user: its direct groups.
    user_groups: Vec<Vec<usize>>,
}

pub async fn run(args: NestingBenchArgs, settings: Settings) -> anyhow::Result<String> {
    let db = ScratchDatabase::create(&settings.database).await?;
    let outcome = measure(&db.pool, &args).await;
    if args.keep_database {
        tracing::info!(database = %db.name, "kept the benchmark database");
        return outcome.map(|report| format!("{report}database kept: {}\n", db.name));
    }
    db.drop_or_warn().await;
    outcome
}

fn generate(args: &NestingBenchArgs) -> Generated {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let groups: Vec<Uuid> = (0..args.groups).map(|_| Uuid::from_u128(rng.random())).collect();
    let users: Vec<Uuid> = (0..args.users).map(|_| Uuid::from_u128(rng.random())).collect();
    // Level sizes grow downwards: weights 1, 3, 8, 18, 30, 40 (for 6 levels), at least one group each.
    let levels = args.levels.max(1);
    let weights: Vec<f64> = (0..levels).map(|l| 1.0 + (l * l) as f64 * 1.3).collect();
    let sum: f64 = weights.iter().sum();
    let mut level = Vec::with_capacity(args.groups);
    for (l, w) in weights.iter().enumerate() {
        let n = if l + 1 == levels {
            args.groups.saturating_sub(level.len())
        } else {
            ((args.groups as f64 * w / sum).round() as usize).max(1)
        };
        level.extend(std::iter::repeat_n(l, n));
    }
    level.truncate(args.groups);
    let starts: Vec<usize> = (0..levels).map(|l| level.iter().position(|x| *x == l).unwrap_or(0)).collect();
    let ends: Vec<usize> = (0..levels).map(|l| level.iter().rposition(|x| *x == l).map_or(0, |p| p + 1)).collect();
    let mut parents = vec![Vec::new(); args.groups];
    let mut edges = Vec::new();
    let mut pairs: HashSet<(usize, usize, bool)> = HashSet::new();
    for g in 0..args.groups {
        let l = level[g];
        if l == 0 {
            continue;
        }
        let count = if rng.random_bool(0.2) { 2 } else { 1 };
        for _ in 0..count {
            let parent = rng.random_range(starts[l - 1]..ends[l - 1]);
            if pairs.insert((parent, g, true)) {
                parents[g].push(parent);
                edges.push((parent, g, true));
            }
        }
    }
    // Cycles: a few bottom groups hold their grandparent's parent.
    let bottom = levels - 1;
    for _ in 0..5 {
        if bottom < 3 {
            break;
        }
        let g = rng.random_range(starts[bottom]..ends[bottom]);
        let mut up = g;
        for _ in 0..3 {
            up = parents[up].first().copied().unwrap_or(up);
        }
        if up != g && pairs.insert((g, up, true)) {
            parents[up].push(g);
            edges.push((g, up, true));
        }
    }
    // User memberships: a third to groups drawn with a skew towards the top, the rest uniformly.
    let mut user_groups = vec![Vec::new(); args.users];
    while edges.len() < args.memberships && !users.is_empty() {
        let g = if rng.random_bool(0.33) {
            let u: f64 = rng.random();
            ((u * u * u) * args.groups as f64) as usize
        } else {
            rng.random_range(0..args.groups)
        };
        let u = rng.random_range(0..args.users);
        if pairs.insert((g, u, false)) {
            edges.push((g, u, false));
            user_groups[u].push(g);
        }
    }
    let deleted_groups = (0..args.groups / 200).map(|_| rng.random_range(0..args.groups)).collect();
    let deleted_users = (0..args.users / 100).map(|_| rng.random_range(0..args.users)).collect();
    Generated { groups, users, parents, level, edges, deleted_groups, deleted_users, user_groups }
}

fn object_chunks(tenant: i64, generated: &Generated) -> impl Iterator<Item = Bytes> + '_ {
    let groups =
        generated.groups.iter().enumerate().map(|(i, id)| ("group", i, *id, generated.deleted_groups.contains(&i)));
    let users =
        generated.users.iter().enumerate().map(|(i, id)| ("user", i, *id, generated.deleted_users.contains(&i)));
    let rows: Vec<_> = groups.chain(users).collect();
    rows.chunks(10_000)
        .map(|chunk| {
            let mut text = String::with_capacity(chunk.len() * 120);
            for (class, i, id, deleted) in chunk {
                let deleted = if *deleted { "2026-12-01 00:00:00+00" } else { "\\N" };
                writeln!(text, "{tenant}\t{class}\t{id}\t0\t{{\"displayName\": \"{class} {i}\"}}\t{deleted}")
                    .unwrap_or_default();
            }
            Bytes::from(text)
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn member_chunks(tenant: i64, generated: &Generated) -> impl Iterator<Item = Bytes> + '_ {
    generated.edges.chunks(20_000).map(move |chunk| {
        let mut text = String::with_capacity(chunk.len() * 90);
        for &(g, m, nested) in chunk {
            let (member, class) = if nested { (generated.groups[m], "group") } else { (generated.users[m], "user") };
            writeln!(text, "{tenant}\t{}\t{member}\t{class}", generated.groups[g]).unwrap_or_default();
        }
        Bytes::from(text)
    })
}

struct Timings(Vec<Duration>);

impl Timings {
    fn line(&mut self, name: &str, extra: &str) -> String {
        self.0.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let times = &self.0;
        if times.is_empty() {
            return format!("{name:<44} (no requests)\n");
        }
        let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let max = times.last().copied().unwrap_or_default();
        format!("{name:<44} {:>8} {:>9.2} {:>9.2} {:>9.2}  {extra}\n", times.len(), ms(at(0.5)), ms(at(0.95)), ms(max))
    }
}

async fn measure(pool: &Pool, args: &NestingBenchArgs) -> anyhow::Result<String> {
    let tenant = tenants::create_many(
        pool,
        &[NewTenant {
            name: "nesting".into(),
            entra_tenant_id: Uuid::new_v4(),
            cloud: Cloud::Global,
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: false,
        }],
    )
    .await
    .context("registering the tenant")?
    .first()
    .map(|t| t.id)
    .context("no tenant registered")?;
    let generated = generate(args);
    let started = Instant::now();
    let objects = sql::copy_objects(pool, object_chunks(tenant, &generated)).await.context("loading objects")?;
    let members = sql::copy_members(pool, member_chunks(tenant, &generated)).await.context("loading memberships")?;
    let load = started.elapsed();
    let nesting_edges = generated.edges.iter().filter(|e| e.2).count();
    let mut report = format!(
        "nested membership: {} groups over {} levels ({nesting_edges} nesting edges, cycles included), {} users, \
         {members} memberships, {objects} objects loaded by COPY in {:.1} s; no ANALYZE; {} requests per question \
         on one connection\n{:<44} {:>8} {:>9} {:>9} {:>9}\n",
        args.groups,
        args.levels,
        args.users,
        load.as_secs_f64(),
        args.requests,
        "question",
        "requests",
        "p50 ms",
        "p95 ms",
        "max ms"
    );
    let client = pool.get().await?;
    let db = &client;
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let live_user = |rng: &mut StdRng| loop {
        let u = rng.random_range(0..generated.users.len());
        if !generated.deleted_users.contains(&u) && !generated.user_groups[u].is_empty() {
            return u;
        }
    };
    // An ancestor of one of the user's groups, a few steps up (a transitive membership, unless a deleted
    // group is on the way).
    let ancestor = |rng: &mut StdRng, u: usize| {
        let groups = &generated.user_groups[u];
        let mut g = groups[rng.random_range(0..groups.len())];
        for _ in 0..rng.random_range(0..=generated.level[g]) {
            let parents = &generated.parents[g];
            if parents.is_empty() {
                break;
            }
            g = parents[rng.random_range(0..parents.len())];
        }
        g
    };
    let pairs: Vec<(Uuid, Uuid)> = (0..args.requests)
        .map(|i| {
            let u = live_user(&mut rng);
            let g = if i % 2 == 0 { ancestor(&mut rng, u) } else { rng.random_range(0..generated.groups.len()) };
            (generated.groups[g], generated.users[u])
        })
        .collect();
    let objects: Vec<Uuid> = (0..args.requests).map(|_| generated.users[live_user(&mut rng)]).collect();
    let groups: Vec<Uuid> =
        (0..args.requests).map(|_| generated.groups[rng.random_range(0..generated.groups.len())]).collect();
    let tops: Vec<Uuid> =
        (0..generated.groups.len()).filter(|g| generated.level[*g] == 0).map(|g| generated.groups[g]).collect();

    // Warm the cache and the statements once.
    for &(g, x) in pairs.iter().take(20) {
        nesting::is_member(db, tenant, g, x).await?;
    }

    let mut times = Timings(Vec::new());
    let mut yes = 0;
    let mut longest = 0;
    for &(g, x) in &pairs {
        let started = Instant::now();
        let m = nesting::is_member(db, tenant, g, x).await?;
        times.0.push(started.elapsed());
        yes += usize::from(m.transitive);
        longest = longest.max(m.path.map_or(0, |p| p.len()));
    }
    report.push_str(&times.line("is X a member of G (recursive)", &format!("{yes} yes, longest chain {longest}")));

    let mut times = Timings(Vec::new());
    let mut sizes = Vec::new();
    for &x in &objects {
        let started = Instant::now();
        let page = nesting::member_of(db, tenant, x, Scope::Transitive, 1000, None).await?;
        times.0.push(started.elapsed());
        sizes.push(page.total);
    }
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let most = sizes.last().copied().unwrap_or(0);
    report.push_str(
        &times.line("an object's transitive groups (recursive)", &format!("median {median}, most {most} groups")),
    );

    for (name, list, count) in [
        ("a group's transitive members, page + total", &groups, args.requests.min(200)),
        ("the same, top-level groups", &tops, tops.len().min(50)),
    ] {
        let mut times = Timings(Vec::new());
        let mut totals = Vec::new();
        for &g in list.iter().take(count) {
            let started = Instant::now();
            let page = nesting::group_members(db, tenant, g, Scope::Transitive, 50, None).await?;
            times.0.push(started.elapsed());
            totals.push(page.total);
        }
        totals.sort_unstable();
        let median = totals.get(totals.len() / 2).copied().unwrap_or(0);
        let most = totals.last().copied().unwrap_or(0);
        report.push_str(&times.line(name, &format!("median {median}, most {most} members")));
    }

    // The closure design, for comparison.
    sql::create_closure(db).await?;
    let started = Instant::now();
    let pairs_written = sql::rebuild_closure(db, tenant).await?;
    let build = started.elapsed();
    let mut times = Timings(Vec::new());
    let mut closure_yes = 0;
    for &(g, x) in &pairs {
        let started = Instant::now();
        closure_yes += usize::from(sql::closure_is_member(db, tenant, g, x).await?);
        times.0.push(started.elapsed());
    }
    report.push_str(
        &times.line("is X a member of G (closure)", &format!("{closure_yes} yes (deleted groups not excluded)")),
    );
    let mut times = Timings(Vec::new());
    for &x in &objects {
        let started = Instant::now();
        sql::closure_groups_of(db, tenant, x).await?;
        times.0.push(started.elapsed());
    }
    report.push_str(&times.line("an object's transitive groups (closure)", ""));
    // A delta of 1,000 membership changes: 900 user memberships added, 50 nesting edges added, 50
    // memberships removed; then the closure rebuilt in the same transaction.
    let mut adds: Vec<(Uuid, Uuid, &str)> = (0..900)
        .map(|_| {
            (
                generated.groups[rng.random_range(0..generated.groups.len())],
                generated.users[live_user(&mut rng)],
                "user",
            )
        })
        .collect();
    for _ in 0..50 {
        let child = rng.random_range(0..generated.groups.len());
        if generated.level[child] > 0 {
            let parent = generated.level.iter().position(|l| *l + 1 == generated.level[child]).unwrap_or(0);
            adds.push((generated.groups[parent], generated.groups[child], "group"));
        }
    }
    let removals: Vec<(Uuid, Uuid)> = generated
        .edges
        .iter()
        .step_by(generated.edges.len() / 50 + 1)
        .take(50)
        .map(|&(g, m, nested)| (generated.groups[g], if nested { generated.groups[m] } else { generated.users[m] }))
        .collect();
    let started = Instant::now();
    let rebuilt = sql::apply_changes_with_closure(pool, tenant, &adds, &removals).await?;
    let update = started.elapsed();
    writeln!(
        report,
        "closure of group nesting: {pairs_written} (ancestor, descendant) pairs built in {:.0} ms; {} membership \
         changes applied with the closure rebuilt ({rebuilt} pairs) in {:.0} ms",
        build.as_secs_f64() * 1000.0,
        adds.len() + removals.len(),
        update.as_secs_f64() * 1000.0
    )
    .unwrap_or_default();

    // The plans, without statistics.
    let (g, x) = pairs[0];
    let none: Option<Uuid> = None;
    let limit = 50_i64;
    let transitive = true;
    for (name, statement, params) in [
        ("is_member", nesting::IS_MEMBER_SQL, vec![&tenant as &(dyn tokio_postgres::types::ToSql + Sync), &x, &g]),
        ("member_of", nesting::MEMBER_OF_SQL, vec![&tenant, &x, &none, &limit, &transitive]),
        ("members (transitive)", nesting::MEMBERS_TRANSITIVE_SQL, vec![&tenant, &tops[0], &none, &limit]),
    ] {
        let plan = sql::explain(db, statement, &params).await?;
        writeln!(report, "\nplan of {name}:").unwrap_or_default();
        for line in plan {
            writeln!(report, "  {line}").unwrap_or_default();
        }
    }
    Ok(report)
}

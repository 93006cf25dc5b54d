//! The proof of issue 17's change events: random mutations in the Graph emulator go through the real
//! service — two `entrasync serve` child processes with every role, reaching RabbitMQ through a fault
//! proxy — while the instance that relays is killed with SIGKILL (twice), RabbitMQ connections are cut,
//! and RabbitMQ itself is restarted (`rabbitmqctl stop_app`, `start_app`: every connection closes, the
//! broker is gone for a few seconds, durable queues come back). A consumer of its own durable queue
//! takes every event, reconnecting after the restart; rebuilding each tenant's objects and memberships
//! from the events alone (deduplicated on `event_id`, applied by `seq` per object and per membership)
//! gives exactly what the store holds.
//!
//! The restart disturbs every other test using RabbitMQ: tests/run.sh runs this module alone, after the
//! others. Without a usable `rabbitmqctl` it skips loudly (fails under `CI`).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entrasync::chaos::proxy::TcpProxy;
use entrasync::store::audit::Actor;
use entrasync::store::tenants::{self, FirstRound, TenantChanges};
use entrasync::store::Pool;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::change_events_relay::{bound_queue, outbox_rows, Received};
use crate::service_support::World;
use crate::support::app::{binary, free_port, ChildGuard};
use crate::support::rabbitmq_restart::{RabbitMq, DOWN_FOR};
use crate::support::{eventually, eventually_some, AMQP_URL};

/// A consumer of its own durable quorum queue bound to `{prefix}.changes` with `#`, as a downstream
/// product would run one (docs/events-relay.md): manual acks, and a new connection whenever the old one
/// ends (a RabbitMQ restart closes it). After the first it declares the queue passively, so a queue lost
/// in the restart stops it instead of being created again, empty.
struct Consumer {
    received: Arc<Mutex<Vec<Received>>>,
    /// Connections that ended and were replaced.
    reconnects: Arc<AtomicUsize>,
    /// The last reason a reconnection failed (for failure messages).
    last_error: Arc<Mutex<String>>,
    queue: String,
    task: tokio::task::JoinHandle<()>,
}

impl Consumer {
    async fn start(prefix: &str) -> Consumer {
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
        let (connection, channel, queue) = bound_queue(prefix, "rebuild", "#", arguments).await;
        let (received, reconnects, last_error) = (Arc::default(), Arc::new(AtomicUsize::new(0)), Arc::default());
        let task = tokio::spawn(consume(
            (connection, channel),
            queue.clone(),
            Arc::clone(&received),
            Arc::clone(&reconnects),
            Arc::clone(&last_error),
        ));
        Consumer { received, reconnects, last_error, queue, task }
    }

    fn snapshot(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    async fn close(self) {
        self.task.abort();
        if let Ok(connection) = lapin::Connection::connect(AMQP_URL, Default::default()).await {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel.queue_delete(self.queue.as_str().into(), Default::default()).await;
            }
            let _ = connection.close(200, "test done".into()).await;
        }
    }
}

/// Consumes until aborted: records each event of each message (envelopes of up to
/// `amqp.events_per_message`, the default), acks the message, and connects again whenever the connection
/// ends.
async fn consume(
    first: (lapin::Connection, lapin::Channel),
    queue: String,
    received: Arc<Mutex<Vec<Received>>>,
    reconnects: Arc<AtomicUsize>,
    last_error: Arc<Mutex<String>>,
) {
    let mut open = Some(first);
    loop {
        let (connection, channel) = match open.take() {
            Some(open) => open,
            None => match reopen(&queue).await {
                Ok(open) => open,
                Err(error) => {
                    *last_error.lock().expect("lock") = error.to_string();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let subscribed = async {
            channel.basic_qos(500, Default::default()).await?;
            let options = BasicConsumeOptions::default();
            channel.basic_consume(queue.as_str().into(), "".into(), options, FieldTable::default()).await
        };
        if let Ok(mut deliveries) = subscribed.await {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let body: Value = serde_json::from_slice(&delivery.data).expect("JSON body");
                let message_id = delivery.properties.message_id().as_ref().map(ToString::to_string).unwrap_or_default();
                // An envelope (the default) or, with `amqp.events_per_message` 1, one event.
                let events = match body.get("events").and_then(Value::as_array) {
                    Some(events) => events.clone(),
                    None => vec![body],
                };
                {
                    let mut received = received.lock().expect("lock");
                    for event in events {
                        received.push(Received {
                            seq: event["seq"].as_i64().expect("seq"),
                            event_id: event["event_id"].as_str().unwrap_or_default().to_owned(),
                            message_id: message_id.clone(),
                            routing_key: delivery.routing_key.to_string(),
                            persistent: *delivery.properties.delivery_mode() == Some(2),
                            content_type: String::new(),
                            body: event,
                        });
                    }
                }
                // Unacknowledged when the connection went: the queue delivers it again (a duplicate).
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        }
        drop(connection);
        reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A new connection and channel to the consumer's queue, which must still exist.
async fn reopen(queue: &str) -> Result<(lapin::Connection, lapin::Channel), lapin::Error> {
    let connection = lapin::Connection::connect(AMQP_URL, Default::default()).await?;
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    channel.queue_declare(queue.into(), passive, FieldTable::default()).await?;
    Ok((connection, channel))
}

/// One `entrasync serve` child process on a known port.
struct Serve {
    name: String,
    port: u16,
    vars: Vec<(String, String)>,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Serve {
    fn start(name: &str, vars: &[(String, String)], log_dir: &std::path::Path) -> Serve {
        let port = free_port();
        let mut vars = vars.to_vec();
        vars.push(("ENTRASYNC_INSTANCE_ID".to_owned(), name.to_owned()));
        vars.push(("ENTRASYNC_HTTP_LISTEN".to_owned(), format!("127.0.0.1:{port}")));
        let mut serve =
            Serve { name: name.to_owned(), port, vars, log: log_dir.join(format!("{name}.log")), child: None };
        serve.spawn();
        serve
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let child = binary(&["serve"], &vars).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().expect("serve");
        self.child = Some(ChildGuard(child));
    }

    /// SIGKILL: nothing is settled, the relay's session and lock die with the process.
    fn kill9(&mut self) {
        drop(self.child.take());
    }

    async fn ready(&self, http: &reqwest::Client) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        eventually(Duration::from_secs(60), || async {
            http.get(&url).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await
    }

    async fn holds_relay(&self, http: &reqwest::Client) -> bool {
        let Ok(response) = http.get(format!("http://127.0.0.1:{}/metrics", self.port)).send().await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        crate::observability::sample(&text, "entrasync_events_relay_holder", &[]) == Some(1.0)
    }
}

/// An object's state: attrs, mapped, soft-deleted.
type State = (Value, Value, bool);

/// What the events say a tenant holds.
#[derive(Default)]
struct Model {
    /// (class, object id) → (seq of the last applied event, its state; `None`: deleted).
    objects: BTreeMap<(String, String), (i64, Option<State>)>,
    /// (group id, member id) → (seq, present).
    members: BTreeMap<(String, String), (i64, bool)>,
}

impl Model {
    fn apply(&mut self, event: &Received) {
        let body = &event.body;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (class, kind, object_id) = (text(&body["class"]), text(&body["kind"]), text(&body["object_id"]));
        match kind.as_str() {
            "member_added" | "member_removed" => {
                let key = (object_id, text(&body["member"]["id"]));
                let entry = self.members.entry(key).or_insert((0, false));
                if entry.0 < event.seq {
                    *entry = (event.seq, kind == "member_added");
                }
            }
            "created" | "updated" | "restored" | "soft_deleted" | "deleted" => {
                let entry = self.objects.entry((class, object_id)).or_insert((0, None));
                if entry.0 >= event.seq {
                    return; // an older event of this object arrived again: its state is superseded
                }
                let object = &body["object"];
                entry.1 = match kind.as_str() {
                    "deleted" => None,
                    "soft_deleted" => {
                        let (attrs, mapped) = match entry.1.take() {
                            Some((attrs, mapped, _)) => (attrs, mapped),
                            None => (Value::Object(Default::default()), Value::Null),
                        };
                        Some((attrs, mapped, true))
                    }
                    _ => Some((object["attrs"].clone(), object["mapped"].clone(), false)),
                };
                entry.0 = event.seq;
            }
            other => panic!("unexpected event kind {other:?} (first rounds emit objects here): {body}"),
        }
    }
}

type Objects = BTreeMap<(String, String), State>;
type Members = std::collections::BTreeSet<(String, String)>;

async fn stored(pool: &Pool, tenant_id: i64) -> (Objects, Members) {
    let client = pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT object_class::text, object_id::text, attrs, change_event_mapped(mapped, mapped_on_create),
                    deleted_at IS NOT NULL
             FROM directory_objects WHERE tenant_id = $1",
            &[&tenant_id],
        )
        .await
        .expect("objects");
    let objects = rows
        .iter()
        .map(|r| {
            let mapped: Option<Value> = r.get(3);
            ((r.get(0), r.get(1)), (r.get(2), mapped.unwrap_or(Value::Null), r.get(4)))
        })
        .collect();
    let rows = client
        .query("SELECT group_id::text, member_id::text FROM group_members WHERE tenant_id = $1", &[&tenant_id])
        .await
        .expect("members");
    (objects, rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A burst of mutations on every tenant, returned once its first events are in the outbox (plus 150 ms:
/// with RabbitMQ slowed, the relay has them published and unconfirmed). Returns the mutations made.
async fn burst_into_the_outbox(
    world: &World,
    tenants: &[entrasync::demo::emulated::EmulatedTenant],
    rng: &mut StdRng,
) -> usize {
    let state = world.sim.state();
    let mut mutations = 0;
    for tenant in tenants {
        let burst = graph_sim::mutate::MutationBatch { seed: rng.random(), count: 150 };
        state.random_mutations(&tenant.sim_tenant, &burst).expect("mutations");
        mutations += burst.count;
    }
    let _burst_written = eventually(Duration::from_secs(15), || async { outbox_rows(&world.pool).await > 0 }).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    mutations
}

async fn running_runs(pool: &Pool) -> i64 {
    let client = pool.get().await.expect("connection");
    client.query_one("SELECT count(*) FROM sync_runs WHERE status = 'running'", &[]).await.expect("runs").get(0)
}

/// What the test does to the service while it syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL of the instance holding the relay lock, with a batch in flight; it is started again.
    KillRelay,
    /// Every connection to RabbitMQ through the proxy closed, new ones refused, for 3 s.
    Cut,
    /// `rabbitmqctl stop_app`, and `start_app` [`DOWN_FOR`] later while mutations go on.
    Restart,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_rebuilt_from_its_events_equals_the_store_after_kills_cuts_and_a_rabbitmq_restart() {
    let test_started = Instant::now();
    let Some(mut rabbitmq) = RabbitMq::control("change_events_rebuild") else { return };
    let world = World::start().await;
    let mut tenants = Vec::new();
    for seed in [171, 172, 173] {
        let tenant = world.tenant(seed, 60, 20).await;
        let changes = TenantChanges {
            change_events: Some(true),
            change_events_first_round: Some(FirstRound::Objects),
            ..TenantChanges::default()
        };
        tenants::update(&world.pool, tenant.tenant_id, &changes, &Actor::new("test"))
            .await
            .expect("switch events on")
            .expect("tenant");
        tenants.push(tenant);
    }
    let consumer = Consumer::start(&world.amqp.prefix).await;

    let mq = TcpProxy::start("127.0.0.1:5672".parse().expect("address")).await.expect("proxy");
    let log_dir = std::env::temp_dir().join(format!("entrasync-rebuild-{}", world.amqp.prefix));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let vars: Vec<(String, String)> = [
        ("ENTRASYNC_DATABASE_URL", world.db.url.clone()),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10".to_owned()),
        ("ENTRASYNC_AMQP_PREFETCH", "2".to_owned()),
        ("ENTRASYNC_AMQP_URL", format!("amqp://guest:guest@{}/%2f?heartbeat=2", mq.addr)),
        ("ENTRASYNC_AMQP_PREFIX", world.amqp.prefix.clone()),
        ("ENTRASYNC_SECRETS_KEY", world.secrets_key.clone()),
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1".to_owned()),
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2".to_owned()),
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100".to_owned()),
        ("ENTRASYNC_LOG_FILTER", "warn,entrasync=info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut instances = [Serve::start("rebuild-a", &vars, &log_dir), Serve::start("rebuild-b", &vars, &log_dir)];
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("http");
    for serve in &instances {
        assert!(serve.ready(&http).await, "{} ready (log {})", serve.name, serve.log.display());
    }

    // Mutations throughout; faults at 10 s (kill the relaying instance), 22 s (cut RabbitMQ), 32 s (restart
    // RabbitMQ, down for 5 s while mutations and rounds go on), 48 s (kill again).
    let state = world.sim.state();
    let mut rng = StdRng::seed_from_u64(17);
    let started = Instant::now();
    let mut faults: Vec<(Duration, Fault)> =
        [(10, Fault::KillRelay), (22, Fault::Cut), (32, Fault::Restart), (48, Fault::KillRelay)]
            .into_iter()
            .map(|(at, fault)| (Duration::from_secs(at), fault))
            .collect();
    let mut killed: Vec<String> = Vec::new();
    let (mut mutations, mut mutations_while_down) = (0, 0);
    let (mut broker_back_at, mut waited_in_outbox): (Option<Instant>, Option<i64>) = (None, None);
    while started.elapsed() < Duration::from_secs(60) {
        let tenant = &tenants[rng.random_range(0..tenants.len())];
        let batch = graph_sim::mutate::MutationBatch { seed: rng.random(), count: rng.random_range(5..=40) };
        state.random_mutations(&tenant.sim_tenant, &batch).expect("mutations");
        mutations += batch.count;
        if let Some(at) = broker_back_at {
            mutations_while_down += batch.count;
            if Instant::now() >= at {
                waited_in_outbox = Some(outbox_rows(&world.pool).await);
                rabbitmq.start_app().await;
                broker_back_at = None;
            }
        }
        if faults.first().is_some_and(|(at, _)| started.elapsed() >= *at) {
            let (_, fault) = faults.remove(0);
            match fault {
                Fault::KillRelay => {
                    // The holder first (a scrape reads RabbitMQ, slow once delayed; after the restart the
                    // relay may still be in its backoff). Then a burst on every tenant with RabbitMQ slowed so
                    // confirms lag, and the kill as soon as the burst's events reach the outbox: the relay
                    // dies with a batch in flight.
                    let holder = eventually_some(Duration::from_secs(30), || async {
                        for (index, serve) in instances.iter().enumerate() {
                            if serve.holds_relay(&http).await {
                                return Some(index);
                            }
                        }
                        None
                    })
                    .await;
                    let index = holder.expect("one instance holds the relay lock");
                    mq.delay(Duration::from_millis(400));
                    mutations += burst_into_the_outbox(&world, &tenants, &mut rng).await;
                    instances[index].kill9();
                    killed.push(instances[index].name.clone());
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    mq.restore();
                    instances[index].spawn();
                }
                Fault::Cut => {
                    mq.cut();
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    mq.restore();
                }
                Fault::Restart => {
                    // Like a kill: the broker goes while the relay has a burst's events in flight.
                    mq.delay(Duration::from_millis(400));
                    mutations += burst_into_the_outbox(&world, &tenants, &mut rng).await;
                    rabbitmq.stop_app().await;
                    mq.restore();
                    broker_back_at = Some(Instant::now() + DOWN_FOR);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
    }
    assert!(faults.is_empty() && broker_back_at.is_none(), "every fault ran, RabbitMQ is back: {faults:?}");
    assert_eq!(killed.len(), 2, "the relaying instance was killed twice");
    assert!(mutations_while_down > 0, "mutations went on while RabbitMQ was down");
    let consumer_reconnects = consumer.reconnects.load(Ordering::Relaxed);
    assert!(consumer_reconnects >= 1, "the restart closed the consumer's connection");
    for serve in &instances {
        assert!(serve.ready(&http).await, "{} ready again (log {})", serve.name, serve.log.display());
    }

    // Quiet: no mutation since; every class of every tenant synced after it, nothing running, the outbox
    // empty, and the consumer has stopped receiving.
    let quiet_since = chrono::Utc::now();
    let pool = world.pool.clone();
    let ids: Vec<i64> = tenants.iter().map(|t| t.tenant_id).collect();
    let settled = eventually(Duration::from_secs(120), || async {
        let runs = crate::service_support::stored_runs(&pool).await;
        let synced = ids.iter().all(|id| {
            ["user", "group", "device"].iter().all(|class| {
                runs.iter().any(|r| {
                    r.tenant_id == *id && r.class == *class && r.status == "success" && r.started_at > quiet_since
                })
            })
        });
        synced && running_runs(&pool).await == 0 && outbox_rows(&pool).await == 0
    })
    .await;
    assert!(
        settled,
        "every class synced after the mutations and the outbox drained (logs in {}; consumer: {})",
        log_dir.display(),
        consumer.last_error.lock().expect("lock")
    );
    let mut last = usize::MAX;
    while last != consumer.snapshot().len() {
        last = consumer.snapshot().len();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Rebuild from the events alone: deduplicated on event_id, each object and membership by seq.
    let received = consumer.snapshot();
    let mut seen = HashSet::new();
    let mut models: BTreeMap<i64, Model> = BTreeMap::new();
    let mut duplicates = 0;
    for event in &received {
        if !seen.insert(event.event_id.clone()) {
            duplicates += 1;
            continue;
        }
        let tenant_id = event.body["tenant_id"].as_i64().expect("tenant_id");
        models.entry(tenant_id).or_default().apply(event);
    }
    eprintln!(
        "rebuild: {mutations} mutations ({mutations_while_down} while RabbitMQ was down, {} events in the outbox when \
         it came back), {} events received, {duplicates} duplicates, consumer reconnected {consumer_reconnects} \
         times, instances killed: {killed:?}, {:.0} s",
        waited_in_outbox.unwrap_or(-1),
        received.len(),
        test_started.elapsed().as_secs_f64()
    );
    assert!(received.len() > 500, "a real stream of events: {}", received.len());
    for tenant in &tenants {
        let model = models.remove(&tenant.tenant_id).unwrap_or_default();
        let rebuilt: Objects = model.objects.into_iter().filter_map(|(key, (_, state))| Some((key, state?))).collect();
        let members: Members =
            model.members.into_iter().filter(|(_, (_, present))| *present).map(|(key, _)| key).collect();
        let (store_objects, store_members) = stored(&world.pool, tenant.tenant_id).await;
        let differing: Vec<_> = store_objects
            .iter()
            .filter(|(key, state)| rebuilt.get(*key) != Some(*state))
            .map(|(key, state)| (key.clone(), state.clone(), rebuilt.get(key).cloned()))
            .take(3)
            .collect();
        assert!(differing.is_empty(), "tenant {}: stored vs rebuilt differ: {differing:#?}", tenant.tenant_id);
        assert_eq!(rebuilt.len(), store_objects.len(), "tenant {}: no object only in the events", tenant.tenant_id);
        assert_eq!(members, store_members, "tenant {}: memberships", tenant.tenant_id);
        assert!(store_objects.len() > 60 && !store_members.is_empty(), "tenant {} holds a directory", tenant.tenant_id);
    }

    for serve in &mut instances {
        serve.kill9();
    }
    consumer.close().await;
    let _ = std::fs::remove_dir_all(&log_dir);
}

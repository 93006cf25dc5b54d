//! The change-event relay (issue 17; docs/events-relay.md) against real Postgres and RabbitMQ: rows are
//! published in `seq` order with their routing key and `event_id` as `message_id`, deleted only once
//! confirmed; a nack, a cut connection or a killed relay re-publishes from the oldest unconfirmed row
//! (duplicates allowed, no gaps); one relay publishes at a time; the backlog shows in the metrics.
//! Rows are written straight into the outbox here (`store::outbox_relay::insert`), as the write side would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entrasync::actors::relay::{self, RelayDeps, Tuning};
use entrasync::chaos::proxy::TcpProxy;
use entrasync::config::Settings;
use entrasync::metrics::{EventsMetrics, Metrics};
use entrasync::queue::Broker;
use entrasync::store::outbox_relay::{self, NewRow};
use entrasync::store::Pool;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{eventually, settings_with, TestAmqp, TestDb, AMQP_URL};

/// One event as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub seq: i64,
    pub event_id: String,
    pub message_id: String,
    pub routing_key: String,
    pub body: Value,
    pub persistent: bool,
    pub content_type: String,
}

/// A consumer of its own queue bound to `{prefix}.changes` with `pattern`, acking each event after
/// recording it (on a connection of its own, straight to RabbitMQ).
pub struct Collector {
    pub received: Arc<Mutex<Vec<Received>>>,
    pub queue: String,
    connection: lapin::Connection,
    channel: lapin::Channel,
}

/// A connection, a channel and the durable queue `{prefix}.test.{name}` bound to `{prefix}.changes` with
/// `pattern` (the exchange declared as the service declares it, in case the service has not yet).
pub async fn bound_queue(
    prefix: &str,
    name: &str,
    pattern: &str,
    arguments: FieldTable,
) -> (lapin::Connection, lapin::Channel, String) {
    let connection = lapin::Connection::connect(AMQP_URL, Default::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let exchange = format!("{prefix}.changes");
    let durable = lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(exchange.as_str().into(), lapin::ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("the changes exchange, as the service declares it");
    let queue = format!("{prefix}.test.{name}");
    let options = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, arguments).await.expect("queue");
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(queue.as_str().into(), exchange.as_str().into(), pattern.into(), bind, FieldTable::default())
        .await
        .expect("bind");
    (connection, channel, queue)
}

impl Collector {
    pub async fn start(prefix: &str, name: &str, pattern: &str, arguments: FieldTable) -> Collector {
        let (connection, channel, queue) = bound_queue(prefix, name, pattern, arguments).await;
        Collector { received: Arc::default(), queue, connection, channel }
    }

    /// Starts consuming (manual acks, prefetch 500).
    pub async fn consume(&self) {
        self.channel.basic_qos(500, Default::default()).await.expect("qos");
        let mut consumer = self
            .channel
            .basic_consume(self.queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume");
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body: Value = serde_json::from_slice(&delivery.data).expect("JSON body");
                let properties = &delivery.properties;
                let kind = properties.kind().as_ref().map(ToString::to_string).unwrap_or_default();
                let message_id = properties.message_id().as_ref().map(ToString::to_string).unwrap_or_default();
                // An envelope (amqp.events_per_message > 1) holds consecutive events; its message id is
                // the first one's.
                let events = match body["events"].as_array() {
                    Some(events) => {
                        assert_eq!(kind, "entrasync.events", "an envelope says so in its AMQP type");
                        assert_eq!(events[0]["event_id"].as_str(), Some(message_id.as_str()));
                        events.clone()
                    }
                    None => {
                        assert_eq!(kind, "entrasync.event");
                        vec![body]
                    }
                };
                {
                    let mut received = received.lock().expect("lock");
                    for body in events {
                        let event_id = body["event_id"].as_str().unwrap_or_default().to_owned();
                        received.push(Received {
                            seq: body["seq"].as_i64().expect("seq"),
                            message_id: if kind == "entrasync.events" { event_id.clone() } else { message_id.clone() },
                            event_id,
                            routing_key: delivery.routing_key.to_string(),
                            persistent: *properties.delivery_mode() == Some(2),
                            content_type: properties
                                .content_type()
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            body,
                        });
                    }
                }
                delivery.ack(BasicAckOptions::default()).await.expect("ack");
            }
        });
    }

    pub fn snapshot(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub async fn close(self) {
        let _ = self.channel.queue_delete(self.queue.as_str().into(), Default::default()).await;
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

/// The first arrival of every event must come in `seq` order (a re-publication only repeats events
/// already seen), and every expected event must have arrived. Returns the duplicates.
pub fn assert_no_gaps_in_order(received: &[Received], expected: &[(i64, Uuid)]) -> usize {
    let mut seen = BTreeSet::new();
    let mut highest = 0;
    for event in received {
        assert_eq!(event.message_id, event.event_id, "message_id is the event id");
        if seen.insert(event.seq) {
            assert!(event.seq > highest, "seq {} first arrived after {highest}: out of order", event.seq);
            highest = event.seq;
        }
    }
    let wanted: BTreeSet<i64> = expected.iter().map(|(seq, _)| *seq).collect();
    let missing: Vec<&i64> = wanted.difference(&seen).take(10).collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
    let by_seq: BTreeMap<i64, String> = received.iter().map(|r| (r.seq, r.event_id.clone())).collect();
    for (seq, id) in expected {
        assert_eq!(by_seq.get(seq), Some(&id.to_string()), "seq {seq} keeps its event id");
    }
    received.len() - seen.len()
}

fn body(entra_tenant: &str, tenant_id: i64, event_id: Uuid, n: usize) -> Value {
    json!({
        "schema_version": 1, "event_id": event_id, "tenant": entra_tenant, "tenant_id": tenant_id,
        "class": "user", "kind": "updated", "object_id": Uuid::from_u128(n as u128 % 7 + 1),
        "run_id": null, "occurred_at": "2026-12-06T20:00:00Z",
        "object": {"attrs": {"displayName": format!("user {n}")}, "mapped": null}, "changed": ["displayName"]
    })
}

/// `count` events over two tenants, written in one transaction; returns (seq, event id) in seq order.
pub async fn write_events(pool: &Pool, count: usize) -> Vec<(i64, Uuid)> {
    let mut rows = Vec::with_capacity(count);
    for n in 0..count {
        let (tenant_id, tenant) = if n % 3 == 0 { (2, "tenant-b") } else { (1, "tenant-a") };
        let event_id = Uuid::new_v4();
        let kind = if n % 5 == 0 { "created" } else { "updated" };
        let mut body = body(tenant, tenant_id, event_id, n);
        body["kind"] = json!(kind);
        rows.push(NewRow { tenant_id, event_id, routing_key: format!("{tenant}.user.{kind}"), body });
    }
    let mut written = Vec::with_capacity(count);
    for chunk in rows.chunks(2_000) {
        let seqs = outbox_relay::insert(pool, chunk).await.expect("outbox rows");
        written.extend(seqs.into_iter().zip(chunk.iter().map(|r| r.event_id)));
    }
    written
}

pub async fn outbox_rows(pool: &Pool) -> i64 {
    outbox_relay::backlog(pool).await.map(|b| b.rows).unwrap_or(-1)
}

struct Harness {
    db: TestDb,
    amqp: TestAmqp,
    pool: Pool,
    settings: Settings,
}

impl Harness {
    async fn new() -> Harness {
        let db = TestDb::migrated().await;
        let amqp = TestAmqp::new();
        let settings = settings_with(&[
            ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
            ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ]);
        let pool = db.pool();
        Harness { db, amqp, pool, settings }
    }

    /// A broker for the relay, to RabbitMQ directly or through `proxy`.
    fn broker(&self, proxy: Option<&TcpProxy>) -> Broker {
        let mut amqp = self.settings.amqp.clone();
        if let Some(proxy) = proxy {
            amqp.url = crate::support::secret(&format!("amqp://guest:guest@{}/%2f?heartbeat=2", proxy.addr));
        }
        Broker::start(&amqp)
    }

    /// A relay's own pool: a relay the test kills takes the connections made on its Arbiter with it, and
    /// the test's pool must not hand those out.
    fn deps(&self, broker: &Broker, metrics: &EventsMetrics, tuning: Tuning) -> RelayDeps {
        RelayDeps {
            database: self.settings.database.clone(),
            pool: self.db.pool(),
            broker: broker.clone(),
            metrics: metrics.clone(),
            exchange: broker.topology().changes_exchange(),
            tuning,
        }
    }
}

fn quick() -> Tuning {
    Tuning {
        batch: 100,
        in_flight_batches: 3,
        idle_poll: Duration::from_millis(50),
        lock_retry: Duration::from_millis(200),
        stats_every: Duration::from_millis(200),
        ..Tuning::default()
    }
}

async fn rabbitmq() -> TcpProxy {
    TcpProxy::start("127.0.0.1:5672".parse().expect("address")).await.expect("proxy")
}

#[tokio::test]
async fn events_go_out_in_seq_order_with_their_routing_key_and_id_and_leave_the_outbox() {
    let h = Harness::new().await;
    let broker = h.broker(None);
    broker.connection(Duration::from_secs(10)).await.expect("connected: the exchange is declared");
    let all = Collector::start(&h.amqp.prefix, "all", "#", FieldTable::default()).await;
    let created = Collector::start(&h.amqp.prefix, "created", "tenant-b.*.created", FieldTable::default()).await;
    all.consume().await;
    created.consume().await;
    let expected = write_events(&h.pool, 1_000).await;

    let metrics = Metrics::new().events;
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(h.deps(&broker, &metrics, quick()), stop.clone()));
    let pool = h.pool.clone();
    assert!(eventually(Duration::from_secs(30), || async { outbox_rows(&pool).await == 0 }).await, "outbox emptied");
    assert!(eventually(Duration::from_secs(10), || async { all.snapshot().len() >= 1_000 }).await);

    let received = all.snapshot();
    assert_eq!(assert_no_gaps_in_order(&received, &expected), 0, "no duplicates without faults");
    assert_eq!(received.iter().map(|r| r.seq).collect::<Vec<_>>(), expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for event in &received {
        let tenant = event.body["tenant"].as_str().expect("tenant");
        let kind = event.body["kind"].as_str().expect("kind");
        assert_eq!(event.routing_key, format!("{tenant}.user.{kind}"));
        assert!(event.persistent, "persistent delivery");
        assert_eq!(event.content_type, "application/json");
        assert_eq!(event.body["schema_version"], 1, "the body is the stored document");
    }
    let only_created = created.snapshot();
    assert!(!only_created.is_empty());
    assert!(only_created.iter().all(|e| e.routing_key == "tenant-b.user.created"), "the routing pattern selects");
    assert!(metrics.relayed_total() >= 1_000);
    stop.cancel();
    relay.await.expect("relay ends");
    all.close().await;
    created.close().await;
    broker.close().await;
    drop(h.db);
}

#[tokio::test]
async fn envelopes_carry_consecutive_events_of_one_routing_key_in_seq_order() {
    let h = Harness::new().await;
    let broker = h.broker(None);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let all = Collector::start(&h.amqp.prefix, "all", "#", FieldTable::default()).await;
    all.consume().await;
    // Runs of one routing key: 40 created events of tenant-a, then 60 updated, then alternating keys.
    let mut rows = Vec::new();
    for n in 0..300_usize {
        let (tenant, kind) = match n {
            0..40 => ("tenant-a", "created"),
            40..100 => ("tenant-a", "updated"),
            _ if n % 2 == 0 => ("tenant-b", "updated"),
            _ => ("tenant-a", "updated"),
        };
        let event_id = Uuid::new_v4();
        let mut body = body(tenant, 1, event_id, n);
        body["kind"] = json!(kind);
        rows.push(NewRow { tenant_id: 1, event_id, routing_key: format!("{tenant}.user.{kind}"), body });
    }
    let seqs = outbox_relay::insert(&h.pool, &rows).await.expect("rows");
    let expected: Vec<(i64, Uuid)> = seqs.into_iter().zip(rows.iter().map(|r| r.event_id)).collect();

    let metrics = Metrics::new().events;
    let stop = CancellationToken::new();
    let tuning = Tuning { per_message: 25, ..quick() };
    let relay = tokio::spawn(relay::run(h.deps(&broker, &metrics, tuning), stop.clone()));
    assert!(eventually(Duration::from_secs(30), || async { all.snapshot().len() >= 300 }).await, "all arrived");
    let received = all.snapshot();
    assert_eq!(assert_no_gaps_in_order(&received, &expected), 0);
    for event in &received {
        let tenant = event.body["tenant"].as_str().expect("tenant");
        let kind = event.body["kind"].as_str().expect("kind");
        assert_eq!(event.routing_key, format!("{tenant}.user.{kind}"), "an envelope holds one routing key");
    }
    stop.cancel();
    relay.await.expect("relay ends");
    all.close().await;
    broker.close().await;
}

#[tokio::test]
async fn rows_stay_until_confirmed_and_a_nack_republishes_from_the_first_unconfirmed() {
    let h = Harness::new().await;
    let broker = h.broker(None);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    // A queue that refuses what exceeds 150 messages: RabbitMQ nacks those publishes.
    let mut limited = FieldTable::default();
    limited.insert("x-max-length".into(), AMQPValue::LongInt(150));
    limited.insert("x-overflow".into(), AMQPValue::LongString(LongString::from("reject-publish")));
    let collector = Collector::start(&h.amqp.prefix, "limited", "#", limited).await;
    let expected = write_events(&h.pool, 400).await;

    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(h.deps(&broker, &metrics.events, quick()), stop.clone()));
    let failures = |cause: &str| {
        let text = metrics.render();
        crate::observability::sample(&text, "entrasync_events_relay_failures_total", &[("cause", cause)]).unwrap_or(0.0)
    };
    assert!(eventually(Duration::from_secs(20), || async { failures("nack") >= 1.0 }).await, "the full queue nacks");
    let pool = h.pool.clone();
    // The first batches fit (100 + 50 of the second): deleted. The rest stays while the queue is full.
    let stays = crate::support::holds_for(Duration::from_secs(2), || async { outbox_rows(&pool).await >= 300 }).await;
    assert!(stays, "unconfirmed rows stay in the outbox: {}", outbox_rows(&pool).await);

    // The consumer catches up: everything goes through; first arrivals in seq order, none missing.
    collector.consume().await;
    assert!(eventually(Duration::from_secs(60), || async { outbox_rows(&pool).await == 0 }).await, "outbox emptied");
    assert!(
        eventually(Duration::from_secs(10), || async {
            collector.snapshot().iter().map(|r| r.seq).collect::<BTreeSet<_>>().len() == 400
        })
        .await
    );
    assert_no_gaps_in_order(&collector.snapshot(), &expected);
    stop.cancel();
    relay.await.expect("relay ends");
    collector.close().await;
    broker.close().await;
}

#[tokio::test]
async fn a_cut_connection_or_a_killed_relay_republishes_without_gaps() {
    let h = Harness::new().await;
    let proxy = rabbitmq().await;
    let broker = h.broker(Some(&proxy));
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let collector = Collector::start(&h.amqp.prefix, "all", "#", FieldTable::default()).await;
    collector.consume().await;
    let expected = write_events(&h.pool, 30_000).await;

    let metrics = Metrics::new().events;
    let tuning = Tuning { batch: 500, ..quick() };
    let first = relay::start(h.deps(&broker, &metrics, tuning));
    assert!(eventually(Duration::from_secs(30), || async { metrics.relayed_total() >= 3_000 }).await, "relaying");
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    assert!(
        eventually(Duration::from_secs(30), || async { metrics.relayed_total() >= 12_000 }).await,
        "relaying again after the cut"
    );
    // Killed mid-batch: its Arbiter stops at once, nothing settles; a new relay takes the lock over.
    first.abort();
    let second = relay::start(h.deps(&broker, &metrics, tuning));
    let pool = h.pool.clone();
    assert!(eventually(Duration::from_secs(90), || async { outbox_rows(&pool).await == 0 }).await, "outbox emptied");
    // The consumer (a debug build, one ack per event) trails the relay.
    let all_arrived = eventually(Duration::from_secs(120), || async {
        collector.snapshot().iter().map(|r| r.seq).collect::<BTreeSet<_>>().len() == expected.len()
    })
    .await;
    let distinct = collector.snapshot().iter().map(|r| r.seq).collect::<BTreeSet<_>>().len();
    assert!(all_arrived, "{distinct} of {} events arrived", expected.len());
    let duplicates = assert_no_gaps_in_order(&collector.snapshot(), &expected);
    eprintln!("duplicates after a cut and a kill: {duplicates}");
    second.stop(Duration::from_secs(5)).await;
    collector.close().await;
    broker.close().await;
}

#[tokio::test]
async fn two_instances_one_relay_publishes_and_the_other_takes_over() {
    let h = Harness::new().await;
    let (broker_a, broker_b) = (h.broker(None), h.broker(None));
    broker_a.connection(Duration::from_secs(10)).await.expect("connected");
    let collector = Collector::start(&h.amqp.prefix, "all", "#", FieldTable::default()).await;
    collector.consume().await;
    let (a, b) = (Metrics::new(), Metrics::new());
    let relay_a = relay::start(h.deps(&broker_a, &a.events, quick()));
    let relay_b = relay::start(h.deps(&broker_b, &b.events, quick()));
    let holders = || {
        let holder = |m: &Metrics| crate::observability::sample(&m.render(), "entrasync_events_relay_holder", &[]);
        holder(&a).unwrap_or(0.0) + holder(&b).unwrap_or(0.0)
    };
    assert!(eventually(Duration::from_secs(10), || async { holders() == 1.0 }).await, "one holder");
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.extend(write_events(&h.pool, 200).await);
        assert!(holders() <= 1.0, "never two holders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = h.pool.clone();
    assert!(eventually(Duration::from_secs(30), || async { outbox_rows(&pool).await == 0 }).await);
    let (relayed_a, relayed_b) = (a.events.relayed_total(), b.events.relayed_total());
    assert!(relayed_a == 0 || relayed_b == 0, "only the holder publishes: {relayed_a} and {relayed_b}");

    // The holder dies; the other takes the lock once the dead session is gone and relays the rest.
    let (survivor, killed, other) = if relayed_a > 0 { (&b, relay_a, relay_b) } else { (&a, relay_b, relay_a) };
    killed.abort();
    expected.extend(write_events(&h.pool, 300).await);
    assert!(eventually(Duration::from_secs(30), || async { outbox_rows(&pool).await == 0 }).await, "taken over");
    assert!(survivor.events.relayed_total() >= 300, "the survivor relayed the rest");
    assert!(
        eventually(Duration::from_secs(10), || async {
            collector.snapshot().iter().map(|r| r.seq).collect::<BTreeSet<_>>().len() == expected.len()
        })
        .await
    );
    assert_eq!(assert_no_gaps_in_order(&collector.snapshot(), &expected), 0, "a clean hand-over repeats nothing");
    other.stop(Duration::from_secs(5)).await;
    collector.close().await;
    broker_a.close().await;
    broker_b.close().await;
}

#[tokio::test]
async fn the_backlog_shows_in_the_metrics_while_rabbitmq_is_away() {
    let h = Harness::new().await;
    let proxy = rabbitmq().await;
    let broker = h.broker(Some(&proxy));
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    proxy.cut();
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(h.deps(&broker, &metrics.events, quick()), stop.clone()));
    write_events(&h.pool, 250).await;
    let gauge = |name: &str| crate::observability::sample(&metrics.render(), name, &[]);
    assert!(
        eventually(Duration::from_secs(10), || async { gauge("entrasync_events_outbox_rows") == Some(250.0) }).await,
        "rows: {:?}",
        gauge("entrasync_events_outbox_rows")
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(gauge("entrasync_events_outbox_oldest_age_seconds").is_some_and(|age| age >= 1.0), "the oldest ages");
    assert!(gauge("entrasync_events_outbox_bytes").is_some_and(|bytes| bytes > 0.0));
    proxy.restore();
    assert!(
        eventually(Duration::from_secs(40), || async { gauge("entrasync_events_outbox_rows") == Some(0.0) }).await,
        "drained after RabbitMQ came back"
    );
    assert_eq!(gauge("entrasync_events_outbox_oldest_age_seconds"), Some(0.0));
    stop.cancel();
    relay.await.expect("relay ends");
    broker.close().await;
}

/// A virtualenv with pika (the one `service_pika` uses), created once per machine and reused.
fn python_with_pika() -> std::path::PathBuf {
    use std::process::Command;
    let venv = std::env::temp_dir().join("entrasync-test-pika-venv");
    let python = venv.join("bin/python");
    let has_pika = Command::new(&python).args(["-c", "import pika"]).status().is_ok_and(|s| s.success());
    if !has_pika {
        let created = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 -m venv");
        assert!(created.success(), "cannot create a virtualenv");
        let installed =
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", "pika"]).status().expect("pip install pika");
        assert!(installed.success(), "pip install pika failed");
    }
    python
}

#[tokio::test]
async fn the_pika_example_consumer_applies_each_event_once() {
    let python = tokio::task::spawn_blocking(python_with_pika).await.expect("venv");
    let h = Harness::new().await;
    let broker = h.broker(None);
    broker.connection(Duration::from_secs(10)).await.expect("connected: the exchange is declared");
    let queue = format!("{}.example", h.amqp.prefix);
    let out = std::env::temp_dir().join(format!("{queue}.jsonl"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/consume_changes.py");
    let consumer = tokio::process::Command::new(&python)
        .args([script, "--url", AMQP_URL, "--prefix", &h.amqp.prefix, "--queue", &queue, "--bind", "tenant-a.#"])
        .args(["--idle-exit", "8", "--out"])
        .arg(&out)
        .kill_on_drop(true)
        .output();
    let consumer = tokio::spawn(consumer);
    // The example declares and binds its queue at start: give it a moment before events flow.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected = write_events(&h.pool, 300).await;

    // A cut connection halfway re-publishes part of the stream: the example must skip the duplicates.
    let proxy = rabbitmq().await;
    let through_proxy = h.broker(Some(&proxy));
    let metrics = Metrics::new().events;
    // Envelopes of up to 4 events too: the example reads both forms.
    let tuning = Tuning { batch: 20, in_flight_batches: 1, per_message: 4, ..quick() };
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(h.deps(&through_proxy, &metrics, tuning), stop.clone()));
    let _relaying = eventually(Duration::from_secs(10), || async { metrics.relayed_total() >= 100 }).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    let pool = h.pool.clone();
    assert!(eventually(Duration::from_secs(60), || async { outbox_rows(&pool).await == 0 }).await, "outbox emptied");

    let output = consumer.await.expect("join").expect("run the example");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&out).expect("the example's output");
    let applied: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let ids: Vec<&str> = applied.iter().map(|e| e["event_id"].as_str().expect("id")).collect();
    let wanted: Vec<String> = expected
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 0) // tenant-a's events; the binding leaves tenant-b's out
        .map(|(_, (_, id))| id.to_string())
        .collect();
    assert_eq!(ids, wanted, "each of tenant-a's events applied once, in seq order");
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("applied {} events", wanted.len())));
    stop.cancel();
    relay.await.expect("relay ends");
    let _ = std::fs::remove_file(&out);
    if let Ok(connection) = lapin::Connection::connect(AMQP_URL, Default::default()).await {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
        }
        let _ = connection.close(200, "test done".into()).await;
    }
    broker.close().await;
    through_proxy.close().await;
}

/// Statements committed in the test's database (every session's, as far as reported).
async fn transactions(pool: &Pool) -> i64 {
    let client = pool.get().await.expect("connection");
    let sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()";
    client.query_one(sql, &[]).await.expect("database statistics").get(0)
}

/// [`transactions`] once the statistics have settled: a backend reports its transactions up to a second
/// after its last statement, and later on a busy machine. Reads until two reads 1.5 s apart differ by no
/// more than a read itself costs (the pool's check and the query: 3 measured), for 30 s at most.
async fn settled_transactions(pool: &Pool) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = transactions(pool).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = transactions(pool).await;
        if now - last <= 4 || tokio::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// An instance whose tenants emit nothing polls its empty outbox less and less often, down to once a
/// second (`Tuning::idle_poll_max`), instead of ten times a second for ever.
#[tokio::test]
async fn a_relay_over_an_empty_outbox_backs_off_to_one_poll_a_second() {
    let h = Harness::new().await;
    let broker = h.broker(None);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let metrics = Metrics::new().events;
    // The migrations' sessions report their statistics after their last statement, late on a busy machine.
    let before = settled_transactions(&h.pool).await;
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(h.deps(&broker, &metrics, Tuning::default()), stop.clone()));
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.cancel();
    relay.await.expect("relay ends");
    // The relay's session has closed: its backend reports its statistics as it exits.
    let polled = settled_transactions(&h.pool).await - before;
    // Polls after 0.1, 0.2, 0.4, 0.8, then every 1 s: about 9 in 6 s, with the lock, backlog reads and the
    // pool's checks (measured: 28 transactions); at a fixed 100 ms about 60 polls (measured: 126).
    assert!((3..=50).contains(&polled), "an idle relay committed {polled} transactions in 6 s");
    broker.close().await;
    drop(h.db);
}

//! The change-event relay (issue 17; docs/events-relay.md): publishes `change_outbox` rows to the
//! `{prefix}.changes` topic exchange with publisher confirms, and deletes each row after its confirm.
//!
//! Every instance runs one, on an Arbiter of its own; the one whose Postgres session holds the relay lock
//! ([`RelaySession`]) publishes, the others retry the lock every [`Tuning::lock_retry`]. One publisher for
//! the whole outbox, on one channel, reading in `seq` order: RabbitMQ keeps a channel's order, so every
//! object's events reach a queue in `seq` order. Any failure — a nack, a lost connection, a confirm that
//! does not come, a Postgres error — ends the pass without deleting anything unconfirmed; the next pass
//! (after a capped backoff, maybe on another instance) starts again from the oldest row left, so events
//! are re-published (same `event_id`), never skipped.
//!
//! Memory is bounded by [`Tuning::batch`] × [`Tuning::in_flight_batches`] rows whatever the backlog: a
//! batch is read only when fewer than that many wait for their confirms (and the next batch is read
//! while one is published).
//!
//! In `serve` the relay is a liveness unit ([`start_watched`]): every turn of its loops — a restart, a lock
//! attempt, a batch read, each batch settled — beats its heart, and every wait inside a turn has a
//! deadline, so only a blocked thread or a lost future silences it ([`heartbeat_deadline`]); the watchdog
//! then restarts it on a fresh Arbiter, as it does the coordinator.
//!
//! Rows commit out of `seq` order across transactions (a long batch transaction commits after a later
//! one), so a pass reads forward from a cursor only while batches come back full, and starts again from
//! the oldest row whenever it caught up (and every [`Tuning::rescan_every`] batches): a row that
//! committed late is found then. Its object's own events are all in that transaction or in ones that
//! committed before (a tenant and class has one run at a time, and a run's batches commit in order).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

use lapin::{BasicProperties, Channel, PublisherConfirm};
use tokio_util::sync::CancellationToken;

use super::liveness::{FaultPoint, Faults, Heart, Liveness, Unit};
use super::runtime::new_arbiter;
use super::Shared;
use crate::backoff::Backoff;
use crate::config::DatabaseSettings;
use crate::metrics::{EventsMetrics, RelayFailure};
use crate::queue::{Broker, QueueError};
use crate::store::outbox_relay::{self, OutboxRow, RelaySession};
use crate::store::{Pool, StoreError};

/// How the relay batches; the defaults are what docs/events-relay.md and the benchmark describe.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Rows read (and published) at a time.
    pub batch: i64,
    /// Batches published and waiting for their confirms at most.
    pub in_flight_batches: usize,
    /// Publishes handed to the channel before the first of them is written.
    pub publish_window: usize,
    /// Events per AMQP message at most (`amqp.events_per_message`): 1 sends each event document as a
    /// message of its own; above 1 messages are envelopes of consecutive events ([`EVENT_BATCH`]).
    pub per_message: usize,
    /// A caught-up relay looks for new rows again after this long (the events' extra latency)…
    pub idle_poll: Duration,
    /// …doubling the wait while the outbox stays empty, up to this: an instance whose tenants emit
    /// nothing costs Postgres one query a second, not ten.
    pub idle_poll_max: Duration,
    /// An instance without the lock tries to take it this often.
    pub lock_retry: Duration,
    /// The backlog figures are read this often (by every instance).
    pub stats_every: Duration,
    /// A pass reading a full backlog starts again from the oldest row after this many batches.
    pub rescan_every: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            batch: 5_000,
            in_flight_batches: 4,
            publish_window: 256,
            per_message: 1,
            idle_poll: Duration::from_millis(100),
            idle_poll_max: Duration::from_secs(1),
            lock_retry: Duration::from_secs(2),
            stats_every: Duration::from_secs(10),
            rescan_every: 64,
        }
    }
}

/// A batch's confirms have this long to arrive once it is the oldest in flight.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(10);
/// Opening the confirm channel.
const CHANNEL_DEADLINE: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// What the heart's deadline adds to `database.connect_timeout`: see [`heartbeat_deadline`].
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(45);

/// How long the relay's heart may be silent before the watchdog counts it wedged: `connect_timeout` + 45 s
/// (50 s by default). Every wait between two beats has a deadline, and the longest stretch without a beat
/// is one of: opening the session (`connect_timeout` + 10 s to connect, 10 s to name it); a lock attempt
/// and the confirm channel (10 s each); reading and publishing a batch (10 s each); settling one batch —
/// confirms within [`CONFIRM_DEADLINE`], the delete within 10 s — and, when that fails, closing the channel
/// (10 s): 30 s; or the backoff before the next pass ([`RETRY_MAX`]). So a slow but legitimate confirm wait
/// keeps at least 15 s (20 s by default) to spare. The deadline also exceeds the server's idle limit of
/// the relay's session (`idle_session_timeout` = `database.tcp_user_timeout_secs`, 30 s by default): by the
/// time a wedged relay is restarted the server has ended its session, and the new relay takes the lock.
pub fn heartbeat_deadline(database: &DatabaseSettings) -> Duration {
    database.connect_timeout + HEARTBEAT_MARGIN
}

/// What the relay uses.
#[derive(Clone)]
pub struct RelayDeps {
    pub database: DatabaseSettings,
    pub pool: Pool,
    pub broker: Broker,
    pub metrics: EventsMetrics,
    pub exchange: String,
    pub tuning: Tuning,
}

impl RelayDeps {
    pub fn of(shared: &Shared) -> RelayDeps {
        RelayDeps {
            database: shared.settings.database.clone(),
            pool: shared.pool.clone(),
            broker: shared.broker.clone(),
            metrics: shared.metrics.events.clone(),
            exchange: shared.broker.topology().changes_exchange(),
            tuning: Tuning { per_message: usize::from(shared.settings.amqp.events_per_message), ..Tuning::default() },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("rabbitmq refused an event (nack)")]
    Nacked,
    #[error("rabbitmq: {0}")]
    Broker(#[from] QueueError),
    #[error("postgres: {0}")]
    Store(#[from] StoreError),
}

impl RelayError {
    fn cause(&self) -> RelayFailure {
        match self {
            RelayError::Nacked => RelayFailure::Nack,
            RelayError::Broker(_) => RelayFailure::Broker,
            RelayError::Store(_) => RelayFailure::Database,
        }
    }
}

impl From<lapin::Error> for RelayError {
    fn from(error: lapin::Error) -> Self {
        RelayError::Broker(QueueError::Amqp(error))
    }
}

/// The liveness registry a watched relay beats, and the faults tests inject into it.
#[derive(Clone)]
pub struct Watch {
    pub liveness: Liveness,
    pub faults: Faults,
}

impl Watch {
    pub fn of(shared: &Shared) -> Watch {
        Watch { liveness: shared.liveness.clone(), faults: shared.faults.clone() }
    }
}

/// One turn of the relay's loops: the fault point, then a beat (an incarnation that blocks at once never
/// beats, so `/healthz` keeps naming it after its restart). Does nothing for an unwatched relay.
#[derive(Clone, Default)]
struct Pulse {
    heart: Option<Arc<Heart>>,
    faults: Option<Faults>,
}

impl Pulse {
    fn turn(&self) {
        if let Some(faults) = &self.faults {
            faults.hit(FaultPoint::RelayLoop);
        }
        if let Some(heart) = &self.heart {
            heart.beat();
        }
    }
}

/// The relay of one `serve`, on its own Arbiter.
pub struct RelayHandle {
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
    arbiter: Arbiter,
}

/// Starts the relay on an Arbiter of its own.
pub fn start(deps: RelayDeps) -> RelayHandle {
    start_with(deps, None)
}

/// [`start`], as a liveness unit: it beats a heart in `watch.liveness`, which the service's watchdog
/// watches (and restarts it by [`RelayHandle::abort`] and a new start).
pub fn start_watched(deps: RelayDeps, watch: Watch) -> RelayHandle {
    start_with(deps, Some(watch))
}

fn start_with(deps: RelayDeps, watch: Option<Watch>) -> RelayHandle {
    let (stop, arbiter) = (CancellationToken::new(), new_arbiter());
    let (finished, done) = tokio::sync::oneshot::channel();
    let theirs = stop.clone();
    let spawned = arbiter.spawn(async move {
        run_with(deps, theirs, watch).await;
        let _nobody_waits = finished.send(());
    });
    if !spawned {
        tracing::error!("cannot start the change-event relay");
    }
    RelayHandle { stop, done, arbiter }
}

impl RelayHandle {
    /// Stops after the batches in flight are confirmed and deleted (or `deadline` passes), releasing the
    /// lock so another instance takes over at once.
    pub async fn stop(self, deadline: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(deadline, self.done).await.is_err() {
            tracing::warn!(deadline_ms = deadline.as_millis() as u64, "the change-event relay stopped late; forced");
        }
        self.arbiter.stop();
    }

    /// Stops at once, as a crash would (the lock goes with the session).
    pub fn abort(self) {
        self.stop.cancel();
        self.arbiter.stop();
    }
}

/// The relay until `stop`: passes under the lock, restarted with a capped backoff after a failure or a
/// panic (a pass runs in a task of its own, whose `JoinError` is observed), and the backlog figures.
pub async fn run(deps: RelayDeps, stop: CancellationToken) {
    run_with(deps, stop, None).await;
}

async fn run_with(deps: RelayDeps, stop: CancellationToken, watch: Option<Watch>) {
    let heart = watch
        .as_ref()
        .map(|watch| Arc::new(watch.liveness.register("relay", Unit::Relay, heartbeat_deadline(&deps.database))));
    let pulse = Pulse { heart: heart.clone(), faults: watch.map(|watch| watch.faults) };
    let deps = Arc::new(deps);
    let stats = tokio::spawn(refresh_backlog(deps.clone(), stop.clone()));
    let mut backoff = Backoff::capped(RETRY_MIN, RETRY_MAX);
    while !stop.is_cancelled() {
        pulse.turn();
        let pass = tokio::spawn(hold_and_relay(deps.clone(), pulse.clone(), stop.clone())).await;
        pulse.turn();
        let wait = match pass {
            Ok(Ok(())) => {
                backoff.reset();
                continue;
            }
            Ok(Err((error, relayed))) => {
                if relayed > 0 {
                    backoff.reset();
                }
                deps.metrics.failed(error.cause());
                let wait = backoff.next_delay();
                tracing::warn!(%error, relayed, retry_in_ms = wait.as_millis() as u64, "change-event relay pass ended; resuming from the oldest unconfirmed event");
                wait
            }
            Err(error) => {
                let wait = backoff.next_delay();
                tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, "change-event relay pass panicked or was cancelled");
                wait
            }
        };
        deps.metrics.set_holder(false);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
        }
    }
    deps.metrics.set_holder(false);
    stats.abort();
    // Stopped as told: the heart leaves the registry (every pass, and its clone, has ended).
    if let Some(heart) = heart.and_then(Arc::into_inner) {
        heart.retire();
    }
}

/// One session: waits for the lock, then relays until `stop` or a failure. Returns how many events it
/// relayed with a failure, so a pass that made progress resets the backoff.
async fn hold_and_relay(deps: Arc<RelayDeps>, pulse: Pulse, stop: CancellationToken) -> Result<(), (RelayError, u64)> {
    let mut session = RelaySession::open(&deps.database).await.map_err(|e| (e.into(), 0))?;
    loop {
        if stop.is_cancelled() {
            session.close();
            return Ok(());
        }
        pulse.turn();
        if session.try_lock().await.map_err(|e| (e.into(), 0))? {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(deps.tuning.lock_retry) => {}
            () = stop.cancelled() => {}
        }
    }
    tracing::info!(exchange = %deps.exchange, "holding the change-event relay lock; relaying");
    deps.metrics.set_holder(true);
    let mut pass = Pass { deps: &deps, session: &session, pulse: &pulse, relayed: 0 };
    let outcome = pass.relay(&stop).await;
    let relayed = pass.relayed;
    deps.metrics.set_holder(false);
    session.close();
    outcome.map_err(|error| (error, relayed))
}

/// Published rows waiting for their confirms.
struct InFlight {
    seqs: Vec<i64>,
    confirms: Vec<PublisherConfirm>,
}

struct Pass<'a> {
    deps: &'a RelayDeps,
    session: &'a RelaySession,
    pulse: &'a Pulse,
    relayed: u64,
}

impl Pass<'_> {
    async fn relay(&mut self, stop: &CancellationToken) -> Result<(), RelayError> {
        let tuning = self.deps.tuning;
        let channel = open_channel(&self.deps.broker).await?;
        let outcome = self.publish_until_stopped(&channel, tuning, stop).await;
        // A failed pass abandons the channel: confirms it still owes no longer matter, the rows stay. A
        // broker that does not answer gets the channel's deadline, like every other wait of a turn.
        match tokio::time::timeout(CHANNEL_DEADLINE, channel.close(200, "relay pass ended".into())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "closing the relay channel failed"),
            Err(_) => tracing::debug!("closing the relay channel timed out"),
        }
        outcome
    }

    async fn publish_until_stopped(
        &mut self,
        channel: &Channel,
        tuning: Tuning,
        stop: &CancellationToken,
    ) -> Result<(), RelayError> {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let (mut cursor, mut forward_reads) = (0_i64, 0_u32);
        let mut idle_wait = tuning.idle_poll;
        let (session, mut ahead) = (self.session, None);
        while !stop.is_cancelled() {
            self.pulse.turn();
            if self.session.is_closed() {
                return Err(StoreError::Unavailable("the relay session ended".to_owned()).into());
            }
            let rows = match ahead.take() {
                Some(rows) => rows,
                None => session.next_batch(cursor, tuning.batch).await?,
            };
            let full = rows.len() as i64 == tuning.batch;
            let found_none = rows.is_empty();
            if let Some(last) = rows.last() {
                cursor = last.seq;
                // The next read, when it will be forward from here, runs in Postgres while this batch is
                // published (bench-events: Postgres and the relay took turns before).
                let forward = full && forward_reads + 1 < tuning.rescan_every;
                let read_ahead = async {
                    if forward {
                        Some(session.next_batch(cursor, tuning.batch).await)
                    } else {
                        None
                    }
                };
                // Writing a batch to a connection RabbitMQ stopped reading (flow control, a frozen path)
                // waits as long as a missing confirm may.
                let publishing = tokio::time::timeout(
                    CONFIRM_DEADLINE,
                    publish(channel, &self.deps.exchange, &rows, tuning.publish_window, tuning.per_message),
                );
                let (published, next) = tokio::join!(publishing, read_ahead);
                let confirms = published.map_err(|_| RelayError::Broker(QueueError::Timeout(CONFIRM_DEADLINE)))??;
                in_flight.push_back(InFlight { seqs: rows.iter().map(|r| r.seq).collect(), confirms });
                ahead = next.transpose()?;
            }
            drop(rows);
            forward_reads += 1;
            let rescan = !full || forward_reads >= tuning.rescan_every;
            while in_flight.len() > tuning.in_flight_batches || (rescan && !in_flight.is_empty()) {
                if let Some(batch) = in_flight.pop_front() {
                    self.settle(batch).await?;
                }
            }
            if rescan {
                (cursor, forward_reads) = (0, 0);
            }
            if cursor == 0 && !full {
                idle_wait = if found_none { idle_wait } else { tuning.idle_poll };
                tokio::select! {
                    () = tokio::time::sleep(idle_wait) => {}
                    () = stop.cancelled() => {}
                }
                if found_none {
                    idle_wait = (idle_wait * 2).min(tuning.idle_poll_max.max(tuning.idle_poll));
                }
            }
        }
        // Stopping: what is published is settled, so the next holder does not send it again.
        while let Some(batch) = in_flight.pop_front() {
            self.settle(batch).await?;
        }
        Ok(())
    }

    /// Waits for a batch's confirms (in publish order), then deletes its rows. A turn of its own: a pass
    /// settling several batches in a row beats between them.
    async fn settle(&mut self, batch: InFlight) -> Result<(), RelayError> {
        self.pulse.turn();
        let confirmed = async {
            for confirm in batch.confirms {
                if !confirm.await?.is_ack() {
                    return Err(RelayError::Nacked);
                }
            }
            Ok(())
        };
        tokio::time::timeout(CONFIRM_DEADLINE, confirmed)
            .await
            .map_err(|_| RelayError::Broker(QueueError::Timeout(CONFIRM_DEADLINE)))??;
        self.session.delete(&batch.seqs).await?;
        let events = batch.seqs.len() as u64;
        self.relayed += events;
        self.deps.metrics.relayed(events);
        Ok(())
    }
}

async fn open_channel(broker: &Broker) -> Result<Channel, RelayError> {
    let open = async {
        let connection = broker.connection(CHANNEL_DEADLINE).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok::<_, RelayError>(channel)
    };
    tokio::time::timeout(CHANNEL_DEADLINE, open).await.map_err(|_| QueueError::Timeout(CHANNEL_DEADLINE))?
}

/// Publishes `rows` in order and returns their confirms, in the same order. Up to `window` publishes
/// are handed to the channel before the first is written: each publish queues its frames when first
/// polled, and [`FuturesOrdered`] polls them first in the order pushed, so the channel carries them in `seq`
/// order without a round trip per event.
async fn publish(
    channel: &Channel,
    exchange: &str,
    rows: &[OutboxRow],
    window: usize,
    per_message: usize,
) -> Result<Vec<PublisherConfirm>, RelayError> {
    let messages = messages(rows, per_message);
    let mut pending = FuturesOrdered::new();
    let mut confirms = Vec::with_capacity(messages.len());
    for message in &messages {
        pending.push_back(publish_one(channel, exchange, message));
        if pending.len() >= window.max(1) {
            if let Some(confirm) = pending.next().await {
                confirms.push(confirm?);
            }
        }
    }
    while let Some(confirm) = pending.next().await {
        confirms.push(confirm?);
    }
    Ok(confirms)
}

/// One AMQP message: a single event document, or an envelope of consecutive events.
struct Outgoing<'a> {
    routing_key: &'a str,
    message_id: String,
    body: std::borrow::Cow<'a, [u8]>,
    /// The AMQP `type`: [`ONE_EVENT`] or [`EVENT_BATCH`].
    kind: &'static str,
}

/// The AMQP `type` of a message that is one event document.
pub const ONE_EVENT: &str = "entrasync.event";
/// The AMQP `type` of a message that is an envelope `{"events":[…]}` of events in `seq` order.
pub const EVENT_BATCH: &str = "entrasync.events";

/// With `per_message` 1, one message per event (the document itself). Above 1, every message is an
/// envelope `{"events":[…]}` of up to `per_message` consecutive rows with the same routing key, so
/// topic bindings still select exactly, `seq` order holds within and across messages, and RabbitMQ's
/// cost per message (most of the relay's CPU: docs/events-relay.md) is shared by the events.
fn messages(rows: &[OutboxRow], per_message: usize) -> Vec<Outgoing<'_>> {
    if per_message <= 1 {
        return rows
            .iter()
            .map(|row| Outgoing {
                routing_key: &row.routing_key,
                message_id: row.event_id.to_string(),
                body: std::borrow::Cow::Borrowed(&row.body),
                kind: ONE_EVENT,
            })
            .collect();
    }
    let mut messages = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let key = &rows[start].routing_key;
        let mut end = start + 1;
        while end < rows.len() && end - start < per_message && rows[end].routing_key == *key {
            end += 1;
        }
        let group = &rows[start..end];
        let mut body = Vec::with_capacity(group.iter().map(|r| r.body.len() + 1).sum::<usize>() + 12);
        body.extend_from_slice(b"{\"events\":[");
        for (index, row) in group.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&row.body);
        }
        body.extend_from_slice(b"]}");
        messages.push(Outgoing {
            routing_key: key,
            message_id: group[0].event_id.to_string(),
            body: std::borrow::Cow::Owned(body),
            kind: EVENT_BATCH,
        });
        start = end;
    }
    messages
}

async fn publish_one(
    channel: &Channel,
    exchange: &str,
    message: &Outgoing<'_>,
) -> Result<PublisherConfirm, lapin::Error> {
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message.message_id.as_str().into())
        .with_type(message.kind.into())
        .with_app_id("entrasync".into());
    channel
        .basic_publish(
            exchange.into(),
            message.routing_key.into(),
            BasicPublishOptions::default(),
            &message.body,
            properties,
        )
        .await
}

/// Reads the outbox's backlog into the metrics every [`Tuning::stats_every`], on every instance.
async fn refresh_backlog(deps: Arc<RelayDeps>, stop: CancellationToken) {
    loop {
        match outbox_relay::backlog(&deps.pool).await {
            Ok(backlog) => deps.metrics.set_backlog(backlog.rows, backlog.oldest_age_seconds, backlog.bytes),
            Err(error) => {
                tracing::debug!(%error, "cannot read the outbox backlog");
                deps.metrics.clear_backlog();
            }
        }
        tokio::select! {
            () = tokio::time::sleep(deps.tuning.stats_every) => {}
            () = stop.cancelled() => return,
        }
    }
}

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
//! batch is read only when fewer than that many wait for their confirms.
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
    /// A caught-up relay looks for new rows this often (the events' extra latency).
    pub idle_poll: Duration,
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

/// The relay of one `serve`, on its own Arbiter.
pub struct RelayHandle {
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
    arbiter: Arbiter,
}

/// Starts the relay on an Arbiter of its own.
pub fn start(deps: RelayDeps) -> RelayHandle {
    let (stop, arbiter) = (CancellationToken::new(), new_arbiter());
    let (finished, done) = tokio::sync::oneshot::channel();
    let theirs = stop.clone();
    let spawned = arbiter.spawn(async move {
        run(deps, theirs).await;
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
    let deps = Arc::new(deps);
    let stats = tokio::spawn(refresh_backlog(deps.clone(), stop.clone()));
    let mut backoff = Backoff::capped(RETRY_MIN, RETRY_MAX);
    while !stop.is_cancelled() {
        let pass = tokio::spawn(hold_and_relay(deps.clone(), stop.clone()));
        let wait = match pass.await {
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
}

/// One session: waits for the lock, then relays until `stop` or a failure. Returns how many events it
/// relayed with a failure, so a pass that made progress resets the backoff.
async fn hold_and_relay(deps: Arc<RelayDeps>, stop: CancellationToken) -> Result<(), (RelayError, u64)> {
    let mut session = RelaySession::open(&deps.database).await.map_err(|e| (e.into(), 0))?;
    loop {
        if stop.is_cancelled() {
            session.close();
            return Ok(());
        }
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
    let mut pass = Pass { deps: &deps, session: &session, relayed: 0 };
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
    relayed: u64,
}

impl Pass<'_> {
    async fn relay(&mut self, stop: &CancellationToken) -> Result<(), RelayError> {
        let tuning = self.deps.tuning;
        let channel = open_channel(&self.deps.broker).await?;
        let outcome = self.publish_until_stopped(&channel, tuning, stop).await;
        // A failed pass abandons the channel: confirms it still owes no longer matter, the rows stay.
        if let Err(error) = channel.close(200, "relay pass ended".into()).await {
            tracing::debug!(%error, "closing the relay channel failed");
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
        while !stop.is_cancelled() {
            if self.session.is_closed() {
                return Err(StoreError::Unavailable("the relay session ended".to_owned()).into());
            }
            let rows = self.session.next_batch(cursor, tuning.batch).await?;
            let full = rows.len() as i64 == tuning.batch;
            if let Some(last) = rows.last() {
                cursor = last.seq;
                let confirms =
                    publish(channel, &self.deps.exchange, &rows, tuning.publish_window, tuning.per_message).await?;
                in_flight.push_back(InFlight { seqs: rows.iter().map(|r| r.seq).collect(), confirms });
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
                tokio::select! {
                    () = tokio::time::sleep(tuning.idle_poll) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
        // Stopping: what is published is settled, so the next holder does not send it again.
        while let Some(batch) = in_flight.pop_front() {
            self.settle(batch).await?;
        }
        Ok(())
    }

    /// Waits for a batch's confirms (in publish order), then deletes its rows.
    async fn settle(&mut self, batch: InFlight) -> Result<(), RelayError> {
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

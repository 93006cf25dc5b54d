//! Sync workers: each consumes one class queue on its own Arbiter and runs the sync rounds its jobs ask
//! for. The first worker of an instance also consumes the permission checks and tag syncs
//! (`{prefix}.checks`): they are few, so one consumer per instance is enough. The actor owns only its consume loops'
//! lifecycle; the work is in `consume`, `job` and `permission_check`. Each consume loop beats a heart;
//! the service's watchdog restarts the whole worker (a fresh Arbiter) when one dies or stops beating.

mod consume;
mod credentials;
pub mod dead_letter;
mod job;
pub mod metered;
mod permission_check;
mod remap;
mod tag_sync;
mod tenant_size;

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use actix_rt::task::JoinHandle;
use consume::Feed;
use tokio_util::sync::CancellationToken;

use super::liveness::Unit;
use super::recorder::RecorderHandle;
use super::Shared;
use crate::graph::GraphClient;
use crate::model::ObjectClass;
use crate::schedule::FailurePolicy;
use crate::store::secret_box::SecretBox;

pub use crate::access::{graph_tenant, AccessError};
pub use job::Settlement;

/// What every worker of an instance shares.
pub struct WorkerDeps {
    pub shared: Shared,
    pub graph: GraphClient,
    pub recorder: RecorderHandle,
    /// `None` when ENTRASYNC_SECRETS_KEY is not set: tenants then fail with a clear error.
    pub secrets: Option<SecretBox>,
    pub dead_letters: dead_letter::DeadLetters,
    pub failures: FailurePolicy,
}

/// The channels a worker's consume loops consume on now (one place per loop). The watchdog closes them
/// when it replaces the worker: if its thread is blocked nothing else would, and the broker redelivers the
/// jobs it held only once their channel closes.
#[derive(Clone, Default)]
pub struct Channels(Arc<Mutex<Vec<Option<lapin::Channel>>>>);

impl Channels {
    fn places(&self) -> std::sync::MutexGuard<'_, Vec<Option<lapin::Channel>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loop `place` consumes on `channel` now (or on none).
    pub(crate) fn set(&self, place: usize, channel: Option<lapin::Channel>) {
        let mut places = self.places();
        if places.len() <= place {
            places.resize(place + 1, None);
        }
        places[place] = channel;
    }

    /// Closes every channel recorded; their unacknowledged deliveries go back to the queue.
    pub fn close_all(&self) {
        let channels: Vec<lapin::Channel> = self.places().drain(..).flatten().collect();
        for channel in channels {
            actix_rt::spawn(async move {
                if let Err(error) = channel.close(200, "worker replaced by the watchdog".into()).await {
                    tracing::debug!(%error, "closing a replaced worker's channel failed");
                }
            });
        }
    }
}

pub struct SyncWorker {
    deps: Arc<WorkerDeps>,
    channels: Channels,
    feeds: Vec<Feed>,
    instance: String,
    index: usize,
    /// This worker's place in the service's list: what the watchdog restarts when a loop is wedged.
    slot: usize,
    stop: CancellationToken,
    consuming: Vec<JoinHandle<()>>,
}

impl SyncWorker {
    pub fn new(deps: Arc<WorkerDeps>, class: ObjectClass, index: usize, slot: usize, channels: Channels) -> Self {
        let mut feeds = vec![Feed::Sync(class)];
        if class == ObjectClass::ALL[0] && index == 0 {
            feeds.push(Feed::Checks);
        }
        let instance = deps.shared.settings.instance_id.clone();
        SyncWorker {
            deps,
            channels,
            feeds,
            instance,
            index,
            slot,
            stop: CancellationToken::new(),
            consuming: Vec::new(),
        }
    }
}

impl Actor for SyncWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4);
        for (place, feed) in self.feeds.iter().enumerate() {
            let tag = format!("{}-{feed}-{}", self.instance, self.index);
            let heart = self.deps.shared.liveness.register(
                format!("consumer {feed} #{}", self.index),
                Unit::Worker(self.slot),
                consume::HEARTBEAT_DEADLINE,
            );
            let channel = (self.channels.clone(), place);
            let task = consume::consume_loop(self.deps.clone(), *feed, tag, heart, channel, self.stop.clone());
            self.consuming.push(actix_rt::spawn(task));
        }
    }
}

/// Stop consuming, let running rounds checkpoint and requeue their jobs; answers when all are settled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for SyncWorker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.stop.cancel();
        let consuming = std::mem::take(&mut self.consuming);
        Box::pin(async move {
            for task in consuming {
                if let Err(error) = task.await {
                    tracing::warn!(%error, "the consume loop ended abnormally");
                }
            }
        })
    }
}

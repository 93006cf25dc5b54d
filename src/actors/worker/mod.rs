//! Sync workers: each consumes one class queue on its own Arbiter and runs the sync rounds its jobs ask
//! for. The actor owns only its consume loop's lifecycle; the work is in `consume` and `job`.

mod consume;
pub mod dead_letter;
mod job;
pub mod metered;

use std::sync::Arc;

use actix::prelude::*;
use actix_rt::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

pub struct SyncWorker {
    deps: Arc<WorkerDeps>,
    class: ObjectClass,
    tag: String,
    stop: CancellationToken,
    consuming: Option<JoinHandle<()>>,
}

impl SyncWorker {
    pub fn new(deps: Arc<WorkerDeps>, class: ObjectClass, index: usize) -> Self {
        let tag = format!("{}-{class}-{index}", deps.shared.settings.instance_id);
        SyncWorker { deps, class, tag, stop: CancellationToken::new(), consuming: None }
    }
}

impl Actor for SyncWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4);
        let task = consume::consume_loop(self.deps.clone(), self.class, self.tag.clone(), self.stop.clone());
        self.consuming = Some(actix_rt::spawn(task));
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
        let consuming = self.consuming.take();
        Box::pin(async move {
            if let Some(task) = consuming {
                if let Err(error) = task.await {
                    tracing::warn!(%error, "the consume loop ended abnormally");
                }
            }
        })
    }
}

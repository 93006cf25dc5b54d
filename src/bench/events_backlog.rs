//! The stopped consumer's backlog for `entrasync bench-events --rounds`: `events` events published
//! straight into its durable queue (default exchange), in messages of `per_message` events as the relay
//! would send them (an `updated` user of ~780 bytes, as `bench-events` fills the outbox), persistent and
//! confirmed. Faster than relaying them from an outbox, and the same to RabbitMQ: it stores messages and
//! bytes, whatever produced them.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection};
use serde_json::json;
use uuid::Uuid;

use crate::actors::relay::{EVENT_BATCH, ONE_EVENT};

/// Publishes handed to the channel before the oldest confirm is awaited.
const WINDOW: usize = 512;

/// One event document of the size `bench-events` relays.
fn event(n: u64) -> serde_json::Value {
    let object = Uuid::new_v4();
    json!({
        "schema_version": 1, "event_id": Uuid::new_v4(), "tenant": "00000000-0000-4000-8000-000000000001",
        "tenant_id": 1, "class": "user", "kind": "updated", "object_id": object,
        "run_id": "11111111-0000-4000-8000-000000000001", "occurred_at": "2026-12-06T20:03:50.504516Z",
        "changed": ["displayName", "jobTitle"], "seq": n,
        "object": {"attrs": {
            "id": object, "displayName": format!("Bench User {n}"), "givenName": "Bench",
            "surname": format!("User {n}"), "userPrincipalName": format!("bench.user{n}@contoso.example"),
            "mail": format!("bench.user{n}@contoso.example"), "jobTitle": format!("Engineer grade {}", n % 7),
            "department": format!("Department {}", n % 40), "officeLocation": format!("Building {}", n % 12),
            "accountEnabled": true, "usageLocation": "DE"}, "mapped": null}
    })
}

/// One message body of `per_message` events (an envelope above 1, as the relay's).
fn body(first: u64, per_message: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..per_message as u64).map(|i| event(first + i)).collect();
    let value =
        if per_message <= 1 { events.into_iter().next().unwrap_or_default() } else { json!({ "events": events }) };
    value.to_string().into_bytes()
}

/// What the backlog took.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Backlog {
    pub events: u64,
    pub messages: u64,
    pub bytes: u64,
    pub publish_s: f64,
}

/// Publishes `events` events into `queue`, `per_message` per message; waits for every confirm.
pub async fn publish(connection: &Connection, queue: &str, events: u64, per_message: usize) -> anyhow::Result<Backlog> {
    let per_message = per_message.max(1);
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let kind = if per_message <= 1 { ONE_EVENT } else { EVENT_BATCH };
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(kind.into())
        .with_app_id("entrasync".into());
    // A handful of distinct bodies, reused: building ~780 bytes of JSON per event would cost more than
    // RabbitMQ's part, which is what this fills.
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| body(i * per_message as u64, per_message)).collect();
    let messages = events.div_ceil(per_message as u64);
    let started = Instant::now();
    let (mut pending, mut bytes) = (FuturesOrdered::new(), 0_u64);
    for index in 0..messages {
        let body = &bodies[(index % bodies.len() as u64) as usize];
        bytes += body.len() as u64;
        let publish = channel.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties.clone().with_message_id(Uuid::new_v4().to_string().into()),
        );
        pending.push_back(async move { publish.await?.await });
        if pending.len() >= WINDOW {
            confirmed(pending.next().await)?;
        }
    }
    while let Some(confirm) = pending.next().await {
        confirmed(Some(confirm))?;
    }
    tokio::time::timeout(Duration::from_secs(10), channel.close(200, "backlog published".into()))
        .await
        .context("closing the backlog channel")??;
    Ok(Backlog { events, messages, bytes, publish_s: started.elapsed().as_secs_f64() })
}

fn confirmed(confirm: Option<Result<lapin::Confirmation, lapin::Error>>) -> anyhow::Result<()> {
    match confirm {
        Some(Ok(confirmation)) if confirmation.is_ack() => Ok(()),
        Some(Ok(_)) => anyhow::bail!("RabbitMQ refused a backlog message (nack)"),
        Some(Err(error)) => Err(error).context("publishing the backlog"),
        None => Ok(()),
    }
}

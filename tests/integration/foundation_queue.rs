//! RabbitMQ topology, confirmed publishing and manual-ack consuming against a real broker.

use std::time::Duration;

use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::{Broker, SyncJob};
use lapin::options::{BasicAckOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::support::{settings_with, TestAmqp, AMQP_URL};

fn broker(amqp: &TestAmqp) -> Broker {
    Broker::start(&settings_with(&[("ENTRASYNC_AMQP_PREFIX", &amqp.prefix)]).amqp)
}

#[tokio::test]
async fn topology_declares_twice() {
    let amqp = TestAmqp::new();
    let broker = broker(&amqp);
    let conn = broker.connection(Duration::from_secs(10)).await.expect("connected (declared once)");
    let channel = conn.create_channel().await.expect("channel");
    broker.topology().declare(&channel).await.expect("declaring again is idempotent");

    // The class queues really are quorum queues bound to the jobs exchange: a passive declare succeeds.
    for class in ObjectClass::ALL {
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        channel
            .queue_declare(broker.topology().class_queue(class).into(), passive, FieldTable::default())
            .await
            .expect("queue exists");
    }
    broker.close().await;
}

#[tokio::test]
async fn a_published_job_is_confirmed_and_consumed() {
    let amqp = TestAmqp::new();
    let broker = broker(&amqp);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let job = SyncJob::new(uuid::Uuid::new_v4(), ObjectClass::Device, SyncMode::Full, Trigger::Manual);
    broker.publish(&job).await.expect("confirmed by the broker");

    let mut consumer = broker.consume(ObjectClass::Device, "test").await.expect("consumer");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next_delivery())
        .await
        .expect("delivered in time")
        .expect("stream open")
        .expect("delivery");
    assert_eq!(
        SyncJob::from_bytes(&delivery.data).expect("valid job"),
        job,
        "expected the device queue to deliver exactly the published job"
    );
    delivery.ack(BasicAckOptions::default()).await.expect("ack");

    // Nothing went to another class's queue.
    let conn = lapin::Connection::connect(AMQP_URL, Default::default()).await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let users = channel
        .queue_declare(broker.topology().class_queue(ObjectClass::User).into(), passive, FieldTable::default())
        .await
        .expect("queue");
    assert_eq!(users.message_count(), 0, "expected nothing in the user queue: the job was routed by its class");
    broker.close().await;
}

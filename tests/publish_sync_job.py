#!/usr/bin/env python3
"""Publishes one entrasync SyncJob with a stock AMQP client (pika), as docs/queue.md describes.

Usage: publish_sync_job.py AMQP_URL PREFIX TENANT_ID CLASS MODE
Exits 0 once the broker confirmed the message.
"""
import json
import sys
import uuid

import pika


def main() -> int:
    url, prefix, tenant, object_class, mode = sys.argv[1:6]
    job = {
        "schema_version": 1,
        "job_id": str(uuid.uuid4()),
        "tenant": tenant,
        "object_class": object_class,
        "mode": mode,
        "trigger": "queue",
    }
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        exchange=f"{prefix}.jobs",
        routing_key=f"sync.{object_class}",
        body=json.dumps(job).encode(),
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
        mandatory=True,
    )
    connection.close()
    print(job["job_id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

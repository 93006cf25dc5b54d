#!/usr/bin/env python3
"""Consumes entrasync change events (docs/events.md) with a stock AMQP client, pika.

It declares its own durable queue, binds it to the `<prefix>.changes` topic exchange with the routing
patterns it wants, unwraps envelopes (a message carries up to 100 events by default), acknowledges
each message only after applying its events, skips events it has already applied
(the same `event_id` can arrive twice: delivery is at least once) and keeps, per object and per
membership, the state of the event with the highest `seq` (events of one object arrive in `seq` order;
after a redelivery an older one can arrive again and is then ignored).

    pip install pika
    python3 consume_changes.py --url amqp://guest:guest@localhost:5672/%2f \
        --queue inventory.changes --bind '*.user.*' --bind '*.group.*'

Create the queue (run this once) before switching events on for a tenant: RabbitMQ drops events that
no queue is bound for. A real consumer keeps its state, and the event ids it applied, in its own
database, updated in the same transaction as the effect of the event; this one keeps them in memory
and can write each applied event as a JSON line (--out) for inspection.
"""
import argparse
import json
import sys
import time

import pika


class Directory:
    """The directory as the events describe it: objects and memberships, each with the seq that set it."""

    def __init__(self):
        self.applied = set()  # event ids already applied (a real consumer bounds this, e.g. by age)
        self.objects = {}  # (tenant, class, object id) -> (seq, state dict, or None once deleted)
        self.members = {}  # (tenant, group id, member id) -> (seq, present)

    def apply(self, event):
        """Applies one event; False when it was a duplicate."""
        if event["event_id"] in self.applied:
            return False
        self.applied.add(event["event_id"])
        seq, kind, tenant = event["seq"], event["kind"], event["tenant"]
        if kind in ("member_added", "member_removed"):
            key = (tenant, event["object_id"], event["member"]["id"])
            if self.members.get(key, (0, False))[0] < seq:
                self.members[key] = (seq, kind == "member_added")
            return True
        if kind == "snapshot":
            # The first round of a class was not sent object by object: read the store (the API) now.
            print(f"snapshot of {tenant} {event['class']}: {event['snapshot']}", file=sys.stderr)
            return True
        key = (tenant, event["class"], event["object_id"])
        last_seq, state = self.objects.get(key, (0, None))
        if last_seq >= seq:
            return True  # superseded by a later event of the same object
        if kind in ("created", "updated", "restored"):
            state = {"attrs": event["object"]["attrs"], "mapped": event["object"]["mapped"], "deleted": False}
        elif kind == "soft_deleted":
            state = dict(state or {"attrs": {}, "mapped": None}, deleted=True)
        elif kind == "deleted":
            state = None
        self.objects[key] = (seq, state)
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2f", help="RabbitMQ URL")
    parser.add_argument("--prefix", default="entrasync", help="entrasync's amqp.prefix")
    parser.add_argument("--queue", default="inventory.changes", help="this consumer's own queue")
    parser.add_argument("--bind", action="append", help="routing pattern, repeatable (default '#': everything)")
    parser.add_argument("--max-events", type=int, default=0, help="stop after this many new events (0: never)")
    parser.add_argument("--idle-exit", type=float, default=0, help="stop after this many idle seconds (0: never)")
    parser.add_argument("--out", help="append each applied event to this file as a JSON line")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    exchange = f"{args.prefix}.changes"
    # The same arguments entrasync declares it with, so this is a no-op when it exists.
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    # A quorum queue survives a broker restart with its messages. The length limit bounds what a stopped
    # consumer leaves behind; reject-publish makes entrasync keep the rest in its outbox instead of
    # losing it (docs/events.md, "Backlog and alert").
    channel.queue_declare(
        queue=args.queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length-bytes": 2 * 1024**3, "x-overflow": "reject-publish"},
    )
    for pattern in args.bind or ["#"]:
        channel.queue_bind(queue=args.queue, exchange=exchange, routing_key=pattern)
    channel.basic_qos(prefetch_count=200)

    directory = Directory()
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    new_events, last_event = 0, time.monotonic()
    for method, properties, body in channel.consume(args.queue, inactivity_timeout=0.5):
        if method is None:
            if args.idle_exit and time.monotonic() - last_event > args.idle_exit:
                break
            continue
        last_event = time.monotonic()
        document = json.loads(body)
        # A message is an envelope of consecutive events (amqp.events_per_message, 100 by default), or
        # one event when that setting is 1: the AMQP type says which.
        events = document["events"] if properties.type == "entrasync.events" else [document]
        for event in events:
            if directory.apply(event):
                new_events += 1
                if out:
                    out.write(json.dumps(event) + "\n")
                    out.flush()
        # Acknowledged after the event took effect: a crash before this redelivers it.
        channel.basic_ack(delivery_tag=method.delivery_tag)
        if args.max_events and new_events >= args.max_events:
            break
    channel.cancel()
    connection.close()
    live = sum(1 for _, state in directory.objects.values() if state and not state["deleted"])
    members = sum(1 for _, present in directory.members.values() if present)
    print(f"applied {new_events} events: {live} live objects, {members} memberships", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

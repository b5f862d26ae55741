"""Moves a dead-letter queue's messages back to the queue they came from, once their cause is fixed.

A worker parks a message it cannot handle (or SQS moves one that failed five times) in its
queue's dead-letter queue, kept 14 days and alarmed on depth. After the fix (a grant, a bug, a
downstream outage), this sends them back: SQS's own redrive (`StartMessageMoveTask`, then polled
to its end; each message goes back to the queue it came from, which matters for the realtime
dead-letter queue, shared by the realtime and presence queues) where the service has it, else the
same done here (the local emulator lacks it): receive up to 10, send them to the work queue with
their bodies and message attributes, delete what was sent. The copy moves at most the number of
messages the dead-letter queue held when it began: a message that fails again at once (a worker
parks a message it cannot parse straight back) is not moved round in a loop. The workers are
idempotent, so a message sent back twice (the copy interrupted between send and delete) has its
effects once; the broadcaster takes presence notices from either queue.

    python infra/redrive.py activity --stack episodes [--region eu-west-1]
    python infra/redrive.py activity --local           # the local stack (.local/stack.json)
    make redrive QUEUE=activity                        # the same, on the local stack

QUEUE is one of: activity, notifications, realtime, files, jobs. The relay's dead-letter queue
holds the positions of stream batches the relay gave up on, not events: their events are still in
the events table, to be sent again from there, which this does not do.

Prints one JSON line: the queue, how the messages were moved, and how many; exits 1 if any
message could not be moved (it stays in the dead-letter queue, for the next run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

# The template's logical ids: work queue -> its dead-letter queue.
QUEUES = {
    "activity": ("ActivityQueue", "ActivityDeadLetterQueue"),
    "notifications": ("NotificationsQueue", "NotificationsDeadLetterQueue"),
    "realtime": ("RealtimeQueue", "RealtimeDeadLetterQueue"),
    "files": ("FilesQueue", "FilesDeadLetterQueue"),
    "jobs": ("JobsQueue", "JobsDeadLetterQueue"),
}


def queue_url(cfn, stack: str, logical_id: str) -> str:
    out = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    return out["StackResourceDetail"]["PhysicalResourceId"]


def arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


# SendMessageBatch refuses more than 256 KiB in all (a realtime message may be near 200 KB).
BATCH_BYTES = 256 * 1024 - 4096


def move_task(sqs, dlq_arn: str) -> int | None:
    """SQS's redrive (each message back to its source queue), polled until it ends: how many it
    moved, or None where there is none."""
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("InvalidAction", "UnsupportedOperation", "UnknownOperationException"):
            return None
        raise
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)["Results"]
        if task["Status"] in ("COMPLETED", "CANCELLED", "FAILED"):
            if task["Status"] != "COMPLETED":
                raise SystemExit(f"the move task ended {task['Status']}: {task.get('FailureReason', '')}")
            return int(task.get("ApproximateNumberOfMessagesMoved", 0))
        time.sleep(2)


def batches(messages: list[dict]) -> list[list[tuple[int, dict]]]:
    """The messages (with their index) in send batches under SQS's request size."""
    out: list[list[tuple[int, dict]]] = []
    size = 0
    for i, m in enumerate(messages):
        n = len(m["Body"].encode()) + sum(len(k) + len(str(v)) for k, v in m.get("MessageAttributes", {}).items())
        if not out or size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append((i, m))
        size += n
    return out


def copy_back(sqs, dlq_url: str, source_url: str) -> tuple[int, int]:
    """Receive, send to the source, delete what was sent; at most what the dead-letter queue held
    at the start. Returns (moved, not moved)."""
    held = int(sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])
    moved = failed = 0
    while moved + failed < held:
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=min(10, held - moved - failed),
                                  WaitTimeSeconds=1, VisibilityTimeout=60, MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            break
        for batch in batches(messages):
            entries = [{"Id": str(i), "MessageBody": m["Body"],
                        **({"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {})}
                       for i, m in batch]
            sent = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
            if sent.get("Failed"):
                # Left in the dead-letter queue (visible again in 60 s) for the next run.
                print(json.dumps({"not_sent": sent["Failed"]}), file=sys.stderr)
                failed += len(sent["Failed"])
            done = [{"Id": e["Id"], "ReceiptHandle": messages[int(e["Id"])]["ReceiptHandle"]}
                    for e in sent.get("Successful", [])]
            if done:
                deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
                if deleted.get("Failed"):
                    # Sent and still parked: the next run sends them again (the workers are idempotent).
                    print(json.dumps({"not_deleted": deleted["Failed"]}), file=sys.stderr)
                    failed += len(deleted["Failed"])
                moved += len(done) - len(deleted.get("Failed", []))
    return moved, failed


def redrive(cfn, sqs, stack: str, queue: str) -> dict:
    source_id, dlq_id = QUEUES[queue]
    source_url, dlq_url = queue_url(cfn, stack, source_id), queue_url(cfn, stack, dlq_id)
    moved = move_task(sqs, arn(sqs, dlq_url))
    if moved is not None:
        return {"queue": queue, "by": "StartMessageMoveTask", "moved": moved, "not_moved": 0}
    moved, failed = copy_back(sqs, dlq_url, source_url)
    return {"queue": queue, "by": "copy", "moved": moved, "not_moved": failed}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("queue", choices=sorted(QUEUES))
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the CloudFormation stack's name")
    where.add_argument("--local", action="store_true", help="the local stack of .local/stack.json")
    p.add_argument("--region")
    args = p.parse_args(argv)
    if args.local:
        local = json.loads((Path(__file__).resolve().parents[1] / ".local" / "stack.json").read_text())
        kw = {"endpoint_url": local["aws_endpoint"], "region_name": local["region"],
              "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        stack = local["stack_name"]
    else:
        kw, stack = {"region_name": args.region}, args.stack
    report = redrive(boto3.client("cloudformation", **kw), boto3.client("sqs", **kw), stack, args.queue)
    print(json.dumps(report))
    return 1 if report["not_moved"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

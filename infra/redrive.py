"""Moves a dead-letter queue's messages back to the queue they came from, once their cause is fixed.

A worker parks a message it cannot handle (or SQS moves one that failed five times) in its
queue's dead-letter queue, kept 14 days and alarmed on depth. After the fix (a grant, a bug, a
downstream outage), this sends them back: SQS's own redrive (`StartMessageMoveTask`, then polled
to its end) where the service has it, else the same done here (the local emulator lacks it):
receive up to 10, send them to the source queue with their bodies and message attributes, delete
what was sent, until the dead-letter queue is empty. The workers are idempotent, so a message sent
back twice (the copy interrupted between send and delete) has its effects once.

    python infra/redrive.py activity --stack episodes [--region eu-west-1]
    python infra/redrive.py activity --local           # the local stack (.local/stack.json)
    make redrive QUEUE=activity                        # the same, on the local stack

QUEUE is one of: activity, notifications, realtime, files, jobs. The relay's dead-letter queue
holds the positions of stream batches the relay gave up on, not events: their events are still in
the events table, to be sent again from there, which this does not do.

Prints one JSON line: the queue, how the messages were moved, and how many.
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


def move_task(sqs, dlq_arn: str, source_arn: str) -> int | None:
    """SQS's redrive, polled until it ends: how many it moved, or None where there is none."""
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
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


def copy_back(sqs, dlq_url: str, source_url: str) -> int:
    """Receive, send to the source, delete what was sent; until a receive finds nothing."""
    moved = 0
    while True:
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  VisibilityTimeout=60, MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return moved
        entries = [{"Id": str(i), "MessageBody": m["Body"],
                    **({"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {})}
                   for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
        if sent.get("Failed"):
            # Left in the dead-letter queue (visible again in 60 s); the next run takes them.
            print(json.dumps({"not_sent": sent["Failed"]}), file=sys.stderr)
        done = [{"Id": e["Id"], "ReceiptHandle": messages[int(e["Id"])]["ReceiptHandle"]} for e in sent.get("Successful", [])]
        if done:
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
        moved += len(done)
        if not done:
            return moved


def redrive(cfn, sqs, stack: str, queue: str) -> dict:
    source_id, dlq_id = QUEUES[queue]
    source_url, dlq_url = queue_url(cfn, stack, source_id), queue_url(cfn, stack, dlq_id)
    moved = move_task(sqs, arn(sqs, dlq_url), arn(sqs, source_url))
    if moved is not None:
        return {"queue": queue, "by": "StartMessageMoveTask", "moved": moved}
    return {"queue": queue, "by": "copy", "moved": copy_back(sqs, dlq_url, source_url)}


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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What the emulator cannot show of `infra/redrive.py`: on AWS it uses SQS's own redrive
(`StartMessageMoveTask` from the dead-letter queue to its source queue, polled until it ends),
which ministack lacks. Pinned here with botocore's Stubber: the calls and their parameters as
AWS documents them, in order."""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra"))
import redrive  # noqa: E402

SOURCE = "https://sqs.eu-west-1.amazonaws.com/123456789012/episodes-ActivityQueue-X"
DLQ = "https://sqs.eu-west-1.amazonaws.com/123456789012/episodes-ActivityDeadLetterQueue-Y"
DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:episodes-ActivityDeadLetterQueue-Y"


def clients():
    kw = {"region_name": "eu-west-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    cfn, sqs = boto3.client("cloudformation", **kw), boto3.client("sqs", **kw)
    cfn_stub, sqs_stub = Stubber(cfn), Stubber(sqs)
    for logical, url in (("ActivityQueue", SOURCE), ("ActivityDeadLetterQueue", DLQ)):
        cfn_stub.add_response("describe_stack_resource", {"StackResourceDetail": {
            "LogicalResourceId": logical, "PhysicalResourceId": url, "ResourceType": "AWS::SQS::Queue",
            "LastUpdatedTimestamp": "2026-12-01T00:00:00Z", "ResourceStatus": "CREATE_COMPLETE"}},
            {"StackName": "episodes", "LogicalResourceId": logical})
    sqs_stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": DLQ_ARN}},
                          {"QueueUrl": DLQ, "AttributeNames": ["QueueArn"]})
    return cfn, sqs, cfn_stub, sqs_stub


def test_on_aws_the_dead_letters_go_back_by_sqs_own_redrive(monkeypatch):
    monkeypatch.setattr(redrive.time, "sleep", lambda _: None)
    cfn, sqs, cfn_stub, sqs_stub = clients()
    # No DestinationArn: each message goes back to the queue it came from (the realtime
    # dead-letter queue serves two).
    sqs_stub.add_response("start_message_move_task", {"TaskHandle": "h"}, {"SourceArn": DLQ_ARN})
    running = {"Results": [{"Status": "RUNNING", "SourceArn": DLQ_ARN, "ApproximateNumberOfMessagesMoved": 3}]}
    done = {"Results": [{"Status": "COMPLETED", "SourceArn": DLQ_ARN, "ApproximateNumberOfMessagesMoved": 7}]}
    for answer in (running, done):
        sqs_stub.add_response("list_message_move_tasks", answer, {"SourceArn": DLQ_ARN, "MaxResults": 1})
    with cfn_stub, sqs_stub:
        report = redrive.redrive(cfn, sqs, "episodes", "activity")
        sqs_stub.assert_no_pending_responses()
    assert report == {"queue": "activity", "by": "StartMessageMoveTask", "moved": 7, "not_moved": 0}


def test_a_move_task_that_fails_stops_the_script(monkeypatch):
    monkeypatch.setattr(redrive.time, "sleep", lambda _: None)
    cfn, sqs, cfn_stub, sqs_stub = clients()
    sqs_stub.add_response("start_message_move_task", {"TaskHandle": "h"})
    sqs_stub.add_response("list_message_move_tasks", {"Results": [
        {"Status": "FAILED", "FailureReason": "AWS.SimpleQueueService.NonExistentQueue"}]})
    with cfn_stub, sqs_stub, pytest.raises(SystemExit, match="FAILED"):
        redrive.redrive(cfn, sqs, "episodes", "activity")


def test_where_sqs_has_no_move_task_the_messages_are_copied(monkeypatch):
    cfn, sqs, cfn_stub, sqs_stub = clients()
    sqs_stub.add_client_error("start_message_move_task", "InvalidAction", "not valid for this endpoint")
    sqs_stub.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "1"}},
                          {"QueueUrl": DLQ, "AttributeNames": ["ApproximateNumberOfMessages"]})
    message = {"MessageId": "m", "ReceiptHandle": "r", "Body": "{}", "MD5OfBody": "x",
               "MessageAttributes": {"event_id": {"DataType": "String", "StringValue": "e"}}}
    sqs_stub.add_response("receive_message", {"Messages": [message]})
    sqs_stub.add_response("send_message_batch", {"Successful": [{"Id": "0", "MessageId": "n", "MD5OfMessageBody": "x"}], "Failed": []},
                          {"QueueUrl": SOURCE, "Entries": [{"Id": "0", "MessageBody": "{}",
                                                            "MessageAttributes": message["MessageAttributes"]}]})
    sqs_stub.add_response("delete_message_batch", {"Successful": [{"Id": "0"}], "Failed": []},
                          {"QueueUrl": DLQ, "Entries": [{"Id": "0", "ReceiptHandle": "r"}]})
    # Held 1 at the start: done after it, even if a worker parks the message straight back.
    with cfn_stub, sqs_stub:
        assert redrive.redrive(cfn, sqs, "episodes", "activity") == {"queue": "activity", "by": "copy", "moved": 1, "not_moved": 0}
        sqs_stub.assert_no_pending_responses()


def test_big_messages_are_sent_in_batches_under_the_request_limit():
    messages = [{"Body": "x" * 100_000} for _ in range(5)]
    assert [[i for i, _ in b] for b in redrive.batches(messages)] == [[0, 1], [2, 3], [4]]

"""Checks over infra/template.yaml as CloudFormation will get it: transformed by the SAM
translator, so the roles, event source mappings and functions SAM generates are what is checked.

What the local emulator cannot show (issue 12): S3's 403-for-404 without s3:ListBucket, managed
policies' wildcards, alarms nobody hears, stream retry settings it does not apply. TEMPLATE=path
checks another template (the one before a change, to see these checks fail on it).
"""

from __future__ import annotations

import copy
import os
import json
import re
from pathlib import Path

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(os.environ.get("TEMPLATE", ROOT / "infra" / "template.yaml"))

# What AWS's managed policies grant (AWS managed policy reference), so that a role carrying one
# is checked like any other. Any other managed policy fails the checks as unknown.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                       "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "AWSLambdaDynamoDBExecutionRole": [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                                       "dynamodb:ListStreams", "logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents"], "Resource": "*"},
    ],
}

# Actions AWS authorises on Resource "*" only. X-Ray's trace writes have no resource type: the
# one place a "*" is allowed (Tracing is off today, so none are granted). Log groups need no
# logs:CreateLogGroup on "*": the template creates every one.
STAR_RESOURCE_ONLY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                      "xray:GetSamplingTargets"}

SQS_CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}

# The functions that read the caller's identity get the role-claim settings; the workers do not.
IDENTITY_FUNCTIONS = {"analytics-api", "episodes-api", "feed-api", "files-api", "jobs-api", "ws-api"}
ROLE_SETTINGS = {"ROLE_CLAIM": "RoleClaim", "ADMIN_GROUP": "AdminGroup", "EDITOR_GROUP": "EditorGroup",
                 "VIEWER_GROUP": "ViewerGroup"}

# Access-log variables known to carry no query string. Anything else in a format fails until it
# is looked at and added here; these never may (tokens travel in ?token= on WebSocket $connect).
SAFE_LOG_VARIABLES = {
    "$context.requestId", "$context.extendedRequestId", "$context.requestTime", "$context.requestTimeEpoch",
    "$context.routeKey", "$context.eventType", "$context.connectionId", "$context.messageId",
    "$context.status", "$context.protocol", "$context.responseLength", "$context.responseLatency",
    "$context.integrationLatency", "$context.integrationStatus", "$context.integrationErrorMessage",
    "$context.identity.sourceIp", "$context.identity.userAgent", "$context.authorizer.claims.sub",
    "$context.authorizer.error", "$context.error.message", "$context.error.responseType",
    "$context.apiId", "$context.stage", "$context.domainName",
}
QUERY_BEARING = re.compile(r"requestUri|querystring|queryString|rawQuery|\$request\.|\$input\.|\$method\.request", re.I)


# ---------------------------------------------------------------- the transformed template

class _NoManagedPolicies:
    """SAM's managed-policy loader; {} keeps managed policy ARNs as SAM writes them."""

    def load(self):
        return {}


@pytest.fixture(scope="module")
def source() -> dict:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def template(source) -> dict:
    t = copy.deepcopy(source)
    for res in t["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/key.zip"
    return transform(t, {}, _NoManagedPolicies())


def resources(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def as_list(x):
    return x if isinstance(x, list) else [x]


def getatt(logical_id, attr):
    return {"Fn::GetAtt": [logical_id, attr]}


def short_name(function: dict) -> str:
    """episodes-api for FunctionName !Sub "${AWS::StackName}-episodes-api"."""
    name = function["Properties"]["FunctionName"]
    return name["Fn::Sub"].removeprefix("${AWS::StackName}-")


@pytest.fixture(scope="module")
def functions(template) -> dict:
    """short name -> (logical id, function resource)."""
    return {short_name(f): (k, f) for k, f in resources(template, "AWS::Lambda::Function").items()}


def role_statements(template, role_id: str) -> list[dict]:
    """Every Allow statement a role gets: inline, from AWS::IAM::Policy resources, from managed policies."""
    role = template["Resources"][role_id]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in as_list(p["PolicyDocument"]["Statement"])]
    for res in template["Resources"].values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and \
                {"Ref": role_id} in as_list(res["Properties"].get("Roles", [])):
            statements += as_list(res["Properties"]["PolicyDocument"]["Statement"])
    for arn in role.get("ManagedPolicyArns", []):
        name = str(arn).rsplit("/", 1)[-1]
        assert name in MANAGED_POLICIES, f"{role_id}: unknown managed policy {arn}: cannot check it"
        statements += MANAGED_POLICIES[name]
    return [s for s in statements if s.get("Effect") == "Allow"]


def function_statements(template, function: dict) -> list[dict]:
    role = function["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"role {role} is not one of the template's"
    return role_statements(template, role["Fn::GetAtt"][0])


def grants(statements, action) -> list[dict]:
    return [s for s in statements if action in as_list(s.get("Action", []))]


def resource_text(r) -> str:
    if isinstance(r, str):
        return r
    if isinstance(r, dict) and "Fn::Sub" in r:
        return r["Fn::Sub"] if isinstance(r["Fn::Sub"], str) else r["Fn::Sub"][0]
    return ""  # GetAtt / Ref: one resource


# ---------------------------------------------------------------- IAM (issue 12, items 1, 2, 6, 11)

def test_no_role_has_managed_policies(template):
    carrying = {k: r["Properties"]["ManagedPolicyArns"] for k, r in resources(template, "AWS::IAM::Role").items()
                if r["Properties"].get("ManagedPolicyArns")}
    assert not carrying, f"roles with managed policies (their grants are on '*'): {carrying}"


def test_no_wildcard_actions_or_resources(template):
    problems = []
    for role_id in resources(template, "AWS::IAM::Role"):
        for s in role_statements(template, role_id):
            if "NotAction" in s or "NotResource" in s:
                problems.append(f"{role_id}: NotAction/NotResource")
            actions = as_list(s.get("Action", []))
            for a in actions:
                if "*" in a:
                    problems.append(f"{role_id}: wildcard action {a}")
            for r in as_list(s.get("Resource", [])):
                text = re.sub(r"\$\{[^}]*\}", "X", resource_text(r))  # ${AWS::Region} -> X
                whole = text == "*" or re.fullmatch(r"arn:[^:]*:[^:]*:[^:]*:[^:]*:([a-z-]+[:/])?\*", text) or text.endswith(":::*")
                if whole and not set(actions) <= STAR_RESOURCE_ONLY:
                    problems.append(f"{role_id}: {actions} on {text}")
    assert not problems, "\n".join(problems)


def test_logs_only_to_the_functions_own_log_group(template, functions):
    problems = []
    for name, (_, f) in functions.items():
        group = f["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        for s in function_statements(template, f):
            if not any(a.startswith("logs:") for a in as_list(s["Action"])):
                continue
            own = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${%s}" % group
            for r in as_list(s["Resource"]):
                if group is None or resource_text(r) not in (own, own + ":*"):
                    problems.append(f"{name}: logs on {r}")
        if not any(grants(function_statements(template, f), "logs:PutLogEvents")):
            problems.append(f"{name}: cannot write its logs")
    assert not problems, "\n".join(problems)


def test_each_queue_worker_consumes_only_its_own_queues(template, functions):
    consumers = {}
    for m in resources(template, "AWS::Lambda::EventSourceMapping").values():
        arn = m["Properties"]["EventSourceArn"]
        if arn["Fn::GetAtt"][1] == "Arn":  # an SQS queue (a stream is StreamArn)
            consumers.setdefault(m["Properties"]["FunctionName"]["Ref"], []).append(arn)
    assert len(consumers) == 7
    # The broadcaster alone has two: content (events, notifications) and presence, apart.
    assert sorted(len(q) for q in consumers.values()) == [1, 1, 1, 1, 1, 1, 2]
    problems = []
    for name, (fid, f) in functions.items():
        own = consumers.get(fid, [])
        for s in function_statements(template, f):
            if SQS_CONSUME & set(as_list(s["Action"])):
                wrong = [r for r in as_list(s["Resource"]) if r not in own]
                if wrong:
                    problems.append(f"{name}: {sorted(SQS_CONSUME & set(as_list(s['Action'])))} on {wrong}")
        if own:
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
                assert grants(function_statements(template, f), action), f"{name} cannot {action}"
    assert not problems, "\n".join(problems)


# Which function may read which table's stream: the relay the outbox, the notification worker
# the notifications table's removals (TTL expiries, to correct the bell's counts).
STREAM_READERS = {
    "event-relay": ("EventsTable", "StreamArn"),
    "notification-worker": ("NotificationsTable", "StreamArn"),
    "export-worker": ("ExportsTable", "StreamArn"),
}


def test_each_stream_is_read_by_its_one_function_only(template, functions):
    problems = []
    for name, (_, f) in functions.items():
        for s in function_statements(template, f):
            reads = STREAM_READ & set(as_list(s["Action"]))
            if not reads:
                continue
            if name not in STREAM_READERS:
                problems.append(f"{name} reads streams: {sorted(reads)}")
                continue
            for r in as_list(s["Resource"]):
                if r != getatt(*STREAM_READERS[name]):
                    problems.append(f"{name}: {sorted(reads)} on {r}")
    assert not problems, "\n".join(problems)
    for name in STREAM_READERS:
        statements = function_statements(template, functions[name][1])
        assert all(grants(statements, a) for a in STREAM_READ), name


def reads_prefix(template, f, prefix: str) -> bool:
    return any(
        {"Fn::Sub": f"${{FilesBucket.Arn}}/{prefix}/*"} in as_list(s["Resource"])
        for s in grants(function_statements(template, f), "s3:GetObject")
    )


def test_export_files_are_read_only_by_their_signers(template, functions):
    """The exports' files (`exports/*`): written by the export worker, read by nobody but the
    two functions that sign their download links; and neither may read the episodes' files."""
    readers = {name for name, (_, f) in functions.items() if reads_prefix(template, f, "exports")}
    assert readers == {"export-worker", "feed-api"}
    for name in readers:
        assert not reads_prefix(template, functions[name][1], "episodes"), name
    writers = {name for name, (_, f) in functions.items()
               if any({"Fn::Sub": "${FilesBucket.Arn}/exports/*"} in as_list(s["Resource"])
                      for s in grants(function_statements(template, f), "s3:PutObject"))}
    assert writers == {"export-worker"}


def actions_on(template, functions, resource) -> dict[str, set[str]]:
    """function short name -> the actions its role grants on `resource` (functions with none left out)."""
    out = {}
    for name, (_, f) in functions.items():
        actions = {a for st in function_statements(template, f) if resource in as_list(st["Resource"])
                   for a in as_list(st["Action"])}
        if actions:
            out[name] = actions
    return out


def test_the_search_index_is_written_by_its_worker_only_and_read_by_the_episodes_api(template, functions):
    """The search table: the search worker writes it and reads only the episodes table beside
    it; the episodes API only queries it (and reads a search's page of episodes together)."""
    table = getatt("SearchTable", "Arn")
    assert actions_on(template, functions, table) == {
        "search-worker": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                          "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"},
        "episodes-api": {"dynamodb:Query"},
    }
    worker = function_statements(template, functions["search-worker"][1])
    episodes = {a for st in worker if getatt("EpisodesTable", "Arn") in as_list(st["Resource"])
                for a in as_list(st["Action"])}
    assert episodes == {"dynamodb:GetItem"}
    api = function_statements(template, functions["episodes-api"][1])
    assert any(getatt("EpisodesTable", "Arn") in as_list(st["Resource"]) for st in grants(api, "dynamodb:BatchGetItem"))
    # The relay feeds the worker's queue, and the API and the worker name the table.
    relay = functions["event-relay"][1]["Properties"]["Environment"]["Variables"]
    assert relay["SEARCH_QUEUE_URL"] == {"Ref": "SearchQueue"}
    for name in ("search-worker", "episodes-api"):
        env = functions[name][1]["Properties"]["Environment"]["Variables"]
        assert env["SEARCH_TABLE"] == {"Ref": "SearchTable"}, name


def test_the_analytics_are_written_by_their_worker_only_and_only_queried_by_their_api(template, functions):
    table = getatt("AnalyticsTable", "Arn")
    assert actions_on(template, functions, table) == {
        "analytics-worker": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
        "analytics-api": {"dynamodb:Query"},
    }
    relay = functions["event-relay"][1]["Properties"]["Environment"]["Variables"]
    assert relay["ANALYTICS_QUEUE_URL"] == {"Ref": "AnalyticsQueue"}
    # The API reads nothing but the figures: no episodes, events or jobs table.
    api = function_statements(template, functions["analytics-api"][1])
    assert [r for st in api if st["Action"] != ["logs:CreateLogStream", "logs:PutLogEvents"]
            for r in as_list(st["Resource"])] == [table]


def test_object_readers_may_list_the_files_prefix(template, functions):
    readers = {name for name, (_, f) in functions.items() if reads_prefix(template, f, "episodes")}
    assert readers == {"files-api", "files-worker", "job-worker"}
    for name in sorted(readers):
        listing = grants(function_statements(template, functions[name][1]), "s3:ListBucket")
        assert listing, f"{name} reads objects without s3:ListBucket: S3 answers a missing key with 403"
        for s in listing:
            assert as_list(s["Resource"]) == [getatt("FilesBucket", "Arn")]
            prefixes = set(as_list(s.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])))
            assert prefixes == {"episodes/", "episodes/*"}, f"{name}: ListBucket not limited to episodes/: {s}"


def test_pending_upload_tags_can_be_set_and_removed(template, functions):
    files_prefix = "${FilesBucket.Arn}/episodes/*"
    for name, actions in {"files-api": ["s3:PutObjectTagging", "s3:DeleteObjectTagging"],
                          "files-worker": ["s3:DeleteObjectTagging"]}.items():
        statements = function_statements(template, functions[name][1])
        for action in actions:
            found = grants(statements, action)
            assert found, f"{name} lacks {action}"
            assert all(resource_text(r) == files_prefix for s in found for r in as_list(s["Resource"]))


def test_broadcaster_may_close_connections(template, functions):
    statements = grants(function_statements(template, functions["broadcast-worker"][1]), "execute-api:ManageConnections")
    paths = {resource_text(r).rsplit("}/", 1)[-1] for s in statements for r in as_list(s["Resource"])}
    assert paths == {"POST/@connections/*", "DELETE/@connections/*"}


# ---------------------------------------------------------------- operations (items 3, 4)

def alarms(template):
    return resources(template, "AWS::CloudWatch::Alarm")


def test_every_alarm_notifies_someone(template):
    silent = [k for k, a in alarms(template).items()
              if not a["Properties"].get("AlarmActions") or not a["Properties"].get("OKActions")]
    assert not silent, f"alarms without AlarmActions/OKActions: {silent}"


def test_alarm_target_is_the_stacks_topic_or_the_given_one(source):
    conditions = source["Conditions"]
    assert {"AlarmTopicArn", "AlarmEmail"} <= set(source["Parameters"]), "no AlarmTopicArn / AlarmEmail parameters"
    assert source["Resources"]["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    subscription = source["Resources"]["AlarmEmailSubscription"]
    assert subscription["Properties"]["Protocol"] == "email"
    for params, topic, email in [({"AlarmTopicArn": "", "AlarmEmail": ""}, True, False),
                                 ({"AlarmTopicArn": "", "AlarmEmail": "ops@example.com"}, True, True),
                                 ({"AlarmTopicArn": "arn:aws:sns:us-east-1:1:t", "AlarmEmail": "x@y"}, False, False)]:
        assert evaluate(conditions, "CreateAlarmTopic", params) is topic
        assert evaluate(conditions, subscription["Condition"], params) is email


def alarm_on(template, namespace, metric, dimension, value):
    return [k for k, a in alarms(template).items()
            if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric
            and {"Name": dimension, "Value": value} in a["Properties"].get("Dimensions", [])]


def test_every_function_has_errors_and_throttles_alarms(template, functions):
    missing = [f"{name} {metric}" for name, (fid, _) in functions.items() for metric in ("Errors", "Throttles")
               if not alarm_on(template, "AWS/Lambda", metric, "FunctionName", {"Ref": fid})]
    assert not missing, f"no alarm for: {missing}"


def test_relay_iterator_age_and_work_queue_age_alarms(template, functions):
    assert alarm_on(template, "AWS/Lambda", "IteratorAge", "FunctionName", {"Ref": functions["event-relay"][0]}), \
        "no IteratorAge alarm on the relay"
    queues = [m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
              for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
              if m["Properties"]["EventSourceArn"]["Fn::GetAtt"][1] == "Arn"]
    missing = [q for q in queues
               if not alarm_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", getatt(q, "QueueName"))]
    assert not missing, f"work queues without an oldest-message alarm: {missing}"


def test_every_function_logs_to_its_own_group_with_retention(template, functions):
    groups = resources(template, "AWS::Logs::LogGroup")
    problems = []
    for name, (_, f) in functions.items():
        ref = f["Properties"].get("LoggingConfig", {}).get("LogGroup", {})
        group = groups.get(ref.get("Ref") if isinstance(ref, dict) else None)
        if group is None:
            problems.append(f"{name}: no LoggingConfig.LogGroup of the template's")
            continue
        if group["Properties"].get("LogGroupName") != {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{name}"}:
            problems.append(f"{name}: log group {group['Properties'].get('LogGroupName')}")
        if group["Properties"].get("RetentionInDays") != {"Ref": "LogRetentionDays"}:
            problems.append(f"{name}: retention {group['Properties'].get('RetentionInDays')}")
    assert not problems, "\n".join(problems)
    assert all("RetentionInDays" in g["Properties"] for g in groups.values())


def test_both_stages_have_access_logs_without_the_query_string(template):
    stages = resources(template, "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 2
    groups = resources(template, "AWS::Logs::LogGroup")
    for sid, stage in stages.items():
        settings = stage["Properties"].get("AccessLogSettings")
        assert settings, f"{sid} has no access logs"
        destination = settings["DestinationArn"]["Fn::GetAtt"][0]
        assert "RetentionInDays" in groups[destination]["Properties"]
        fmt = settings["Format"]
        assert not QUERY_BEARING.search(fmt), f"{sid} logs a query-bearing variable: {fmt}"
        variables = set(re.findall(r"\$[a-zA-Z]+(?:\.[a-zA-Z0-9_]+)*", fmt))
        assert variables and variables <= SAFE_LOG_VARIABLES, f"{sid}: unreviewed variables {variables - SAFE_LOG_VARIABLES}"


def test_stream_gives_up_and_reports_per_record_failures(source, template, functions):
    mapping = next(m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
                   if m["Properties"]["FunctionName"] == {"Ref": functions["event-relay"][0]})
    assert mapping["EventSourceArn"] == getatt("EventsTable", "StreamArn")
    assert mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "the relay cannot report a failed record"
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == getatt("RelayDeadLetterQueue", "Arn")
    for key in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds"):
        setting = mapping.get(key)
        assert isinstance(setting, dict) and "Ref" in setting, f"{key} is {setting}, not a parameter"
        param = source["Parameters"][setting["Ref"]]
        assert int(param["Default"]) >= 0 and int(param.get("MinValue", -1)) >= 0, f"{key} may be -1 (forever)"
    # The relay answers with batchItemFailures wherever the event source reads them: everywhere
    # but on ministack (which ignores the answer), where it fails the invocation instead.
    relay_env = functions["event-relay"][1]["Properties"]["Environment"]["Variables"]
    report = relay_env.get("REPORT_BATCH_ITEM_FAILURES")
    assert report == {"Fn::If": ["NotMinistack", "true", "false"]}, report
    assert source["Conditions"]["NotMinistack"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "Emulator"}, "ministack"]}]}


def test_notification_expiries_reach_the_worker_bounded_and_filtered(source, template, functions):
    """The TTL's removals of notifications correct the counts: the table streams old images,
    only removals of notifications (`n#`) reach the worker, and a batch that keeps failing
    ends in the notifications DLQ instead of blocking the shard forever."""
    table = source["Resources"]["NotificationsTable"]["Properties"]
    assert table["StreamSpecification"]["StreamViewType"] in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    mapping = next(m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
                   if m["Properties"]["FunctionName"] == {"Ref": functions["notification-worker"][0]}
                   and "EventSourceArn" in m["Properties"]
                   and m["Properties"]["EventSourceArn"] == getatt("NotificationsTable", "StreamArn"))
    pattern = json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern == {"eventName": ["REMOVE"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "n#"}]}}}}
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == getatt("ExpiriesDeadLetterQueue", "Arn")
    for key in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds"):
        assert "Ref" in mapping[key], f"{key} is not a parameter"


def test_every_retention_is_a_parameter_that_reaches_its_writers(source, functions):
    """How long activity entries, notifications (read, unread) and presence history are kept:
    one parameter each, passed to every function that writes them (and so sets their TTL)."""
    writers = {
        "ActivityRetentionDays": ("ACTIVITY_RETENTION_DAYS", ["activity-worker", "export-worker"]),
        "ExportRetentionDays": ("EXPORT_RETENTION_DAYS", ["feed-api"]),
        "ReadNotificationRetentionDays": ("READ_NOTIFICATION_RETENTION_DAYS", ["notification-worker", "feed-api"]),
        "UnreadNotificationRetentionDays": ("UNREAD_NOTIFICATION_RETENTION_DAYS", ["notification-worker", "feed-api"]),
        "PresenceRetentionDays": ("PRESENCE_RETENTION_DAYS", ["ws-api", "broadcast-worker"]),
    }
    for param, (variable, names) in writers.items():
        spec = source["Parameters"][param]
        assert spec["Type"] == "Number" and int(spec["MinValue"]) >= 1, param
        for name in names:
            env = functions[name][1]["Properties"]["Environment"]["Variables"]
            assert env.get(variable) == {"Ref": param}, f"{name} does not get {param} as {variable}"


# ---------------------------------------------------------------- concurrency, objects, roles (5, 6, 10)

def test_job_worker_concurrency_is_bounded(source, template, functions):
    fid, worker = functions["job-worker"]
    mapping = next(m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
                   if m["Properties"]["FunctionName"] == {"Ref": fid})
    scaling = mapping.get("ScalingConfig", {})
    # Everywhere but on ministack, whose poller breaks on it (see the template).
    if "Fn::If" in scaling:
        condition, scaling, otherwise = scaling["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        assert evaluate(source["Conditions"], condition, {"Emulator": "none"}) is True
    bound = scaling.get("MaximumConcurrency")
    assert bound, "the job worker's event source has no MaximumConcurrency"
    assert int(source["Parameters"][bound["Ref"]]["MinValue"]) >= 2  # AWS's minimum
    reserved = worker["Properties"].get("ReservedConcurrentExecutions")
    assert reserved and "Fn::If" in reserved, "no reserved-concurrency parameter"
    condition, value, otherwise = reserved["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    param = value["Ref"]
    for given, reserves in [("", False), ("0", False), ("12", True)]:  # 0 would stop the function
        assert evaluate(source["Conditions"], condition, {param: given}) is reserves


def test_files_bucket_versions_and_expires_what_it_should(source):
    bucket = source["Resources"]["FilesBucket"]["Properties"]
    assert bucket.get("VersioningConfiguration") == {"Status": "Enabled"}
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert all(r["Status"] == "Enabled" for r in rules)
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == {"Ref": "NoncurrentVersionExpirationDays"}
               for r in rules)
    assert any(r.get("ExpiredObjectDeleteMarker") is True for r in rules)
    assert any(r.get("TagFilters") == [{"Key": "upload", "Value": "pending"}]
               and r.get("ExpirationInDays") == {"Ref": "PendingUploadExpirationDays"} for r in rules)


def test_role_claim_settings_reach_the_identity_functions_only(source, functions):
    for name, default in [("RoleClaim", "cognito:groups"), ("AdminGroup", "admin"), ("EditorGroup", "editor"),
                          ("ViewerGroup", "viewer")]:
        assert source["Parameters"].get(name, {}).get("Default") == default, f"parameter {name} (default {default})"
    assert "writable" in source["Parameters"]["RoleClaim"]["Description"]
    for name, (_, f) in functions.items():
        variables = f["Properties"].get("Environment", {}).get("Variables", {})
        got = {k: variables.get(k) for k in ROLE_SETTINGS}
        if name in IDENTITY_FUNCTIONS:
            assert got == {k: {"Ref": p} for k, p in ROLE_SETTINGS.items()}, f"{name}: {got}"
        else:
            assert got == dict.fromkeys(ROLE_SETTINGS), f"{name} (a worker) gets role settings"


# ---------------------------------------------------------------- conditions

def evaluate(conditions: dict, name: str, params: dict):
    """CloudFormation's condition functions over the given parameter values."""

    def ev(x):
        if not isinstance(x, dict):
            return x
        (fn, args), = x.items()
        if fn == "Ref":
            return params[args]
        if fn == "Condition":
            return ev(conditions[args])
        if fn == "Fn::Equals":
            return str(ev(args[0])) == str(ev(args[1]))
        if fn == "Fn::Not":
            return not ev(args[0])
        if fn == "Fn::And":
            return all(ev(a) for a in args)
        if fn == "Fn::Or":
            return any(ev(a) for a in args)
        raise AssertionError(f"condition function {fn}")

    return ev(conditions[name])


def test_no_http_route_takes_a_browsers_preflight(template):
    """With CORS configured, API Gateway answers preflights itself, unless a route matches
    OPTIONS: an `ANY` route (or `$default`) would take them, and behind the JWT authorizer a
    preflight (which carries no token) is refused with 401 and the browser's request never
    goes. ministack answers preflights before routing, so only this check shows it."""
    http = [r for r in resources(template, "AWS::ApiGatewayV2::Route").values()
            if r["Properties"]["ApiId"] == {"Ref": "HttpApi"}]
    assert http
    for route in http:
        key = route["Properties"]["RouteKey"]
        method = key.split(" ", 1)[0]
        assert method in {"GET", "POST", "PUT", "PATCH", "DELETE"}, f"{key} would take preflights"
    cors = resources(template, "AWS::ApiGatewayV2::Api")["HttpApi"]["Properties"]["CorsConfiguration"]
    assert "OPTIONS" in cors["AllowMethods"] or set(cors["AllowMethods"]) >= {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert {"authorization", "content-type", "if-match", "idempotency-key"} <= set(cors["AllowHeaders"])
    assert {"etag", "location", "retry-after"} <= set(cors["ExposeHeaders"])


# ---------------------------------------------------------------- the console's hosting (issue 16)

def test_the_console_is_hosted_only_when_asked_private_and_read_only_by_its_distribution(source):
    res = source["Resources"]
    hosted = {k for k, r in res.items() if r.get("Condition") == "HostConsole"}
    assert hosted == {"ConsoleBucket", "ConsoleBucketPolicy", "ConsoleOriginAccessControl", "ConsoleDistribution",
                      "ConsoleHeaders"}
    assert source["Parameters"]["ConsoleHosting"]["Default"] == "none"
    block = res["ConsoleBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    allows = [s for s in res["ConsoleBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert len(allows) == 1
    allow = allows[0]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert "${ConsoleDistribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    config = res["ConsoleDistribution"]["Properties"]["DistributionConfig"]
    origin = config["Origins"][0]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}, "OAC, not the legacy identity"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"] == {"Ref": "ConsoleHeaders"}
    headers = res["ConsoleHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    assert "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert "https://*.execute-api.${AWS::Region}" in csp and "wss://*.execute-api.${AWS::Region}" in csp
    assert headers["FrameOptions"]["FrameOption"] == "DENY"


def test_a_hosted_console_is_an_allowed_origin_of_the_api_and_the_uploads(source):
    res = source["Resources"]
    for where in (res["HttpApi"]["Properties"]["CorsConfiguration"]["AllowOrigins"],
                  res["FilesBucket"]["Properties"]["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"]):
        cond, hosted, other = where["Fn::If"]
        assert cond == "HostConsole" and other == {"Ref": "CorsAllowedOrigins"}
        text = repr(hosted)
        assert "https://${ConsoleDistribution.DomainName}" in text and "CorsAllowedOrigins" in text

"""Moves episodes written before the lists were sharded to their shards.

Until this release every listed episode carried `list_pk = "episodes"` and `status_pk = <status>`:
one partition key for the whole catalogue in the `by-recency` index, which DynamoDB throttles past
about 1,000 writes a second. New writes go to `episodes#k` / `<status>#k`, with k the id's last
byte mod 8 (`domain::EpisodeId::bucket`, `aws_adapters::shards::LIST_SHARDS`). The lists still
read the bare keys, and an update moves its episode, so nothing is lost meanwhile; this moves the
rest, after which the bare partitions are empty (each list then spends one minimal read on them).

It is safe to run against a live table, more than once, and to stop: each move is an `UpdateItem`
conditional on the old key (and on the episode not being deleted), so an episode changed meanwhile
is left to the writer. It reads the table with one paginated Scan (a one-off, not a request path).

    python infra/migrate_list_keys.py --table <EpisodesTableName> [--region eu-west-1] [--dry-run]
    python infra/migrate_list_keys.py --local          # the local stack (.local/stack.json)

Prints one JSON line: how many items were scanned, moved, and left (changed five times in a row
while it tried: run it again until `left` is 0; with `--dry-run`, `moved` counts what would move).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

LIST_SHARDS = 8
LIST_KEY = "episodes"


def shard(episode_id: str) -> int:
    """As `EpisodeId::bucket`: the UUID's last byte mod the shard count."""
    return int(episode_id[-2:], 16) % LIST_SHARDS


def moves(item: dict) -> dict[str, tuple[str, str]]:
    """The keys of one item to move: attribute -> (old value, new value)."""
    eid = item["id"]["S"]
    out = {}
    list_pk = item.get("list_pk", {}).get("S")
    if list_pk == LIST_KEY:
        out["list_pk"] = (list_pk, f"{LIST_KEY}#{shard(eid)}")
    status_pk = item.get("status_pk", {}).get("S")
    if status_pk is not None and "#" not in status_pk:
        out["status_pk"] = (status_pk, f"{status_pk}#{shard(eid)}")
    return out


def migrate(dynamodb, table: str, dry_run: bool = False) -> dict:
    scanned = moved = left = 0
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="id, list_pk, status_pk",
        FilterExpression="list_pk = :bare OR (attribute_exists(status_pk) AND NOT contains(status_pk, :hash))",
        ExpressionAttributeValues={":bare": {"S": LIST_KEY}, ":hash": {"S": "#"}},
        ConsistentRead=True,
    )
    for page in pages:
        scanned += page["ScannedCount"]
        for item in page["Items"]:
            if dry_run:
                moved += bool(moves(item))
                continue
            outcome = move(dynamodb, table, item)
            moved += outcome == "moved"
            left += outcome == "left"
    return {"table": table, "scanned": scanned, "moved": moved, "left": left, "dry_run": dry_run}


def move(dynamodb, table: str, item: dict, tries: int = 5) -> str:
    """Moves one item's keys: "moved", "none" (nothing to move, or deleted meanwhile), or "left"
    (it kept changing under us; run again). A writer that changed the item meanwhile (an update
    moves `list_pk` itself) fails the condition: the item is read again and what is still to move
    is moved."""
    for _ in range(tries):
        todo = moves(item)
        if not todo:
            return "none"
        names, values, sets, conditions = {}, {}, [], ["attribute_not_exists(deleted_at)"]
        for i, (attr, (old, new)) in enumerate(todo.items()):
            names[f"#k{i}"] = attr
            values[f":old{i}"] = {"S": old}
            values[f":new{i}"] = {"S": new}
            sets.append(f"#k{i} = :new{i}")
            conditions.append(f"#k{i} = :old{i}")
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"id": item["id"]},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return "moved"
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        fresh = dynamodb.get_item(TableName=table, Key={"id": item["id"]}, ConsistentRead=True,
                                  ProjectionExpression="id, list_pk, status_pk, deleted_at").get("Item")
        if not fresh or "deleted_at" in fresh:
            return "none"
        item = fresh
    return "left"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--table", help="the stack's EpisodesTableName output")
    where.add_argument("--local", action="store_true", help="the local stack of .local/stack.json")
    p.add_argument("--region")
    p.add_argument("--dry-run", action="store_true", help="count what would move, change nothing")
    args = p.parse_args(argv)
    if args.local:
        stack = json.loads((Path(__file__).resolve().parents[1] / ".local" / "stack.json").read_text())
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=stack["aws_endpoint"],
            region_name=stack["region"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        table = stack["outputs"]["EpisodesTableName"]
    else:
        dynamodb = boto3.client("dynamodb", region_name=args.region)
        table = args.table
    report = migrate(dynamodb, table, args.dry_run)
    print(json.dumps(report))
    return 1 if report["left"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

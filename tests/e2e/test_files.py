"""Episode files against the local stack: presigned uploads (single and multipart) to the
emulator's S3 with real HTTP, completion checked against the object, presigned downloads,
deletion, abandoned uploads, an episode's deletion taking its files, and every bad input."""

from __future__ import annotations

import hashlib
import time
import uuid

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from conftest import eventually, people

MIB = 1024 * 1024
URL_SECONDS = 20  # UploadUrlSeconds of the local stack (infra/local/stack.py)


@pytest.fixture(scope="module")
def s3(stack):
    return boto3.client("s3", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                        aws_access_key_id="test", aws_secret_access_key="test")


def object_exists(s3, stack, eid, fid) -> bool:
    try:
        s3.head_object(Bucket=stack["outputs"]["FilesBucketName"], Key=f"episodes/{eid}/files/{fid}")
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"), e.response
        return False


def start(api, token, eid, data: bytes, name="intro.wav", content_type="audio/wav", sha=True, **extra):
    body = {"name": name, "content_type": content_type, "size": len(data), **extra}
    if sha:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    r = api.request("POST", f"/episodes/{eid}/files", token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def put(upload: dict, data: bytes) -> requests.Response:
    return requests.put(upload["url"], data=data, headers=upload.get("headers", {}), timeout=60)


def actions(api, token, eid):
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 50})
    assert r.status_code == 200, r.text
    return [i["action"] for i in r.json()["items"]]


def test_upload_complete_download_delete(api, stack, s3):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (alice_id, alice), (_, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="Files")["id"]
    data = b"RIFF" + uuid.uuid4().bytes * 4096
    started = start(api, alice, eid, data, name="Intro – take 2.wav")
    file, upload = started["file"], started["upload"]
    fid = file["id"]
    assert file["status"] == "pending" and file["size"] == len(data) and file["uploaded_by"]["id"] == alice_id
    assert upload["kind"] == "single" and upload["method"] == "PUT"
    assert "x-amz-checksum-sha256" in {k.lower() for k in upload["headers"]}

    # Not downloadable while pending.
    assert api.request("GET", f"/files/{fid}/download", vic).status_code == 409
    assert put(upload, data).status_code == 200
    done = api.request("POST", f"/files/{fid}/complete", alice)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "available"
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
    again = api.request("POST", f"/files/{fid}/complete", alice)
    assert again.status_code == 200, "completing twice changes nothing"

    listed = api.request("GET", f"/episodes/{eid}/files", vic).json()
    assert [f["id"] for f in listed["items"]] == [fid] and listed["next_cursor"] is None

    dl = api.request("GET", f"/files/{fid}/download", vic)
    assert dl.status_code == 200, dl.text
    got = requests.get(dl.json()["url"], timeout=30)
    assert got.status_code == 200 and got.content == data
    disposition = got.headers.get("content-disposition", "")
    assert "filename*=UTF-8''Intro%20%E2%80%93%20take%202.wav" in disposition, disposition

    assert api.request("DELETE", f"/files/{fid}", vic).status_code == 403
    assert api.request("DELETE", f"/files/{fid}", alice).status_code == 204
    assert not object_exists(s3, stack, eid, fid)
    assert api.request("GET", f"/files/{fid}", alice).status_code == 404
    assert api.request("GET", f"/files/{fid}/download", alice).status_code == 404

    eventually(lambda: {"file.uploaded", "file.downloaded", "file.deleted"} <= set(actions(api, alice, eid)))
    r = api.request("GET", f"/episodes/{eid}/activity", alice).json()["items"]
    summaries = {i["action"]: i["summary"] for i in r}
    assert summaries["file.downloaded"] == "Vic downloaded “Intro – take 2.wav” of “Files”"


def test_a_large_file_is_uploaded_in_parts(api, stack):
    p = people(("alice", "editor"),)
    _, alice = p["alice"]
    eid = api.create(alice, title="Big")["id"]
    size = 100 * MIB + 3 * MIB + 17
    block = uuid.uuid4().bytes * (MIB // 16)
    data = (block * (size // len(block) + 1))[:size]
    started = start(api, alice, eid, data, name="master.mp4", content_type="video/mp4", sha=False)
    upload, fid = started["upload"], started["file"]["id"]
    assert upload["kind"] == "multipart"
    part_size = upload["part_size"]
    assert len(upload["parts"]) == -(-size // part_size)
    # Complete before any part: nothing to complete.
    assert api.request("POST", f"/files/{fid}/complete", alice).status_code == 409
    for part in upload["parts"]:
        chunk = data[(part["number"] - 1) * part_size: part["number"] * part_size]
        r = requests.put(part["url"], data=chunk, timeout=120)
        assert r.status_code == 200, r.text
    done = api.request("POST", f"/files/{fid}/complete", alice)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "available" and done.json()["size"] == size
    got = requests.get(api.request("GET", f"/files/{fid}/download", alice).json()["url"], timeout=120)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    # A checksum is for single uploads only.
    r = api.request("POST", f"/episodes/{eid}/files", alice,
                    json={"name": "x.mp4", "content_type": "video/mp4", "size": size, "sha256": "0" * 64})
    assert r.status_code == 422


def test_bad_input_changes_nothing(api, stack, dynamodb):
    p = people(("alice", "editor"), ("bob", "editor"), ("vic", "viewer"), ("ada", "admin"))
    (_, alice), (_, bob), (_, vic), (_, ada) = p["alice"], p["bob"], p["vic"], p["ada"]
    eid = api.create(alice, title="Strict")["id"]
    good = {"name": "a.png", "content_type": "image/png", "size": 10}

    def post(body, token=alice, episode=eid, **kw):
        return api.request("POST", f"/episodes/{episode}/files", token, json=body, **kw)

    for body, field in [
        ({**good, "content_type": "application/x-sh"}, "content_type"),
        ({**good, "size": 0}, "size"),
        ({**good, "size": 10 * 1024 * MIB + 1}, "size"),
        ({**good, "size": "10"}, "size"),
        ({**good, "name": "../../etc/passwd"}, "name"),
        ({**good, "name": "a\\b.png"}, "name"),
        ({**good, "name": "bell\u0007.png"}, "name"),
        ({**good, "sha256": "xyz"}, "sha256"),
        ({**good, "bucket": "other"}, "bucket"),
        ({"name": "a.png", "size": 10}, "content_type"),
    ]:
        r = post(body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in r.text, (field, r.text)
    assert api.request("POST", f"/episodes/{eid}/files", alice, data="{oops",
                       headers={"content-type": "application/json"}).status_code == 400
    assert api.request("POST", f"/episodes/{eid}/files", alice, data="name=a",
                       headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 415
    assert post(good, token=vic).status_code == 403
    assert post(good, episode="not-an-id").status_code == 400
    missing = str(uuid.uuid4())
    missing = f"{missing[:14]}7{missing[15:]}"
    assert post(good, episode=missing).status_code == 404
    assert api.request("GET", f"/episodes/{missing}/files", alice).status_code == 404
    assert api.request("GET", "/files/nope", alice).status_code == 400
    assert api.request("GET", f"/files/{missing}", alice).status_code == 404
    # Nothing was written by any of that.
    items = dynamodb.query(TableName=stack["outputs"]["FilesTableName"], IndexName="by-episode",
                           KeyConditionExpression="episode_id = :e",
                           ExpressionAttributeValues={":e": {"S": eid}})["Items"]
    assert items == []

    # A body that does not match its declared checksum is refused by S3; the file stays pending.
    data = b"0123456789"
    started = start(api, alice, eid, data, name="a.png", content_type="image/png")
    fid = started["file"]["id"]
    assert api.request("POST", f"/files/{fid}/complete", alice).status_code == 409, "nothing uploaded yet"
    assert put(started["upload"], b"9876543210").status_code in (400, 403)
    # The length and the content type are signed into the URL too.
    assert requests.put(started["upload"]["url"], data=data + b"!", timeout=30,
                        headers={**started["upload"]["headers"], "content-length": "11"}).status_code == 403
    assert requests.put(started["upload"]["url"], data=data, timeout=30,
                        headers={**started["upload"]["headers"], "content-type": "image/jpeg"}).status_code == 403
    assert api.request("GET", f"/files/{fid}", alice).json()["status"] == "pending"
    assert put(started["upload"], data).status_code == 200
    assert api.request("POST", f"/files/{fid}/complete", alice).status_code == 200
    # Only the uploader or an admin deletes.
    assert api.request("DELETE", f"/files/{fid}", bob).status_code == 403
    assert api.request("DELETE", f"/files/{fid}", ada).status_code == 204


def test_abandoned_uploads_are_confirmed_or_cleaned_and_urls_expire(api, stack, s3):
    p = people(("alice", "editor"),)
    _, alice = p["alice"]
    eid = api.create(alice, title="Abandoned")["id"]
    data = b"ID3" + uuid.uuid4().bytes * 64
    never = start(api, alice, eid, data, name="never.mp3", content_type="audio/mpeg")
    forgotten = start(api, alice, eid, data, name="forgotten.mp3", content_type="audio/mpeg")
    used = start(api, alice, eid, data, name="used.mp3", content_type="audio/mpeg")
    assert put(forgotten["upload"], data).status_code == 200  # uploaded, never completed
    assert put(used["upload"], data).status_code == 200
    assert api.request("POST", f"/files/{used['file']['id']}/complete", alice).status_code == 200

    time.sleep(URL_SECONDS + 1)
    # The upload URL does not work any more.
    assert put(used["upload"], data).status_code == 403

    never_id, forgotten_id = never["file"]["id"], forgotten["file"]["id"]
    eventually(lambda: api.request("GET", f"/files/{never_id}", alice).status_code == 404, timeout=60)
    assert not object_exists(s3, stack, eid, never_id)
    status = eventually(lambda: api.request("GET", f"/files/{forgotten_id}", alice).json()["status"] == "available",
                        timeout=60)
    assert status
    eventually(lambda: actions(api, alice, eid).count("file.uploaded") == 2)


def test_deleting_an_episode_deletes_its_files(api, stack, s3):
    p = people(("alice", "editor"),)
    _, alice = p["alice"]
    eid = api.create(alice, title="Doomed")["id"]
    data = b"%PDF-1.4 " + uuid.uuid4().bytes * 16
    started = start(api, alice, eid, data, name="script.pdf", content_type="application/pdf")
    fid = started["file"]["id"]
    assert put(started["upload"], data).status_code == 200
    assert api.request("POST", f"/files/{fid}/complete", alice).status_code == 200

    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 204
    eventually(lambda: api.request("GET", f"/files/{fid}", alice).status_code == 404)
    assert not object_exists(s3, stack, eid, fid)
    eventually(lambda: "file.deleted" in actions(api, alice, eid))

"""A rebuild of the seed's design, for comparison only: Flask, one Firehose put_record per event, in the request.

Served by bench/end_to_end.py with the same gunicorn settings as the project
(`gunicorn -c gunicorn.conf.py bench.seed_app:app`). No database, no validation
beyond the JSON: the seed as generous as it gets.
"""

import os
import threading
import uuid

import boto3
import orjson
from flask import Flask, Response, request

app = Flask(__name__)
_local = threading.local()


def _firehose():
    # A client per thread: boto3 clients are built from sessions that are not thread-safe to share.
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = boto3.session.Session().client(
            "firehose", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"]
        )
    return client


def _forward(event: dict) -> str:
    event_id = event.get("event_id") or str(uuid.uuid4())
    line = orjson.dumps({**event, "event_id": event_id}) + b"\n"
    _firehose().put_record(DeliveryStreamName=os.environ["FIREHOSE_STREAM_NAME"], Record={"Data": line})
    return event_id


@app.post("/v1/events")
def one_event():
    event_id = _forward(orjson.loads(request.get_data()))
    return Response(orjson.dumps({"event_id": event_id, "status": "accepted"}), 202, mimetype="application/json")


@app.post("/v1/events/batch")
def batch():
    events = orjson.loads(request.get_data())["events"]
    results = [{"index": i, "event_id": _forward(event), "status": "accepted"} for i, event in enumerate(events)]
    body = {"accepted": len(results), "duplicates": 0, "rejected": 0, "results": results}
    return Response(orjson.dumps(body), 200, mimetype="application/json")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}

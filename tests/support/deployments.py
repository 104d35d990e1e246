"""Test deployments of the app over real processes (devtools.processes): databases, moto, gunicorn, workers."""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass, field

import boto3
import orjson
import psycopg
import pytest
import requests

from devtools.processes import BIN, MANAGE, ROOT, MotoServer, free_port, start, stop, wait_until_up

# The PostgreSQL server the suite may use; each real-process test makes its own database there.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


@dataclass
class App:
    """One deployment of the app for a test: its database, its emulator and its processes."""

    env: dict
    processes: list = field(default_factory=list)

    def manage(self, *args: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*MANAGE, *args],
            env={**self.env, **env},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def create_key(self, game: str = "fault-game") -> str:
        return self.manage("create_api_key", game).stdout.strip().splitlines()[-1]

    def serve(self, *, workers: int = 2, **env) -> str:
        """Start gunicorn; return its base URL."""
        port = free_port()
        # gunicorn.conf.py (read from ROOT) gives the rest of the shipped configuration.
        process = start(
            [
                str(BIN / "gunicorn"),
                "tracking_project.wsgi",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--no-control-socket",
                "--graceful-timeout",
                "5",
            ],
            {**self.env, **env},
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/healthz", process)
        self.server = process
        return url

    def worker(self, *args: str, **env) -> subprocess.Popen:
        """Start `manage.py deliver_events` with `args`."""
        process = start([*MANAGE, "deliver_events", *args], {**self.env, **env})
        self.processes.append(process)
        return process

    def s3_lines(self) -> list[dict]:
        """Return every NDJSON line in the bucket, parsed (repeats included), checking each object ends in a newline."""
        s3 = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        lines = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.env["FIREHOSE_S3_BUCKET"]):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=self.env["FIREHOSE_S3_BUCKET"], Key=item["Key"])["Body"].read()
                assert body.endswith(b"\n")
                lines.extend(orjson.loads(line) for line in body.splitlines())
        return lines

    def kinesis_lines(self, stream: str) -> list[tuple[str, dict]]:
        """Return (partition key, parsed line) for every NDJSON line in the data stream `stream`."""
        kinesis = boto3.client(
            "kinesis",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        lines = []
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            for record in kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]:
                assert record["Data"].endswith(b"\n")
                lines += [(record["PartitionKey"], orjson.loads(line)) for line in record["Data"].splitlines()]
        return lines

    def s3_event_ids(self) -> list[str]:
        """Return the event_id of every NDJSON line in the bucket (repeats included)."""
        return [line["event_id"] for line in self.s3_lines()]

    def query(self, sql: str) -> list[tuple]:
        """Run `sql` on the app's database directly (fast enough to poll); return the rows."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(url) as conn:
            return conn.execute(sql).fetchall()

    def stored_event_ids(self) -> set[str]:
        return {str(uuid.UUID(str(row[0]))) for row in self.query("SELECT event_id FROM events_app_event")}

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)


def postgres_available() -> bool:
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """Yield the URL of a fresh, empty database of each kind (PostgreSQL: a new database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite3'}"
        return
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"tracker_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MigratedTemplates:
    """One migrated database of each kind per test process, made on first use; each test gets a copy.

    Copying a migrated SQLite file or a PostgreSQL template database takes milliseconds,
    where `manage.py migrate` in a new process takes seconds: paid once, not per test.
    """

    def __init__(self, folder):
        self.folder = folder
        self.sqlite_path = None
        self.postgres_name = None

    def _migrate(self, database_url: str) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tracking_project.settings", "DJANGO_DEBUG": "1"}
        subprocess.run(
            [*MANAGE, "migrate", "-v", "0"],
            env={**env, "DATABASE_URL": database_url},
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def fill_sqlite(self, path: str) -> None:
        """Make the SQLite file at `path` a copy of the migrated one."""
        if self.sqlite_path is None:
            template = self.folder / "template.sqlite3"
            self._migrate(f"sqlite:///{template}")
            self.sqlite_path = template
        shutil.copyfile(self.sqlite_path, path)

    def fill_postgres(self, name: str) -> None:
        """Make the (empty, unused) PostgreSQL database `name` a copy of the migrated one."""
        if self.postgres_name is None:
            template = f"tracker_template_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{template}"')
            self.postgres_name = template
            self._migrate(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{template}")
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.postgres_name}"')

    def drop(self) -> None:
        if self.postgres_name is not None:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.postgres_name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory):
    """Yield this test process's migrated databases (see MigratedTemplates)."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    yield templates
    templates.drop()


@pytest.fixture(scope="session")
def idle_moto_servers():
    """Yield this test process's moto servers between tests (reset, still running); stop them at the end."""
    idle: list[MotoServer] = []
    yield idle
    for server in idle:
        server.stop()


@pytest.fixture
def moto_process(idle_moto_servers):
    """Yield moto's server on a free loopback port, fresh: a reset idle one, else a new one.

    Starting moto costs seconds of imports; resetting a running one (its moto-api)
    gives the same empty state in milliseconds. A server the test stopped, or that no
    longer answers, is not reused.
    """
    server = idle_moto_servers.pop() if idle_moto_servers else None
    if server is None:
        server = MotoServer()
        server.start()
    yield server
    if server.process is not None and server.process.poll() is None and _reset(server):
        idle_moto_servers.append(server)
    else:
        server.stop()


def _reset(server: MotoServer) -> bool:
    try:
        return requests.post(f"{server.url}/moto-api/reset", timeout=10).ok
    except requests.RequestException:
        return False


@pytest.fixture
def deployment(database_url, moto_process, migrated_templates):
    """Yield a migrated deployment (database, stream on moto) whose processes stop after the test."""
    app = App(
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": database_url,
            "AWS_ENDPOINT_URL": moto_process.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FIREHOSE_STREAM_NAME": "fault-events",
            "FIREHOSE_S3_BUCKET": "fault-bucket",
            "EVENTS_LOG_LEVEL": "WARNING",
        }
    )
    if database_url.startswith("sqlite:///"):
        migrated_templates.fill_sqlite(database_url.removeprefix("sqlite:///"))
    else:
        migrated_templates.fill_postgres(database_url.rsplit("/", 1)[1])
    app.manage("ensure_firehose")
    yield app
    app.stop_all()

"""Print the Snowflake setup SQL of warehouse/ filled in with the configured bucket, prefix and stream."""

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events_app import conf

WAREHOUSE_DIR = Path(settings.BASE_DIR) / "warehouse"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
ROLE_ARN_PLACEHOLDER = "arn:aws:iam::<aws-account-id>:role/<snowflake-reader-role>"


def warehouse_files() -> list[Path]:
    """Return the SQL files of warehouse/, in the order they are run."""
    return sorted(WAREHOUSE_DIR.glob("[0-9][0-9]_*.sql"))


def stream_pattern(stream: str) -> str:
    """Return the COPY PATTERN matching the S3 objects Firehose writes for `stream`.

    Firehose names them `<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<random>`, under
    `<prefix>YYYY/MM/DD/HH/` by default.
    """
    literal = "".join(char if char.isalnum() or char in "_-" else f"[{char}]" for char in stream)
    return f".*{literal}-[0-9]+-[0-9]{{4}}(-[0-9]{{2}}){{5}}-.*"


def _sql_string(value: str) -> str:
    """Return `value` safe inside a single-quoted Snowflake string (where a backslash escapes too)."""
    return value.replace("\\", "\\\\").replace("'", "''")


def render_warehouse_sql(
    *,
    bucket: str,
    prefix: str,
    stream: str,
    database: str = "ANALYTICS",
    schema: str = "PLAYER_EVENTS",
    storage_integration: str = "GAME_EVENTS_S3",
    aws_role_arn: str = ROLE_ARN_PLACEHOLDER,
) -> dict[str, str]:
    """Return {file name: SQL} for every file of warehouse/, placeholders filled in."""
    for name, value in (("database", database), ("schema", schema), ("storage integration", storage_integration)):
        if not IDENTIFIER.fullmatch(value):
            raise ValueError(f"The {name} {value!r} is not a plain Snowflake identifier.")
    values = {
        "bucket": _sql_string(bucket),
        "prefix": _sql_string(prefix),
        "stream": _sql_string(stream),
        "stream_pattern": _sql_string(stream_pattern(stream)),
        "database": database,
        "schema": schema,
        "storage_integration": storage_integration,
        "aws_role_arn": _sql_string(aws_role_arn),
    }
    rendered = {}
    for path in warehouse_files():
        rendered[path.name] = PLACEHOLDER.sub(lambda match: values[match.group(1)], path.read_text())
    return rendered


class Command(BaseCommand):
    help = (
        "Print the Snowflake SQL (storage integration, stage, raw table, COPY INTO, Snowpipe, typed view) filled "
        "in with FIREHOSE_S3_BUCKET, FIREHOSE_S3_PREFIX and FIREHOSE_STREAM_NAME. See warehouse/README.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="ANALYTICS", help="Snowflake database (created if missing).")
        parser.add_argument("--schema", default="PLAYER_EVENTS", help="Snowflake schema (created if missing).")
        parser.add_argument("--storage-integration", default="GAME_EVENTS_S3", help="Storage integration name.")
        parser.add_argument(
            "--aws-role-arn", default=ROLE_ARN_PLACEHOLDER, help="IAM role Snowflake assumes to read the bucket."
        )

    def handle(self, *args, database: str, schema: str, storage_integration: str, aws_role_arn: str, **options):
        try:
            rendered = render_warehouse_sql(
                bucket=conf.s3_bucket(),
                prefix=conf.s3_prefix(),
                stream=conf.stream_name(),
                database=database,
                schema=schema,
                storage_integration=storage_integration,
                aws_role_arn=aws_role_arn,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for name, sql in rendered.items():
            self.stdout.write(f"-- ===== warehouse/{name} =====\n{sql.rstrip()}\n\n")

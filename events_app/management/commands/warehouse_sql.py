"""Print the Snowflake setup SQL of warehouse/ filled in with the configured bucket, prefix and stream."""

from django.core.management.base import BaseCommand, CommandError

from events_app import conf
from events_app.delivery.warehouse import ROLE_ARN_PLACEHOLDER, render_warehouse_sql


class Command(BaseCommand):
    help = (
        "Print the Snowflake SQL (storage integration, stage, raw table, COPY INTO, Snowpipe, typed view, "
        "per-type views from the event type registry) filled in with FIREHOSE_S3_BUCKET, FIREHOSE_S3_PREFIX and "
        "FIREHOSE_STREAM_NAME. See warehouse/README.md."
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

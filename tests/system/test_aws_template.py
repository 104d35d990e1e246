"""deploy/aws/cloudformation.yaml: cfn-lint clean, the contract's parameters and outputs, and deployed on moto.

The deployment test creates the stack through moto's CloudFormation API and runs the
service against what the stack made. moto's CloudFormation skips resource types it does
not implement (it warns and goes on): of this template, the Firehose delivery stream,
the CloudWatch alarms, the log stream and the bucket policy; it also ignores the bucket's
public access block and lifecycle rules. The test checks what moto creates from the
template and creates the delivery stream itself, with the template's own properties
(docs/deploy.md: what was never deployed on real AWS).
"""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from devtools.processes import ROOT
from events_app.management.commands import ensure_firehose
from sdk.client import TrackerClient
from tests.support.deployments import App

TEMPLATE = ROOT / "deploy" / "aws" / "cloudformation.yaml"
# What moto 5.x's CloudFormation does not create (tests/system/test_aws_template.py's docstring).
NOT_CREATED_BY_MOTO = {
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::CloudWatch::Alarm",
    "AWS::Logs::LogStream",
    "AWS::S3::BucketPolicy",
}


class CloudFormationLoader(yaml.SafeLoader):
    """Reads the short-form intrinsic functions (!Ref, !If, ...) as {"Fn::...": value}."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)  # a SafeLoader subclass


def aws_client(service: str, url: str):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_the_template_passes_cfn_lint():
    program = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert program, "cfn-lint comes with requirements-dev.txt"

    result = subprocess.run([program, str(TEMPLATE)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_parameter_but_the_bucket_name_has_a_default_and_the_outputs_are_the_contracts():
    document = template()

    assert [name for name, spec in document["Parameters"].items() if "Default" not in spec] == ["BucketName"]
    assert {"DeliveryStreamName", "BucketName", "ServicePolicyArn"} <= set(document["Outputs"])
    kinds = {resource["Type"] for resource in document["Resources"].values()}
    assert {
        "AWS::S3::Bucket",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::IAM::Role",
        "AWS::IAM::ManagedPolicy",
        "AWS::CloudWatch::Alarm",
    } <= kinds


def test_the_service_policy_puts_records_on_the_stack_stream_only():
    resources = template()["Resources"]
    statements = resources["ServicePolicy"]["Properties"]["PolicyDocument"]["Statement"]["Fn::If"]
    without_data_stream = statements[2]

    assert len(without_data_stream) == 1
    (statement,) = without_data_stream
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == [
        "firehose:DescribeDeliveryStream",
        "firehose:PutRecord",
        "firehose:PutRecordBatch",
    ]
    assert statement["Resource"]["Fn::Sub"].endswith(":deliverystream/${DeliveryStreamName}")
    assert resources["DeliveryStream"]["Properties"]["DeliveryStreamName"] == {"Ref": "DeliveryStreamName"}
    for statement in statements[1]:  # with the data stream: its own ARN only
        assert "*" not in str(statement["Resource"])


def test_the_stream_writes_under_the_prefix_snowpipe_reads_and_errors_elsewhere():
    document = template()
    s3 = document["Resources"]["DeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]

    assert s3["Prefix"] == {"Ref": "S3Prefix"} and s3["ErrorOutputPrefix"] == {"Ref": "ErrorPrefix"}
    assert document["Parameters"]["S3Prefix"]["Default"] == "events/"  # FIREHOSE_S3_PREFIX's default
    assert not document["Parameters"]["ErrorPrefix"]["Default"].startswith("events/")
    assert set(document["Parameters"]["Compression"]["AllowedValues"]) == {"GZIP", "UNCOMPRESSED"}
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True


@pytest.fixture
def stack(moto_process):
    """Create the stack on moto with only BucketName given; yield (its outputs, the moto URL)."""
    cloudformation = aws_client("cloudformation", moto_process.url)
    cloudformation.create_stack(
        StackName="player-events",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "BucketName", "ParameterValue": "stack-events-bucket"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName="player-events")["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described["Outputs"]}
    resources = cloudformation.list_stack_resources(StackName="player-events")["StackResourceSummaries"]
    yield outputs, moto_process.url, resources


@pytest.mark.e2e
def test_events_travel_through_the_stacks_stream_into_its_bucket(stack, database_url, migrated_templates):
    outputs, url, resources = stack
    created = {resource["ResourceType"] for resource in resources if resource.get("PhysicalResourceId")}
    s3 = aws_client("s3", url)
    iam = aws_client("iam", url)
    firehose = aws_client("firehose", url)

    # What moto made from the template: the bucket (encrypted), the stream's role, the service's policy.
    assert {"AWS::S3::Bucket", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::Logs::LogGroup"} <= created
    assert outputs["BucketName"] == "stack-events-bucket" and outputs["DeliveryStreamName"] == "player-events"
    encryption = s3.get_bucket_encryption(Bucket=outputs["BucketName"])["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = iam.get_policy(PolicyArn=outputs["ServicePolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    (statement,) = version["PolicyVersion"]["Document"]["Statement"]
    assert statement["Resource"] == outputs["DeliveryStreamArn"]

    # What moto skips: the delivery stream. Made here as the template describes it.
    assert outputs["DeliveryStreamName"] not in firehose.list_delivery_streams()["DeliveryStreamNames"]
    assert "AWS::KinesisFirehose::DeliveryStream" in NOT_CREATED_BY_MOTO
    properties = template()["Resources"]["DeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    parameters = template()["Parameters"]
    firehose.create_delivery_stream(
        DeliveryStreamName=outputs["DeliveryStreamName"],
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": outputs["DeliveryRoleArn"],
            "BucketARN": f"arn:aws:s3:::{outputs['BucketName']}",
            "Prefix": outputs["S3Prefix"],
            "ErrorOutputPrefix": parameters[properties["ErrorOutputPrefix"]["Ref"]]["Default"],
            "BufferingHints": {
                "SizeInMBs": parameters["BufferSizeMB"]["Default"],
                "IntervalInSeconds": parameters["BufferIntervalSeconds"]["Default"],
            },
            "CompressionFormat": parameters["Compression"]["Default"],  # moto writes plain objects either way
        },
    )

    app = App(
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": database_url,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FIREHOSE_STREAM_NAME": outputs["DeliveryStreamName"],
            "FIREHOSE_S3_BUCKET": outputs["BucketName"],
            "FIREHOSE_S3_PREFIX": outputs["S3Prefix"],
            "EVENTS_LOG_LEVEL": "WARNING",
        }
    )
    if database_url.startswith("sqlite:///"):
        migrated_templates.fill_sqlite(database_url.removeprefix("sqlite:///"))
    else:
        migrated_templates.fill_postgres(database_url.rsplit("/", 1)[1])
    try:
        key = app.create_key("stack-game")
        base_url = app.serve(workers=1)
        with TrackerClient(base_url=base_url, api_key=key) as client:
            events = [client.install(f"player-{i}") for i in range(5)]
            assert client.send_batch(events).accepted == 5

        worker = app.manage("deliver_events", "--once", timeout=60)

        assert "delivered=5" in worker.stdout
        assert sorted(line["event_id"] for line in app.s3_lines()) == sorted(event["event_id"] for event in events)
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=outputs["BucketName"])["Contents"]]
        assert keys and all(key.startswith(outputs["S3Prefix"]) for key in keys)
    finally:
        app.stop_all()


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("http://127.0.0.1:4566", True),
        ("http://localhost:5000", True),
        ("http://[::1]:5000", True),
        ("http://127.8.0.1", True),
        (None, False),
        ("", False),
        ("https://firehose.us-east-1.amazonaws.com", False),
        ("http://10.0.0.5:4566", False),
        ("http://moto:5000", False),
    ],
)
def test_only_loopback_endpoints_count_as_a_local_emulator(endpoint, local):
    assert ensure_firehose.is_local_endpoint(endpoint) is local


def test_a_named_emulator_host_counts_when_given():
    assert ensure_firehose.is_local_endpoint("http://moto:5000", ("moto",))


@pytest.mark.parametrize("endpoint", [None, "https://firehose.eu-west-1.amazonaws.com", "http://moto:5000"])
def test_ensure_firehose_refuses_real_aws_and_points_to_the_template(settings, monkeypatch, endpoint):
    settings.AWS_ENDPOINT_URL = endpoint
    monkeypatch.setattr(ensure_firehose, "ensure_emulator_streams", lambda: pytest.fail("touched AWS"))

    with pytest.raises(CommandError, match=r"deploy/aws/cloudformation\.yaml.*--real-aws"):
        call_command("ensure_firehose", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("endpoint", "args"),
    [(None, ["--real-aws"]), ("http://moto:5000", ["--emulator-host", "moto"]), ("http://127.0.0.1:4566", [])],
)
def test_ensure_firehose_goes_ahead_on_an_emulator_or_when_told_plainly(settings, monkeypatch, endpoint, args):
    settings.AWS_ENDPOINT_URL = endpoint
    monkeypatch.setattr(ensure_firehose, "ensure_emulator_streams", lambda: ["bucket b", "delivery stream s"])
    out = io.StringIO()

    call_command("ensure_firehose", *args, stdout=out)

    assert out.getvalue().strip() == "Created bucket b, delivery stream s."


@pytest.mark.e2e
def test_ensure_firehose_refuses_a_remote_endpoint_in_a_real_process(tmp_path):
    """The command as compose and the docs run it: a non-zero exit and the pointer to the template."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "AWS_ENDPOINT_URL": "https://firehose.us-east-1.amazonaws.com",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "ensure_firehose"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "deploy/aws/cloudformation.yaml" in result.stderr and "--real-aws" in result.stderr

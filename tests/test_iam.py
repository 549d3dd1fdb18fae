"""IAM policy documents: content, validation, and acceptance by moto's IAM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mc_tasks.errors import ConfigurationError, ProvisioningError
from mc_tasks.iam import (
    SERVICE_ROLE_POLICY_NAME,
    PolicyDocuments,
    create_service_role,
    policy_documents,
)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
MEDIACONVERT = f"arn:aws:mediaconvert:{REGION}:{ACCOUNT_ID}"
QUEUE_ARN = f"{MEDIACONVERT}:queues/Default"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/MediaConvertRole"


@pytest.fixture
def documents() -> PolicyDocuments:
    return policy_documents(bucket="media-bucket", account_id=ACCOUNT_ID, region=REGION)


@pytest.fixture
def iam() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("iam", region_name=REGION)


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    [found] = [s for s in document["Statement"] if s["Sid"] == sid]
    return dict(found)


def all_resources(document: dict[str, Any]) -> list[str]:
    return [resource for s in document["Statement"] for resource in s.get("Resource", [])]


def test_trust_policy_allows_mediaconvert(documents: PolicyDocuments) -> None:
    [trust] = documents.service_role_trust_policy["Statement"]

    assert trust["Principal"] == {"Service": "mediaconvert.amazonaws.com"}
    assert trust["Action"] == ["sts:AssumeRole"]
    assert trust["Effect"] == "Allow"


def test_service_role_policy_scopes_bucket(documents: PolicyDocuments) -> None:
    objects = statement(documents.service_role_policy, "ReadInputsWriteOutputs")
    bucket = statement(documents.service_role_policy, "ListMediaBucket")

    assert objects["Resource"] == ["arn:aws:s3:::media-bucket/*"]
    assert "s3:GetObject" in objects["Action"]
    assert "s3:PutObject" in objects["Action"]
    assert bucket["Resource"] == ["arn:aws:s3:::media-bucket"]
    assert "s3:ListBucket" in bucket["Action"]
    assert not any(a.endswith("*") for s in documents.service_role_policy["Statement"]
                   for a in s["Action"])


def test_submitter_passes_role_only_to_mediaconvert(documents: PolicyDocuments) -> None:
    pass_role = statement(documents.submitter_policy, "PassRoleToMediaConvert")

    assert pass_role["Action"] == ["iam:PassRole"]
    assert pass_role["Resource"] == [ROLE_ARN]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}


def test_submitter_mediaconvert_resources(documents: PolicyDocuments) -> None:
    create = statement(documents.submitter_policy, "CreateJobs")
    get_queue = statement(documents.submitter_policy, "ReadQueue")
    jobs = statement(documents.submitter_policy, "ReadAndCancelJobs")

    assert create["Action"] == ["mediaconvert:CreateJob"]
    assert QUEUE_ARN in create["Resource"]
    assert f"{MEDIACONVERT}:presets/*" in create["Resource"]
    assert f"{MEDIACONVERT}:jobTemplates/*" in create["Resource"]
    assert get_queue["Action"] == ["mediaconvert:GetQueue"]
    assert get_queue["Resource"] == [QUEUE_ARN]
    assert sorted(jobs["Action"]) == ["mediaconvert:CancelJob", "mediaconvert:GetJob"]
    assert jobs["Resource"] == [f"{MEDIACONVERT}:jobs/*"]


def test_submitter_consumes_event_queue(documents: PolicyDocuments) -> None:
    consume = statement(documents.submitter_policy, "ConsumeJobEvents")

    assert consume["Resource"] == [f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:mediaconvert-messages"]
    assert sorted(consume["Action"]) == sorted([
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl", "sqs:GetQueueAttributes"])


def test_submitter_may_list_jobs(documents: PolicyDocuments) -> None:
    search = statement(documents.submitter_policy, "FindRetriedSubmissions")

    assert search["Action"] == ["mediaconvert:ListJobs"]
    assert search["Resource"] == ["*"]


def test_setup_policy_scopes_rule_and_queues(documents: PolicyDocuments) -> None:
    rule = statement(documents.setup_policy, "ManageEventRule")
    queues = statement(documents.setup_policy, "ManageEventQueues")
    unscoped = statement(documents.setup_policy, "ListRulesAndTestPatterns")

    assert rule["Resource"] == [
        f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/mediaconvert-job-events"]
    assert {"events:PutRule", "events:PutTargets", "events:RemoveTargets",
            "events:DeleteRule"} <= set(rule["Action"])
    assert queues["Resource"] == [
        f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:mediaconvert-messages",
        f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:mediaconvert-messages-dlq"]
    assert {"sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue"} <= set(
        queues["Action"])
    assert sorted(unscoped["Action"]) == ["events:ListRules", "events:TestEventPattern"]


def test_setup_policy_covers_every_provisioning_call(documents: PolicyDocuments) -> None:
    from mc_tasks.provision.calls import IAM_ACTIONS

    granted = {a for s in documents.setup_policy["Statement"] for a in s["Action"]}
    needed = {a for a in IAM_ACTIONS.values() if not a.startswith("iam:")}

    assert needed - granted == set()


def test_custom_names_and_queue_arn() -> None:
    queue = f"{MEDIACONVERT}:queues/Fast"
    docs = policy_documents(bucket="b.example", account_id=ACCOUNT_ID, region="eu-west-1",
                            role_name="Transcoder", sqs_queue_name="events",
                            rule_name="job-events", mediaconvert_queue=queue)

    assert docs.role_arn == f"arn:aws:iam::{ACCOUNT_ID}:role/Transcoder"
    assert statement(docs.submitter_policy, "ReadQueue")["Resource"] == [queue]
    assert f"arn:aws:sqs:eu-west-1:{ACCOUNT_ID}:events-dlq" in all_resources(docs.setup_policy)


def test_china_region_uses_its_partition() -> None:
    docs = policy_documents(bucket="media", account_id=ACCOUNT_ID, region="cn-north-1")

    assert docs.role_arn.startswith("arn:aws-cn:iam::")
    assert all(r == "*" or r.startswith("arn:aws-cn:") for r in all_resources(docs.setup_policy))


def test_documents_use_arns_never_urls(documents: PolicyDocuments) -> None:
    text = json.dumps(documents.to_dict())

    assert "s3://" not in text
    assert "https://" not in text


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("bucket", "s3://media-bucket", "without an s3:// URL"),
    ("bucket", "arn:aws:s3:::media-bucket", "bucket name alone"),
    ("bucket", "Media_Bucket", "lowercase"),
    ("bucket", "ab", "3-63"),
    ("bucket", "media..bucket", "adjacent periods"),
    ("bucket", "192.168.1.1", "IP address"),
    ("bucket", "xn--media", "xn--"),
    ("bucket", "media-s3alias", "-s3alias"),
    ("account_id", "12345", "12 digits"),
    ("account_id", "12345678901a", "12 digits"),
    ("region", "US-EAST-1", "region"),
    ("role_name", "bad/name", "role name"),
    ("sqs_queue_name", "events.fifo", "FIFO"),
    ("rule_name", "bad rule", "rule name"),
    ("mediaconvert_queue", "queue with spaces", "MediaConvert queue"),
])
def test_invalid_input_names_value(field: str, value: str, fragment: str) -> None:
    arguments = {"bucket": "media-bucket", "account_id": ACCOUNT_ID, "region": REGION}
    arguments[field] = value

    with pytest.raises(ConfigurationError) as caught:
        policy_documents(**arguments)

    assert repr(value) in str(caught.value)
    assert fragment in str(caught.value)


def test_moto_accepts_every_document(iam: Any, documents: PolicyDocuments) -> None:
    iam.create_role(RoleName="MediaConvertRole",
                    AssumeRolePolicyDocument=json.dumps(documents.service_role_trust_policy))
    names = ("service-role", "submitter", "setup")
    policies = (documents.service_role_policy, documents.submitter_policy,
                documents.setup_policy)
    for name, policy in zip(names, policies, strict=True):
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))

    listed = {p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]}

    assert listed == set(names)
    assert iam.get_role(RoleName="MediaConvertRole")["Role"]["Arn"] == documents.role_arn


def test_to_dict_and_str(documents: PolicyDocuments) -> None:
    document = json.loads(json.dumps(documents.to_dict()))

    assert document["role_arn"] == ROLE_ARN
    assert set(document) >= {"service_role_trust_policy", "service_role_policy",
                             "submitter_policy", "setup_policy"}
    assert "# Trust policy of role MediaConvertRole" in str(documents)


def test_create_service_role_creates_then_unchanged(iam: Any, documents: PolicyDocuments) -> None:
    first = create_service_role(documents, iam)
    second = create_service_role(documents, iam)
    stored = iam.get_role_policy(RoleName="MediaConvertRole", PolicyName=SERVICE_ROLE_POLICY_NAME)

    assert first.action_of("IAM role") == "created"
    assert first.action_of("IAM role policy") == "created"
    assert second.action_of("IAM role") == "unchanged"
    assert second.action_of("IAM role policy") == "unchanged"
    assert stored["PolicyDocument"] == documents.service_role_policy


def test_create_service_role_repairs_trust_policy(iam: Any, documents: PolicyDocuments) -> None:
    create_service_role(documents, iam)
    other = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "ec2.amazonaws.com"}}]}
    iam.update_assume_role_policy(RoleName="MediaConvertRole", PolicyDocument=json.dumps(other))

    report = create_service_role(documents, iam)
    trust = iam.get_role(RoleName="MediaConvertRole")["Role"]["AssumeRolePolicyDocument"]

    assert report.action_of("IAM role") == "updated"
    assert trust["Statement"][0]["Principal"] == {"Service": "mediaconvert.amazonaws.com"}


def test_create_service_role_access_denied_names_action(
    iam: Any, documents: PolicyDocuments,
) -> None:
    with Stubber(iam) as stubber:
        stubber.add_client_error("get_role", "NoSuchEntity", http_status_code=404)
        stubber.add_client_error("create_role", "AccessDenied", http_status_code=403)

        with pytest.raises(ProvisioningError, match="iam:CreateRole"):
            create_service_role(documents, iam)

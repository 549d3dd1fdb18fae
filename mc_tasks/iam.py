"""IAM policy documents that mc_tasks needs, and optional creation of the MediaConvert role.

Three identities are involved:

* the MediaConvert service role, assumed by ``mediaconvert.amazonaws.com``
  to read inputs from and write outputs to the media bucket;
* the submitter (the Celery workers): passes that role to MediaConvert,
  creates, reads and cancels jobs, reads the MediaConvert queue and consumes
  the SQS event queue;
* the one-off setup identity: creates the EventBridge rule and the SQS
  queues; its policy can be detached once setup has run.

Every resource is an ARN scoped to the given account, region, bucket, queue
and rule. Actions that support no resource-level permission (EventBridge
ListRules and TestEventPattern, STS GetCallerIdentity) are granted on ``*``.
Buckets encrypted with SSE-KMS also need ``kms:Decrypt`` and
``kms:GenerateDataKey`` for the role on their key, which is not included.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mc_tasks.errors import ConfigurationError
from mc_tasks.provision.calls import aws_step, error_code
from mc_tasks.provision.reports import Action, ResourceResult, SetupReport
from mc_tasks.provision.resources import (
    dead_letter_queue_name,
    normalize_document,
    partition_for_region,
)
from mc_tasks.settings import (
    DEFAULT_EVENTBRIDGE_RULE_NAME,
    DEFAULT_MEDIACONVERT_QUEUE,
    DEFAULT_SQS_QUEUE_NAME,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

DEFAULT_ROLE_NAME = "MediaConvertRole"
#: Name of the inline policy that create_service_role puts on the role.
SERVICE_ROLE_POLICY_NAME = "McTasksMediaConvertS3Access"
MEDIACONVERT_SERVICE_PRINCIPAL = "mediaconvert.amazonaws.com"
POLICY_VERSION = "2012-10-17"

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SQS_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_RULE_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
_MEDIACONVERT_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MEDIACONVERT_QUEUE_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:mediaconvert:[a-z0-9-]+:\d{12}:queues/[A-Za-z0-9_-]{1,128}$"
)
#: Prefixes and suffixes that S3 reserves in general purpose bucket names.
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


@dataclass(frozen=True)
class PolicyDocuments:
    """The four IAM documents of one deployment, each a JSON-ready dict."""

    role_name: str
    role_arn: str
    #: Trust policy of the MediaConvert service role.
    service_role_trust_policy: dict[str, Any]
    #: Permissions of the service role: the media bucket.
    service_role_policy: dict[str, Any]
    #: Permissions of the identity that submits jobs and drains events.
    submitter_policy: dict[str, Any]
    #: Permissions of the one-off event path setup; removable afterwards.
    setup_policy: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "role_name": self.role_name,
            "role_arn": self.role_arn,
            "service_role_trust_policy": self.service_role_trust_policy,
            "service_role_policy": self.service_role_policy,
            "submitter_policy": self.submitter_policy,
            "setup_policy": self.setup_policy,
        }

    def __str__(self) -> str:
        sections = (
            (f"Trust policy of role {self.role_name}", self.service_role_trust_policy),
            (f"Permissions policy of role {self.role_name} ({self.role_arn})",
             self.service_role_policy),
            ("Policy of the identity that submits jobs and drains events", self.submitter_policy),
            ("Policy of the identity that runs setup (removable afterwards)", self.setup_policy),
        )
        return "\n\n".join(f"# {title}\n{json.dumps(document, indent=2)}"
                           for title, document in sections)


def policy_documents(*, bucket: str, account_id: str, region: str,
                     role_name: str = DEFAULT_ROLE_NAME,
                     sqs_queue_name: str = DEFAULT_SQS_QUEUE_NAME,
                     rule_name: str = DEFAULT_EVENTBRIDGE_RULE_NAME,
                     mediaconvert_queue: str = DEFAULT_MEDIACONVERT_QUEUE) -> PolicyDocuments:
    """Build the IAM documents for one bucket, account, region, queue and rule.

    ``mediaconvert_queue`` is a queue name or ARN. Raises ConfigurationError
    naming the first invalid value.
    """
    _validate_bucket(bucket)
    _require(_ACCOUNT_ID.match(account_id), "account id", account_id, "12 digits")
    _require(_REGION.match(region), "region", region, "an AWS region such as us-east-1")
    _require(_ROLE_NAME.match(role_name), "role name", role_name,
             "1-64 letters, digits or +=,.@_- characters")
    _require(_SQS_QUEUE_NAME.match(sqs_queue_name), "SQS queue name", sqs_queue_name,
             "1-80 letters, digits, '-' or '_' (FIFO queues are not supported)")
    _require(_RULE_NAME.match(rule_name), "EventBridge rule name", rule_name,
             "1-64 letters, digits, '.', '-' or '_'")
    _require(_MEDIACONVERT_QUEUE_NAME.match(mediaconvert_queue)
             or _MEDIACONVERT_QUEUE_ARN.match(mediaconvert_queue),
             "MediaConvert queue", mediaconvert_queue, "a queue name such as Default, or its ARN")

    partition = partition_for_region(region)
    role_arn = f"arn:{partition}:iam::{account_id}:role/{role_name}"
    mediaconvert = f"arn:{partition}:mediaconvert:{region}:{account_id}"
    queue_arn = (mediaconvert_queue if mediaconvert_queue.startswith("arn:")
                 else f"{mediaconvert}:queues/{mediaconvert_queue}")
    sqs = f"arn:{partition}:sqs:{region}:{account_id}"
    bucket_arn = f"arn:{partition}:s3:::{bucket}"

    return PolicyDocuments(
        role_name=role_name,
        role_arn=role_arn,
        service_role_trust_policy=_document(_statement(
            "MediaConvertAssumesRole", ["sts:AssumeRole"], None,
            principal={"Service": MEDIACONVERT_SERVICE_PRINCIPAL})),
        service_role_policy=_document(
            _statement("ReadInputsWriteOutputs", [
                "s3:GetObject",
                "s3:PutObject",
                # Outputs may set a canned ACL.
                "s3:PutObjectAcl",
                # Large outputs are written as multipart uploads.
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ], [f"{bucket_arn}/*"]),
            _statement("ListMediaBucket", ["s3:ListBucket", "s3:GetBucketLocation"],
                       [bucket_arn]),
        ),
        submitter_policy=_document(
            _statement("PassRoleToMediaConvert", ["iam:PassRole"], [role_arn],
                       condition={"StringEquals": {
                           "iam:PassedToService": MEDIACONVERT_SERVICE_PRINCIPAL}}),
            # CreateJob authorizes against the queue, and against the job template and
            # presets when a job names them (MediaConvert service authorization reference).
            # NOTE: AWS system presets and templates may live outside this account's
            # ARNs; a job that names one may need a wider resource.
            _statement("CreateJobs", ["mediaconvert:CreateJob"], [
                queue_arn, f"{mediaconvert}:presets/*", f"{mediaconvert}:jobTemplates/*",
            ]),
            # CreateJob with Tags also checks TagResource on the new job.
            _statement("TagNewJobs", ["mediaconvert:TagResource"], [f"{mediaconvert}:jobs/*"]),
            _statement("ReadQueue", ["mediaconvert:GetQueue"], [queue_arn]),
            _statement("ReadAndCancelJobs", ["mediaconvert:GetJob", "mediaconvert:CancelJob"],
                       [f"{mediaconvert}:jobs/*"]),
            # A submission retried after the ClientRequestToken window searches recent
            # jobs for its submission id. ListJobs supports no resource-level permission.
            _statement("FindRetriedSubmissions", ["mediaconvert:ListJobs"], ["*"]),
            # DeleteMessageBatch and ChangeMessageVisibilityBatch are authorized by
            # sqs:DeleteMessage and sqs:ChangeMessageVisibility (SQS API reference).
            _statement("ConsumeJobEvents", [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
            ], [f"{sqs}:{sqs_queue_name}"]),
        ),
        setup_policy=_document(
            _statement("ManageEventRule", [
                "events:PutRule",
                "events:DescribeRule",
                "events:DeleteRule",
                "events:PutTargets",
                "events:ListTargetsByRule",
                "events:RemoveTargets",
            ], [f"arn:{partition}:events:{region}:{account_id}:rule/{rule_name}"]),
            # These actions support no resource-level permissions.
            _statement("ListRulesAndTestPatterns",
                       ["events:ListRules", "events:TestEventPattern"], ["*"]),
            _statement("ManageEventQueues", [
                "sqs:CreateQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:DeleteQueue",
            ], [f"{sqs}:{sqs_queue_name}", f"{sqs}:{dead_letter_queue_name(sqs_queue_name)}"]),
            _statement("ReadCallerIdentity", ["sts:GetCallerIdentity"], ["*"]),
        ),
    )


def create_service_role(documents: PolicyDocuments, iam_client: IAMClient) -> SetupReport:
    """Create or repair the MediaConvert service role and its inline S3 policy.

    Idempotent: reports the role and the policy "created", "updated" (trust
    policy or permissions repaired) or "unchanged". Raises ProvisioningError
    naming the missing IAM action on an access denial.
    """
    report = SetupReport()
    name = documents.role_name
    trust = documents.service_role_trust_policy

    with aws_step(f"IAM role {name}"):
        try:
            role: dict[str, Any] | None = dict(iam_client.get_role(RoleName=name)["Role"])
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            role = None
        if role is None:
            iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                                   Description="Assumed by MediaConvert for mc_tasks jobs")
            role_action: Action = "created"
        elif not _same_document(role.get("AssumeRolePolicyDocument"), trust):
            iam_client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            role_action = "updated"
        else:
            role_action = "unchanged"
    report.add(ResourceResult("IAM role", name, role_action, documents.role_arn))

    with aws_step(f"inline policy {SERVICE_ROLE_POLICY_NAME} of IAM role {name}"):
        try:
            current = iam_client.get_role_policy(RoleName=name,
                                                 PolicyName=SERVICE_ROLE_POLICY_NAME)
            current_document: Any = current["PolicyDocument"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            current_document = None
        if current_document is not None and _same_document(current_document,
                                                           documents.service_role_policy):
            policy_action: Action = "unchanged"
        else:
            iam_client.put_role_policy(RoleName=name, PolicyName=SERVICE_ROLE_POLICY_NAME,
                                       PolicyDocument=json.dumps(documents.service_role_policy))
            policy_action = "created" if current_document is None else "updated"
    report.add(ResourceResult("IAM role policy", SERVICE_ROLE_POLICY_NAME, policy_action))

    for result in report.resources:
        logger.info("IAM: %s %s %s", result.kind, result.name, result.action)
    return report


def _statement(sid: str, actions: list[str], resources: list[str] | None, *,
               principal: dict[str, str] | None = None,
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow"}
    if principal is not None:
        statement["Principal"] = principal
    statement["Action"] = actions
    if resources is not None:
        statement["Resource"] = resources
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": list(statements)}


def _same_document(current: Any, desired: dict[str, Any]) -> bool:
    if isinstance(current, str):
        try:
            current = json.loads(current)
        except ValueError:
            return False
    return bool(normalize_document(current) == normalize_document(desired))


def _require(condition: object, field: str, value: str, expected: str) -> None:
    if not condition:
        raise ConfigurationError(f"Invalid {field} {value!r}: expected {expected}.")


def _validate_bucket(bucket: str) -> None:
    if bucket.startswith(("s3://", "arn:", "https://", "http://")):
        raise ConfigurationError(
            f"Invalid bucket {bucket!r}: give the bucket name alone, without an s3:// URL, "
            "ARN or path; the policies build the ARNs themselves."
        )
    _require(_BUCKET.match(bucket), "bucket name", bucket,
             "3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter "
             "or digit")
    _require(".." not in bucket and ".-" not in bucket and "-." not in bucket, "bucket name",
             bucket, "no two adjacent periods and no period next to a hyphen")
    _require(not _is_ip_address(bucket), "bucket name", bucket,
             "a name that is not formatted as an IP address")
    _require(not bucket.startswith(_RESERVED_BUCKET_PREFIXES), "bucket name", bucket,
             f"a name that does not start with {', '.join(_RESERVED_BUCKET_PREFIXES)}")
    _require(not bucket.endswith(_RESERVED_BUCKET_SUFFIXES), "bucket name", bucket,
             f"a name that does not end with {', '.join(_RESERVED_BUCKET_SUFFIXES)}")


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True

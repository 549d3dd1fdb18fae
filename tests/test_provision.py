"""Provisioning of the event path against moto's in-process AWS (Stubber only for AWS errors)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mc_tasks.errors import ConfigurationError, ProvisioningError
from mc_tasks.metadata import APPLICATION_KEY
from mc_tasks.provision import (
    EventPathClients,
    SetupReport,
    setup_event_delivery,
    teardown_event_delivery,
    verify_event_delivery,
)
from mc_tasks.provision.calls import SETUP_MAX_ATTEMPTS
from mc_tasks.provision.resources import (
    CONSUMED_STATUSES,
    DEAD_LETTER_POLICY_SID,
    QUEUE_POLICY_SID,
    TARGET_ID,
    attribute_differences,
    normalize_document,
)
from mc_tasks.provision.setup import check_existing_queue, check_queue_name
from mc_tasks.provision.verify import pattern_matches
from mc_tasks.settings import Settings

ACCOUNT_ID = "123456789012"
QUEUE_NAME = "mediaconvert-messages"
DLQ_NAME = "mediaconvert-messages-dlq"
RULE_NAME = "mediaconvert-job-events"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{QUEUE_NAME}"
DLQ_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{DLQ_NAME}"
RULE_ARN = f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/{RULE_NAME}"
KINDS = ("dead-letter queue", "queue", "dead-letter queue policy", "queue policy", "rule",
         "target")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def make_clients() -> EventPathClients:
    """Fresh clients, not the process cache, so each test or thread has its own."""
    session = boto3.session.Session(region_name="us-east-1")
    return EventPathClients(sqs=session.client("sqs"), events=session.client("events"),
                            sts=session.client("sts"))


def no_sleep(delay_s: float) -> None:
    pass


def queue_url(clients: EventPathClients, name: str = QUEUE_NAME) -> str:
    return clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]


def attributes(clients: EventPathClients, name: str = QUEUE_NAME) -> dict[str, str]:
    response = clients.sqs.get_queue_attributes(QueueUrl=queue_url(clients, name),
                                                AttributeNames=["All"])
    return {str(key): value for key, value in response["Attributes"].items()}


def statements(clients: EventPathClients, name: str = QUEUE_NAME) -> list[dict[str, Any]]:
    policy = attributes(clients, name).get("Policy")
    return list(json.loads(policy)["Statement"]) if policy else []


def rule_pattern(clients: EventPathClients) -> dict[str, Any]:
    return dict(json.loads(clients.events.describe_rule(Name=RULE_NAME)["EventPattern"]))


def put_job_event(clients: EventPathClients, user_metadata: dict[str, str]) -> None:
    detail = {"status": "COMPLETE", "jobId": "1700000000000-abcdef", "accountId": ACCOUNT_ID,
              "queue": f"arn:aws:mediaconvert:us-east-1:{ACCOUNT_ID}:queues/Default",
              "timestamp": 1704067200000, "userMetadata": user_metadata}
    response = clients.events.put_events(Entries=[{
        "Source": "aws.mediaconvert", "DetailType": "MediaConvert Job State Change",
        "Detail": json.dumps(detail)}])
    assert response["FailedEntryCount"] == 0


def receive(clients: EventPathClients) -> list[dict[str, Any]]:
    response = clients.sqs.receive_message(QueueUrl=queue_url(clients), WaitTimeSeconds=0,
                                           MaxNumberOfMessages=10)
    return [dict(message) for message in response.get("Messages", [])]


# Setup: first run, second run, drift repair.

def test_first_setup_creates_every_resource(aws: None, settings: Settings) -> None:
    report = setup_event_delivery(settings, clients=make_clients(), sleep=no_sleep)

    for kind in KINDS:
        assert report.action_of(kind) == "created", kind
    assert report.attempts == 1


def test_second_setup_reports_all_unchanged(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    for kind in KINDS:
        assert report.action_of(kind) == "unchanged", kind
    assert not report.changed


def test_queue_attributes_after_setup(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    queue = attributes(clients)
    dead_letter = attributes(clients, DLQ_NAME)

    assert queue["ReceiveMessageWaitTimeSeconds"] == "20"
    assert queue["SqsManagedSseEnabled"] == "true"
    assert queue["MessageRetentionPeriod"] == str(4 * 24 * 3600)
    assert queue["VisibilityTimeout"] == str(settings.visibility_timeout_s)
    assert json.loads(queue["RedrivePolicy"])["deadLetterTargetArn"] == DLQ_ARN
    assert int(json.loads(queue["RedrivePolicy"])["maxReceiveCount"]) == settings.max_receive_count
    assert dead_letter["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert dead_letter["SqsManagedSseEnabled"] == "true"


def test_rule_pattern_and_target_after_setup(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    pattern = rule_pattern(clients)
    targets = clients.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]

    assert pattern["source"] == ["aws.mediaconvert"]
    assert pattern["detail-type"] == ["MediaConvert Job State Change"]
    assert sorted(pattern["detail"]["status"]) == sorted(CONSUMED_STATUSES)
    assert pattern["detail"]["userMetadata"] == {APPLICATION_KEY: [settings.application]}
    assert "queue" not in pattern["detail"]
    assert len(targets) == 1
    assert targets[0]["Id"] == TARGET_ID
    assert targets[0]["Arn"] == QUEUE_ARN
    assert targets[0]["DeadLetterConfig"] == {"Arn": DLQ_ARN}
    assert targets[0]["RetryPolicy"]["MaximumRetryAttempts"] == 185
    assert targets[0]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 24 * 3600


def test_policy_statements_name_the_rule(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    [queue_statement] = statements(clients)
    [dead_letter_statement] = statements(clients, DLQ_NAME)

    assert queue_statement["Sid"] == QUEUE_POLICY_SID
    assert queue_statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert queue_statement["Action"] == "sqs:SendMessage"
    assert queue_statement["Resource"] == QUEUE_ARN
    assert queue_statement["Condition"] == {"ArnEquals": {"aws:SourceArn": RULE_ARN}}
    assert dead_letter_statement["Sid"] == DEAD_LETTER_POLICY_SID
    assert dead_letter_statement["Resource"] == DLQ_ARN
    assert dead_letter_statement["Condition"] == {"ArnEquals": {"aws:SourceArn": RULE_ARN}}


def test_deleted_statement_restored_others_kept(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    other = {"Sid": "SomeoneElse", "Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID},
             "Action": "sqs:ReceiveMessage", "Resource": QUEUE_ARN}
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients), Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [other]})})

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    sids = [statement["Sid"] for statement in statements(clients)]

    assert report.action_of("queue policy") == "updated"
    assert report.action_of("queue") == "unchanged"
    assert sorted(sids) == sorted(["SomeoneElse", QUEUE_POLICY_SID])


def test_setup_repairs_altered_statement(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    [statement] = statements(clients)
    statement["Condition"] = {"ArnEquals": {"aws:SourceArn": RULE_ARN + "-other"}}
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients), Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})})

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    [repaired] = statements(clients)

    assert report.action_of("queue policy") == "updated"
    assert repaired["Condition"] == {"ArnEquals": {"aws:SourceArn": RULE_ARN}}


def test_setup_repairs_changed_pattern(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.put_rule(Name=RULE_NAME, EventPattern=json.dumps({"source": ["aws.s3"]}))

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert report.action_of("rule") == "updated"
    assert rule_pattern(clients)["source"] == ["aws.mediaconvert"]


def test_setup_reenables_disabled_rule(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.disable_rule(Name=RULE_NAME)

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert report.action_of("rule") == "updated"
    assert clients.events.describe_rule(Name=RULE_NAME)["State"] == "ENABLED"


def test_setup_restores_removed_target(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.remove_targets(Rule=RULE_NAME, Ids=[TARGET_ID])

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    targets = clients.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]

    assert report.action_of("target") == "updated"
    assert [target["Arn"] for target in targets] == [QUEUE_ARN]


def test_target_without_dlq_repaired(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.put_targets(Rule=RULE_NAME, Targets=[{"Id": TARGET_ID, "Arn": QUEUE_ARN}])

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    [target] = clients.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]

    assert report.action_of("target") == "updated"
    assert target["DeadLetterConfig"] == {"Arn": DLQ_ARN}


def test_setup_repairs_visibility_timeout(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients),
                                     Attributes={"VisibilityTimeout": "30"})

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    [queue_result] = [r for r in report.resources if r.kind == "queue"]

    assert queue_result.action == "updated"
    assert queue_result.changes == (f"VisibilityTimeout: 30 -> {settings.visibility_timeout_s}",)
    assert attributes(clients)["VisibilityTimeout"] == str(settings.visibility_timeout_s)


def test_setup_adopts_existing_plain_queue(aws: None, settings: Settings) -> None:
    clients = make_clients()
    clients.sqs.create_queue(QueueName=QUEUE_NAME)

    report = setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert report.action_of("queue") == "updated"
    assert report.action_of("queue policy") == "updated"
    assert attributes(clients)["ReceiveMessageWaitTimeSeconds"] == "20"


def test_concurrent_setups_end_with_one_set(aws: None, settings: Settings) -> None:
    barrier = threading.Barrier(4)
    reports: list[SetupReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        clients = make_clients()
        barrier.wait()
        try:
            reports.append(setup_event_delivery(settings, clients=clients, sleep=no_sleep))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    clients = make_clients()

    assert errors == []
    assert len(reports) == 4
    assert sorted(clients.sqs.list_queues()["QueueUrls"]) == sorted(
        [queue_url(clients), queue_url(clients, DLQ_NAME)])
    assert len(clients.events.list_rules(NamePrefix=RULE_NAME)["Rules"]) == 1
    assert len(clients.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]) == 1
    assert [s["Sid"] for s in statements(clients)] == [QUEUE_POLICY_SID]
    assert [s["Sid"] for s in statements(clients, DLQ_NAME)] == [DEAD_LETTER_POLICY_SID]


# Delivery through EventBridge.

def test_marked_event_arrives_in_queue(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    put_job_event(clients, {APPLICATION_KEY: settings.application, "mc_tasks_reference": "42"})
    messages = receive(clients)

    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["detail"]["userMetadata"][APPLICATION_KEY] == settings.application
    assert body["detail"]["status"] == "COMPLETE"


def test_unmarked_event_is_not_delivered(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    put_job_event(clients, {"mc_tasks_reference": "42"})
    put_job_event(clients, {APPLICATION_KEY: "another-application"})

    assert receive(clients) == []


def test_restricted_rule_names_mediaconvert_queue(aws: None, settings: Settings) -> None:
    queue = f"arn:aws:mediaconvert:us-east-1:{ACCOUNT_ID}:queues/Transcoding"
    clients = make_clients()

    report = setup_event_delivery(settings.replace(mediaconvert_queue=queue), clients=clients,
                                  restrict_to_mediaconvert_queue=True, sleep=no_sleep)

    assert rule_pattern(clients)["detail"]["queue"] == [queue]
    assert report.notes == []


def test_queue_name_restriction_skipped_with_note(aws: None, settings: Settings) -> None:
    clients = make_clients()

    report = setup_event_delivery(settings, clients=clients, restrict_to_mediaconvert_queue=True,
                                  sleep=no_sleep)

    assert "queue" not in rule_pattern(clients)["detail"]
    assert len(report.notes) == 1
    assert "ARN" in report.notes[0]


# Pre-flight checks.

def test_fifo_queue_name_rejected_by_settings() -> None:
    with pytest.raises(ConfigurationError, match="FIFO"):
        Settings(region="us-east-1", sqs_queue_name="events.fifo")


def test_fifo_queue_name_rejected_by_preflight() -> None:
    with pytest.raises(ConfigurationError, match="MessageGroupId"):
        check_queue_name("events.fifo")


def test_existing_fifo_queue_rejected(aws: None) -> None:
    clients = make_clients()
    url = clients.sqs.create_queue(QueueName="events.fifo",
                                   Attributes={"FifoQueue": "true"})["QueueUrl"]
    found = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    with pytest.raises(ProvisioningError, match="FIFO queue"):
        check_existing_queue("events.fifo", {str(key): value for key, value in found.items()})


def test_queue_with_aws_managed_key_rejected(aws: None, settings: Settings) -> None:
    clients = make_clients()
    clients.sqs.create_queue(QueueName=QUEUE_NAME, Attributes={"KmsMasterKeyId": "alias/aws/sqs"})

    with pytest.raises(ProvisioningError, match="alias/aws/sqs") as caught:
        setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert "SSE-SQS" in str(caught.value)
    assert "events.amazonaws.com" in str(caught.value)
    assert clients.sqs.list_queues()["QueueUrls"] == [queue_url(clients)]
    assert clients.events.list_rules(NamePrefix=RULE_NAME)["Rules"] == []


def test_queue_with_customer_key_keeps_it(aws: None, settings: Settings) -> None:
    clients = make_clients()
    key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    clients.sqs.create_queue(QueueName=QUEUE_NAME, Attributes={"KmsMasterKeyId": key})

    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert attributes(clients)["KmsMasterKeyId"] == key


# AWS errors injected with Stubber.

def test_access_denied_on_put_rule_names_action(aws: None, settings: Settings) -> None:
    clients = make_clients()
    with Stubber(clients.events) as stubber:
        stubber.add_client_error("describe_rule", "ResourceNotFoundException", http_status_code=400)
        stubber.add_client_error("put_rule", "AccessDeniedException", http_status_code=400,
                                 service_message="not authorized to perform events:PutRule")

        with pytest.raises(ProvisioningError, match="events:PutRule") as caught:
            setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert f"rule {RULE_NAME}" in str(caught.value)


def test_access_denied_on_create_queue_names_action(aws: None, settings: Settings) -> None:
    clients = make_clients()
    with Stubber(clients.sqs) as stubber:
        for _ in range(2):
            stubber.add_client_error("get_queue_url", "AWS.SimpleQueueService.NonExistentQueue")
        stubber.add_client_error("create_queue", "AccessDenied", http_status_code=403)

        with pytest.raises(ProvisioningError, match="sqs:CreateQueue") as caught:
            setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert DLQ_NAME in str(caught.value)


def test_denied_caller_identity_names_action(aws: None, settings: Settings) -> None:
    clients = make_clients()
    with Stubber(clients.sts) as stubber:
        stubber.add_client_error("get_caller_identity", "AccessDenied", http_status_code=403)

        with pytest.raises(ProvisioningError, match="sts:GetCallerIdentity"):
            setup_event_delivery(settings, clients=clients, sleep=no_sleep)


def test_queue_deleted_recently_is_retried(aws: None, settings: Settings) -> None:
    clients = make_clients()
    stubber = Stubber(clients.sqs)
    for _ in range(2):
        stubber.add_client_error("get_queue_url", "AWS.SimpleQueueService.NonExistentQueue")
    stubber.add_client_error("create_queue", "AWS.SimpleQueueService.QueueDeletedRecently")
    delays: list[float] = []

    def sleep_then_stop_stubbing(delay_s: float) -> None:
        delays.append(delay_s)
        stubber.deactivate()

    stubber.activate()
    report = setup_event_delivery(settings, clients=clients, sleep=sleep_then_stop_stubbing)

    assert report.attempts == 2
    assert len(delays) == 1
    assert 0.0 <= delays[0] <= 2.0
    assert report.action_of("dead-letter queue") == "created"


def test_retries_are_bounded(aws: None, settings: Settings) -> None:
    clients = make_clients()
    delays: list[float] = []
    with Stubber(clients.sqs) as stubber:
        for _ in range(SETUP_MAX_ATTEMPTS):
            for _ in range(2):
                stubber.add_client_error("get_queue_url",
                                         "AWS.SimpleQueueService.NonExistentQueue")
            stubber.add_client_error("create_queue", "QueueDeletedRecently")

        with pytest.raises(ProvisioningError) as caught:
            setup_event_delivery(settings, clients=clients, sleep=delays.append)

    assert len(delays) == SETUP_MAX_ATTEMPTS - 1
    assert f"dead-letter queue {DLQ_NAME}" in str(caught.value)
    assert "QueueDeletedRecently" in str(caught.value)
    assert "wait a minute" in str(caught.value)


def test_throttled_put_targets_is_retried(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.remove_targets(Rule=RULE_NAME, Ids=[TARGET_ID])
    stubber = Stubber(clients.events)
    stubber.add_response("describe_rule", dict(clients.events.describe_rule(Name=RULE_NAME)))
    stubber.add_response("list_targets_by_rule", {})
    stubber.add_client_error("put_targets", "ThrottlingException", http_status_code=400)

    stubber.activate()
    report = setup_event_delivery(settings, clients=clients, sleep=lambda _: stubber.deactivate())

    assert report.attempts == 2
    assert report.action_of("target") == "updated"


# Verification.

def test_verify_passes_after_setup(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    report = verify_event_delivery(settings, clients=clients)

    assert report.ok, str(report)
    assert len([c for c in report.checks if c.name.startswith("pattern matches")]) == len(
        CONSUMED_STATUSES)
    assert report.check("pattern rejects other applications").passed


def test_verify_notes_local_pattern_evaluation(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    report = verify_event_delivery(settings, clients=clients)

    assert any("evaluated locally" in note for note in report.notes)


def test_verify_fails_on_changed_pattern(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    pattern = rule_pattern(clients)
    pattern["detail"]["status"] = ["COMPLETE"]
    clients.events.put_rule(Name=RULE_NAME, EventPattern=json.dumps(pattern))

    report = verify_event_delivery(settings, clients=clients)

    assert not report.ok
    assert not report.check("pattern matches ERROR").passed
    assert report.check("pattern matches COMPLETE").passed


def test_verify_fails_on_removed_target(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.events.remove_targets(Rule=RULE_NAME, Ids=[TARGET_ID])

    report = verify_event_delivery(settings, clients=clients)

    assert not report.check("target").passed
    assert [check.name for check in report.failed] == ["target"]


def test_verify_fails_on_missing_statement(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients), Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": []})})

    report = verify_event_delivery(settings, clients=clients)

    assert [check.name for check in report.failed] == ["queue policy"]
    assert QUEUE_POLICY_SID in report.check("queue policy").message


def test_verify_fails_on_missing_redrive_policy(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    # moto 5.2.5 drops the queue policy on any SetQueueAttributes that omits it.
    policy = attributes(clients)["Policy"]
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients),
                                     Attributes={"RedrivePolicy": "", "Policy": policy})

    report = verify_event_delivery(settings, clients=clients)

    assert [check.name for check in report.failed] == ["redrive policy"]


def test_verify_before_setup_fails(aws: None, settings: Settings) -> None:
    report = verify_event_delivery(settings, clients=make_clients())

    assert not report.ok
    assert not report.check("rule").passed
    assert not report.check("queue").passed


# Teardown.

def test_teardown_removes_everything(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)

    report = teardown_event_delivery(settings, clients=clients, sleep=no_sleep)

    for kind in ("target", "rule", "queue", "dead-letter queue"):
        assert report.action_of(kind) == "deleted", kind
    assert clients.sqs.list_queues().get("QueueUrls", []) == []
    assert clients.events.list_rules(NamePrefix=RULE_NAME)["Rules"] == []


def test_second_teardown_reports_absent(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    teardown_event_delivery(settings, clients=clients, sleep=no_sleep)

    report = teardown_event_delivery(settings, clients=clients, sleep=no_sleep)

    for kind in ("target", "rule", "queue", "dead-letter queue"):
        assert report.action_of(kind) == "absent", kind
    assert not report.changed


def test_teardown_keeps_rule_with_other_targets(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    other_url = clients.sqs.create_queue(QueueName="other")["QueueUrl"]
    other_arn = clients.sqs.get_queue_attributes(
        QueueUrl=other_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.events.put_targets(Rule=RULE_NAME, Targets=[{"Id": "other", "Arn": other_arn}])

    report = teardown_event_delivery(settings, clients=clients, sleep=no_sleep)

    assert report.action_of("target") == "deleted"
    assert report.action_of("rule") == "kept"
    assert "other" in report.notes[0]


# Reports and secrets.

def test_report_to_dict_is_json(aws: None, settings: Settings) -> None:
    report = setup_event_delivery(settings, clients=make_clients(), sleep=no_sleep)

    document = json.loads(json.dumps(report.to_dict()))

    assert [r["action"] for r in document["resources"]] == ["created"] * len(KINDS)
    assert document["changed"] is True
    assert "queue mediaconvert-messages: created" in str(report)


def test_no_secret_in_logs_reports_or_errors(
    aws: None, settings: Settings, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY42"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE1234")
    caplog.set_level(logging.DEBUG)
    clients = make_clients()

    texts = []
    setup = setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    texts += [str(setup), repr(setup), json.dumps(setup.to_dict())]
    verification = verify_event_delivery(settings, clients=clients)
    texts += [str(verification), repr(verification), json.dumps(verification.to_dict())]
    with Stubber(clients.events) as stubber:
        stubber.add_client_error("describe_rule", "AccessDeniedException", http_status_code=400)
        with pytest.raises(ProvisioningError) as caught:
            setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    texts += [str(caught.value), repr(caught.value), repr(clients)]
    texts.append(str(teardown_event_delivery(settings, clients=clients, sleep=no_sleep)))

    assert caplog.records
    assert secret not in caplog.text
    for text in texts:
        assert secret not in text


# Pure helpers.

def test_redrive_count_as_string_is_not_drift() -> None:
    current = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN,
                                            "maxReceiveCount": "5"})}
    desired = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN,
                                            "maxReceiveCount": 5})}

    assert attribute_differences(current, desired) == {}


def test_string_and_list_forms_compare_equal() -> None:
    assert normalize_document({"Action": "sqs:SendMessage"}) == normalize_document(
        {"Action": ["sqs:SendMessage"]})
    assert normalize_document({"a": ["y", "x"]}) == normalize_document({"a": ["x", "y"]})


@pytest.mark.parametrize(("event", "expected"), [
    ({"source": "aws.mediaconvert", "detail": {"status": "ERROR"}}, True),
    ({"source": "aws.mediaconvert", "detail": {"status": "SUBMITTED"}}, False),
    ({"source": "aws.mediaconvert", "detail": {}}, False),
    ({"source": "aws.s3", "detail": {"status": "ERROR"}}, False),
    ({"source": ["aws.mediaconvert", "x"], "detail": {"status": "ERROR"}}, True),
])
def test_local_pattern_matching(event: dict[str, Any], expected: bool) -> None:
    pattern = {"source": ["aws.mediaconvert"], "detail": {"status": ["ERROR", "COMPLETE"]}}

    assert pattern_matches(pattern, event) is expected


def add_statement(clients: EventPathClients, statement: dict[str, Any]) -> None:
    policy = json.loads(attributes(clients)["Policy"])
    policy["Statement"].append(statement)
    clients.sqs.set_queue_attributes(QueueUrl=queue_url(clients),
                                     Attributes={"Policy": json.dumps(policy)})


def test_verify_fails_on_deny_for_eventbridge(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    add_statement(clients, {"Sid": "DenyAll", "Effect": "Deny", "Principal": "*",
                            "Action": "sqs:*", "Resource": "*"})

    report = verify_event_delivery(settings, clients=clients)

    assert [check.name for check in report.failed] == ["queue policy denials"]
    assert "DenyAll" in report.check("queue policy denials").message


def test_verify_notes_conditional_deny(aws: None, settings: Settings) -> None:
    clients = make_clients()
    setup_event_delivery(settings, clients=clients, sleep=no_sleep)
    add_statement(clients, {"Sid": "DenyPlainHttp", "Effect": "Deny", "Principal": "*",
                            "Action": "sqs:*", "Resource": "*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})

    report = verify_event_delivery(settings, clients=clients)

    assert report.ok, str(report)
    assert any("DenyPlainHttp" in note for note in report.notes)

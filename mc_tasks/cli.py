"""The ``mc-tasks`` command: provisioning, IAM documents, queue status and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, NoCredentialsError

from mc_tasks.errors import McTasksError
from mc_tasks.settings import Settings, get_settings


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    from mc_tasks import provision

    report = provision.setup_event_delivery(
        settings, restrict_to_mediaconvert_queue=args.restrict_to_mediaconvert_queue)
    print(report)
    if args.verify:
        verification = provision.verify_event_delivery(settings)
        print(verification)
        return 0 if verification.ok else 1
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from mc_tasks import provision

    verification = provision.verify_event_delivery(settings)
    print(verification)
    return 0 if verification.ok else 1


def _teardown(args: argparse.Namespace, settings: Settings) -> int:
    from mc_tasks import provision

    print(provision.teardown_event_delivery(settings))
    return 0


def _iam_policies(args: argparse.Namespace, settings: Settings | None) -> int:
    from mc_tasks import iam
    from mc_tasks.settings import DEFAULT_EVENTBRIDGE_RULE_NAME, DEFAULT_SQS_QUEUE_NAME

    # Each value comes from its flag, then from the settings, then from the default.
    region = args.region or (settings.region if settings else None)
    if region is None:
        raise McTasksError("No region: pass --region or set AWS_DEFAULT_REGION.")
    sqs_queue_name = args.sqs_queue_name or (
        settings.sqs_queue_name if settings else DEFAULT_SQS_QUEUE_NAME)
    rule_name = args.rule_name or (
        settings.eventbridge_rule_name if settings else DEFAULT_EVENTBRIDGE_RULE_NAME)
    documents = iam.policy_documents(
        bucket=args.bucket,
        account_id=args.account_id,
        region=region,
        role_name=args.role_name,
        sqs_queue_name=sqs_queue_name,
        rule_name=rule_name,
        mediaconvert_queue=args.mediaconvert_queue,
    )
    print(json.dumps(documents.to_dict(), indent=2))
    if args.create_role:
        from mc_tasks.clients import get_client

        if settings is None:
            raise McTasksError("--create-role needs AWS settings: set AWS_DEFAULT_REGION and "
                               "credentials.")
        print(iam.create_service_role(documents, get_client("iam", settings)), file=sys.stderr)
    return 0


def _queue_status(args: argparse.Namespace, settings: Settings) -> int:
    from mc_tasks import submit

    print(json.dumps(submit.get_queue_status(settings, queue=args.queue).to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mc-tasks``."""
    parser = argparse.ArgumentParser(prog="mc-tasks", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    setup = commands.add_parser("setup", help="create or repair the SQS queue, dead-letter "
                                "queue, queue policy and EventBridge rule")
    setup.add_argument("--verify", action="store_true",
                       help="check afterwards that events can reach the queue")
    setup.add_argument("--restrict-to-mediaconvert-queue", action="store_true",
                       help="match only events of MC_TASKS_MEDIACONVERT_QUEUE (given as an ARN)")
    setup.set_defaults(handler=_setup)

    verify = commands.add_parser("verify", help="check the rule, target and queue policy")
    verify.set_defaults(handler=_verify)

    teardown = commands.add_parser("teardown", help="delete what `setup` created")
    teardown.set_defaults(handler=_teardown)

    policies = commands.add_parser("iam-policies", help="print the IAM policy documents to apply")
    policies.add_argument("--bucket", required=True, help="S3 bucket of inputs and outputs")
    policies.add_argument("--account-id", required=True, help="12-digit AWS account id")
    policies.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION)")
    policies.add_argument("--role-name", default="MediaConvertRole",
                          help="name of the MediaConvert service role (default: MediaConvertRole)")
    policies.add_argument("--mediaconvert-queue", default="Default",
                          help="MediaConvert queue name (default: Default)")
    policies.add_argument("--sqs-queue-name",
                          help="SQS queue name (default: AWS_SQS_QUEUE_NAME or "
                          "mediaconvert-messages)")
    policies.add_argument("--rule-name",
                          help="EventBridge rule name (default: AWS_EVENTBRIDGE_RULE_NAME or "
                          "mediaconvert-job-events)")
    policies.add_argument("--create-role", action="store_true",
                          help="also create or repair the MediaConvert service role in IAM")
    policies.set_defaults(handler=_iam_policies, settings_optional=True)

    status = commands.add_parser("queue-status", help="print the MediaConvert queue's status")
    status.add_argument("--queue", help="queue name or ARN (default: MC_TASKS_MEDIACONVERT_QUEUE)")
    status.set_defaults(handler=_queue_status)

    commands.add_parser("demo", help="run the end-to-end demo on the embedded local stack "
                        "(`mc-tasks demo --help` lists its options)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mc-tasks``; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        # The demo has its own options, parsed by the demo itself.
        from mc_tasks.local.demo import main as demo_main

        return demo_main(arguments[1:])

    args = build_parser().parse_args(arguments)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings: Settings | None
        if getattr(args, "settings_optional", False) and args.region:
            # Every value can come from the command line, so settings are optional.
            try:
                settings = get_settings()
            except McTasksError:
                settings = None
        else:
            settings = get_settings()
        code: int = args.handler(args, settings)
        return code
    except McTasksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print("error: no AWS credentials were found: configure them as for the AWS CLI "
              "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile).", file=sys.stderr)
        return 2
    except BotoCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

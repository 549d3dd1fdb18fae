"""The mc-tasks command: exit codes, messages and options."""

from __future__ import annotations

import json

import pytest

from mc_tasks.cli import main


def test_iam_policies_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["iam-policies", "--bucket", "media-bucket", "--account-id", "123456789012"])

    documents = json.loads(capsys.readouterr().out)
    assert code == 0
    assert documents["role_arn"] == "arn:aws:iam::123456789012:role/MediaConvertRole"
    assert "submitter_policy" in documents


def test_iam_policies_flag_beats_settings(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SQS_QUEUE_NAME", "from-settings")

    main(["iam-policies", "--bucket", "media-bucket", "--account-id", "123456789012",
          "--sqs-queue-name", "from-flag"])

    output = capsys.readouterr().out
    assert "from-flag" in output
    assert "from-settings" not in output


def test_invalid_setting_exits_2_with_message(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SQS_QUEUE_NAME", "events.fifo")

    code = main(["iam-policies", "--bucket", "media-bucket", "--account-id", "123456789012"])

    error = capsys.readouterr().err
    assert code == 2
    assert "AWS_SQS_QUEUE_NAME" in error
    assert "Traceback" not in error


def test_invalid_bucket_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["iam-policies", "--bucket", "s3://media-bucket", "--account-id",
                 "123456789012"])

    assert code == 2
    assert "media-bucket" in capsys.readouterr().err


def test_demo_options_reach_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])

    assert exited.value.code == 0
    assert "--input" in capsys.readouterr().out


def test_demo_missing_input_fails_first_step(capsys: pytest.CaptureFixture[str],
                                             tmp_path: object) -> None:
    code = main(["demo", "--input", "/nonexistent/video.mp4", "--work-dir", str(tmp_path)])

    error = capsys.readouterr().err
    assert code == 1
    assert "/nonexistent/video.mp4" in error
    assert "step 1" in error

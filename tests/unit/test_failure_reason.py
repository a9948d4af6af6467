"""A version whose test job failed says why (issue 26: "failed: no error given"): the job's error in its
reason and its notification, the end of its log kept in the lifecycle and told to ops (its last lines kept
when it is long), and opsctl's lifecycle view shows it."""

from __future__ import annotations

from datetime import UTC, datetime

from opsctl import views
from shared.domain import lifecycle as machine
from shared.domain.notification import MAX_SUMMARY
from shared.domain.ports import Job, JobStatus
from shared.domain.records import Lifecycle, Stage

LOG = "$ python evaluate.py --model m --test-data t\nSystemExit: the model model.onnx does not load in ONNX Runtime"
ERROR = "step evaluate failed (exit code 1): the model model.onnx does not load in ONNX Runtime: [ONNXRuntimeError]"


def in_testing() -> Lifecycle:
    return Lifecycle(model="credit-risk", version="4", workspace="dev", uri="azureml:credit-risk:4",
                     rule="credit-risk", stage=Stage.TESTING, test_job="test-credit-risk-v4")


def failed(error: str | None, log: str | None) -> Job:
    return Job(workspace="dev", name="test-credit-risk-v4", status=JobStatus.FAILED, error=error, log=log,
               studio_url="https://127.0.0.1:8443/localaml/jobs/dev/test-credit-risk-v4")


def test_a_failed_test_job_s_error_and_log_end_are_kept_and_told() -> None:
    move = machine.judged(in_testing(), failed(ERROR, LOG), [], None)
    assert move is not None and move.stage is Stage.FAILED
    assert move.reason == f"test job test-credit-risk-v4 failed: {ERROR}"
    assert move.changes["test_job_log"] == LOG
    [told] = move.told
    assert told.summary == f"{move.reason}\n\nThe end of its log:\n{LOG}"
    assert told.link == "https://127.0.0.1:8443/localaml/jobs/dev/test-credit-risk-v4"
    record = in_testing().model_copy(update={**move.changes, "stage": Stage.FAILED})
    shown = views.lifecycle(Lifecycle.model_validate(record.stored()).model_dump(mode="json"), {}, width=160)
    assert "the end of the test job's log:\n  $ python evaluate.py" in shown and "does not load in ONNX" in shown


def test_without_an_error_or_a_log_it_says_which_is_missing() -> None:
    assert machine.judged(in_testing(), failed(None, None), [], None).reason.endswith(  # type: ignore[union-attr]
        "Azure ML gave no error and kept no log")
    assert machine.judged(in_testing(), failed(None, LOG), [], None).reason.endswith(  # type: ignore[union-attr]
        "no error given; the end of its log is below")


def test_a_long_log_keeps_its_last_lines_in_the_notification() -> None:
    long = "\n".join(f"line {n}" for n in range(2000)) + "\nSystemExit: the real reason"
    [told] = machine.judged(in_testing(), failed(ERROR, long), [], None).told  # type: ignore[union-attr]
    assert len(told.summary) <= MAX_SUMMARY
    assert told.summary.startswith(f"test job test-credit-risk-v4 failed: {ERROR}")
    assert told.summary.endswith("SystemExit: the real reason")


def test_nothing_of_it_is_kept_for_a_job_that_completed() -> None:
    done = Job(workspace="dev", name="test-credit-risk-v4", status=JobStatus.COMPLETED, metrics={"accuracy": 0.9})
    move = machine.judged(in_testing(), done, [], None)
    assert move is not None and "test_job_log" not in move.changes
    assert datetime.now(UTC)  # the machine takes no clock: judged alone decides

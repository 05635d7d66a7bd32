"""`batchtasks status`: what a user sees of the declared jobs, what it costs in requests, and
the exit codes a CI job acts on with --wait."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from batchapi import BatchApiDouble
from batchtasks.batch.client import RetryPolicy, make_client
from batchtasks.cli import main
from batchtasks.exits import Exit
from batchtasks.ops.declared import read_declared
from batchtasks.ops.reads import Reader
from batchtasks.ops.status import StatusOptions, run_status
from batchtasks.ops.views import LiveView
from stackfiles import submit, sweep_job, write_stack
from tests.fakeclock import FakeClock

IDS = [f"t-{n}" for n in range(1, 6)]


def _run(double: BatchApiDouble, task_id: str, exit_code: int, node: str = "tvm-1") -> None:
    double.start_task("j1", task_id, node_id=node)
    double.finish_task("j1", task_id, exit_code=exit_code)


@pytest.fixture
def stack(tmp_path: Path, batch_api: BatchApiDouble) -> Path:
    return write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 5))


def _status(stack: Path, *args: str) -> dict:
    return json.loads(_text(stack, *args))


def _text(stack: Path, *args: str) -> str:
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert main(["status", "--config-file", str(stack), *args]) == 0
    return out.getvalue()


def test_status_reports_counts_and_each_failure(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _run(batch_api, "t-1", 0)
    _run(batch_api, "t-2", 3, node="tvm-9")
    batch_api.start_task("j1", "t-3")
    batch_api.start_task("j1", "t-4", preparing=True)

    document = _status(stack, "--format", "json")
    job = document["jobs"][0]
    assert job["state"] == "active"
    assert job["declared"] == 5
    assert job["counts"] == {"active": 1, "preparing": 1, "running": 1, "succeeded": 1, "failed": 1}
    [failure] = job["failures"]
    assert failure["id"] == "t-2"
    assert (failure["exitCode"], failure["category"], failure["code"]) == (
        3,
        "usererror",
        "FailureExitCode",
    )
    assert failure["node"] == "tvm-9"
    assert failure["retries"] == 0
    assert failure["logs"] == "node tvm-9, then blob batch-logs/j1/t-2/"
    assert document["done"] is False


def test_status_table_reads_in_a_terminal(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _run(batch_api, "t-2", 3)
    text = _text(stack)
    header, row = text.splitlines()[:2]
    assert header.split() == [
        "job",
        "state",
        "declared",
        "active",
        "preparing",
        "running",
        "succeeded",
        "failed",
        "missing",
        "undeclared",
    ]
    assert row.split()[:8] == ["j1", "active", "5", "4", "0", "0", "0", "1"]
    assert "failed tasks:" in text
    assert "usererror/FailureExitCode" in text


def test_a_large_job_costs_a_handful_of_requests(tmp_path: Path, batch_api: BatchApiDouble):
    stack = write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 2500))
    ids = [f"t-{n}" for n in range(1, 2501)]
    submit(batch_api, "j1", ids)
    for task_id in ids[:7]:
        _run(batch_api, task_id, 1)
    batch_api.reset_counts()

    document = _status(stack, "--format", "json")
    assert document["jobs"][0]["counts"]["failed"] == 7
    # The job, its task counts, one page of failed tasks: the ids are not listed, since the
    # counts agree with the declaration.
    assert batch_api.counts() == {"GET job": 1, "GET taskcounts": 1, "GET tasks": 1}
    assert document["requests"] == 3
    [failed_list] = [r for r in batch_api.requests if r.route == "GET tasks"]
    assert "executionInfo/result eq 'failure'" in failed_list.query["$filter"]
    assert failed_list.query["$select"] == "id,executionInfo,nodeInfo"


def test_missing_and_undeclared_tasks_are_listed_when_counts_disagree(
    stack: Path, batch_api: BatchApiDouble
):
    submit(batch_api, "j1", ["t-1", "t-2", "t-3", "T-4"])
    batch_api.add_task("j1", "stray")
    batch_api.add_task("j1", "other")
    batch_api.reset_counts()

    job = _status(stack, "--format", "json")["jobs"][0]
    # Ids compare ignoring case, as Batch does: T-4 is the declared t-4.
    assert job["missing"] == ["t-5"]
    assert job["undeclared"] == ["other", "stray"]
    assert job["idsChecked"] is True
    [listing] = [r for r in batch_api.requests if r.route == "GET tasks"]
    assert listing.query["$select"] == "id"


def test_counts_that_agree_are_trusted_unless_ids_are_checked(
    stack: Path, batch_api: BatchApiDouble
):
    submit(batch_api, "j1", ["t-1", "t-2", "t-3", "t-4", "stray"])
    assert _status(stack, "--format", "json")["jobs"][0]["missing"] == []
    job = _status(stack, "--format", "json", "--check-ids")["jobs"][0]
    assert (job["missing"], job["undeclared"]) == (["t-5"], ["stray"])


def test_a_job_not_in_batch_says_so(stack: Path, batch_api: BatchApiDouble):
    job = _status(stack, "--format", "json")["jobs"][0]
    assert job["state"] is None
    assert len(job["missing"]) == 5
    assert "not in Batch" in _text(stack)


def test_markdown_escapes_what_the_service_says(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    batch_api.start_task("j1", "t-1")
    batch_api.finish_task(
        "j1",
        "t-1",
        exit_code=None,
        failure={
            "category": "servererror",
            "code": "ContainerPullFailed",
            "message": "pull | denied <img src=x> [x](http://evil) \x1b[31mred\n# heading",
        },
    )
    text = _text(stack, "--format", "markdown")
    [row] = [line for line in text.splitlines() if line.startswith("| j1 | t-1 |")]
    cells = re.split(r"(?<!\\)\|", row)[1:-1]
    # Nine cells: the message's pipe cannot split the row.
    assert len(cells) == 9
    failure = cells[3].strip()
    # The message is a code span, so neither its tag nor its link nor its heading renders,
    # and the terminal escape is written out.
    assert failure.startswith("`") and failure.endswith("`")
    assert "\x1b" not in row and "\\x1b" in row
    assert "\n# heading" not in text


def _reader(endpoint: str) -> Reader:
    return Reader(make_client(endpoint), RetryPolicy(base_delay=0.01))


def _wait(stack: Path, steps: list, timeout: float | None = None) -> tuple[int, str, str]:
    """Run status --wait, doing one step of the run's progress at each pause."""
    declared = read_declared(stack)
    out, err = io.StringIO(), io.StringIO()

    def step() -> None:
        if steps:
            steps.pop(0)()

    code = run_status(
        _reader(declared.endpoint),
        declared.jobs,
        StatusOptions("markdown", wait=True, timeout=timeout, interval=5),
        out=out,
        err=err,
        clock=FakeClock(0.0, on_sleep=step),
    )
    return code, out.getvalue(), err.getvalue()


def test_watch_is_a_view_not_a_gate(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    steps = [lambda t=t: _run(batch_api, t, 1) for t in IDS]
    declared = read_declared(stack)
    out, err = io.StringIO(), io.StringIO()
    code = run_status(
        _reader(declared.endpoint),
        declared.jobs,
        StatusOptions("table", watch=True, interval=1),
        out=out,
        err=err,
        clock=FakeClock(0.0, on_sleep=lambda: steps.pop(0)() if steps else None),
    )
    # It refreshed until the job was done, then showed the table; failures are no error here.
    assert code == 0
    assert not steps
    assert "j1: active, 5/5 completed (0 succeeded, 5 failed)" in err.getvalue()
    assert out.getvalue().startswith("job ")


def test_wait_exits_0_when_every_declared_task_succeeded(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    steps = [lambda t=t: _run(batch_api, t, 0) for t in IDS]
    code, out, err = _wait(stack, steps)
    assert code == 0
    assert "all declared tasks succeeded" in out
    # Progress went to stderr as plain lines (not a terminal), one per change.
    assert "j1: active, 0/5 completed" in err
    assert "j1: active, 5/5 completed (5 succeeded, 0 failed)" in err


def test_wait_exits_1_with_the_failures_when_any_failed(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    steps = [
        lambda t=t, c=c: _run(batch_api, t, c) for t, c in zip(IDS, [0, 0, 4, 0, 0], strict=True)
    ]
    code, out, err = _wait(stack, steps)
    assert code == 1
    assert "j1/t-3: exit 4, usererror" in err
    assert "| j1 | t-3 | 4 |" in out


def test_wait_exits_1_when_declared_tasks_never_reached_batch(
    stack: Path, batch_api: BatchApiDouble
):
    submit(batch_api, "j1", IDS[:3])
    steps = [lambda t=t: _run(batch_api, t, 0) for t in IDS[:3]]
    code, _, err = _wait(stack, steps)
    assert code == 1
    assert "2 declared task(s) missing from Batch: t-4, t-5" in err


def test_wait_exits_3_on_timeout(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    code, _, err = _wait(stack, [], timeout=12)
    assert code == 3
    assert "timed out after 12 s with 5 task(s) not completed" in err


def test_a_terminated_job_ends_the_wait(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _run(batch_api, "t-1", 0)
    batch_api.set_job_state("j1", "completed")
    code, _, err = _wait(stack, [])
    assert code == 1
    assert "job 'j1' is completed with 4 task(s) that never completed" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "10m", "--wait"], "--timeout: '10m' is not an ISO 8601 duration"),
        (["--timeout", "PT1M"], "--timeout needs --wait or --watch"),
        (["--job", "nope"], "job 'nope' is not declared"),
        (["--interval", "0", "--watch"], "--interval: 0 must be more than 0"),
    ],
)
def test_usage_errors_exit_2(
    stack: Path,
    batch_api: BatchApiDouble,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
):
    assert main(["status", "--config-file", str(stack), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_refusing_service_is_not_mistaken_for_failed_tasks(
    stack: Path, batch_api: BatchApiDouble, capsys: pytest.CaptureFixture[str]
):
    submit(batch_api, "j1", IDS)
    batch_api.inject("GET job", 403, code="Forbidden")
    assert main(["status", "--config-file", str(stack), "--wait"]) == Exit.UNREACHABLE
    assert "could not be read: 403 Forbidden" in capsys.readouterr().err


def test_the_live_view_draws_a_bar_per_job(stack: Path, batch_api: BatchApiDouble):
    from batchtasks.ops.status import read_status

    submit(batch_api, "j1", IDS)
    _run(batch_api, "t-1", 0)
    _run(batch_api, "t-2", 1)
    declared = read_declared(stack)
    stream = io.StringIO()
    with LiveView(stream) as view:
        view.update(read_status(_reader(declared.endpoint), declared.jobs, False))
    drawn = stream.getvalue()
    assert "j1" in drawn and "2/5" in drawn and "1 failed" in drawn

"""`batchtasks logs` from the node (ranged reads, --tail, --follow) with clear reasons when
there are none, and `batchtasks rerun --failed` with Batch's reactivate rules."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from batchapi import BatchApiDouble
from batchtasks.batch.client import RetryPolicy, make_client
from batchtasks.cli import main
from batchtasks.ops.declared import read_declared
from batchtasks.ops.logs import LogsOptions, run_logs
from batchtasks.ops.reads import Reader
from stackfiles import submit, sweep_job, write_stack
from tests.fakeclock import FakeClock

IDS = ["t-1", "t-2", "t-3"]


@pytest.fixture
def stack(tmp_path: Path, batch_api: BatchApiDouble) -> Path:
    return write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 3))


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _logs(
    stack: Path, task_id: str, options: LogsOptions, step: Callable[[], None] | None = None
) -> tuple[int, bytes, str]:
    declared = read_declared(stack)
    out, err = io.BytesIO(), io.StringIO()
    reader = Reader(make_client(declared.endpoint), RetryPolicy(base_delay=0.01))
    code = run_logs(
        reader, declared.jobs[0], task_id, options, out=out, err=err, clock=FakeClock(on_sleep=step)
    )
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------ logs


def test_logs_read_from_the_node_say_so(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    batch_api.start_task("j1", "t-1", node_id="tvm-4")
    batch_api.write_task_file("j1", "t-1", "stdout.txt", b"out\n")
    batch_api.write_task_file("j1", "t-1", "stderr.txt", b"trouble\n")

    code, out, err = _logs(stack, "t-1", LogsOptions("stderr"))
    assert (code, out) == (0, b"trouble\n")
    assert "stderr.txt of task t-1 from node tvm-4 (Batch task file API)" in err


def test_tail_reads_only_the_end(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    batch_api.start_task("j1", "t-1")
    lines = b"".join(b"line %d\n" % n for n in range(50_000))
    batch_api.write_task_file("j1", "t-1", "stdout.txt", lines)
    batch_api.reset_counts()

    code, out, _ = _logs(stack, "t-1", LogsOptions(tail=3))
    assert (code, out) == (0, b"line 49997\nline 49998\nline 49999\n")
    ranges = [r for r in batch_api.requests if r.route == "GET taskfile"]
    # One ranged read of the last 64 KiB finds the lines, one reads them; never the whole file.
    assert len(ranges) == 2


def test_follow_prints_what_the_task_writes_until_it_completes(
    stack: Path, batch_api: BatchApiDouble
):
    submit(batch_api, "j1", IDS)
    steps = [
        lambda: batch_api.start_task("j1", "t-2"),
        lambda: batch_api.write_task_file("j1", "t-2", "stdout.txt", b"step 1\n"),
        lambda: None,
        lambda: batch_api.write_task_file("j1", "t-2", "stdout.txt", b"step 2\n"),
        lambda: batch_api.finish_task("j1", "t-2", exit_code=0),
    ]
    code, out, _ = _logs(
        stack, "t-2", LogsOptions(follow=True), step=lambda: steps.pop(0)() if steps else None
    )
    assert code == 0
    assert out == b"step 1\nstep 2\n"
    assert not steps


def test_a_task_that_never_ran_has_no_logs(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    code, _, err = _cli("logs", "--config-file", str(stack), "j1", "t-3")
    assert code == 1
    assert "has not run yet (state active)" in err


def test_a_lost_node_without_a_log_container_says_nothing_was_uploaded(
    tmp_path: Path, batch_api: BatchApiDouble
):
    stack = write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 3, logs=False))
    submit(batch_api, "j1", IDS)
    batch_api.start_task("j1", "t-1", node_id="tvm-2")
    batch_api.finish_task("j1", "t-1", exit_code=1)
    batch_api.lose_node("tvm-2")
    code, _, err = _cli("logs", "--config-file", str(stack), "j1", "t-1")
    assert code == 1
    assert "declares no log container" in err


def test_an_unknown_task_or_job_is_named(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    code, _, err = _cli("logs", "--config-file", str(stack), "j1", "zzz")
    assert code == 1
    assert "task 'zzz' does not exist in job 'j1' (not declared in the stack file)" in err
    code, _, err = _cli("logs", "--config-file", str(stack), "j9", "t-1")
    assert code == 2
    assert "job 'j9' is not declared" in err


# ------------------------------------------------------------------------ rerun


def _fail(batch_api: BatchApiDouble, *task_ids: str) -> None:
    for task_id in task_ids:
        batch_api.start_task("j1", task_id)
        batch_api.finish_task("j1", task_id, exit_code=1)


def test_rerun_reactivates_the_failed_declared_tasks(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    batch_api.add_task("j1", "stray")
    _fail(batch_api, "t-1", "t-3", "stray")
    batch_api.start_task("j1", "t-2")
    batch_api.finish_task("j1", "t-2", exit_code=0)

    code, out, _ = _cli("rerun", "--config-file", str(stack), "--failed", "--yes")
    assert code == 0
    assert "reactivated 2 task(s)" in out
    assert "stray: failed, but not declared in the stack file, left alone" in out
    tasks = batch_api.tasks("j1")
    assert [tasks[t]["state"] for t in IDS] == ["active", "completed", "active"]
    assert tasks["stray"]["state"] == "completed"
    assert batch_api.counts()["POST reactivatetask"] == 2


def test_rerun_dry_run_changes_nothing(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _fail(batch_api, "t-1")
    code, out, _ = _cli("rerun", "--config-file", str(stack), "--failed", "--dry-run")
    assert code == 0
    assert "reactivate 1 failed task(s): t-1" in out
    assert "nothing changed" in out
    assert batch_api.counts()["POST reactivatetask"] == 0


def test_rerun_refuses_without_yes_when_nobody_can_be_asked(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _fail(batch_api, "t-1")
    code, _, err = _cli("rerun", "--config-file", str(stack), "--failed")
    assert code == 2
    assert "refusing to reactivate 1 task(s) without --yes" in err
    assert batch_api.tasks("j1")["t-1"]["state"] == "completed"


def test_rerun_of_named_tasks_says_which_did_not_fail(stack: Path, batch_api: BatchApiDouble):
    submit(batch_api, "j1", IDS)
    _fail(batch_api, "t-1")
    code, out, _ = _cli(
        "rerun", "--config-file", str(stack), "--failed", "--task", "T-1", "--task", "t-2", "--yes"
    )
    assert code == 1
    assert "t-2: has not failed, left alone" in out
    assert batch_api.tasks("j1")["t-1"]["state"] == "active"


def test_a_completed_job_gets_the_stack_file_edit_that_reruns_it(
    tmp_path: Path, batch_api: BatchApiDouble
):
    stack = write_stack(tmp_path, batch_api.endpoint, sweep_job("j1", 3, terminate=True))
    submit(batch_api, "j1", IDS)
    _fail(batch_api, "t-1")
    batch_api.set_job_state("j1", "completed")

    code, out, _ = _cli("rerun", "--config-file", str(stack), "--failed", "--yes")
    assert code == 1
    assert "job 'j1' is completed: Batch reactivates tasks only in an active job" in out
    assert "-    - id: j1\n+    - id: j1-2\n" in out
    assert batch_api.counts()["POST reactivatetask"] == 0

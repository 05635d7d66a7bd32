"""What `batchtasks status` costs on a large job: requests and time against the Batch API double.

    python -m bench.status [--tasks 10000] [--failed 20] [--latency 0.05]

A job of N declared tasks is submitted to the double, `failed` of them fail and the rest
succeed; status is read through the real azure-batch client and identity chain, as the command
does. Also measured: the same job with one declared task missing (the counts disagree, so the
ids are listed), and listing every task to find the failed ones, as a script does without
task counts and filters. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchapi import BatchApiDouble
from batchtasks.batch.client import RetryPolicy, make_client
from batchtasks.ops.declared import read_declared
from batchtasks.ops.reads import Reader
from batchtasks.ops.status import read_status
from stackfiles import sweep_job, write_stack

JOB_ID = "bench-status"


def _populate(api: BatchApiDouble, ids: list[str], failed: int) -> None:
    api.add_job(JOB_ID)
    for task_id in ids:
        api.add_task(JOB_ID, task_id, f"run {task_id}")
    for number, task_id in enumerate(ids):
        api.start_task(JOB_ID, task_id, node_id=f"tvm-{number % 50}")
        api.finish_task(JOB_ID, task_id, exit_code=1 if number < failed else 0)


def _timed(api: BatchApiDouble, action: Callable[[], Any]) -> tuple[int, float, Any]:
    api.reset_counts()
    start = time.perf_counter()
    result = action()
    return api.total_requests(), time.perf_counter() - start, result


def measure(tasks: int, failed: int, latency: float) -> dict[str, Any]:
    """Measure status on a job of `tasks` tasks with `failed` failures.

    Returns
    -------
    dict
        Requests and seconds of each case.
    """
    ids = [f"t-{n}" for n in range(1, tasks + 1)]
    results: dict[str, Any] = {"tasks": tasks, "failed": failed, "latency_s": latency}
    with BatchApiDouble() as api, tempfile.TemporaryDirectory() as work:
        os.environ.update(api.client_env())
        stack = write_stack(Path(work), api.endpoint, sweep_job(JOB_ID, tasks), name="bench")
        declared = read_declared(stack)
        _populate(api, ids, failed)
        api.latency = latency
        with make_client(declared.endpoint) as client:
            reader = Reader(client, RetryPolicy())
            requests, seconds, report = _timed(
                api, lambda: read_status(reader, declared.jobs, check_ids=False)
            )
            assert report.jobs[0].counts.failed == failed
            results["status"] = {"requests": requests, "seconds": seconds}
            requests, seconds, _ = _timed(api, lambda: list(client.list_tasks(JOB_ID)))
            results["list_every_task"] = {"requests": requests, "seconds": seconds}
            api.latency = 0
            api.delete_task_out_of_band(JOB_ID, ids[-1])
            api.latency = latency
            requests, seconds, report = _timed(
                api, lambda: read_status(reader, declared.jobs, check_ids=False)
            )
            assert report.jobs[0].missing == (ids[-1],)
            results["status_one_missing"] = {"requests": requests, "seconds": seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print one line per case."""
    parser = argparse.ArgumentParser(prog="python -m bench.status")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--failed", type=int, default=20)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds the double waits per request (default 0.05)",
    )
    args = parser.parse_args(argv)
    results = measure(args.tasks, args.failed, args.latency)
    print(f"{args.tasks} tasks, {args.failed} failed, {args.latency * 1000:g} ms per request:")
    for case in ("status", "status_one_missing", "list_every_task"):
        figures = results[case]
        print(f"  {case}: {figures['requests']} requests, {figures['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`batchtasks status`: read every declared job once, or watch and wait until they end.

Exit codes with --wait: 0 every declared task succeeded, 1 some failed or are missing (the
failures are printed), 3 the timeout passed first. Without --wait, 0 once status is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from batchtasks.clock import Clock
from batchtasks.exits import Exit
from batchtasks.ops.declared import DeclaredJob
from batchtasks.ops.reads import Reader
from batchtasks.ops.render import RENDERERS, plain
from batchtasks.ops.report import StackReport
from batchtasks.ops.views import LiveView, PlainView, is_terminal


@dataclass(frozen=True)
class StatusOptions:
    """How status runs.

    Attributes
    ----------
    format
        ``table``, ``json`` or ``markdown`` (the final document, on stdout).
    watch, wait
        Refresh until every job is done; `wait` also sets the exit code from the outcome.
    timeout
        Seconds to wait at most (None: no limit).
    interval
        Seconds between reads while watching.
    check_ids
        List task ids even when the counts agree with the declaration.
    """

    format: str = "table"
    watch: bool = False
    wait: bool = False
    timeout: float | None = None
    interval: float = 15.0
    check_ids: bool = False


def read_status(reader: Reader, jobs: Sequence[DeclaredJob], check_ids: bool) -> StackReport:
    """Read every job once.

    Parameters
    ----------
    reader
        The Batch reader of this run.
    jobs
        The declared jobs to read.
    check_ids
        List task ids even when the counts agree.

    Returns
    -------
    StackReport
        Every job's report and the requests this read took.
    """
    before = reader.requests
    reports = tuple(reader.report(job, check_ids=check_ids) for job in jobs)
    return StackReport(reports, reader.requests - before)


def run_status(
    reader: Reader,
    jobs: Sequence[DeclaredJob],
    options: StatusOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock | None = None,
) -> int:
    """Show status once, or watch (and wait) until every job is done.

    Parameters
    ----------
    reader
        The Batch reader of this run.
    jobs
        The declared jobs to show.
    options
        Format, watch/wait, timeout, interval.
    out, err
        Where the final document and the progress go (stdout and stderr by default).
    clock
        What the watch's pauses and --timeout read (the reader's retry policy's by default).

    Returns
    -------
    int
        The exit code (see the module docstring).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    clock = clock or reader.policy.clock
    render = RENDERERS[options.format]
    if not (options.watch or options.wait):
        out.write(render(read_status(reader, jobs, options.check_ids)))
        return Exit.OK
    deadline = None if options.timeout is None else clock.monotonic() + options.timeout
    view: LiveView | PlainView = LiveView(err) if is_terminal(err) else PlainView(err)
    timed_out = False
    with view:
        while True:
            report = read_status(reader, jobs, options.check_ids)
            view.update(report)
            if report.done:
                break
            now = clock.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
                break
            pause = options.interval if deadline is None else min(options.interval, deadline - now)
            clock.sleep(max(pause, 0.0))
    out.write(render(report))
    if timed_out:
        left = sum(job.counts.incomplete for job in report.jobs)
        print(
            f"batchtasks: timed out after {options.timeout:g} s with {left} task(s) not completed",
            file=err,
        )
        return Exit.TIMEOUT if options.wait else Exit.OK
    if not options.wait:
        return Exit.OK
    if report.succeeded:
        return Exit.OK
    print("batchtasks: not every declared task succeeded:", file=err)
    for line in report.problems():
        print(f"  {plain(line)}", file=err)
    for job in report.jobs:
        for task in job.failures:
            code = "-" if task.exit_code is None else task.exit_code
            reason = plain(task.message or task.code or "")
            print(
                f"  {job.id}/{plain(task.id)}: exit {code}, {task.category or '-'}"
                f"{': ' + reason if reason else ''}",
                file=err,
            )
    return Exit.FAILED

"""The day-two subcommands on the command line: `status`, `logs` and `rerun`.

`add_commands` declares them on the `batchtasks` parser; `run_command` reads the stack file,
makes the Batch client and runs one. Exit codes (`batchtasks.exits.Exit`) common to all three:
2 usage (bad arguments, unreadable stack file, unknown job), 5 invalid stack file, 6 Batch could
not be reached or refused the credentials, 130 interrupted; each command documents the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from batchtasks.escape import visible
from batchtasks.exits import Exit

COMMANDS = ("status", "logs", "rerun")

AddSource = Callable[[argparse.ArgumentParser], None]
StackFile = Callable[[argparse.Namespace], tuple[Path, str]]


def add_commands(commands: argparse._SubParsersAction, add_source: AddSource) -> None:
    """Declare `status`, `logs` and `rerun` on the `batchtasks` subcommand parser.

    Parameters
    ----------
    commands
        The parser's subcommands.
    add_source
        Adds the `--stack` / `--config-file` choice, as `preview` has it.
    """
    status = commands.add_parser(
        "status",
        help="show what Batch has run of the declared jobs; watch or wait for them",
        description="Per job: its state, declared tasks, tasks by state, declared tasks "
        "missing from Batch and undeclared ones; per failed task its exit code, "
        "failure, retries, node, times and logs. Exit codes with --wait: 0 every "
        "declared task succeeded, 1 some failed or are missing, 3 timeout.",
    )
    add_source(status)
    status.add_argument("--job", help="only this job")
    status.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="output format (default: table)",
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="refresh until every job is done (a live view on a terminal, plain lines otherwise)",
    )
    status.add_argument(
        "--wait",
        action="store_true",
        help="block until every declared task has completed; the exit code says how they ended",
    )
    status.add_argument(
        "--timeout",
        metavar="DURATION",
        help="with --wait or --watch: give up after this ISO 8601 duration "
        "(PT30M, PT2H, P1D); exit 3",
    )
    status.add_argument(
        "--interval",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="seconds between reads while watching (default: 15)",
    )
    status.add_argument(
        "--check-ids",
        action="store_true",
        help="list task ids even when the counts match the declaration",
    )

    logs = commands.add_parser(
        "logs",
        help="print a task's stdout or stderr (from its node, else the log upload)",
        description="Read a task's stdout or stderr from its node while the task's files are "
        "there (Batch's task file API), else from the job's log upload in blob "
        "storage. Says which it read. Exit codes: 0 printed, 1 no logs.",
    )
    add_source(logs)
    logs.add_argument("job", metavar="JOB", help="the job id")
    logs.add_argument("task", metavar="TASK", help="the task id")
    stream = logs.add_mutually_exclusive_group()
    stream.add_argument(
        "--stdout",
        dest="stream",
        action="store_const",
        const="stdout",
        help="standard output (the default)",
    )
    stream.add_argument(
        "--stderr", dest="stream", action="store_const", const="stderr", help="standard error"
    )
    logs.add_argument(
        "--follow", action="store_true", help="keep printing as the task writes, until it completes"
    )
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    logs.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between reads with --follow (default: 2)",
    )

    rerun = commands.add_parser(
        "rerun",
        help="reactivate failed tasks (the declaration and Pulumi state stay as they are)",
        description="Reactivate failed declared tasks with Batch's reactivate. A completed "
        "job cannot take them back: the stack-file edit that reruns it under a "
        "new id is shown instead. Asks before acting unless --yes. Exit codes: 0 "
        "done, 1 some task could not be reactivated.",
    )
    add_source(rerun)
    rerun.add_argument(
        "--failed",
        action="store_true",
        required=True,
        help="rerun the failed tasks (required: the only kind rerun takes)",
    )
    rerun.add_argument("--job", help="only this job")
    rerun.add_argument(
        "--task", action="append", default=[], metavar="ID", help="only this task (repeatable)"
    )
    rerun.add_argument("--dry-run", action="store_true", help="show what would be done")
    rerun.add_argument("--yes", action="store_true", help="do it without asking")


def _usage(message: str) -> int:
    print(f"batchtasks: {message}", file=sys.stderr)
    return Exit.USAGE


def _ask_terminal() -> Callable[[str], bool] | None:
    if not sys.stdin or not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        try:
            answer = input(question)
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}

    return ask


def run_command(args: argparse.Namespace, stack_file: StackFile) -> int:
    """Run `status`, `logs` or `rerun` for parsed arguments.

    Parameters
    ----------
    args
        The parsed command line.
    stack_file
        Returns the stack file and stack name the arguments name.

    Returns
    -------
    int
        The command's exit code.
    """
    from azure.core.exceptions import AzureError

    from batchtasks.batch.client import RetryPolicy, error_message, make_client
    from batchtasks.config import ConfigError, parse_duration
    from batchtasks.ops.declared import read_declared
    from batchtasks.ops.reads import Reader

    path, _ = stack_file(args)
    if not path.is_file():
        return _usage(f"stack file {str(path)!r} not found")
    try:
        stack = read_declared(path)
    except ConfigError as error:
        # As preview prints them: control and invisible characters made visible.
        print(f"batchtasks: invalid configuration in {visible(str(path))}:", file=sys.stderr)
        for problem in error.problems or (str(error),):
            print(f"  {visible(problem)}", file=sys.stderr)
        return Exit.INVALID
    except OSError as error:
        return _usage(f"cannot read {path}: {error}")
    wanted = getattr(args, "job", None)
    jobs = list(stack.jobs)
    if wanted is not None:
        job = stack.job(wanted)
        if job is None:
            known = ", ".join(j.id for j in stack.jobs) or "none"
            return _usage(f"job {wanted!r} is not declared in {path} (declared: {known})")
        jobs = [job]
    timeout = None
    if args.command == "status" and args.timeout is not None:
        if not (args.wait or args.watch):
            return _usage("--timeout needs --wait or --watch")
        try:
            timeout = parse_duration(args.timeout).total_seconds()
        except ValueError:
            return _usage(
                f"--timeout: {args.timeout!r} is not an ISO 8601 duration such as "
                "PT30M, PT2H or P1D"
            )
    if args.command == "logs" and args.tail is not None and args.tail < 0:
        return _usage(f"--tail: {args.tail} must be 0 or more")
    if getattr(args, "interval", 1.0) <= 0:
        return _usage(f"--interval: {args.interval:g} must be more than 0")
    try:
        with make_client(stack.endpoint) as client:
            reader = Reader(client, RetryPolicy())
            if args.command == "status":
                from batchtasks.ops.status import StatusOptions, run_status

                options = StatusOptions(
                    args.format, args.watch, args.wait, timeout, args.interval, args.check_ids
                )
                return run_status(reader, jobs, options)
            if args.command == "logs":
                from batchtasks.ops.logs import LogsOptions, run_logs

                # JOB is positional for logs; it was checked with --job above.
                return run_logs(
                    reader,
                    jobs[0],
                    args.task,
                    LogsOptions(args.stream or "stdout", args.follow, args.tail, args.interval),
                )
            from batchtasks.ops.rerun import RerunOptions, run_rerun

            return run_rerun(
                reader,
                stack,
                jobs,
                RerunOptions(args.job, tuple(args.task), args.dry_run, args.yes),
                ask=_ask_terminal(),
            )
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except (AzureError, TimeoutError) as error:
        print(
            f"batchtasks: Batch at {stack.endpoint} could not be read: {error_message(error)}",
            file=sys.stderr,
        )
        return Exit.UNREACHABLE

"""The `batchtasks` command: `preview` a stack offline, print the config `schema`, and the
day-two commands `status`, `logs` and `rerun` (batchtasks.ops).

Every command exits with the codes of `batchtasks.exits.Exit` (one meaning per code, the README's
"Exit codes" table): here 0 fine, 2 usage, 4 a destructive change under `preview --fail-on
destructive`, 5 an invalid stack file (every problem printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from batchtasks.config import ConfigError, json_schema, load_stack_file
from batchtasks.escape import visible
from batchtasks.exits import Exit
from batchtasks.ops.commands import COMMANDS as OPS_COMMANDS
from batchtasks.ops.commands import add_commands as add_ops_commands
from batchtasks.ops.commands import run_command as run_ops_command

# A stack name as Pulumi spells it; it also names a file under stacks/, so never a path.
_STACK_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_.-]{1,100}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchtasks",
        description="Azure Batch container workloads declared as code, with Pulumi.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    preview = commands.add_parser(
        "preview",
        help="render what a stack declares, offline (no Azure, no Pulumi CLI)",
        description="Run the program under Pulumi mocks and show its resources, jobs and "
        "tasks. Secret values are never decrypted; they show as [secret].",
    )
    _add_source(preview)
    preview.add_argument(
        "--format",
        choices=("markdown", "json"),
        default="markdown",
        help="output format (default: markdown)",
    )
    preview.add_argument(
        "--bodies",
        action="store_true",
        help="with --format json: add every task's REST body, as the providers send it "
        "(the `tasks` section; about 2 KB a task)",
    )
    preview.add_argument(
        "--against",
        metavar="FILE_OR_REVISION",
        help="a stack file, or a git revision of this stack file, to show the changes against",
    )
    preview.add_argument(
        "--output",
        metavar="FILE",
        type=Path,
        help="write the preview to FILE instead of standard output",
    )
    preview.add_argument(
        "--fail-on",
        choices=("destructive",),
        help="with --against: exit 4 when the change replaces or removes "
        "tasks, or replaces or removes a job (the preview is still "
        "written)",
    )
    pin = commands.add_parser(
        "pin",
        help="pin every task image of the stack file to its digest (asks the registry)",
        description="Resolve each image tag to its manifest digest and write "
        "name:tag@sha256:... into the stack file, keeping its comments and layout. "
        "Azure Container Registry is reached with DefaultAzureCredential, other "
        "registries anonymously.",
    )
    _add_source(pin)
    pin.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when a tag has moved since pinned, or an image is not pinned",
    )
    commands.add_parser(
        "schema",
        help="print the stack file's JSON Schema",
        description="Print the JSON Schema of the batchtasks: settings.",
    )
    add_ops_commands(commands, _add_source)
    return parser


def _add_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack name: reads stacks/Pulumi.<stack>.yaml")
    source.add_argument("--config-file", type=Path, help="path of a stack file")


def _bad_stack_name(args: argparse.Namespace) -> bool:
    """Say so and return True when --stack is not a stack name (it names a file)."""
    if args.stack is not None and not _STACK_NAME.fullmatch(args.stack):
        print(
            f"batchtasks: --stack {args.stack!r} is not a stack name (letters, digits, "
            "'-', '_' and '.', not '..')",
            file=sys.stderr,
        )
        return True
    return False


def _stack_file(args: argparse.Namespace) -> tuple[Path, str]:
    """Return the stack file and the stack's name."""
    if args.stack is not None:
        return Path("stacks") / f"Pulumi.{args.stack}.yaml", args.stack
    path: Path = args.config_file
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
    return path, name or "dev"


def _print_problems(error: ConfigError, where: str) -> None:
    print(f"batchtasks: invalid configuration in {visible(where)}:", file=sys.stderr)
    for problem in error.problems or (str(error),):
        print(f"  {visible(problem)}", file=sys.stderr)


def write_output(text: str, output: Path | None) -> None:
    """Write text to standard output, or replace `output` with it in one step.

    Parameters
    ----------
    text
        What to write.
    output
        The file, or None for standard output. A reader of the file never sees half of it.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    if output is None:
        sys.stdout.write(text)
        return
    directory = output.parent if str(output.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _failure(error: Exception, where: str) -> int:
    """Print why the stack file (or the --against one) cannot be previewed; return the exit."""
    if isinstance(error, ConfigError):
        _print_problems(error, where)
        return Exit.INVALID
    if isinstance(error, ValueError):
        print(
            f"batchtasks: invalid configuration in {visible(where)}: {visible(error)}",
            file=sys.stderr,
        )
        return Exit.INVALID
    print(f"batchtasks: cannot read {visible(where)}: {visible(error)}", file=sys.stderr)
    return Exit.USAGE


def _preview(args: argparse.Namespace) -> int:
    if _bad_stack_name(args):
        return Exit.USAGE
    path, stack = _stack_file(args)
    if args.fail_on is not None and args.against is None:
        print(
            "batchtasks: --fail-on destructive needs --against (what to compare with)",
            file=sys.stderr,
        )
        return Exit.USAGE
    if not path.is_file():
        hint = " (run from the project root, or give --config-file)" if args.stack else ""
        print(f"batchtasks: stack file {str(path)!r} not found{hint}", file=sys.stderr)
        return Exit.USAGE
    where = str(path)
    # The stack file is checked before Pulumi and the providers load (they take a moment), so
    # a bad file is answered at once.
    try:
        config = load_stack_file(path)
    except (ConfigError, ValueError, OSError) as error:
        return _failure(error, where)
    from batchtasks.preview import (
        AgainstError,
        compare,
        load_against,
        preview_stack,
        render_json,
        render_markdown,
    )

    try:
        preview = preview_stack(config, stack, with_bodies=args.bodies and args.format == "json")
        changes = None
        if args.against is not None:
            where = f"--against {args.against}"
            old = preview_stack(
                load_against(args.against, path), stack, with_bodies=False, check_bodies=False
            )
            changes = compare(old, preview, args.against)
    except AgainstError as error:
        print(f"batchtasks: {visible(error)}", file=sys.stderr)
        return Exit.USAGE
    except (ConfigError, ValueError, OSError) as error:
        return _failure(error, where)
    render = render_json if args.format == "json" else render_markdown
    try:
        write_output(render(preview, changes), args.output)
    except OSError as error:
        print(
            f"batchtasks: cannot write {visible(str(args.output))}: {visible(error)}",
            file=sys.stderr,
        )
        return Exit.USAGE
    if args.fail_on == "destructive" and changes is not None and changes.destructive:
        print(
            "batchtasks: the change is destructive (tasks or jobs are replaced or removed; "
            "see the warnings)",
            file=sys.stderr,
        )
        return Exit.DESTRUCTIVE
    return Exit.OK


def main(argv: list[str] | None = None) -> int:
    """Run the `batchtasks` command.

    Parameters
    ----------
    argv
        The arguments after the program name; None for the process's own.

    Returns
    -------
    int
        An `Exit` code.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage or help already.
        return exit_.code if isinstance(exit_.code, int) else Exit.USAGE
    if args.command == "schema":
        sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
        return Exit.OK
    if args.command == "pin":
        if _bad_stack_name(args):
            return Exit.USAGE
        from batchtasks.pin.command import run_pin

        path, _ = _stack_file(args)
        if not path.is_file():
            print(f"batchtasks: stack file {visible(str(path))!r} not found", file=sys.stderr)
            return Exit.USAGE
        # The checks preview runs, before any registry is asked or anything is edited: pin
        # never writes into a file the program would refuse.
        try:
            load_stack_file(path)
        except (ConfigError, ValueError, OSError) as error:
            return _failure(error, str(path))
        return run_pin(path, args.check)
    if args.command in OPS_COMMANDS:
        return Exit.USAGE if _bad_stack_name(args) else run_ops_command(args, _stack_file)
    return _preview(args)


if __name__ == "__main__":
    sys.exit(main())

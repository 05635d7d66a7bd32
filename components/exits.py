"""The exit codes of every `batchtasks` command, in one place, so that a CI step can act on them.

One meaning per code across the commands (the README's "Exit codes" table lists them): a command
that cannot give a code its meaning never returns it. When several apply, the lowest-numbered
outcome that stopped the command wins as each command documents (a usage error is answered
before the stack file is read, an invalid stack file before any service is asked).
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """An exit code of the `batchtasks` command."""

    OK = 0
    """Done: previewed, pinned and current, every declared task succeeded, logs printed."""
    FAILED = 1
    """The command ran and its answer is no: tasks failed or are missing (`status --wait`), no
    logs (`logs`), a task not reactivated (`rerun`), a tag moved, unpinned, unknown or not
    rewritable (`pin`, `pin --check`)."""
    USAGE = 2
    """Bad arguments: unknown option, stack file not found or unreadable, unknown job, an
    `--against` that is not a file or revision; nothing was done."""
    TIMEOUT = 3
    """`status --wait` / `--watch` ran out of its `--timeout`."""
    DESTRUCTIVE = 4
    """`preview --fail-on destructive`: the change replaces or removes tasks, or replaces or
    removes a job (the preview is still written)."""
    INVALID = 5
    """The stack file (or the `--against` one) fails its checks; every problem is printed and
    nothing was done or edited."""
    UNREACHABLE = 6
    """Batch or an image registry could not be reached, or refused the credentials."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (128 + SIGINT, as shells report it)."""

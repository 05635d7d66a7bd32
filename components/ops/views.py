"""Progress while status watches or waits: a live view with a bar per job on a terminal,
plain lines (only when something changed) anywhere else, such as a CI log."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from batchtasks.ops.render import plain, progress_line
from batchtasks.ops.report import StackReport

if TYPE_CHECKING:
    from rich.progress import TaskID


class PlainView:
    """Progress as plain lines: a job's line is printed again only when it changed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last: dict[str, str] = {}

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stream.flush()

    def update(self, report: StackReport) -> None:
        """Print the lines of the jobs whose progress moved."""
        for job in report.jobs:
            line = plain(progress_line(job))
            if self.last.get(job.id) != line:
                self.last[job.id] = line
                print(line, file=self.stream, flush=True)


class LiveView:
    """Progress as a live rich view refreshed in place: a bar per job with its counts."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=stream),
            auto_refresh=False,
        )
        self.bars: dict[str, TaskID] = {}

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.progress.refresh()
        self.progress.stop()

    def update(self, report: StackReport) -> None:
        """Move each job's bar to its completed count and redraw."""
        for job in report.jobs:
            counts = job.counts
            detail = (
                f"{job.state or 'not in Batch'}: {counts.failed} failed, "
                f"{counts.running} running, {counts.preparing} preparing, "
                f"{counts.active} waiting"
            )
            if job.id not in self.bars:
                self.bars[job.id] = self.progress.add_task(
                    plain(job.id), total=max(job.declared, counts.total), detail=""
                )
            self.progress.update(
                self.bars[job.id],
                completed=counts.completed,
                total=max(job.declared, counts.total),
                detail=plain(detail),
            )
        self.progress.refresh()


def is_terminal(stream: TextIO) -> bool:
    """Tell whether a stream is an interactive terminal (rich's own test)."""
    from rich.console import Console

    return Console(file=stream).is_terminal

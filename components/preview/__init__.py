"""Offline preview of a stack: the program under Pulumi mocks, rendered for review.

`preview_stack` runs the real program for a config without Azure, the Pulumi CLI or credentials;
`compare` classifies what changes against an older config; `render_json` and `render_markdown`
present the result.
"""

from batchtasks.preview.against import AgainstError, Changes, JobChanges, compare, load_against
from batchtasks.preview.build import JobPreview, StackPreview, TaskPreview, preview_stack
from batchtasks.preview.offline import OfflineRun, PreviewMocks, run_offline
from batchtasks.preview.render import preview_document, render_json, render_markdown

__all__ = [
    "AgainstError",
    "Changes",
    "JobChanges",
    "JobPreview",
    "OfflineRun",
    "PreviewMocks",
    "StackPreview",
    "TaskPreview",
    "compare",
    "load_against",
    "preview_document",
    "preview_stack",
    "render_json",
    "render_markdown",
    "run_offline",
]

"""Image references in a stack file: parse them, find where they are written, pin them.

Pure: no I/O. The stack file is edited as text at each image scalar's own position (found with
ruamel.yaml's parse events), so comments, quoting and layout stay exactly as they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

DOCKER_HUB = "registry-1.docker.io"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Keys under a job that hold task fields (an image among them).
_TASK_HOLDERS = ("defaults", "tasks", "sweeps")


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: ``host/repository:tag@digest``."""

    host: str
    repository: str
    tag: str
    digest: str | None
    name: str

    @property
    def pinned(self) -> str:
        """The reference as written without its digest (the name and tag as given)."""
        return self.name


def parse_image(text: str) -> ImageRef:
    """Split an image reference the way docker does.

    Parameters
    ----------
    text
        ``[host[:port]/]repository[:tag][@sha256:...]``.

    Returns
    -------
    ImageRef
        Host (Docker Hub's registry when none is given), repository (``library/`` added for
        Docker Hub's official images), tag (``latest`` when none), digest or None, and the
        name as written without the digest.

    Raises
    ------
    ValueError
        If the digest is not a sha256 digest.
    """
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise ValueError(f"{text!r}: the digest must be sha256:<64 hex digits>")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name
        if "/" not in path:
            path = f"library/{path}"
    repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    return ImageRef(host, repository, tag or "latest", digest or None, name)


@dataclass(frozen=True)
class ImageSite:
    """Where an image is written: its key path, its text and its place in the file."""

    path: str
    image: str
    start: int
    end: int
    style: str | None


def find_images(text: str) -> list[ImageSite]:
    """Find every task image of the stack file's jobs (defaults, tasks and sweeps).

    Parameters
    ----------
    text
        The stack file.

    Returns
    -------
    list[ImageSite]
        In file order.
    """
    sites: list[ImageSite] = []
    # Each frame: [kind, path, pending key or index, expecting a key].
    stack: list[list[object]] = []
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            stack.pop()
            _advance(stack)
            continue
        if not isinstance(event, ScalarEvent | MappingStartEvent | SequenceStartEvent):
            continue
        if stack and stack[-1][0] == "map" and stack[-1][3]:
            # A key (only scalar keys matter here).
            stack[-1][2] = event.value if isinstance(event, ScalarEvent) else None
            stack[-1][3] = False
            continue
        path = _path_of(stack)
        if isinstance(event, ScalarEvent):
            if _is_image(path):
                sites.append(
                    ImageSite(
                        _shown(path),
                        event.value,
                        event.start_mark.index,
                        event.end_mark.index,
                        event.style,
                    )
                )
            _advance(stack)
        else:
            stack.append(
                [
                    "map" if isinstance(event, MappingStartEvent) else "seq",
                    path,
                    0,
                    isinstance(event, MappingStartEvent),
                ]
            )
    return sites


def _advance(stack: list[list[object]]) -> None:
    if not stack:
        return
    frame = stack[-1]
    if frame[0] == "map":
        frame[3] = True
    else:
        frame[2] = int(str(frame[2])) + 1


def _path_of(stack: list[list[object]]) -> tuple[object, ...]:
    if not stack:
        return ()
    return (*stack[-1][1], stack[-1][2])  # type: ignore[misc]


def _is_image(path: tuple[object, ...]) -> bool:
    # config / batchtasks:jobs / i / (defaults | tasks/j | sweeps/j) / image
    if len(path) < 5 or path[:2] != ("config", "batchtasks:jobs") or path[-1] != "image":
        return False
    holder = path[3:-1]
    return (holder == ("defaults",)) or (
        len(holder) == 2 and holder[0] in ("tasks", "sweeps") and isinstance(holder[1], int)
    )


def _shown(path: tuple[object, ...]) -> str:
    text = "batchtasks:jobs"
    for part in path[2:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def pin_text(text: str, digests: dict[str, str]) -> tuple[str, list[str]]:
    """Write each image as ``name:tag@digest`` in the stack file's text.

    Parameters
    ----------
    text
        The stack file.
    digests
        Image as written -> the digest its tag resolves to.

    Returns
    -------
    tuple[str, list[str]]
        The new text (the same outside the image scalars), and the key paths that could not
        be edited (block scalars).
    """
    pieces, last, skipped = [], 0, []
    for site in find_images(text):
        digest = digests.get(site.image)
        if digest is None:
            continue
        if site.style not in (None, "'", '"'):
            skipped.append(site.path)
            continue
        value = f"{parse_image(site.image).name}@{digest}"
        quote = site.style or ""
        pieces += [text[last : site.start], f"{quote}{value}{quote}"]
        last = site.end
    return "".join([*pieces, text[last:]]), skipped

"""Image references in a stack file: parse them, find where they are written, pin them.

Pure: no I/O. The stack file is edited as text at each image scalar's own position (found in
ruamel.yaml's node graph, where an alias is the node its anchor names), so comments, quoting,
anchors and layout stay exactly as they were. An image reached through an alias or a `<<` merge
is pinned where it is written, when every use of that value is an image; otherwise, and for a
block scalar that is not one line, the key path is refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

DOCKER_HUB = "registry-1.docker.io"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    """Where a task image is used and where its text is written.

    `path` is the key path of the use; `written` the key path of the scalar itself (another
    one when the use is an alias or a merge); `start`/`end` its text in the file (after any
    anchor or tag), `style` its YAML style (None plain, a quote, ``|`` or ``>``); `also` the
    key paths where the same scalar is used as something other than an image.
    """

    path: str
    image: str
    start: int
    end: int
    style: str | None
    written: str
    also: tuple[str, ...] = ()


def find_images(text: str) -> list[ImageSite]:
    """Find every task image of the stack file's jobs (defaults, tasks and sweeps).

    Parameters
    ----------
    text
        The stack file (already accepted by the stack-file loader, which bounds aliases and
        nesting).

    Returns
    -------
    list[ImageSite]
        In the order of the jobs and their holders.
    """
    root = YAML(typ="rt").compose(text)
    written = _scalar_paths(root)
    sites: list[ImageSite] = []
    config = _get(root, "config")
    jobs = _get(config, "batchtasks:jobs") if config is not None else None
    if not isinstance(jobs, SequenceNode):
        return sites
    for index, job in enumerate(jobs.value):
        base = f"batchtasks:jobs[{index}]"
        holders: list[tuple[str, Node | None]] = [(f"{base}.defaults", _get(job, "defaults"))]
        for key in ("tasks", "sweeps"):
            listed = _get(job, key)
            if isinstance(listed, SequenceNode):
                holders += [(f"{base}.{key}[{n}]", item) for n, item in enumerate(listed.value)]
        for path, holder in holders:
            image = _get(holder, "image") if holder is not None else None
            if isinstance(image, ScalarNode):
                uses = written[id(image)]
                sites.append(
                    ImageSite(
                        f"{path}.image",
                        str(image.value),
                        _value_start(text, image.start_mark.index),
                        image.end_mark.index,
                        image.style,
                        uses[0][0],
                        tuple(use for use, key in uses if key != "image"),
                    )
                )
    return sites


def _get(node: Node | None, key: str) -> Node | None:
    """A mapping's value for `key` as the loader sees it: written keys win, then `<<` merges
    in order (an alias is the node it names)."""
    if not isinstance(node, MappingNode):
        return None
    merges: list[Node] = []
    for key_node, value in node.value:
        if key_node.tag == _MERGE_TAG:
            merges += value.value if isinstance(value, SequenceNode) else [value]
        elif isinstance(key_node, ScalarNode) and key_node.value == key:
            return value
    for source in merges:
        found = _get(source, key)
        if found is not None:
            return found
    return None


def _scalar_paths(root: Node) -> dict[int, list[tuple[str, str | None]]]:
    """Every place each scalar node is used (an alias is one more use): its key path and the
    key it is the value of (None in a sequence)."""
    uses: dict[int, list[tuple[str, str | None]]] = {}
    stack: list[tuple[Node, str, str | None]] = [(root, "", None)]
    while stack:
        node, path, key = stack.pop()
        if isinstance(node, ScalarNode):
            uses.setdefault(id(node), []).append((path, key))
        elif isinstance(node, MappingNode):
            for key_node, value in reversed(node.value):
                name = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                # Paths are shown as the loader shows them: inside `config:`, without it.
                child = f"{path}.{name}" if path else ("" if name == "config" else name)
                stack.append((value, child, name))
        elif isinstance(node, SequenceNode):
            items = list(enumerate(node.value))
            stack += [(item, f"{path}[{n}]", None) for n, item in reversed(items)]
    return uses


def _value_start(text: str, index: int) -> int:
    """Skip an anchor (``&name``), a tag (``!tag``), spaces and comments before a value."""
    while index < len(text):
        char = text[index]
        if char in " \t\r\n":
            index += 1
        elif char == "#":
            index = text.find("\n", index) % (len(text) + 1)
        elif char in "&!":
            while index < len(text) and text[index] not in " \t\r\n":
                index += 1
        else:
            break
    return index


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
        The new text (the same outside the image scalars), and a message for each key path
        that could not be edited safely (the text is then the same as given).
    """
    sites = [site for site in find_images(text) if site.image in digests]
    edits: dict[int, tuple[int, str]] = {}
    refused: list[str] = []
    for site in sites:
        value = f"{parse_image(site.image).name}@{digests[site.image]}"
        if site.also:
            refused.append(
                f"{site.path}: its value is written at {site.written} and also used at "
                f"{site.also[0]}, which is not an image; pinning it would change that too, so "
                "write the image here without the alias"
            )
            continue
        written = text[site.start : site.end]
        if site.style in (None, "'", '"'):
            quote = site.style or ""
            edits[site.start] = (site.end, f"{quote}{value}{quote}")
            continue
        # A block scalar: its indicator line, then the image alone on one line.
        lines = written.split("\n")
        content = [n for n, line in enumerate(lines[1:], 1) if line.strip()]
        if len(content) != 1 or lines[content[0]].strip() != site.image:
            refused.append(
                f"{site.path}: a block scalar ({site.style}) over several lines; write the "
                "image on one line to pin it"
            )
            continue
        line = lines[content[0]]
        lines[content[0]] = line.replace(site.image, value, 1)
        edits[site.start] = (site.end, "\n".join(lines))
    if refused:
        return text, refused
    pieces, last = [], 0
    for start in sorted(edits):
        end, replacement = edits[start]
        pieces += [text[last:start], replacement]
        last = end
    new_text = "".join([*pieces, text[last:]])
    # Read the result back: every use must now be its pinned image, nothing else moved.
    expected = [
        f"{parse_image(site.image).name}@{digests[site.image]}"
        if site.image in digests
        else site.image
        for site in find_images(text)
    ]
    if [site.image for site in find_images(new_text)] != expected:
        return text, ["the edited file did not read back as pinned; nothing was written"]
    return new_text, []

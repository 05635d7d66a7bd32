"""`batchtasks pin [--check]`: the command's work, between the stack file and the registry."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from batchtasks.config import ConfigError, load_stack_text
from batchtasks.escape import visible
from batchtasks.exits import Exit
from batchtasks.pin.images import ImageRef, find_images, parse_image, pin_text
from batchtasks.pin.registry import PinError, resolve_digest


def run_pin(path: Path, check: bool, resolve: Callable[[ImageRef], str] = resolve_digest) -> int:
    """Pin every task image of a stack file to its digest, or check the pins.

    The file must already pass the stack-file checks (the command runs them first); it is
    written only when every image could be pinned and the result passes them again.

    Parameters
    ----------
    path
        The stack file.
    check
        Only compare: report images whose tag has moved since pinned, or that are unpinned.
    resolve
        Tag -> digest (the registry).

    Returns
    -------
    int
        `Exit.OK` when pinned (or, with check, every pin is current); `Exit.FAILED` when a tag
        moved, an image is unpinned (with check), a tag is unknown or an image cannot be
        rewritten; `Exit.UNREACHABLE` when a registry could not be reached or refused.
    """
    text = path.read_text(encoding="utf-8")
    sites = find_images(text)
    digests: dict[str, str] = {}
    failures, moved, unpinned = [], [], []
    unreachable = False
    for image in dict.fromkeys(site.image for site in sites):
        try:
            ref = parse_image(image)
            digest = resolve(ref)
        except PinError as error:
            failures.append(str(error))
            unreachable = unreachable or error.unreachable
            continue
        except ValueError as error:
            failures.append(str(error))
            continue
        if ref.digest is None:
            unpinned.append(image)
        elif ref.digest != digest:
            moved.append(f"{ref.name}: pinned {ref.digest}, the tag is now {digest}")
        digests[image] = digest
    for failure in failures:
        print(f"batchtasks: {visible(failure)}", file=sys.stderr)
    failed = Exit.UNREACHABLE if unreachable else Exit.FAILED
    if check:
        for line in moved:
            print(f"moved: {visible(line)}")
        for image in unpinned:
            print(f"not pinned: {visible(image)}")
        if failures:
            return failed
        if moved or unpinned:
            return Exit.FAILED
        print(f"{len(digests)} image(s) pinned and current")
        return Exit.OK
    changed = {
        image: digest for image, digest in digests.items() if parse_image(image).digest != digest
    }
    new_text, refused = pin_text(text, changed)
    if not refused and new_text != text:
        try:
            load_stack_text(new_text)
        except (ConfigError, ValueError) as error:
            refused = [f"the pinned file would not pass the stack-file checks: {error}"]
    for reason in refused:
        print(f"batchtasks: {visible(reason)} (nothing was written)", file=sys.stderr)
    if refused:
        return Exit.FAILED
    if new_text != text:
        _replace(path, new_text)
    for image, digest in changed.items():
        print(f"pinned {visible(parse_image(image).name)}@{digest}")
    return failed if failures else Exit.OK


def _replace(path: Path, text: str) -> None:
    """Write the stack file in one step (a reader or a crash never sees half of it), keeping
    its permissions."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

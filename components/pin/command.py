"""`batchtasks pin [--check]`: the command's work, between the stack file and the registry."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from batchtasks.escape import visible
from batchtasks.exits import Exit
from batchtasks.pin.images import ImageRef, find_images, parse_image, pin_text
from batchtasks.pin.registry import PinError, resolve_digest


def run_pin(path: Path, check: bool, resolve: Callable[[ImageRef], str] = resolve_digest) -> int:
    """Pin every task image of a stack file to its digest, or check the pins.

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
        0 when pinned (or, with check, every pin is current); 1 when a tag moved, an image is
        unpinned (with check), or a registry could not answer.
    """
    text = path.read_text(encoding="utf-8")
    sites = find_images(text)
    digests: dict[str, str] = {}
    failures, moved, unpinned = [], [], []
    for image in dict.fromkeys(site.image for site in sites):
        try:
            ref = parse_image(image)
            digest = resolve(ref)
        except (PinError, ValueError) as error:
            failures.append(str(error))
            continue
        if ref.digest is None:
            unpinned.append(image)
        elif ref.digest != digest:
            moved.append(f"{ref.name}: pinned {ref.digest}, the tag is now {digest}")
        digests[image] = digest
    for failure in failures:
        print(f"batchtasks: {visible(failure)}", file=sys.stderr)
    if check:
        for line in moved:
            print(f"moved: {visible(line)}")
        for image in unpinned:
            print(f"not pinned: {visible(image)}")
        if not (moved or unpinned or failures):
            print(f"{len(digests)} image(s) pinned and current")
        return Exit.FAILED if moved or unpinned or failures else Exit.OK
    changed = {
        image: digest for image, digest in digests.items() if parse_image(image).digest != digest
    }
    new_text, skipped = pin_text(text, changed)
    for key in skipped:
        print(
            f"batchtasks: {key}: a block scalar; write the image on one line to pin it",
            file=sys.stderr,
        )
    if new_text != text:
        path.write_text(new_text, encoding="utf-8")
    for image, digest in changed.items():
        print(f"pinned {visible(parse_image(image).name)}@{digest}")
    return Exit.FAILED if failures or skipped else Exit.OK

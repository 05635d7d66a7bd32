"""`batchtasks pin`: resolve each image tag of a stack file to its digest and write it back."""

from batchtasks.pin.images import ImageRef, ImageSite, find_images, parse_image, pin_text
from batchtasks.pin.registry import PinError, resolve_digest

__all__ = [
    "ImageRef",
    "ImageSite",
    "PinError",
    "find_images",
    "parse_image",
    "pin_text",
    "resolve_digest",
]

"""Image I/O, dataset loaders and synthetic generators."""

from ._elpv import load_elpv
from ._io import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    list_images,
    load_images,
    read_image_size,
    save_image,
)
from ._loaders import load_folder, load_mvtec_ad
from ._reader import ImageReader
from ._synthetic import make_parts, paste_defect, rigid_motion

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageReader",
    "list_images",
    "load_elpv",
    "load_folder",
    "load_images",
    "load_mvtec_ad",
    "make_parts",
    "paste_defect",
    "read_image_size",
    "rigid_motion",
    "save_image",
]

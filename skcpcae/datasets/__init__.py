"""Image I/O, dataset loaders and synthetic generators."""

from ._synthetic import make_parts, paste_defect, rigid_motion

__all__ = ["make_parts", "paste_defect", "rigid_motion"]

"""Small shared helpers: progress bars, device resolution, validation shims."""

from ._device import resolve_device
from ._progress import progress

__all__ = ["progress", "resolve_device"]

"""Small shared helpers: progress bars, device resolution, torch adapters, validation shims."""

from ._device import resolve_device
from ._progress import progress
from ._torch import as_logit_fn, is_affine_module

__all__ = ["as_logit_fn", "is_affine_module", "progress", "resolve_device"]

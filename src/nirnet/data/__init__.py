"""Image input, dataset layouts and degradations (no model code: nothing here imports ``nirnet.models``)."""

from .datasets import FAKE, REAL, DatasetLayoutError, Sample, count_by_subset, detect_layout, read_dataset
from .io import ImageLoadError, is_image_path, load_image, load_image_array

__all__ = [
    "FAKE",
    "REAL",
    "DatasetLayoutError",
    "ImageLoadError",
    "Sample",
    "count_by_subset",
    "detect_layout",
    "is_image_path",
    "load_image",
    "load_image_array",
    "read_dataset",
]

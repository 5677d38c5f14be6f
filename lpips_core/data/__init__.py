"""The data layer: images, judgment files and datasets, the data module, the mini set, BAPPS.

Modules, in the order data flows through them::

    images      files -> (H, W, 3) uint8 -> tensors in [-1, 1]
    formats     BAPPS folders, CSV/JSON tables, per-sample folders -> records (no pixels)
    datasets    records -> 2AFC / JND items; FlipAugment
    datamodule  train/val/test splits and DataLoaders
    judgments   what a judgment says about distances (2AFC agreement, JND AP)
    distortions the mini set's distortion families
    photos      the course's photographs (scikit-image's) and the int8 calibration set
    download    BAPPS from its official tarballs
    published   real BAPPS labels and published per-triplet distances, no images
    report      ``lpips-core analyze``: counts, distributions, problems
"""

from .datamodule import LPIPSDataModule
from .datasets import FlipAugment, JNDDataset, TwoAFCDataset, load_patch
from .formats import DataError, Record, detect_format, read_records
from .images import ImageLoadError, im2tensor, list_images, load_image, load_tensor, tensor2im
from .judgments import score_2afc, score_jnd, twoafc_scores

__all__ = [
    "LPIPSDataModule",
    "FlipAugment",
    "JNDDataset",
    "TwoAFCDataset",
    "load_patch",
    "DataError",
    "Record",
    "detect_format",
    "read_records",
    "ImageLoadError",
    "im2tensor",
    "list_images",
    "load_image",
    "load_tensor",
    "tensor2im",
    "score_2afc",
    "score_jnd",
    "twoafc_scores",
]

"""TFDS builder `casme_sq` (registers on import); see casme_sq_dataset_builder.py."""

from tfds_builders.casme_sq.casme_sq_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.casme_sq.casme_sq_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

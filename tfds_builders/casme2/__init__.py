"""TFDS builder `casme2` (registers on import); see casme2_dataset_builder.py."""

from tfds_builders.casme2.casme2_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.casme2.casme2_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

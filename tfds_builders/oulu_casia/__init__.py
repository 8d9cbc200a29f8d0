"""TFDS builder `oulu_casia` (registers on import); see oulu_casia_dataset_builder.py."""

from tfds_builders.oulu_casia.oulu_casia_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.oulu_casia.oulu_casia_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

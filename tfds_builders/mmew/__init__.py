"""TFDS builder `mmew` (registers on import); see mmew_dataset_builder.py."""

from tfds_builders.mmew.mmew_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.mmew.mmew_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

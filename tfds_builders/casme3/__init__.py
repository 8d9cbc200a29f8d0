"""TFDS builder `casme3` (registers on import); see casme3_dataset_builder.py."""

from tfds_builders.casme3.casme3_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.casme3.casme3_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

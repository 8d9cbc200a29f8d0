"""TFDS builder `samm` (registers on import); see samm_dataset_builder.py."""

from tfds_builders.samm.samm_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.samm.samm_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

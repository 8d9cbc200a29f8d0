"""TFDS builder `ck_plus` (registers on import); see ck_plus_dataset_builder.py."""

from tfds_builders.ck_plus.ck_plus_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.ck_plus.ck_plus_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

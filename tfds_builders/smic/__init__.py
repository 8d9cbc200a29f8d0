"""TFDS builder `smic` (registers on import); see smic_dataset_builder.py."""

from tfds_builders.smic.smic_dataset_builder import MANUAL_DOWNLOAD_INSTRUCTIONS
from tfds_builders.smic.smic_dataset_builder import Builder

__all__ = ["Builder", "MANUAL_DOWNLOAD_INSTRUCTIONS"]

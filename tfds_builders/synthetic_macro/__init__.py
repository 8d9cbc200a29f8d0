"""`synthetic_macro`: importing this package registers the TFDS builder."""

from tfds_builders.synthetic_macro import synthetic_macro_dataset_builder
from tfds_builders.synthetic_macro.synthetic_macro_dataset_builder import (
    ACTION_UNITS, CLASS_NAMES, FPS)

Builder = synthetic_macro_dataset_builder.Builder

"""`synthetic_me`: importing this package registers the TFDS builder."""

from tfds_builders.synthetic_me import synthetic_me_dataset_builder
from tfds_builders.synthetic_me.synth import ACTION_UNITS, CLASS_NAMES, FPS

Builder = synthetic_me_dataset_builder.Builder

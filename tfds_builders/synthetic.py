"""What the synthetic builders (`synthetic_me`, `synthetic_macro`) share.

A `SyntheticCorpus` names a corpus' classes, subjects, clip planner and
renderer (`synthetic_me/synth.py` holds the pixels); its `plan` and
`make_example` turn a `SyntheticConfig` into clips and records of the shared
schema (`records`). `SyntheticBuilderMixin` is the TFDS builder around them:
one split per subject, nothing to download.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import records

if TYPE_CHECKING:  # synthetic_me's builder imports this module
  from tfds_builders.synthetic_me import synth


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """A synthetic corpus config.

  Attributes:
    size: frame side in pixels (frames are `[T, size, size, 3]`).
    seed: the seed every clip is drawn from.
    num_subjects: how many of the corpus' subjects to build (the first
      ones); 0: all of them.
    clips_per_class: clips per class per subject.
  """
  size: int = 64
  seed: int = 0
  num_subjects: int = 0
  clips_per_class: int = 6


@dataclasses.dataclass(frozen=True)
class SyntheticCorpus:
  """One synthetic corpus.

  Attributes:
    name: the dataset name, the namespace of `subject` and `sample_id`.
    class_names: emotion string per label.
    action_units: AU string per label.
    subjects: the corpus' `synth.SubjectSpec`s; one split each.
    plan_subject: `(seed, subject_index, clips_per_class)` -> the subject's
      `synth.SynthClip`s.
    render_clip: `(seed, clip, size)` -> uint8 frames `[T, size, size, 3]`.
    fps: frame rate of every clip.
  """
  name: str
  class_names: Sequence[str]
  action_units: Sequence[str]
  subjects: Sequence[synth.SubjectSpec]
  plan_subject: Callable[[int, int, int], list[synth.SynthClip]]
  render_clip: Callable[[int, synth.SynthClip, int], np.ndarray]
  fps: float

  def configs(self, tiny_subjects: int) -> list[SyntheticConfig]:
    """`s64` (the default), `s112` (the same clips at 112 px) and `tiny`.

    `tiny` holds one clip per class of the first `tiny_subjects`, 32 px,
    for tests.
    """
    per_subject = len(self.class_names) * SyntheticConfig.clips_per_class
    return [
        SyntheticConfig(name="s64", size=64, description=(
            f"{len(self.subjects)} subjects x {per_subject} clips, 64 px.")),
        SyntheticConfig(name="s112", size=112,
                        description="The s64 clips at 112 px."),
        SyntheticConfig(name="tiny", size=32, num_subjects=tiny_subjects,
                        clips_per_class=1, description=(
                            f"{tiny_subjects} subjects x {len(self.class_names)}"
                            " clips, 32 px (tests).")),
    ]

  def plan(self, config: SyntheticConfig) -> dict[str, list[synth.SynthClip]]:
    """The clips a config holds, by split name, without rendering any pixels."""
    n = config.num_subjects or len(self.subjects)
    return {
        records.split_name(self.subjects[s].name):
            self.plan_subject(config.seed, s, config.clips_per_class)
        for s in range(n)
    }

  def make_example(self, config: SyntheticConfig,
                   clip: synth.SynthClip) -> tuple[str, dict[str, Any]]:
    """Renders one clip into a (key, record) pair of the shared contract."""
    frames = self.render_clip(config.seed, clip, config.size)
    subject = "%s/%s" % (self.name, clip.subject)
    sample_id = "%s/%s" % (subject, clip.clip)
    return sample_id, {
        "frames": [records.encode_png(f) for f in frames],
        "label": clip.label,
        "emotion": self.class_names[clip.label],
        "subject": subject,
        "sample_id": sample_id,
        "onset": clip.onset,
        "apex": clip.apex,
        "apex_annotated": True,   # the generated peak of the AU time course
        "offset": clip.offset,
        "action_units": self.action_units[clip.label],
        "fps": self.fps,
    }


class SyntheticBuilderMixin:
  """`_info` / `_split_generators` / `_generate_examples` of a synthetic builder.

  A builder sets `SYNTHETIC` (its `SyntheticCorpus`) and optionally
  `EXTRA_METADATA` (added to `info.metadata`); the dataset's description is
  the builder module's docstring.
  """

  SYNTHETIC: SyntheticCorpus
  DEFAULT_CONFIG_NAME = "s64"
  EXTRA_METADATA: Mapping[str, Any] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    corpus = self.SYNTHETIC
    return self.dataset_info_from_configs(
        description=sys.modules[type(self).__module__].__doc__,
        features=records.me_features(self.builder_config.size),
        homepage="https://www.pexels.com/license/",  # terms of the face source
        metadata=tfds.core.MetadataDict({
            "class_names": list(corpus.class_names),
            "action_units": list(corpus.action_units),
            "fps": corpus.fps,
            "seed": self.builder_config.seed,
            **self.EXTRA_METADATA,
        }),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: the faces ship with the package.
    return {name: self._generate_examples(clips)
            for name, clips in self.SYNTHETIC.plan(self.builder_config).items()}

  def _generate_examples(self, clips: list[synth.SynthClip]
                         ) -> Iterator[tuple[str, dict[str, Any]]]:
    for clip in clips:
      yield self.SYNTHETIC.make_example(self.builder_config, clip)

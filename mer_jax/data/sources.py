"""Opening built TFDS corpora and indexing their clips by subject.

A dataset is named like TFDS does, `<builder>/<config>` (e.g. `casme2/5class_112`);
several comma-separated names make a composite (MEGC 3-class). Builders live in
`tfds_builders.<builder>` and register with TFDS on import.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


class DatasetError(RuntimeError):
  """A dataset is unknown, not built, or inconsistent; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Clip:
  """One record: where it is and what the protocol needs to know about it."""
  source: int  # index into `Corpus.sources`
  index: int  # record index inside that source
  subject: str  # namespaced, e.g. 'casme2/sub01'
  label: int
  sample_id: str


@dataclasses.dataclass
class Corpus:
  """All clips of one or more built datasets, with their class names."""
  names: tuple[str, ...]
  class_names: tuple[str, ...]
  sources: list[Any]
  clips: list[Clip]
  excluded: int  # clips whose label is -1 (not in this protocol)
  no_apex: int = 0  # clips in the protocol without an annotated apex

  @property
  def subjects(self) -> list[str]:
    return sorted({c.subject for c in self.clips})

  def record(self, clip: Clip) -> dict[str, Any]:
    """The clip's record with `frames` still encoded (a list of PNG bytes)."""
    return self.sources[clip.source][clip.index]


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR",
                        os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def get_builder(name: str, data_dir: str):
  """Imports the mer-jax builder for `name` and returns the TFDS builder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  base = name.split("/")[0]
  try:
    importlib.import_module(f"tfds_builders.{base}")
  except ModuleNotFoundError as e:
    if not (e.name or "").startswith("tfds_builders"):
      raise
    import pkgutil  # pylint: disable=g-import-not-at-top
    import tfds_builders  # pylint: disable=g-import-not-at-top
    known = sorted(m.name for m in pkgutil.iter_modules(tfds_builders.__path__)
                   if m.ispkg)
    raise DatasetError(f"Unknown dataset builder {base!r} (from {name!r}); "
                       f"mer-jax builders: {known}.") from None
  try:
    return tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except (ValueError, tfds.core.registered.DatasetNotFoundError) as e:
    raise DatasetError(f"Cannot make builder {name!r}: {e}") from None


def _not_built_message(builder, name: str, data_dir: str) -> str:
  instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) or ""
  return (
      f"Dataset {name!r} is not built in {data_dir} (looked for "
      f"{builder.data_dir}).\n"
      f"Build it once with:\n  python scripts/build_dataset.py {name} "
      f"--manual_dir /path/to/corpus --data_dir {data_dir}\n"
      + (f"The builder expects in --manual_dir:\n{instructions.strip()}\n"
         if instructions else ""))


def prepare(name: str, data_dir: str, auto_build: bool) -> Any:
  """Returns a prepared builder; builds corpora that need no manual data."""
  builder = get_builder(name, data_dir)
  if builder.is_prepared():
    return builder
  needs_manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
  if needs_manual or not auto_build:
    raise DatasetError(_not_built_message(builder, name, data_dir))
  log.info("Building %s into %s (one time)...", name, data_dir)
  builder.download_and_prepare(file_format="array_record")
  return builder


class EncodedSource:
  """Random access to records without decoding the frames.

  TFDS data sources decode every frame of a clip; the pipeline needs only the
  `T` sampled ones, so records are parsed here and frames decoded later.
  """

  def __init__(self, builder, split: str):
    self._source = builder.as_data_source(split=split)
    self._features = builder.info.features

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict[str, Any]:
    parser = getattr(self._features, "_example_parser_np", None)
    if parser is None:  # another TFDS version: decode everything
      rec = dict(self._source[i])
      rec["frames"] = [encode_png(f) for f in rec["frames"]]
      return rec
    return parser.parse_example(self._source.data_source[i])

  def __getstate__(self):
    # Worker processes reopen the files instead of pickling readers.
    return {"builder": (self._source.dataset_info.full_name,
                        self._source.dataset_info.data_dir),
            "split": self._source.split}

  def __setstate__(self, state):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    name, data_dir = state["builder"]
    importlib.import_module("tfds_builders." + name.split("/")[0])
    builder = tfds.builder_from_directory(data_dir)
    self.__init__(builder, state["split"])


def decode_frame(encoded: bytes) -> np.ndarray:
  """PNG/JPEG bytes -> RGB uint8 `[H, W, 3]`."""
  import cv2  # pylint: disable=g-import-not-at-top
  img = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
  if img is None:
    raise ValueError("undecodable frame")
  return img[..., ::-1]


def encode_png(frame: np.ndarray) -> bytes:
  import cv2  # pylint: disable=g-import-not-at-top
  return cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]))[1].tobytes()


def _text(x) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def has_annotated_apex(rec: dict[str, Any]) -> bool:
  """Whether a record's apex is an annotation (the pipeline's rule).

  No `apex`, a negative one, one outside onset..offset, or `apex_annotated`
  False (a stand-in the builder filled in) is not. Records built before
  `apex_annotated` existed keep their apex.
  """
  if "apex" not in rec:
    return False
  apex = int(rec["apex"])
  if apex < 0 or not int(rec["onset"]) <= apex <= int(rec["offset"]):
    return False
  annotated = rec.get("apex_annotated")
  return annotated is None or bool(annotated)


def load_corpus(names: Sequence[str], data_dir: str | None = None,
                auto_build: bool = True, show_progress: bool = True,
                class_order: Sequence[str] = ()) -> Corpus:
  """Opens every subject split of each dataset and indexes subject and label.

  Label and subject are parsed from each record once (frames are not decoded).
  Clips with label -1 are excluded from the protocol and counted.
  `class_order` (a permutation of the builder's class names) renumbers the
  labels, e.g. to match the head of a converted official checkpoint; empty
  keeps the builder's order.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  data_dir = data_dir or default_data_dir()
  sources, clips, class_names, excluded, no_apex = [], [], None, 0, 0
  for name in names:
    builder = prepare(name, data_dir, auto_build)
    meta = dict(builder.info.metadata or {})
    names_here = tuple(meta.get("class_names", ()))
    if not names_here:
      raise DatasetError(f"{name}: builder metadata has no 'class_names'.")
    if class_names is None:
      class_names = names_here
    elif names_here != class_names:
      raise DatasetError(
          f"Composite datasets must share classes: {name} has {names_here}, "
          f"earlier ones {class_names}. Use the same protocol config (e.g. "
          "3class) for every dataset.")
    for split in sorted(builder.info.splits.keys()):
      src = EncodedSource(builder, split)
      sources.append(src)
      for i in tqdm(range(len(src)), desc=f"indexing {name}:{split}",
                    disable=not show_progress, leave=False):
        rec = src[i]
        label = int(rec["label"])
        if label < 0:
          excluded += 1
          continue
        clips.append(Clip(len(sources) - 1, i, _text(rec["subject"]), label,
                          _text(rec["sample_id"])))
        no_apex += not has_annotated_apex(rec)
  if no_apex:
    log.warning(
        "%d of %d clips have no annotated apex (a builder's stand-in or none):"
        " their batches carry apex_index -1, and models that use the apex "
        "fall back (miacnet apex='annotated': the estimated apex, its "
        "apex_fallback rule; fdp rank_use_apex: the score peak).", no_apex,
        len(clips))
  if excluded:
    log.warning("%d clips have label -1 (not in this protocol) and are "
                "excluded from training and evaluation.", excluded)
  if not clips:
    raise DatasetError(f"No clips with a label in {list(names)}.")
  if class_order:
    class_order = tuple(class_order)
    if sorted(class_order) != sorted(class_names):
      raise DatasetError(
          f"config.input.class_order {list(class_order)} is not a permutation "
          f"of the classes of {list(names)}: {list(class_names)}. List each "
          "of those names once, or leave it empty for the builder's order.")
    new = {c: i for i, c in enumerate(class_order)}
    clips = [dataclasses.replace(c, label=new[class_names[c.label]])
             for c in clips]
    class_names = class_order
  return Corpus(tuple(names), class_names, sources, clips, excluded, no_apex)


def loso_folds(subjects: Sequence[str]) -> list[tuple[list[str], str]]:
  """Leave-one-subject-out: `[(train_subjects, test_subject), ...]`."""
  subjects = sorted(set(subjects))
  if len(subjects) < 2:
    raise DatasetError(f"LOSO needs >= 2 subjects, got {subjects}")
  return [([s for s in subjects if s != t], t) for t in subjects]


def inner_validation_subjects(train_subjects: Sequence[str], count: int,
                              seed: int) -> list[str]:
  """Picks `count` training subjects to hold out for model selection."""
  if count <= 0:
    return []
  if count >= len(train_subjects):
    raise DatasetError(f"Cannot hold out {count} of {len(train_subjects)} "
                       "training subjects for validation.")
  rng = np.random.default_rng(seed)
  return sorted(rng.choice(sorted(train_subjects), size=count, replace=False).tolist())

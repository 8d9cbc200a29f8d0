"""Opening built TFDS corpora and indexing their clips by subject.

A dataset is named like TFDS does, `<builder>/<config>` (e.g. `casme2/5class_112`);
several comma-separated names make a composite (MEGC 3-class). Builders live in
`tfds_builders.<builder>` and register with TFDS on import.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
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
  try:
    builder.download_and_prepare(file_format="array_record")
  except Exception as e:  # pylint: disable=broad-except
    # TFDS writes into `incomplete.*` and renames at the end: a failed build
    # (e.g. a full disk) leaves no folder that looks finished.
    remove_incomplete(builder)
    raise DatasetError(
        f"Building {name} into {data_dir} failed ({type(e).__name__}: "
        f"{str(e)[:300]}). Free disk space or choose another "
        "config.input.data_dir, then run again.") from e
  write_shard_checksums(builder)
  return builder


# ----------------------------------------------------------------------------
# Shard checksums: what a build wrote, so a damaged file is found and named.

CHECKSUM_FILE = "shard_checksums.json"


def remove_incomplete(builder) -> None:
  """Deletes the `incomplete.*` folders a failed TFDS build left behind."""
  import shutil  # pylint: disable=g-import-not-at-top
  parent = os.path.dirname(os.fspath(builder.data_dir))
  if os.path.isdir(parent):
    for n in os.listdir(parent):
      if n.startswith("incomplete."):
        shutil.rmtree(os.path.join(parent, n), ignore_errors=True)


def shard_files(builder) -> dict[str, list[tuple[str, int]]]:
  """`{split: [(file name, records)]}` as the build's metadata lists them."""
  out = {}
  for split, info in sorted(builder.info.splits.items()):
    out[split] = [(os.path.basename(os.fspath(p)), int(n))
                  for p, n in zip(info.filepaths, info.shard_lengths)]
  return out


def _sha256(path: str) -> str:
  from tfds_builders import corpus_io  # pylint: disable=g-import-not-at-top
  return corpus_io.sha256_file(path)


def write_shard_checksums(builder) -> str:
  """Writes `<version dir>/shard_checksums.json`: records, bytes, sha256 per file."""
  root = os.fspath(builder.data_dir)
  shards = {}
  for split, files in shard_files(builder).items():
    for name, n in files:
      path = os.path.join(root, name)
      shards[name] = {"split": split, "records": n,
                      "bytes": os.path.getsize(path), "sha256": _sha256(path)}
  out = os.path.join(root, CHECKSUM_FILE)
  tmp = out + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"shards": shards}, f, indent=1)
  os.replace(tmp, out)
  return out


def read_shard_checksums(builder) -> dict[str, Any] | None:
  path = os.path.join(os.fspath(builder.data_dir), CHECKSUM_FILE)
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)["shards"]
  except (ValueError, KeyError):
    raise DatasetError(f"{path} is damaged; rebuild the dataset "
                       "(scripts/build_dataset.py ... --overwrite).") from None


def rebuild_command(builder, data_dir: str) -> str:
  name = f"{builder.name}/{builder.builder_config.name}" if builder.builder_config \
      else builder.name
  manual = (" --manual_dir /path/to/corpus"
            if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) else "")
  return (f"python scripts/build_dataset.py {name}{manual} --data_dir {data_dir} "
          "--overwrite")


def verify_shards(builder, show_progress: bool = False) -> list[str]:
  """Reads every record of every shard; returns one problem line per bad file.

  Checks each file's size and sha256 against `shard_checksums.json` (when the
  build wrote one) and its record count against the build's metadata.
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  root = os.fspath(builder.data_dir)
  stored = read_shard_checksums(builder)
  problems = []
  files = [(split, name, n) for split, fs in shard_files(builder).items()
           for name, n in fs]
  for split, name, n in tqdm(files, desc="verifying shards", disable=not show_progress):
    path = os.path.join(root, name)
    if not os.path.isfile(path):
      problems.append(f"{path}: missing")
      continue
    want = (stored or {}).get(name)
    if stored is not None and want is None:
      problems.append(f"{path}: not in {CHECKSUM_FILE}")
      continue
    if want is not None and os.path.getsize(path) != want["bytes"]:
      problems.append(f"{path}: {os.path.getsize(path)} bytes, the build wrote "
                      f"{want['bytes']} (truncated or replaced)")
      continue
    try:
      reader = array_record_module.ArrayRecordReader(path)
      try:
        count = reader.num_records()
        for i in range(0, count, 64):
          reader.read(list(range(i, min(i + 64, count))))
      finally:
        reader.close()
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f"{path}: unreadable ({str(e).splitlines()[0][:200]})")
      continue
    if count != n:
      problems.append(f"{path}: {count} records, the build wrote {n}")
    elif want is not None and _sha256(path) != want["sha256"]:
      problems.append(f"{path}: sha256 differs from the build's (damaged)")
  return problems


def build_options(builder) -> dict[str, Any]:
  """What the build recorded beyond `info.metadata` that determines its data.

  `data_sha256`: one hash over the shard checksums (changes when a rebuild
  wrote other records); `annotation*` keys of `build_report.json`.
  """
  import hashlib  # pylint: disable=g-import-not-at-top
  out = {}
  stored = read_shard_checksums(builder)
  if stored is not None:
    out["data_sha256"] = hashlib.sha256(json.dumps(
        {k: v["sha256"] for k, v in stored.items()}, sort_keys=True).encode()
                                        ).hexdigest()[:16]
  report = os.path.join(os.fspath(builder.data_dir), "build_report.json")
  if os.path.isfile(report):
    try:
      with open(report) as f:
        rep = json.load(f)
    except ValueError:
      rep = {}
    out.update({k: v for k, v in sorted(rep.items()) if k.startswith("annotation")})
  return out


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
      from tfds_builders import records  # pylint: disable=g-import-not-at-top
      rec = dict(self._source[i])
      rec["frames"] = [records.encode_png(f) for f in rec["frames"]]
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
      try:
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
      except Exception as e:  # pylint: disable=broad-except
        raise _corrupt_split_error(builder, name, split, data_dir, e) from e
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


def _corrupt_split_error(builder, name: str, split: str, data_dir: str,
                         e: Exception) -> DatasetError:
  """Names the damaged shard file of `split` (or its files) and the rebuild."""
  bad = [p for p in verify_shards_of_split(builder, split)] or [
      os.path.join(os.fspath(builder.data_dir), f)
      for f, _ in shard_files(builder).get(split, [])]
  return DatasetError(
      f"Dataset {name}: cannot read split {split} "
      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}).\n"
      "Damaged file(s):\n  " + "\n  ".join(bad) +
      f"\nRebuild it with:\n  {rebuild_command(builder, data_dir)}")


def verify_shards_of_split(builder, split: str) -> list[str]:
  try:
    files = {f for f, _ in shard_files(builder).get(split, [])}
    return [p for p in verify_shards(builder)
            if os.path.basename(p.split(":")[0]) in files]
  except Exception:  # pylint: disable=broad-except
    return []


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

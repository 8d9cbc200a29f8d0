"""What a release's labels mean: protocol tables, official lists, errata.

* `MEGC_3CLASS` / `MEGC2019_*` and `protocol_label`: emotion strings folded
  into a protocol's classes.
* `Membership` / `MEGC2019`: an official sample list a protocol is
  restricted to (`megc2019_composite.csv`).
* `Erratum` / `apply_errata`: published corrections of an annotation,
  applied only while the row still holds the released value.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Any, Mapping, Sequence

from tfds_builders import corpus_io
from tfds_builders import skiplog


# MEGC 2019 composite 3-class protocol (See et al., "MEGC 2019 - the second
# facial micro-expressions grand challenge", FG 2019). The folding is PER
# CORPUS, as the challenge defined it and as its official list (below)
# records: CASME II negative = disgust + repression only (its fear and
# sadness clips are not in the composite); SAMM negative = anger, contempt,
# disgust, fear, sadness; SMIC is already negative / positive / surprise.
# 'others' is in no 3-class protocol.
MEGC_3CLASS_NAMES = ("negative", "positive", "surprise")
MEGC2019_CASME2 = {
    "disgust": "negative", "repression": "negative",
    "happiness": "positive", "surprise": "surprise",
}
MEGC2019_SAMM = {
    "anger": "negative", "contempt": "negative", "disgust": "negative",
    "fear": "negative", "sadness": "negative",
    "happiness": "positive", "surprise": "surprise",
}
# Corpora outside the MEGC 2019 composite (CAS(ME)^2, CAS(ME)^3, CK+):
# their 3-class configs fold every negative emotion into 'negative', as
# the MEGC 2019 SAMM rule does (no official list exists for them). Keys are
# lower-case corpus strings in each corpus' spelling (CAS(ME)^3 'happy' /
# 'sad', CAS(ME)^2 already codes 'negative' / 'positive').
MEGC_3CLASS = {
    "negative": "negative", "disgust": "negative", "repression": "negative",
    "fear": "negative", "sadness": "negative", "sad": "negative",
    "anger": "negative", "angry": "negative", "contempt": "negative",
    "positive": "positive", "happiness": "positive", "happy": "positive",
    "surprise": "surprise", "surprised": "surprise",
}

# The official MEGC 2019 composite membership (442 clips, 68 subjects), as
# shipped in megc2019_composite.csv (source cited in its header).
MEGC2019_LIST = "megc2019_composite.csv"


@dataclasses.dataclass(frozen=True)
class Membership:
  """An official sample list a protocol is restricted to.

  `file` is a CSV next to this module with columns dataset, subject, clip,
  label (a class name); `name` is what reports call it.
  """
  name: str
  file: str

  def load(self, dataset: str) -> dict[str, str]:
    """`'<subject>/<clip>'` -> label name for `dataset`."""
    return {f"{r['subject']}/{r['clip']}": r["label"]
            for r in read_list(self.file) if r["dataset"] == dataset}


MEGC2019 = Membership("MEGC 2019 composite list", MEGC2019_LIST)


def read_list(name: str) -> list[dict[str, str]]:
  """Rows of a shipped list CSV (`#` lines are its header notes)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  with open(path, newline="") as f:
    return list(csv.DictReader(line for line in f if not line.startswith("#")))


def protocol_label(emotion: str, class_names: Sequence[str],
                   mapping: Mapping[str, str] | None = None) -> int:
  """Class index of a corpus emotion string in a protocol; -1 when not in it.

  `mapping` folds lower-cased corpus strings into class names first (absent
  keys map to themselves).
  """
  e = emotion.strip().lower()
  if mapping is not None:
    e = mapping.get(e, e if e in class_names else "")
  return class_names.index(e) if e in class_names else -1


@dataclasses.dataclass(frozen=True)
class Erratum:
  """One published correction: `sample`'s `field` goes from `released` to `corrected`.

  `sample` is the key a builder's `errata_key` gives a row (e.g.
  'spNO.214/c/5': subject/filename/released onset). `released` is the
  value as released (text, as `cell_str` reads it); the fix is applied only
  when the row still holds it ('' also matches a blank, '/' or -1 cell), so
  a corrected re-release is left alone. `source` names where the fix is
  published.
  """
  sample: str
  field: str
  released: str
  corrected: int | str
  source: str


MISSING_CELLS = ("", "/", "-", "-1", "none")


def apply_errata(table: Sequence[Erratum], key: str | Sequence[str], row: dict[str, Any],
                 fields: Mapping[str, str], skips: skiplog.SkipLog, where: str) -> None:
  """Applies `table`'s rows for `key` to `row` (in place), recording each one.

  `fields` maps an erratum's field name ('onset', 'apex', 'offset') to the
  row's column key. Each applied fix is a `repaired` entry of the report
  (reason `ERRATUM`) with sample, field, released, corrected and source.
  """
  keys = (key,) if isinstance(key, str) else tuple(key)
  for e in table:
    if e.sample not in keys:
      continue
    col = fields.get(e.field, e.field)
    have = corpus_io.cell_str(row.get(col)).lower()
    want = str(e.released).lower()
    if have == want or (want in MISSING_CELLS and have in MISSING_CELLS):
      row[col] = e.corrected
      skips.repair(where, e)

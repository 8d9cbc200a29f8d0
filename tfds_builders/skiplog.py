"""Counted, logged skips and the reasons the builders name.

`SkipLog` collects every skipped (defect), repaired and excluded clip of a
build, with a one-line summary at the end; nothing is dropped silently.
With `strict=True` the first defect raises `CorpusDefectError` instead. The
corpus mixin writes its details to `build_report.json` (`REPORT_FILE`).
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
  from tfds_builders import labels

log = logging.getLogger("tfds_builders")


class CorpusDefectError(ValueError):
  """A strict build met a defect (bad row, missing/unreadable frame, ...)."""


REPORT_FILE = "build_report.json"
# Skip reasons shared by the builders (a builder may add its own).
BAD_ROW = "bad annotation row"
MISSING_FOLDER = "missing folder"
EMPTY_FOLDER = "empty folder"
MISSING_FRAMES = "missing frames"
ONSET_AFTER_OFFSET = "onset > offset"
UNKNOWN_EMOTION = "unknown emotion"
UNREADABLE_IMAGE = "unreadable image"
# Repairs (SkipLog notes) after which a written clip's apex is a stand-in,
# recorded as `apex_annotated = False`.
APEX_MISSING = "apex missing -> middle"
# Repairs: a published erratum applied; an offset past the last frame on
# disk cut to the last frame; frames missing at a clip's start left out.
ERRATUM = "erratum applied"
OFFSET_CUT = "offset past last frame -> cut"
# Exclusions shared by the builders (never defects).
NOT_IN_LIST = "not in the official list"
OUTSIDE_PROTOCOL = "emotion outside the protocol"


class SkipLog:
  """Counts skipped, repaired and excluded clips by reason; logs each one.

  * `skip`: a defect; the clip is not written (under `strict`, raises
    `CorpusDefectError` instead).
  * `note`: a kept clip that needed a documented fix (apex missing -> middle).
  * `exclude`: a row that is not in the protocol by design (CAS(ME)^2
    macro-expressions, unlabelled CK+ sequences, SMIC `non_micro` folders,
    clips outside an official list); counted, never a defect, never fatal.
  * `repair`: an erratum applied (sample, field, released, corrected, source).
  Only `skip` (a defect) stops a strict build.
  `summary()` reads e.g. "skipped 3 clips: 2 missing frames (sub04/EP12_01,
  sub05/EP01_02), 1 no face (sub07/EP03_01)".
  """

  def __init__(self, corpus: str, strict: bool = False):
    self.corpus = corpus
    self.strict = strict
    self.by_reason: dict[str, list[str]] = collections.OrderedDict()
    self.notes: dict[str, list[str]] = collections.OrderedDict()
    self.excluded: dict[str, list[str]] = collections.OrderedDict()
    # reason -> [{"clip": ..., "detail": ...}], for build_report.json.
    self.details: dict[str, dict[str, list[dict[str, str]]]] = {
        "skipped": {}, "repaired": {}, "excluded": {}}

  def _record(self, kind: str, reason: str, clip: str, detail: str) -> None:
    self.details[kind].setdefault(reason, []).append(
        {"clip": clip, "detail": detail})

  def skip(self, reason: str, clip: str, detail: str = "") -> None:
    if self.strict:
      raise CorpusDefectError(
          f"{self.corpus}: {clip}: {reason}{f' ({detail})' if detail else ''}. "
          "Strict build stopped at the first defect: fix or remove that "
          "entry, or build without --strict to skip it (skips are counted "
          f"and listed in {REPORT_FILE}).")
    self.by_reason.setdefault(reason, []).append(clip)
    self._record("skipped", reason, clip, detail)
    log.warning("%s: skipping %s: %s%s", self.corpus, clip, reason,
                f" ({detail})" if detail else "")

  def note(self, what: str, clip: str, detail: str = "") -> None:
    """A kept clip that needed a documented fix (e.g. apex missing -> middle)."""
    self.notes.setdefault(what, []).append(clip)
    self._record("repaired", what, clip, detail)
    log.info("%s: %s: %s%s", self.corpus, clip, what,
             f" ({detail})" if detail else "")

  def repair(self, clip: str, e: labels.Erratum) -> None:
    """An erratum applied to `clip` (listed under `repaired` as `ERRATUM`)."""
    self.notes.setdefault(ERRATUM, []).append(clip)
    self.details["repaired"].setdefault(ERRATUM, []).append({
        "clip": clip, "detail": f"{e.field} {e.released!r} -> {e.corrected!r}",
        "sample": e.sample, "field": e.field, "released": e.released,
        "corrected": e.corrected, "source": e.source})
    log.info("%s: %s: erratum %s %r -> %r (%s)", self.corpus, clip, e.field,
             e.released, e.corrected, e.source)

  def forget_repairs(self, clip: str) -> None:
    """Drops the stand-in repairs of a clip that is then excluded (not written).

    Applied errata stay listed: they describe the annotation, written or not.
    """
    for what in list(self.notes):
      if what == ERRATUM or clip not in self.notes[what]:
        continue
      self.notes[what] = [c for c in self.notes[what] if c != clip]
      self.details["repaired"][what] = [
          d for d in self.details["repaired"][what] if d["clip"] != clip]
      if not self.notes[what]:
        del self.notes[what], self.details["repaired"][what]

  @property
  def excluded_total(self) -> int:
    return sum(len(v) for v in self.excluded.values())

  def exclusions(self, why: str) -> int:
    return len(self.excluded.get(why, []))

  def exclude(self, why: str, clip: str, detail: str = "") -> None:
    """A row outside the protocol by design (not a defect, not an error)."""
    self.excluded.setdefault(why, []).append(clip)
    self._record("excluded", why, clip, detail)
    log.info("%s: excluding %s: %s", self.corpus, clip, why)

  @property
  def total(self) -> int:
    return sum(len(v) for v in self.by_reason.values())

  def count(self, reason: str) -> int:
    return len(self.by_reason.get(reason, []))

  def noted(self, what: str) -> int:
    return len(self.notes.get(what, []))

  @staticmethod
  def _fmt(d: Mapping[str, list[str]]) -> str:
    parts = []
    for reason, clips in d.items():
      shown = ", ".join(clips[:5]) + (", ..." if len(clips) > 5 else "")
      parts.append(f"{len(clips)} {reason} ({shown})")
    return ", ".join(parts)

  def summary(self) -> str:
    s = f"{self.corpus}: skipped {self.total} clips"
    if self.total:
      s += ": " + self._fmt(self.by_reason)
    if self.notes:
      s += "; kept with fixes: " + self._fmt(self.notes)
    if self.excluded:
      s += "; excluded by protocol: " + ", ".join(
          f"{len(v)} {k}" for k, v in self.excluded.items())
    return s

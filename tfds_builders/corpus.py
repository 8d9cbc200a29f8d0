"""The plan -> examples machinery every licensed-corpus builder shares.

* `CorpusConfig` / `make_configs`: protocol x size (x variant) configs.
* `CorpusBuilderMixin`: `_info`, `_split_generators`, `_generate_examples`
  and `build_report.json`; a builder plugs in its annotation reader
  (`_plan`, returning `clips.ClipPlan`s). Files and sheets: `corpus_io`;
  skips: `skiplog`; label tables, official lists and errata: `labels`; one
  clip's plan: `clips`; the record schema: `records`.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import records
from tfds_builders import skiplog

log = logging.getLogger("tfds_builders")


# The record format version of the licensed-corpus builders (they write
# records through this module, so they change together).
VERSION = tfds.core.Version("1.2.0")
RELEASE_NOTES = {
    "1.0.0": "First release.",
    "1.1.0": ("Records carry `apex_annotated` (False where the apex was "
              "filled in as the middle frame). Rebuild: 1.0.0 builds are not "
              "read by this version."),
    "1.2.0": ("Real releases as unpacked: errata tables applied (listed under "
              "`repaired`), offsets past the last frame cut, nested unpack "
              "folders found, the annotation file and its sha256 recorded; "
              "MEGC 2019 `3class` configs of smic / casme2 / samm follow the "
              "official composite list (442 clips); CK+ unlabelled sequences, "
              "SMIC non_micro folders and clips outside a list are exclusions, "
              "not defects."),
}


class CorpusConfig(tfds.core.BuilderConfig):
  """A protocol x size (x release/variant) configuration.

  Attributes:
    protocol: key into the builder's `PROTOCOLS` (class names + mapping).
    size: output frames are `size x size` RGB.
    alignment: 'dlib' (detect on onset, skip on failure), 'dlib_or_center'
      (pre-cropped releases: centre crop when no face is found) or 'none'
      (resize only: already-cropped releases, fast tests).
    variant: corpus-specific release/camera, e.g. CASME II 'raw'/'cropped',
      SMIC 'HS'/'VIS'/'NIR'.
    annotation: the annotation file to read (absolute, or relative to
      manual_dir) when a release holds several versions; '' = the only one.
  """

  def __init__(self, *, protocol: str, size: int = 112,
               alignment: str = "dlib", variant: str = "", annotation: str = "",
               **kwargs):
    if alignment not in ("dlib", "dlib_or_center", "none"):
      raise ValueError(f"Unknown alignment {alignment!r}")
    kwargs.setdefault("name", f"{protocol}_{size}" + (f"_{variant}" if variant else ""))
    super().__init__(**kwargs)
    self.protocol = protocol
    self.size = size
    self.alignment = alignment
    self.variant = variant
    self.annotation = annotation


def make_configs(protocols: Mapping[str, Any], sizes: Iterable[int] = (112, 224),
                 variants: Mapping[str, str] | None = None,
                 version: str | None = None,
                 description: str = "") -> list[CorpusConfig]:
  """protocol x size (x variant) configs named `<protocol>_<size>[_<variant>]`.

  `variants` maps a variant name to its alignment; the first variant gets
  the plain name (`5class_112`), the others a suffix. `version` None (the
  default): the configs take the builder's `VERSION`, so bumping it versions
  every registered config.
  """
  variants = variants or {"": "dlib"}
  out = []
  for vi, (variant, alignment) in enumerate(variants.items()):
    for p in protocols:
      for s in sizes:
        name = f"{p}_{s}" + (f"_{variant.lower()}" if vi else "")
        out.append(CorpusConfig(
            name=name, protocol=p, size=s, alignment=alignment,
            variant=variant, version=version,
            description=f"{description} protocol {p}, {s}x{s}, "
                        f"{variant or 'default'} release, alignment {alignment}."))
  return out


class CorpusBuilderMixin:
  """Shared `_info` / `_split_generators` / `_generate_examples` and the report.

  A builder sets `CORPUS` (the `<dataset>` namespace), `TITLE`,
  `PROTOCOLS = {name: (class_names, mapping or None)}`,
  `MANUAL_DOWNLOAD_INSTRUCTIONS`, optionally `EMOTIONS` (every emotion string
  the corpus uses, lower-case; default: the protocols' names and mapping
  keys), and implements `_plan(manual_dir, skips)` returning `ClipPlan`s with
  labels from `self.emotion_label`. After a build, `self.skips` holds the
  `SkipLog` and `self.report` the content of `build_report.json`.

  Optional: `MEMBERSHIP = {protocol: Membership}` (an official list the
  protocol is restricted to: clips it does not name are exclusions, the
  list's label is the record's), `ERRATA` (a tuple of `Erratum`, applied by
  `plan_sheet_rows` / `apply_errata` and listed under `repaired`).
  Builders find their annotation with `self.locate_annotation`, which
  records the file and its sha256 in the report and `info.metadata`.

  Constructor keywords (through `tfds.builder(name, strict=..., ...)`):
    strict: stop with `CorpusDefectError` at the first DEFECT (exclusions
      and applied errata never stop it). A keyword rather than a config
      field so that a strict and a lenient build of one config write the
      same dataset.
    annotation: the annotation file (overrides the config's `annotation`),
      required when the release holds several versions side by side.
    alignment: overrides the config's alignment ('dlib', 'dlib_or_center',
      'none'), e.g. 'none' for already-aligned frames or fast tests; the
      value used is recorded in `info.metadata['alignment']`.
  """

  CORPUS = ""
  TITLE = ""
  PROTOCOLS: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]] = {}
  EMOTIONS: frozenset[str] = frozenset()
  MEMBERSHIP: Mapping[str, labels.Membership] = {}
  ERRATA: Sequence[labels.Erratum] = ()
  HOMEPAGE = ""
  CITATION = ""

  def __init__(self, *args, strict: bool = False, alignment: str | None = None,
               annotation: str | None = None, **kwargs):
    if alignment not in (None, "dlib", "dlib_or_center", "none"):
      raise ValueError(f"Unknown alignment {alignment!r}")
    self.strict = bool(strict)
    self._alignment = alignment
    self._annotation = annotation
    self.annotation_read: dict[str, str] | None = None
    self.report: dict[str, Any] | None = None
    super().__init__(*args, **kwargs)

  def locate_annotation(self, manual: str, pattern: str,
                        subdirs: Sequence[str] = ()) -> str:
    """The annotation file (see `find_annotation`); records it and its sha256."""
    explicit = self._annotation or getattr(self.builder_config, "annotation", "")
    path = corpus_io.find_annotation(manual, pattern, self.TITLE,
                                     self.MANUAL_DOWNLOAD_INSTRUCTIONS, explicit=explicit,
                                     subdirs=subdirs)
    self.annotation_read = {"file": os.path.relpath(path, manual),
                            "sha256": corpus_io.sha256_file(path)}
    return path

  @property
  def alignment(self) -> str:
    return self._alignment or self.builder_config.alignment

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    names, _ = self.PROTOCOLS[cfg.protocol]
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    return self.dataset_info_from_configs(
        features=records.me_features(cfg.size),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        metadata=tfds.core.MetadataDict({
            "class_names": list(names),
            "protocol": cfg.protocol,
            "corpus": self.CORPUS,
            "size": cfg.size,
            "alignment": (face_align.ALIGN_VERSION if self.alignment != "none"
                          else "none"),
            "variant": cfg.variant,
        }),
    )

  def label_for(self, emotion: str) -> int:
    names, mapping = self.PROTOCOLS[self.builder_config.protocol]
    return labels.protocol_label(emotion, names, mapping)

  def known_emotions(self) -> frozenset[str]:
    if self.EMOTIONS:
      return frozenset(e.lower() for e in self.EMOTIONS)
    known = set()
    for names, mapping in self.PROTOCOLS.values():
      known.update(n.lower() for n in names)
      known.update(k.lower() for k in (mapping or {}))
    return frozenset(known)

  def emotion_label(self, emotion: str, where: str, skips: skiplog.SkipLog) -> int | None:
    """The label of a KNOWN emotion string (-1 if outside the protocol).

    An unknown string (a typo, a blank cell) is a defect: skipped and
    counted (or raised under strict), never silently labelled -1.
    """
    if emotion.strip().lower() not in self.known_emotions():
      skips.skip(skiplog.UNKNOWN_EMOTION, where, repr(emotion))
      return None
    return self.label_for(emotion)

  def plan_sheet_rows(self, rows: Sequence[Mapping[str, Any]], root: str,
                      subject_name: Callable[[Any], str | None], xlsx: str,
                      skips: skiplog.SkipLog, fps: float,
                      apex_column: str) -> list[clips.ClipPlan]:
    """Clip plans from annotation rows keyed like CASME II's and SAMM's sheets.

    Rows (from `read_xlsx_rows`) carry subject, filename, onset/apex/offset
    frame numbers, action units and estimated emotion; frames live in
    `root/<subject>/<filename>/`. Every row that cannot become a clip is a
    counted skip with its reason; a missing apex is a counted repair
    (`APEX_MISSING`, the clip's `apex_annotated` False).
    """
    plans = []
    fields = {"onset": "onsetframe", "apex": "apexframe", "offset": "offsetframe"}
    for r in rows:
      subj = subject_name(r.get("subject"))
      clip = corpus_io.cell_str(r.get("filename"))
      where = f"{subj}/{clip}" if subj and clip else f"row {r['_row']}"
      # Errata are keyed by '<subject>/<clip>' or, where the source gives
      # only a spreadsheet row, by 'row <n>'.
      labels.apply_errata(self.ERRATA, (where, f"row {r['_row']}"), r, fields, skips, where)
      onset = corpus_io.cell_int(r.get("onsetframe"))
      offset = corpus_io.cell_int(r.get("offsetframe"))
      if not subj or not clip or onset is None or offset is None:
        skips.skip("bad annotation row", where, f"{xlsx} row {r['_row']}")
        continue
      folder = corpus_io.find_child(os.path.join(root, subj), clip, kind="dir")
      if folder is None:
        skips.skip("missing folder", where)
        continue
      files = clips.clip_files(corpus_io.list_frames(folder), onset, offset, where,
                               skips)
      if files is None:
        continue
      emotion = corpus_io.cell_str(r.get("estimatedemotion"))
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      o, a, f, guessed = clips.annotated_apex(r.get("apexframe"), files, where, skips,
                                              apex_column)
      plans.append(clips.ClipPlan(
          subject=f"{self.CORPUS}/{subj}", clip=clip, files=files, emotion=emotion,
          action_units=corpus_io.cell_str(r.get("actionunits")),
          label=label, onset=o, apex=a, offset=f, fps=fps,
          apex_annotated=not guessed))
    return plans

  # --------------------------------------------------------------------------

  def download_and_prepare(self, *args, **kwargs):
    # TFDS writes into an `incomplete.*` folder and renames it at the end;
    # the report is written after that, into the final versioned data dir.
    super().download_and_prepare(*args, **kwargs)
    if self.report is not None:
      path = os.path.join(self.data_dir, skiplog.REPORT_FILE)
      with open(path, "w") as f:
        json.dump(self.report, f, indent=1)
      log.warning("%s: report in %s", self.CORPUS, path)

  def plan_splits(self, manual_dir: Any) -> dict[str, list[clips.ClipPlan]]:
    """Every clip to write, by split name, from the corpus in `manual_dir`.

    Reads the annotation, applies errata and the official list, checks every
    frame file and finds each clip's face (decoding only onset frames, and
    none with alignment 'none'); skips are counted in `self.skips`, and
    `self.planned` maps subject -> plans. Raises `ManualDirError`.
    """
    manual = corpus_io.require_manual_dir(manual_dir, self.TITLE,
                                          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    self.report = None
    self.annotation_read = None
    self.skips = skiplog.SkipLog(self.CORPUS, strict=self.strict)
    plans = self._plan(manual, self.skips)
    # Every annotation row / clip folder the plan looked at.
    self._rows_read = (len(plans) + self.skips.total
                       + sum(len(v) for v in self.skips.excluded.values()))
    self._manual = manual
    plans = self._apply_membership(plans)
    if self.annotation_read:   # saved with dataset_info.json at the end
      self.info.metadata["annotation_file"] = self.annotation_read["file"]
      self.info.metadata["annotation_sha256"] = self.annotation_read["sha256"]
    plans = self._check_frames(plans)
    plans = self._align(plans)
    by_subject: dict[str, list[clips.ClipPlan]] = collections.OrderedDict()
    seen = set()
    for p in plans:
      if p.sample_id in seen:
        self.skips.skip("duplicate sample_id", p.where)
        continue
      seen.add(p.sample_id)
      by_subject.setdefault(p.subject, []).append(p)
    log.warning("%s", self.skips.summary())
    if not by_subject:
      raise corpus_io.manual_dir_error(
          self.TITLE, f"no usable clips under {manual!r} ({self.skips.summary()}).",
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    names = {}
    for subj in by_subject:
      n = records.split_name(subj)
      if n in names:
        raise ValueError(f"Subjects {names[n]!r} and {subj!r} share split {n!r}")
      names[n] = subj
    self.planned = by_subject   # subject -> ClipPlans, for reports and tests
    self._splits_left = len(by_subject)
    self._written: collections.Counter = collections.Counter()
    self._per_split: dict[str, int] = {}
    ordered = sorted(by_subject.items(), key=lambda kv: corpus_io.natural_key(kv[0]))
    return {records.split_name(s): ps for s, ps in ordered}

  def _split_generators(self, dl_manager):
    # `dl_manager.manual_dir` raises a bare AssertionError when the folder is
    # missing or empty; read the path and raise our own message instead.
    splits = self.plan_splits(getattr(dl_manager, "_manual_dir", None))
    return {name: self._generate_examples(plans) for name, plans in splits.items()}

  def membership(self) -> labels.Membership | None:
    """The official list this build's protocol is restricted to, or None."""
    return self.MEMBERSHIP.get(self.builder_config.protocol)

  def _apply_membership(self, plans: list[clips.ClipPlan]) -> list[clips.ClipPlan]:
    """Restricts a protocol to its official list (`MEMBERSHIP`), if it has one.

    A clip the list does not name, or whose emotion the protocol's mapping
    leaves out, is an exclusion (counted, never a defect). A listed clip
    takes the list's label; where the mapping disagrees, that is a repair.
    """
    member = self.membership()
    if member is None:
      return plans
    names, _ = self.PROTOCOLS[self.builder_config.protocol]
    listed = member.load(self.CORPUS)
    kept = []
    for p in plans:
      key = p.where
      if p.label < 0 or key not in listed:
        self.skips.forget_repairs(key)
        if p.label < 0:
          self.skips.exclude(skiplog.OUTSIDE_PROTOCOL, key, p.emotion)
        else:
          self.skips.exclude(skiplog.NOT_IN_LIST, key, member.name)
        continue
      want = names.index(listed[key])
      if want != p.label:
        self.skips.note("label from the official list", key,
                        f"{p.emotion!r} -> {listed[key]} ({member.name})")
        p.label = want
      kept.append(p)
    return kept

  def _split_done(self) -> None:
    # Repeat the summary once the last split is written, so it ends the build
    # log, and assemble the report.
    self._splits_left -= 1
    if self._splits_left == 0:
      log.warning("%s (build done)", self.skips.summary())
      self.report = self._make_report()

  def _make_report(self) -> dict[str, Any]:
    cfg = self.builder_config
    names, _ = self.PROTOCOLS[cfg.protocol]
    per_class = {n: self._written.get(i, 0) for i, n in enumerate(names)}
    per_class["-1"] = self._written.get(-1, 0)
    return {
        "dataset": f"{self.name}/{cfg.name}",
        "version": str(self.version),
        "manual_dir": self._manual,
        "strict": self.strict,
        "alignment": self.alignment,
        "class_names": list(names),
        "rows_read": self._rows_read,
        "samples_written": sum(self._written.values()),
        "per_class": per_class,
        "per_split": dict(sorted(self._per_split.items())),
        "annotation": self.annotation_read,
        "membership": self.membership().name if self.membership() else None,
        # Defects (`skipped`) stop a strict build; repairs and exclusions never do.
        "skipped_total": self.skips.total,
        "defects_total": self.skips.total,
        "excluded_total": self.skips.excluded_total,
        "skipped": self.skips.details["skipped"],
        "repaired": self.skips.details["repaired"],
        "excluded": self.skips.details["excluded"],
        "summary": self.skips.summary(),
    }

  def _check_frames(self, plans: list[clips.ClipPlan]) -> list[clips.ClipPlan]:
    """Skips clips with an unreadable or truncated frame, before any split is made.

    Checked up front because TFDS cannot write a split that ends up empty
    (a subject whose every clip fails while being written).
    """
    kept = []
    for p in tfds.core.utils.tqdm(plans, desc=f"{self.CORPUS}: checking frames",
                                  unit=" clips", leave=False):
      try:
        for path in p.files:
          corpus_io.check_image(path)
      except corpus_io.ImageReadError as e:
        self.skips.skip(skiplog.UNREADABLE_IMAGE, p.where, str(e))
        continue
      kept.append(p)
    return kept

  def _align(self, plans: list[clips.ClipPlan]) -> list[clips.ClipPlan]:
    """Computes each clip's transform on its onset frame (skips faceless clips)."""
    if self.alignment == "none":
      return plans
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    aligner = face_align.FaceAligner()
    kept = []
    for p in tfds.core.utils.tqdm(plans, desc=f"{self.CORPUS}: face detection",
                                  unit=" clips", leave=False):
      try:
        onset = corpus_io.read_rgb(p.files[p.onset])
      except corpus_io.ImageReadError as e:
        self.skips.skip(skiplog.UNREADABLE_IMAGE, p.where, str(e))
        continue
      m = aligner.transform(onset)
      if m is None:
        if self.alignment == "dlib_or_center":
          self.skips.note("no face, centre crop", p.where)
          m = face_align.CENTER
        else:
          self.skips.skip("no face", p.where, p.files[p.onset])
          continue
      p.matrix = m
      kept.append(p)
    return kept

  def _encode_clip(self, p: clips.ClipPlan) -> list[bytes] | None:
    """The clip's frames as PNG crops, or None (skipped) if one is unreadable.

    Frames were checked before the splits were made; a failure here means a
    file changed during the build.
    """
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    size = self.builder_config.size
    encoded = []
    # Frame by frame, one clip at a time: a SAMM clip is up to ~100 frames of
    # 2040x1088, so only the clip's PNG crops are ever held.
    for path in p.files:
      try:
        frame = corpus_io.read_rgb(path)
      except corpus_io.ImageReadError as e:
        self.skips.skip(skiplog.UNREADABLE_IMAGE, p.where, str(e))
        return None
      if p.matrix is None:
        out = face_align.resize(frame, size)
      else:
        (out,) = face_align.apply([frame], p.matrix, size)
      encoded.append(records.encode_png(out))
    return encoded

  def _generate_examples(self, plans: Sequence[clips.ClipPlan]) -> Iterator[tuple[str, dict]]:
    return self.examples(plans)

  def examples(self, plans: Sequence[clips.ClipPlan]) -> Iterator[tuple[str, dict]]:
    """(key, record) of each clip of one split's `plans` (from `plan_splits`).

    Frames are decoded lazily, one clip at a time, as TFDS consumes a split.
    """
    n = 0
    for p in plans:
      encoded = self._encode_clip(p)
      if encoded is None:
        continue
      n += 1
      self._written[p.label] += 1
      yield p.sample_id, {
          "frames": encoded,
          "label": p.label,
          "emotion": p.emotion,
          "subject": p.subject,
          "sample_id": p.sample_id,
          "onset": p.onset,
          "apex": p.apex,
          "apex_annotated": bool(p.apex_annotated),
          "offset": p.offset,
          "action_units": p.action_units,
          "fps": p.fps,
      }
    if plans:
      self._per_split[records.split_name(plans[0].subject)] = n
    self._split_done()

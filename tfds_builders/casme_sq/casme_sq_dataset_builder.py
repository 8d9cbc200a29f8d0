"""CAS(ME)^2 (Qu et al., IEEE TAC 2018): long videos, 22 subjects, 30 fps; micro-expression rows only.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

The spreadsheet `CAS(ME)^2code_final.xlsx` has three sheets (no header row):
  * sheet 1 (codes): participant, '<video name>_<n>', onset, apex, offset,
    AUs, estimated emotion, expression type ('micro-expression' /
    'macro-expression'), self-reported emotion;
  * 'naming rule1': folder subject number (15), 's15', participant (1);
  * 'naming rule2': video code ('0101'), video name ('disgustingteeth').
A clip is `rawpic/s<NN>/<NN>_<code><video name>/img<N>.jpg`, N = frame
number in the long video, onset..offset inclusive.

Handled: offset 0 (not coded) -> 2*apex - onset (symmetric about the apex),
noted; apex missing or outside onset..offset -> middle, noted, and the
record's `apex_annotated` is False; missing files -> skip.
"""

from __future__ import annotations

import os
import re

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "casme_sq"
FPS = 30.0
XLSX_RE = r"CAS\(?ME\)?\^?2.*code.*\.xlsx"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CAS(ME)^2 is licensed and cannot be downloaded automatically. Request it from
the Institute of Psychology, Chinese Academy of Sciences (Fu Xiaolan's lab):
http://casme.psych.ac.cn/casme/e3 (formerly
http://fu.psych.ac.cn/CASME/cas(me)2-en.php); sign the release agreement.

Unpack it so that manual_dir holds:

  <manual_dir>/CAS(ME)^2code_final.xlsx   (sheets: codes | naming rule1 |
                                           naming rule2)
  <manual_dir>/rawpic/s15/15_0101disgustingteeth/img1.jpg ...

Only rows whose expression type is 'micro-expression' are written.
"""

PROTOCOLS = {
    # CAS(ME)^2 codes the emotion as negative / positive / surprise / others
    # itself (Qu et al. 2018, the code sheet's emotion column); it is not in
    # the MEGC 2019 composite, so no official list restricts it.
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC_3CLASS),
    "4class": (("negative", "positive", "surprise", "others"),
               dict(labels.MEGC_3CLASS, others="others", other="others")),
}


def _digits(v) -> int | None:
  m = re.search(r"\d+", corpus_io.cell_str(v))
  return int(m.group()) if m else None


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """CAS(ME)^2 micro-expression clips (onset..offset), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = corpus.RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, description="CAS(ME)^2")
  DEFAULT_CONFIG_NAME = "3class_112"
  CORPUS = CORPUS
  TITLE = "CAS(ME)^2"
  PROTOCOLS = PROTOCOLS
  HOMEPAGE = "http://casme.psych.ac.cn/casme/e3"
  CITATION = """\
@article{qu2018casme2,
  title={{CAS(ME)$^2$}: A database for spontaneous macro-expression and micro-expression spotting and recognition},
  author={Qu, Fangbing and Wang, Su-Jing and Yan, Wen-Jing and Li, He and Wu, Shuhang and Fu, Xiaolan},
  journal={IEEE Transactions on Affective Computing}, volume={9}, number={4}, pages={424--436}, year={2018}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    xlsx = self.locate_annotation(manual, XLSX_RE)
    root = corpus_io.require_path(corpus_io.find_nested(manual, "rawpic", kind="dir"),
                                  self.TITLE, "frame folder rawpic/", manual, instr)
    sheets = corpus_io.sheet_names(xlsx)
    rule1 = next((s for s in sheets if re.sub(r"\s", "", s.lower()) == "namingrule1"), None)
    rule2 = next((s for s in sheets if re.sub(r"\s", "", s.lower()) == "namingrule2"), None)
    if rule1 is None or rule2 is None:
      raise corpus_io.manual_dir_error(
          self.TITLE, f"{xlsx} lacks the 'naming rule1'/'naming rule2' sheets "
          f"(it has {sheets}).", instr)
    # participant -> folder subject number, e.g. 1 -> 15.
    subj_of = {}
    for row in corpus_io.read_sheet(xlsx, rule1):
      if len(row) >= 3 and corpus_io.cell_int(row[2]) is not None:
        n = corpus_io.cell_int(row[0])
        if n is None:
          n = _digits(row[1])
        if n is not None:
          subj_of[corpus_io.cell_int(row[2])] = n
    # video name -> 4-digit code, e.g. 'disgustingteeth' -> '0101'.
    code_of = {}
    for row in corpus_io.read_sheet(xlsx, rule2):
      if len(row) >= 2 and corpus_io.cell_int(row[0]) is not None and row[1]:
        code_of[corpus_io.cell_str(row[1]).lower()] = f"{corpus_io.cell_int(row[0]):04d}"
    plans = []
    seen: dict[str, int] = {}
    for i, row in enumerate(corpus_io.read_sheet(xlsx, 0), start=1):
      row = tuple(row) + (None,) * max(0, 9 - len(row))
      part, name, on_c, ap_c, off_c, aus, emotion, etype = row[:8]
      onset = corpus_io.cell_int(on_c)
      if corpus_io.cell_int(part) is None and onset is None:
        continue   # a header row, if a copy has one
      if "micro" not in corpus_io.cell_str(etype).lower():
        # Macro-expressions are not in the micro protocol: counted, not a defect.
        skips.exclude(f"{corpus_io.cell_str(etype) or 'no type'} (not micro)",
                      f"row {i} {corpus_io.cell_str(name)}")
        continue
      name = corpus_io.cell_str(name)
      num = subj_of.get(corpus_io.cell_int(part))
      subj = f"s{num:02d}" if num is not None else None
      video = re.sub(r"_\d+$", "", name).lower()
      where = f"{subj}/{name}" if subj else f"row {i}"
      apex, offset = corpus_io.cell_int(ap_c), corpus_io.cell_int(off_c)
      if subj is None or onset is None or not name or video not in code_of:
        skips.skip("bad annotation row", where, f"{xlsx} row {i}")
        continue
      if not offset:   # 0 / blank: offset not coded
        if apex is None or apex < onset:
          skips.skip("bad annotation row", where, "no offset and no apex")
          continue
        offset = 2 * apex - onset
        skips.note("offset missing -> 2*apex-onset", where)
      subj_dir = corpus_io.find_child(root, subj, kind="dir")
      prefix = f"{num:02d}_{code_of[video]}".lower()
      folder = None
      if subj_dir is not None:
        folder = next((os.path.join(subj_dir, d) for d in sorted(os.listdir(subj_dir))
                       if d.lower().startswith(prefix)
                       and os.path.isdir(os.path.join(subj_dir, d))), None)
      if folder is None:
        skips.skip("missing folder", where, f"{subj}/{prefix}*")
        continue
      files = clips.clip_files(corpus_io.list_frames(folder), onset, offset, where,
                               skips)
      if files is None:
        continue
      # '<video>_<n>' is unique per subject in the release; keep ids unique
      # even if a copy repeats one.
      seen[f"{subj}/{name}"] = seen.get(f"{subj}/{name}", 0) + 1
      clip = name if seen[f"{subj}/{name}"] == 1 else f"{name}_{onset}"
      emotion = corpus_io.cell_str(emotion)
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      o, a, f, guessed = clips.annotated_apex(ap_c, files, where, skips, "apex")
      plans.append(clips.ClipPlan(
          subject=f"{CORPUS}/{subj}", clip=clip, files=files, emotion=emotion,
          action_units=corpus_io.cell_str(aus), label=label,
          onset=o, apex=a, offset=f, fps=FPS, apex_annotated=not guessed))
    return plans

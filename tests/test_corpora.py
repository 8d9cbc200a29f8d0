"""TFDS builders for the licensed MER corpora, on fake corpora made in code.

`corpus_fixtures` writes each corpus' real layout and spreadsheet with its
known defects; these tests build with `alignment='none'` (resize only, fast)
at 24 px, except the dlib alignment test, which needs
`face_recognition_models` (pip install 'mer-jax[faces]') and skips without it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

sys.path.insert(0, os.path.dirname(__file__))
import corpus_fixtures as cf  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders import casme2, casme3, casme_sq, ck_plus, samm, smic  # noqa: F401  (register)
from tfds_builders import clips, corpus, corpus_io, face_align, labels, records, skiplog
from tfds_builders.smic import smic_dataset_builder

SIZE = 24
MAKERS = {
    "casme2": cf.make_casme2, "samm": cf.make_samm, "smic": cf.make_smic,
    "casme_sq": cf.make_casme_sq, "casme3": cf.make_casme3,
    "ck_plus": cf.make_ck_plus,
}
PROTOCOLS = {
    "casme2": ("5class", "3class"), "samm": ("5class", "3class"),
    "smic": ("3class",), "casme_sq": ("3class", "4class"),
    "casme3": ("7class", "4class", "3class"),
    "ck_plus": ("7class", "6class", "3class"),
}
TITLES = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC",
          "casme_sq": "CAS(ME)^2", "casme3": "CAS(ME)^3", "ck_plus": "CK+"}
# build_report.json "repaired" reasons after which the apex is a stand-in.
STAND_IN_APEX = (skiplog.APEX_MISSING, smic_dataset_builder.NO_APEX)


def build(name, manual, data_dir, protocol, size=SIZE, alignment="none",
          variant=""):
  cfg = corpus.CorpusConfig(protocol=protocol, size=size, alignment=alignment,
                            variant=variant)
  return cf.build(name, manual, data_dir, config=cfg)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
  """Each fake corpus, made once: name -> (manual_dir, Expected)."""
  out = {}
  for name, make in MAKERS.items():
    root = tmp_path_factory.mktemp(name)
    out[name] = (root, make(str(root)))
  return out


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_builder_records(name, corpora, tmp_path, caplog):
  manual, exp_all = corpora[name]
  for protocol in PROTOCOLS[name]:
    exp = exp_all.for_protocol(protocol)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tfds_builders"):
      b = build(name, manual, tmp_path / protocol, protocol)
    # One split per subject, with the right counts.
    assert {s: b.info.splits[s].num_examples for s in b.info.splits} == exp.splits
    names, _ = b.PROTOCOLS[protocol]
    assert b.info.metadata["class_names"] == list(names)
    assert b.info.metadata["protocol"] == protocol
    # Skips and documented fixes are counted ...
    assert {r: b.skips.count(r) for r in exp.skips} == exp.skips
    assert b.skips.total == sum(exp.skips.values())
    assert {n: b.skips.noted(n) for n in exp.notes} == exp.notes
    # Exclusions are counted apart from defects (strict never stops on them).
    assert {w: b.skips.exclusions(w) for w in exp.excluded} == exp.excluded
    assert b.skips.excluded_total == sum(exp.excluded.values())
    # ... and logged, with a summary.
    text = caplog.text
    assert f"skipped {b.skips.total} clips" in text
    for reason in exp.skips:
      assert reason in text
    # ... and written to build_report.json next to the records.
    with open(os.path.join(b.data_dir, skiplog.REPORT_FILE)) as f:
      report = json.load(f)
    assert report == json.loads(json.dumps(b.report))
    assert report["dataset"] == f"{name}/{b.builder_config.name}"
    assert {r: len(v) for r, v in report["skipped"].items()} == exp.skips
    assert {r: len(v) for r, v in report["repaired"].items()} == exp.notes
    assert {r: len(v) for r, v in report["excluded"].items()} == exp.excluded
    assert report["defects_total"] == sum(exp.skips.values())
    # Each applied erratum names sample, field, both values and its source.
    for e in report["repaired"].get(skiplog.ERRATUM, []):
      assert {"sample", "field", "released", "corrected", "source"} <= set(e)
    # The annotation file read, and its sha256, in the report and metadata.
    if name not in ("smic", "ck_plus"):
      ann = report["annotation"]
      assert ann["sha256"] == corpus_io.sha256_file(os.path.join(str(manual), ann["file"]))
      assert b.info.metadata["annotation_sha256"] == ann["sha256"]
    assert all(e["clip"] for v in report["skipped"].values() for e in v)
    assert report["per_split"] == exp.splits
    assert report["per_class"] == exp.per_class(protocol, names)
    assert report["samples_written"] == len(exp.clips)
    # Every row read is written, skipped or excluded by protocol: none dropped.
    assert report["rows_read"] == (
        len(exp.clips) + report["skipped_total"]
        + sum(len(v) for v in report["excluded"].values()))

    recs = cf.read_all(b)
    assert set(recs) == set(exp.clips)
    for sid, clip in exp.clips.items():
      ex = recs[sid]
      subject = sid.rsplit("/", 1)[0]
      assert ex["subject"].decode() == subject
      assert ex["split"] == records.split_name(subject)
      frames = np.stack(ex["frames"])
      assert frames.shape == (len(clip.numbers), SIZE, SIZE, 3)
      assert frames.dtype == np.uint8
      # The frame at each index is the file with the expected NUMBER.
      got = [cf.number_from_colour(f) for f in frames]
      want = [n % 251 for n in clip.numbers]
      assert np.abs(np.array(got) - np.array(want)).max() <= 2, (sid, got, want)
      assert (ex["onset"], ex["apex"], ex["offset"]) == (
          0, clip.apex, len(clip.numbers) - 1), sid
      assert ex["label"] == clip.labels[protocol], (sid, protocol)
      assert ex["emotion"].decode() == clip.emotion
      assert ex["action_units"].decode() == clip.action_units
      assert ex["fps"] > 0
      assert isinstance(ex["apex_annotated"], (bool, np.bool_)), sid
      assert bool(ex["apex_annotated"]) == clip.apex_annotated, sid
    # apex_annotated is False exactly for the clips the report lists as
    # repaired with a stand-in apex (SMIC: every clip; CK+: none).
    stand_ins = {f"{name}/{e['clip']}" for reason in STAND_IN_APEX
                 for e in report["repaired"].get(reason, [])}
    assert {sid for sid, ex in recs.items()
            if not ex["apex_annotated"]} == stand_ins
    if name == "smic":
      assert stand_ins == set(recs)
    if name == "ck_plus":
      assert not stand_ins


def test_fps_and_registered_configs():
  for name, fps in (("casme2", 200), ("samm", 200), ("casme_sq", 30), ("casme3", 30),
                    ("ck_plus", 30)):
    mod = sys.modules[f"tfds_builders.{name}.{name}_dataset_builder"]
    assert mod.FPS == fps
  assert smic.smic_dataset_builder.FPS["HS"] == 100
  cfgs = {c.name for c in casme2.Builder.BUILDER_CONFIGS}
  assert {"5class_112", "5class_224", "3class_112", "3class_224",
          "5class_112_cropped"} <= cfgs
  assert {c.name for c in smic.Builder.BUILDER_CONFIGS} >= {
      "3class_112", "3class_112_vis", "3class_224_nir"}
  assert "casme2" in tfds.list_builders(with_community_datasets=False)
  # Registered configs take the builder's VERSION (a schema change bumps it).
  for mod in (casme2, samm, smic, casme_sq, casme3, ck_plus):
    assert mod.Builder.VERSION >= "1.1.0"   # records carry apex_annotated
    assert str(mod.Builder.VERSION) in mod.Builder.RELEASE_NOTES
    for cfg in mod.Builder.BUILDER_CONFIGS[:3]:
      b = tfds.builder(f"{mod.Builder.name}/{cfg.name}", data_dir="/nonexistent",
                       file_format="array_record")
      assert b.version == mod.Builder.VERSION, (mod.Builder.name, cfg.name)


def test_smic_vis_camera(corpora, tmp_path):
  manual, _ = corpora["smic"]
  b = build("smic", manual, tmp_path, "3class", variant="VIS")
  recs = cf.read_all(b)
  # VIS is not in the MEGC 2019 composite: no list, s2_ne_01 is written.
  assert len(recs) == 5 and "smic/s2/s2_ne_01" in recs
  assert all(r["fps"] == 25 for r in recs.values())


def test_casme2_cropped_release_centre_crop_fallback(tmp_path):
  """The Cropped release (reg_imgN.jpg): faceless frames fall back to a centre crop."""
  if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("needs face_recognition_models (pip install 'mer-jax[faces]')")
  exp = cf.make_casme2(str(tmp_path / "m"), cropped=True).for_protocol("5class")
  b = build("casme2", tmp_path / "m", tmp_path / "d", "5class",
            alignment="dlib_or_center", variant="cropped")
  assert len(cf.read_all(b)) == len(exp.clips)
  assert b.skips.noted("no face, centre crop") == len(exp.clips)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_missing_or_wrong_manual_dir(name, tmp_path):
  protocol = PROTOCOLS[name][0]
  instructions = sys.modules[f"tfds_builders.{name}"].MANUAL_DOWNLOAD_INSTRUCTIONS
  # Missing folder.
  with pytest.raises(corpus_io.ManualDirError) as e:
    build(name, tmp_path / "nope", tmp_path / "d1", protocol)
  msg = str(e.value)
  assert TITLES[name] in msg and "does not exist" in msg
  assert instructions.strip() in msg
  assert "request" in msg.lower() or "Request" in msg
  # Wrong folder: exists, but holds something else.
  wrong = tmp_path / "wrong"
  (wrong / "some_other_corpus").mkdir(parents=True)
  with pytest.raises(corpus_io.ManualDirError) as e:
    build(name, wrong, tmp_path / "d2", protocol)
  msg = str(e.value)
  assert TITLES[name] in msg and "not found" in msg
  assert instructions.strip() in msg


def test_manual_dir_errors_name_layout_and_source():
  checks = {
      casme2: ("CASME2_RAW_selected/sub01/EP02_01f/img46.jpg",
               "CASME2-coding-20140508.xlsx", "Institute of Psychology"),
      samm: ("SAMM/006/006_1_2/006_05562.jpg", "SAMM_Micro_FACS_Codes_v2.xlsx",
             "Manchester Metropolitan University"),
      smic: ("SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image000001.bmp",
             "SMIC_all_raw", "University of Oulu"),
      casme_sq: ("rawpic/s15/15_0101disgustingteeth/img1.jpg",
                 "CAS(ME)^2code_final.xlsx", "Institute of Psychology"),
      casme3: ("part_A/spNO.1/a/color/1.jpg",
               "part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
               "Institute of Psychology"),
      ck_plus: ("cohn-kanade-images/S005/001/S005_001_00000001.png",
                "Emotion/S005/001/S005_001_00000011_emotion.txt",
                "University of Pittsburgh"),
  }
  for mod, needles in checks.items():
    for n in needles:
      assert n in mod.MANUAL_DOWNLOAD_INSTRUCTIONS, (mod.__name__, n)
  assert issubclass(corpus_io.ManualDirError, ValueError)


def test_corpus_helpers(tmp_path):
  assert corpus_io.cell_int("46") == 46 and corpus_io.cell_int(46.0) == 46
  assert corpus_io.cell_int("/") is None and corpus_io.cell_int(-1) is None
  assert corpus_io.cell_int(None) is None and corpus_io.cell_int(" 7 ") == 7
  assert corpus_io.frame_number("006_05562.jpg") == 5562
  assert corpus_io.frame_number("reg_img46.jpg") == 46
  for n in ("img10.jpg", "IMG9.JPG", "img100.jpg", "img011.jpg", "notes.txt"):
    (tmp_path / n).write_bytes(b"")
  assert [os.path.basename(p) for p in corpus_io.list_frames(str(tmp_path))] == [
      "IMG9.JPG", "img10.jpg", "img011.jpg", "img100.jpg"]
  files = corpus_io.list_frames(str(tmp_path))
  assert [os.path.basename(p) for p in corpus_io.frames_between(files, 9, 11)] == [
      "IMG9.JPG", "img10.jpg", "img011.jpg"]
  with pytest.raises(corpus_io.FrameRangeError):
    corpus_io.frames_between(files, 9, 12)
  assert labels.protocol_label("Disgust", labels.MEGC_3CLASS_NAMES,
                               labels.MEGC_3CLASS) == 0
  assert labels.protocol_label("others", labels.MEGC_3CLASS_NAMES,
                               labels.MEGC_3CLASS) == -1
  log = skiplog.SkipLog("casme2")
  log.skip("missing frames", "sub04/EP12_01")
  log.skip("missing frames", "sub05/EP01_02")
  log.skip("no face", "sub07/EP03_01")
  assert log.summary() == ("casme2: skipped 3 clips: 2 missing frames "
                           "(sub04/EP12_01, sub05/EP01_02), 1 no face (sub07/EP03_01)")


# ----------------------------------------------------------------------------
# dlib alignment on a real face.


def _astronaut_clip(n=5, step=3, angle=10.0):
  """A 'clip' of the (rotated) astronaut whose crop window slides `step` px/frame."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  img = data.astronaut()
  h, w = img.shape[:2]
  rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
  img = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
  return [np.ascontiguousarray(img[20:320, 80 + step * k:380 + step * k])
          for k in range(n)]


@pytest.mark.skipif(importlib.util.find_spec("face_recognition_models") is None,
                    reason="needs face_recognition_models (pip install 'mer-jax[faces]')")
def test_dlib_alignment_astronaut_through_builder(tmp_path):
  frames = _astronaut_clip()
  manual = tmp_path / "m"
  for k, f in enumerate(frames):
    p = manual / "CASME2_RAW_selected" / "sub01" / "EP01_01" / f"img{k + 1}.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(p), f[..., ::-1])
  cf.write_xlsx(str(manual / "CASME2-coding-20140508.xlsx"), {"Sheet1": [
      ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
       "Action Units", "Estimated Emotion"),
      (1, "EP01_01", 1, 3, 5, "12", "happiness")]})
  size = 112
  # The registered default config: raw release, dlib alignment, 112 px.
  b = cf.build(f"casme2:{casme2.Builder.VERSION}", manual, tmp_path / "d",
               config="5class_112")
  assert b.info.metadata["alignment"] == face_align.ALIGN_VERSION
  (ex,) = list(b.as_data_source(split="sub01"))
  out = np.stack(ex["frames"])
  assert out.shape == (5, size, size, 3)

  aligner = face_align.FaceAligner()
  # Exactly ONE transform, from the onset frame, applied to every frame.
  m = aligner.transform(frames[0])
  np.testing.assert_array_equal(out, np.stack(face_align.apply(frames, m, size)))
  # Eyes level and where the template puts them.
  left, right = aligner.eyes(out[0])
  assert abs(left[1] - right[1]) <= 2.0
  assert abs(np.hypot(*(right - left)) / size - face_align.EYE_DIST) < 0.04
  assert abs((left[1] + right[1]) / 2 / size - face_align.EYE_Y) < 0.04
  # The face moves with the (un-re-detected) content: 12 source px to the left.
  left4, _ = aligner.eyes(out[4])
  scale = np.hypot(*m[0, :2]) * size
  assert abs((left[0] - left4[0]) - 12 * scale) < 2.5


# ----------------------------------------------------------------------------
# Defects: a counted skip, or under strict a clear error at the first one.


def _mini_casme2(root, defect: str) -> None:
  """One good clip (sub01) plus one clip (sub02) with `defect`."""
  frames = os.path.join(root, "CASME2_RAW_selected")
  for n in range(1, 6):
    cf.write_frame(os.path.join(frames, "sub01", "EP01_01", f"img{n}.jpg"), n)
  bad = os.path.join(frames, "sub02", "EP02_01")
  row = [2, "EP02_01", 1, 2, 3, "4", "disgust"]
  os.makedirs(bad)
  if defect != "empty folder":
    for n in range(1, 4):
      cf.write_frame(os.path.join(bad, f"img{n}.jpg"), n)
  if defect == "onset > offset":
    row[2], row[4] = 3, 1
  elif defect == "unknown emotion":
    row[6] = "disgusted?"
  elif defect == "missing frames":
    os.remove(os.path.join(bad, "img2.jpg"))
  elif defect == "unreadable image":   # truncated
    cf.truncate(os.path.join(bad, "img3.jpg"))
  elif defect == "not an image":
    with open(os.path.join(bad, "img2.jpg"), "w") as f:
      f.write("<html>404</html>")
  elif defect == "bad annotation row":
    row[2] = "?"
  cf.write_xlsx(os.path.join(root, "CASME2-coding-20140508.xlsx"), {"Sheet1": [
      ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
       "Action Units", "Estimated Emotion"),
      (1, "EP01_01", 1, 3, 5, "12", "happiness"), tuple(row)]})


DEFECTS = ("onset > offset", "unknown emotion", "empty folder", "missing frames",
           "unreadable image", "not an image", "bad annotation row")


@pytest.mark.parametrize("defect", DEFECTS)
def test_defect_is_a_counted_skip_or_a_strict_error(defect, tmp_path):
  reason = "unreadable image" if defect == "not an image" else defect
  _mini_casme2(str(tmp_path / "m"), defect)
  b = build("casme2", tmp_path / "m", tmp_path / "d", "5class")
  assert b.skips.total == 1 and b.skips.count(reason) == 1, b.skips.summary()
  assert list(b.info.splits) == ["sub01"]
  assert b.report["skipped"][reason][0]["clip"] == "sub02/EP02_01"
  # Strict: the same corpus stops with a message naming clip and reason,
  # and leaves no (partial) dataset behind.
  cfg = corpus.CorpusConfig(protocol="5class", size=SIZE, alignment="none")
  sb = tfds.builder("casme2", config=cfg, data_dir=str(tmp_path / "s"),
                    file_format="array_record", strict=True)
  with pytest.raises(skiplog.CorpusDefectError) as e:
    sb.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "m")))
  assert "sub02/EP02_01" in str(e.value) and reason in str(e.value)
  assert "--strict" in str(e.value)
  assert not sb.is_prepared()


def test_stand_in_apex_reaches_the_pipeline_as_unknown(corpora, tmp_path):
  """Built records, read as the trainer reads them: apex_index -1 for a stand-in."""
  from ml_collections import ConfigDict  # pylint: disable=g-import-not-at-top
  from mer_jax.data import pipeline, sources  # pylint: disable=g-import-not-at-top
  manual, exp = corpora["casme2"]
  exp = exp.for_protocol("5class")
  b = build("casme2", manual, tmp_path, "5class")
  srcs = [sources.EncodedSource(b, split) for split in sorted(b.info.splits)]
  clips = [sources.Clip(s, i, "", 0, srcs[s][i]["sample_id"].decode())
           for s in range(len(srcs)) for i in range(len(srcs[s]))]
  corp = sources.Corpus(("casme2",), ("x",), srcs, clips, 0)
  cfg = ConfigDict(dict(num_frames=4, temporal_sampling="uniform", size=8,
                        channels=3, targets=()))
  load = pipeline.LoadClip(corp, clips, cfg)
  got = {c.sample_id: int(load(i)["apex_index"]) for i, c in enumerate(clips)}
  assert set(got) == set(exp.clips)
  assert any(not c.apex_annotated for c in exp.clips.values())
  for sid, clip in exp.clips.items():
    assert (got[sid] == -1) == (not clip.apex_annotated), (sid, got[sid])


def test_generation_streams_one_clip_at_a_time(corpora, monkeypatch):
  """Frames are decoded lazily, clip by clip, while TFDS consumes a split."""
  manual, _ = corpora["casme2"]
  cfg = corpus.CorpusConfig(protocol="5class", size=SIZE, alignment="none")
  b = tfds.builder("casme2", config=cfg, data_dir="/nonexistent",
                   file_format="array_record")
  reads = []
  real = corpus_io.read_rgb
  monkeypatch.setattr(corpus_io, "read_rgb", lambda p: reads.append(p) or real(p))

  splits = b.plan_splits(str(manual))
  assert not reads   # planning and checking decode nothing into memory
  key, ex = next(iter(b.examples(splits["sub01"])))
  assert len(reads) == len(ex["frames"]) and key == "casme2/sub01/EP02_01f"


def test_megc2019_composite_class_names_agree():
  """The trainer pools smic + casme2 + samm 3class only if class_names match."""
  names = []
  for full in ("smic/3class_112", "casme2/3class_112", "samm/3class_112",
               "smic/3class_224", "casme2/3class_224", "samm/3class_224",
               "casme_sq/3class_112", "casme3/3class_112", "ck_plus/3class_112"):
    b = tfds.builder(full, data_dir="/nonexistent", file_format="array_record")
    names.append(tuple(b.info.metadata["class_names"]))
  assert set(names) == {labels.MEGC_3CLASS_NAMES}
  assert labels.MEGC_3CLASS_NAMES == ("negative", "positive", "surprise")


# ----------------------------------------------------------------------------
# scripts/build_dataset.py


def _cli():
  spec = importlib.util.spec_from_file_location(
      "build_dataset", os.path.join(os.path.dirname(__file__), "..", "scripts",
                                    "build_dataset.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.main


def test_cli_issue_form_report_and_exit_codes(corpora, tmp_path, capsys):
  main = _cli()
  manual, exp = corpora["casme2"]
  exp = exp.for_protocol("3class")
  data = str(tmp_path / "d")
  # Missing manual_dir: exit 2, the layout, no traceback.
  rc = main(["--dataset", "casme2", "--manual_dir", str(tmp_path / "nope"),
             "--data_dir", data, "--config", "3class_112"])
  err = capsys.readouterr().err
  assert rc == 2 and "is not a directory" in err and "Traceback" not in err
  assert "CASME2_RAW_selected" in err
  # Strict: exit 1 at the first defect, one paragraph, no traceback.
  rc = main(["--dataset", "casme2", "--manual_dir", str(manual), "--data_dir",
             data, "--config", "3class_112", "--alignment", "none", "--strict"])
  err = capsys.readouterr().err
  assert rc == 1 and "sub04/EP12_01" in err and "missing frames" in err
  assert "Traceback" not in err and "\n\n" not in err.strip()
  # Lenient: exit 0, a summary of the skips, the report next to the records.
  rc = main(["--dataset", "casme2", "--manual_dir", str(manual), "--data_dir",
             data, "--config", "3class_112", "--alignment", "none",
             "--annotation", "CASME2-coding-20140508.xlsx"])
  out = capsys.readouterr().out
  assert rc == 0, out
  assert "annotation: CASME2-coding-20140508.xlsx (sha256 " in out
  assert "excluded: " in out and "not in the official list" in out
  assert f"skipped {sum(exp.skips.values())}: 1 missing frames" in out
  report = os.path.join(data, "casme2", "3class_112", str(casme2.Builder.VERSION),
                        skiplog.REPORT_FILE)
  assert os.path.exists(report) and report in out
  # The positional form still works (default config of a --dataset too).
  rc = main(["casme2/5class_112", "--manual_dir", str(manual), "--data_dir",
             data, "--alignment", "none"])
  assert rc == 0 and "casme2/5class_112" in capsys.readouterr().out
  # Unknown builder: exit 2.
  rc = main(["--dataset", "casme9", "--data_dir", data])
  assert rc == 2 and "Unknown dataset builder" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Real releases: the MEGC 2019 composite list, errata, versions, nested unpacks.


def test_megc2019_composite_is_the_official_list(tmp_path):
  """smic + casme2 + samm `3class` = 442 clips of 68 subjects, class by class.

  The fixtures have each corpus' released emotion distribution (CASME II
  with fear / sadness / others, SAMM with 'Other'); the per-corpus mappings
  and the shipped list give the official composite, under --strict (the
  fixtures hold errata and exclusions only, no defect). Planned and
  frame-checked, not encoded.
  """
  manuals = cf.make_megc2019(str(tmp_path))
  want = {"smic": (164, (70, 51, 43), 16), "casme2": (145, (88, 32, 25), 24),
          "samm": (133, (92, 26, 15), 28)}
  total, subjects = 0, set()
  for name, (n, per_class, n_subj) in want.items():
    cfg = corpus.CorpusConfig(protocol="3class", size=SIZE, alignment="none")
    b = tfds.builder(name, config=cfg, data_dir=str(tmp_path / "d"),
                     file_format="array_record", strict=True)
    b.plan_splits(str(manuals[name]))
    plans = [p for ps in b.planned.values() for p in ps]
    counts = tuple(sum(p.label == k for p in plans) for k in range(3))
    assert (len(plans), counts, len(b.planned)) == (n, per_class, n_subj), name
    assert b.skips.total == 0, b.skips.summary()
    # The per-corpus mapping agrees with every label of the list.
    assert b.skips.noted("label from the official list") == 0
    total += len(plans)
    subjects |= set(b.planned)
    if name == "casme2":
      # The mapping keeps these two disgust clips; the list does not.
      excluded = b.skips.details["excluded"]
      assert {e["clip"] for e in excluded[skiplog.NOT_IN_LIST]} == {
          "sub04/EP12_01f", "sub24/EP02_07"}
      assert b.skips.exclusions(skiplog.OUTSIDE_PROTOCOL) == 2 + 7 + 99
      assert b.skips.noted(skiplog.OFFSET_CUT) == 1   # sub16/EP01_08
    if name == "samm":
      assert b.skips.exclusions(skiplog.OUTSIDE_PROTOCOL) == 26   # 'Other'
      fixed = b.skips.details["repaired"][skiplog.ERRATUM]
      assert sorted((e["sample"], e["corrected"]) for e in fixed) == [
          ("row 140", 1105), ("row 147", 4945), ("row 148", 5130)]
    if name == "smic":
      assert b.skips.excluded_total == 3   # non_micro folders
  assert total == 442 and len(subjects) == 68


def test_annotation_versions_are_never_guessed(corpora, tmp_path):
  """Two coding sheets side by side: an error naming both, unless one is chosen."""
  import shutil  # pylint: disable=g-import-not-at-top
  manual = tmp_path / "m"
  shutil.copytree(corpora["casme2"][0], manual)
  shutil.copy(manual / "CASME2-coding-20140508.xlsx",
              manual / "CASME2-coding-20190701.xlsx")
  with pytest.raises(corpus_io.ManualDirError) as e:
    build("casme2", manual, tmp_path / "d1", "5class")
  assert "20140508" in str(e.value) and "20190701" in str(e.value)
  assert "--annotation" in str(e.value)
  cfg = corpus.CorpusConfig(protocol="5class", size=SIZE, alignment="none")
  b = cf.build("casme2", manual, tmp_path / "d2", config=cfg,
               annotation="CASME2-coding-20190701.xlsx")
  assert b.report["annotation"]["file"] == "CASME2-coding-20190701.xlsx"
  assert b.info.metadata["annotation_file"] == "CASME2-coding-20190701.xlsx"
  with pytest.raises(corpus_io.ManualDirError, match="not found"):
    cf.build("casme2", manual, tmp_path / "d3", config=cfg, annotation="nope.xlsx")


def test_strict_passes_on_exclusions_only(corpora, tmp_path):
  """CK+'s unlabelled sequences are exclusions: a strict build passes."""
  manual, exp = corpora["ck_plus"]
  cfg = corpus.CorpusConfig(protocol="7class", size=SIZE, alignment="none")
  b = cf.build("ck_plus", manual, tmp_path, config=cfg, strict=True)
  assert b.report["excluded"]["no emotion label"][0]["clip"] == "S005/002"
  assert b.report["defects_total"] == 0
  assert len(cf.read_all(b)) == len(exp.clips)


def test_nested_lookup_and_offset_cut(tmp_path):
  """find_nested goes one level down; cut_offset cuts only past the last file."""
  (tmp_path / "Emotion_labels" / "Emotion" / "S005").mkdir(parents=True)
  (tmp_path / "rel" / "SAMM" / "006").mkdir(parents=True)
  assert corpus_io.find_nested(str(tmp_path), "Emotion", "Emotion_labels").endswith(
      os.path.join("Emotion_labels", "Emotion"))
  assert corpus_io.find_nested(str(tmp_path), "SAMM").endswith(os.path.join("rel", "SAMM"))
  files = [f"img{n}.jpg" for n in range(5, 10)]
  log = skiplog.SkipLog("x")
  assert clips.cut_offset(files, 5, 12, "a", log) == 9
  assert clips.cut_offset(files, 5, 8, "b", log) == 8
  assert clips.cut_offset(files, 11, 12, "c", log) == 12   # onset past too: not cut
  assert log.noted(skiplog.OFFSET_CUT) == 1


def test_casme3_unpacked_one_folder_down(tmp_path):
  """CAS(ME)^3 as unpacked inside its archive's top folder: same records."""
  exp = cf.make_casme3(str(tmp_path / "manual" / "CAS(ME)3"))
  b = build("casme3", tmp_path / "manual", tmp_path / "data", "7class")
  assert {s: b.info.splits[s].num_examples for s in b.info.splits} == (
      exp.for_protocol("7class").splits)
  assert b.report["annotation"]["file"].replace(os.sep, "/").startswith(
      "CAS(ME)3/part_A/annotation/")

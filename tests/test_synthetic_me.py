"""Tests for the `synthetic_me` builder: schema, plan, determinism, motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import records
import tfds_builders.synthetic_me  # pylint: disable=unused-import  (registers)
from tfds_builders.synthetic_me import synth
from tfds_builders.synthetic_me import synthetic_me_dataset_builder as smb

CONFIGS = {c.name: c for c in smb.Builder.BUILDER_CONFIGS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """The `tiny` config (3 subjects x 5 clips, 32 px), built once: (builder, data_dir)."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = tfds.builder("synthetic_me/tiny", data_dir=data_dir,
                         file_format="array_record")
  builder.download_and_prepare(file_format="array_record")
  return builder, data_dir


def _all_examples(builder):
  for split in builder.info.splits:
    ds = builder.as_data_source(split=split)
    for i in range(len(ds)):
      yield split, ds[i]


def test_schema(tiny):
  builder, _ = tiny
  size = CONFIGS["tiny"].size
  n = 0
  for split, ex in _all_examples(builder):
    n += 1
    assert set(ex) == set(records.FEATURE_KEYS)
    frames = np.stack(ex["frames"])
    assert frames.dtype == np.uint8 and frames.shape[1:] == (size, size, 3)
    t = len(frames)
    assert 24 <= t <= 40
    assert 0 <= ex["onset"] <= ex["apex"] <= ex["offset"] < t
    # The apex is the generated peak: always annotated.
    assert isinstance(ex["apex_annotated"], (bool, np.bool_))
    assert ex["apex_annotated"]
    # Micro-expression timing: neutral frames on both sides, <= 0.5 s.
    assert ex["onset"] >= 4 and ex["offset"] <= t - 5
    assert (ex["offset"] - ex["onset"]) / ex["fps"] <= 0.5 + 1e-6
    assert 0 <= ex["label"] < len(smb.CLASS_NAMES)
    assert ex["emotion"].decode() == smb.CLASS_NAMES[ex["label"]]
    assert ex["action_units"].decode() == smb.ACTION_UNITS[ex["label"]]
    subject = ex["subject"].decode()
    assert subject == "synthetic_me/" + split
    assert records.split_name(subject) == split
    assert ex["sample_id"].decode().startswith(subject + "/")
    assert ex["fps"] == pytest.approx(30.0)
  assert n == 3 * 5


def test_version_carries_apex_annotated(tiny):
  builder, _ = tiny
  assert builder.version >= "1.1.0"   # the first version with apex_annotated
  assert str(smb.Builder.VERSION) in smb.Builder.RELEASE_NOTES
  assert smb.make_example(CONFIGS["tiny"], smb.plan(CONFIGS["tiny"])["sub01"][0]
                          )[1]["apex_annotated"] is True


def test_every_class_in_every_built_split(tiny):
  builder, _ = tiny
  labels = {}
  for split, ex in _all_examples(builder):
    labels.setdefault(split, set()).add(int(ex["label"]))
  assert len(labels) == 3
  assert all(v == set(range(5)) for v in labels.values())


def test_metadata_round_trips(tiny):
  _, data_dir = tiny
  reloaded = tfds.builder("synthetic_me/tiny", data_dir=data_dir)
  assert list(reloaded.info.metadata["class_names"]) == list(smb.CLASS_NAMES)
  assert list(reloaded.info.metadata["action_units"]) == list(smb.ACTION_UNITS)


def test_built_frames_match_renderer(tiny):
  """PNG is lossless: stored frames are exactly what `synth` renders."""
  builder, _ = tiny
  cfg = CONFIGS["tiny"]
  clips = smb.plan(cfg)["sub02"]
  ds = builder.as_data_source(split="sub02")
  stored = {ds[i]["sample_id"].decode(): ds[i] for i in range(len(ds))}
  for clip in clips[:2]:
    ex = stored["synthetic_me/sub02/" + clip.clip]
    assert (ex["onset"], ex["apex"], ex["offset"], ex["label"]) == (
        clip.onset, clip.apex, clip.offset, clip.label)
    np.testing.assert_array_equal(np.stack(ex["frames"]),
                                  synth.render_clip(cfg.seed, clip, cfg.size))


def test_full_config_plan():
  """s64 / s112: >= 8 subjects, 20-40 clips each, all classes, same clips."""
  p64, p112 = smb.plan(CONFIGS["s64"]), smb.plan(CONFIGS["s112"])
  assert p64 == p112
  assert CONFIGS["s64"] is smb.Builder.BUILDER_CONFIGS[0]
  assert len(p64) >= 8
  ids = set()
  for split, clips in p64.items():
    assert 20 <= len(clips) <= 40
    assert {c.label for c in clips} == set(range(5))
    assert all(records.split_name(c.subject) == split for c in clips)
    for c in clips:
      assert 4 <= c.onset < c.apex < c.offset <= c.num_frames - 5
      ids.add((c.subject, c.clip))
  assert len(ids) == sum(len(c) for c in p64.values())


def test_envelope():
  clip = synth.plan_subject(0, 0, 1)[0]
  env = synth.envelope(clip)
  assert env[clip.apex] == pytest.approx(1.0)
  assert env[clip.onset] == pytest.approx(0.0, abs=1e-6)
  assert env[clip.offset] == pytest.approx(0.0, abs=1e-6)
  assert np.all(env[:clip.onset] == 0) and np.all(env[clip.offset + 1:] == 0)
  assert np.all(np.diff(env[clip.onset:clip.apex + 1]) > 0)


def test_determinism():
  """Same seed: identical plan and PNG bytes; another seed: other clips."""
  cfg = CONFIGS["tiny"]
  clip = smb.plan(cfg)["sub03"][1]
  assert smb.plan(cfg) == smb.plan(cfg)
  key_a, ex_a = smb.make_example(cfg, clip)
  key_b, ex_b = smb.make_example(cfg, clip)
  assert key_a == key_b and ex_a["frames"] == ex_b["frames"]
  assert synth.plan_subject(1, 2, 6) != synth.plan_subject(0, 2, 6)
  # Same timing and label, other seed: the per-clip draws differ.
  assert not np.array_equal(synth.render_clip(0, clip, 32),
                            synth.render_clip(1, clip, 32))


def test_sizes_hold_the_same_clips():
  clip = synth.plan_subject(0, 4, 1)[0]
  f112 = synth.render_clip(0, clip, 112)
  f64 = synth.render_clip(0, clip, 64)
  resized = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA)
                      for f in f112])
  np.testing.assert_array_equal(resized, f64)


@pytest.mark.parametrize("subject_index", [0, 5, 9])
def test_motion_is_localized(subject_index):
  """|apex - onset| energy concentrates in the class' AU region; before the
  onset (no AU motion) it does not. A low-amplitude clip on a low-texture
  face can sink below the drift and noise floor (as in real data), so the
  per-clip bound allows one miss in five."""
  apex_ratios, neutral_ratios = [], []
  for clip in synth.plan_subject(0, subject_index, 1):
    frames, aux = synth.render_clip(0, clip, 112, return_aux=True)
    f = frames.astype(np.float32)
    region = aux["region"]
    apex = ((f[clip.apex] - f[clip.onset])**2).mean(-1)
    neutral = ((f[clip.onset] - f[0])**2).mean(-1)
    apex_ratios.append(apex[region].mean() / apex[~region].mean())
    neutral_ratios.append(neutral[region].mean() / neutral[~region].mean())
  apex_ratios, neutral_ratios = np.array(apex_ratios), np.array(neutral_ratios)
  assert np.median(apex_ratios) > 3.0, apex_ratios
  assert np.mean(apex_ratios > 1.5) >= 0.8, apex_ratios
  assert np.median(neutral_ratios) < 1.5, neutral_ratios
  assert np.median(apex_ratios) > 2.0 * np.median(neutral_ratios)


def test_faces_file_is_small():
  import os  # pylint: disable=g-import-not-at-top
  assert os.path.getsize(synth.FACES_PATH) < 1.5e6  # 14 crops: ~0.5 MB
  faces = np.load(synth.FACES_PATH)
  assert faces["images"].shape[1:] == (128, 128, 3)
  assert faces["landmarks"].shape[1:] == (len(faces["landmark_names"]), 2)


# --- synthetic_me 2.0: only motion tells the class -------------------------


def test_version_2_release_notes():
  assert smb.Builder.VERSION >= "2.0.0"  # frames differ from every 1.x build
  assert "2.0.0" in smb.Builder.RELEASE_NOTES
  assert "geometry" in smb.Builder.RELEASE_NOTES["2.0.0"]


def _shape(lm):
  """Class-relevant facial measurements (px) relative to the eyes' midpoint."""
  eye = (lm["eye_l"] + lm["eye_r"]) / 2
  brows = [lm[n][1] - eye[1] for n in ("brow_l_mid", "brow_r_mid")]
  return np.array([
      *brows,                                            # brow height
      lm["brow_r_inner"][0] - lm["brow_l_inner"][0],     # inner brow gap
      lm["mouth_l"][1] - eye[1], lm["mouth_r"][1] - eye[1],  # mouth corners
      lm["mouth_r"][0] - lm["mouth_l"][0],               # mouth width
      lm["nose_l"][1] - eye[1], lm["nose_r"][1] - eye[1],  # nostrils
      lm["eye_r"][0] - lm["eye_l"][0],                   # eye spacing
  ])


def test_clip_geometry_varies_at_least_the_expression_amplitude():
  """Across the clips of one subject, every class-relevant measurement of the
  neutral face (before any expression) spreads by at least as much as the
  expression that moves it changes it at the apex: a brow or mouth corner
  sitting high in one frame is as likely identity as expression."""
  plans = synth.plan_subject(0, 3, 6)
  pairs = [synth.clip_landmarks(0, p) for p in plans]
  neutral = np.stack([_shape(n) for n, _ in pairs])
  change = np.stack([np.abs(_shape(a) - _shape(n)) for n, a in pairs])
  labels = np.array([p.label for p in plans])
  # Which class moves which measurement (_shape's order).
  moved_by = {0: (0, 1), 1: (0, 1, 2), 2: (3, 4, 5), 3: (3, 4), 4: (6, 7)}
  for label, columns in moved_by.items():
    for col in columns:
      expression = change[labels == label, col].mean()
      assert expression > 0.5, (label, col, expression)  # the class moves it
      assert neutral[:, col].std() >= expression, (label, col)
  coef = np.stack([synth.clip_geometry(0, p)[0] for p in plans])
  assert coef.shape == (30, len(synth.GEOMETRY_FEATURES))
  assert np.all(coef.std(0) >= synth.AMPLITUDE_RANGE[1] * 0.75), coef.std(0)


def test_apex_geometry_overlaps_across_classes():
  """The apex frame's measurement that a class moves (brow height for
  brow_raise, corner height for lip_corner_pull) overlaps with the same
  measurement at other classes' apexes, by more than an amplitude: no
  threshold on it separates the classes (the one-frame shortcut of 1.x)."""
  plans = [p for s in range(3) for p in synth.plan_subject(0, s, 3)]
  brow, mouth = [], []
  for p in plans:
    _, apex = synth.clip_landmarks(0, p)
    s = _shape(apex) - _shape(synth.subject_face(p.subject_index)[1])
    brow.append((p.label, s[:2].mean()))
    mouth.append((p.label, s[3:5].mean()))
  for values, cls in ((brow, 0), (mouth, 2)):
    inside = np.array([v for l, v in values if l == cls])
    outside = np.array([v for l, v in values if l != cls])
    assert inside.max() - outside.min() > synth.AMPLITUDE_RANGE[1], (inside, outside)
    assert outside.max() - inside.min() > synth.AMPLITUDE_RANGE[1], (inside, outside)


def test_subjects_are_distinct_identities():
  """Each subject has its own crop and its own geometry; the neutral shapes of
  any two subjects differ (Euclidean, over the class-relevant measurements)
  by more than the largest expression amplitude."""
  assert len({s.face for s in synth.SUBJECTS}) == len(synth.SUBJECTS)
  assert len({s.geometry_key for s in synth.SUBJECTS}) == len(synth.SUBJECTS)
  assert all(s.geometry_key for s in synth.SUBJECTS)
  shapes = np.stack([_shape(synth.subject_face(i)[1])
                     for i in range(len(synth.SUBJECTS))])
  for i in range(len(shapes)):
    for j in range(i):
      assert np.linalg.norm(shapes[i] - shapes[j]) > synth.AMPLITUDE_RANGE[1], (i, j)
  faces = np.load(synth.FACES_PATH)
  assert len(faces["names"]) == len(set(faces["names"]))  # no crop twice

"""Temporal sampling, LOSO splitting, grey conversion, augmentation."""

import numpy as np
import pytest

from mer_jax.data import pipeline
from mer_jax.data import sampling
from mer_jax.data import sources
from tfds_builders import records as record_schema


def _clip(n, h=4):
  return np.stack([np.full((h, h, 1), i, np.uint8) for i in range(n)])


def test_uniform_sampling_spans_onset_to_offset():
  x = sampling.sample_clip(_clip(30), 5, 19, 8, "uniform")
  idx = x[:, 0, 0, 0]
  assert idx[0] == 5 and idx[-1] == 19
  assert np.all(np.diff(idx.astype(int)) >= 1)


def test_uniform_repeats_short_clips():
  idx = sampling.sample_clip(_clip(10), 2, 4, 8, "uniform")[:, 0, 0, 0]
  assert idx.tolist() == [2, 2, 3, 3, 3, 3, 4, 4]


def test_interpolation_is_linear():
  x = sampling.sample_clip(_clip(10) * 10, 0, 3, 7, "interpolate")[:, 0, 0, 0]
  # positions 0, .5, 1, ..., 3 -> values 0, 5, 10, ..., 30
  assert x.tolist() == [0, 5, 10, 15, 20, 25, 30]


def test_stride_is_official_rule():
  idx = sampling.sample_clip(_clip(40), 3, 22, 8, "stride")[:, 0, 0, 0]
  assert idx.tolist() == [3 + 2 * i for i in range(8)]  # L=20, 20 // 8 = 2
  # Shorter than T (the official code skips these): the uniform rule.
  np.testing.assert_array_equal(
      sampling.sample_clip(_clip(40), 3, 6, 8, "stride"),
      sampling.sample_clip(_clip(40), 3, 6, 8, "uniform"))


def test_unknown_mode():
  with pytest.raises(ValueError, match="Unknown temporal sampling"):
    sampling.sample_clip(_clip(5), 0, 4, 2, "nope")


def test_loso_no_subject_in_train_and_test():
  subjects = [f"d/s{i}" for i in range(6)] + ["d/s0"]
  folds = sources.loso_folds(subjects)
  assert len(folds) == 6
  assert sorted(t for _, t in folds) == sorted(set(subjects))
  for train, test in folds:
    assert test not in train
    assert sorted(train + [test]) == sorted(set(subjects))


def test_inner_validation_is_from_training_subjects_and_seeded():
  train = [f"d/s{i}" for i in range(7)]
  a = sources.inner_validation_subjects(train, 2, seed=3)
  assert a == sources.inner_validation_subjects(train, 2, seed=3)
  assert len(a) == 2 and set(a) <= set(train)
  with pytest.raises(sources.DatasetError):
    sources.inner_validation_subjects(train, 7, seed=0)


def test_grey_matches_pil_formula():
  rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
  grey = pipeline.to_grey(rgb)[..., 0]
  expect = [(r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
            for r, g, b in rgb[0].astype(int)]
  assert grey[0].tolist() == expect


def test_augment_applies_same_transform_to_all_frames():
  from ml_collections import ConfigDict
  cfg = ConfigDict(dict(flip=True, max_rotate_deg=10.0, scale=(0.9, 1.1),
                        max_shift=0.1, brightness=0.0, contrast=0.0))
  base = np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8)
  clip = np.stack([base] * 4)
  out = pipeline.Augment(cfg)({"frames": clip}, np.random.default_rng(1))["frames"]
  assert not np.allclose(out[0], base)  # something happened
  for t in range(1, 4):
    np.testing.assert_array_equal(out[t], out[0])


# Apex position -------------------------------------------------------------


@pytest.mark.parametrize("mode,onset,apex,offset,t,want", [
    # positions 5, 7, ..., 19
    ("uniform", 5, 13, 19, 8, 4), ("uniform", 5, 5, 19, 8, 0),
    ("uniform", 5, 19, 19, 8, 7), ("uniform", 5, 14, 19, 8, 4),
    # frames [0, 2, 3, 5] from 0, 1.67, 3.33, 5: apex 1 is 1 from frames 0
    # and 2; the nominal time 1.67 decides.
    ("uniform", 0, 1, 5, 4, 1),
    # short clip, frames [2, 2, 3, 3, 3, 3, 4, 4] from 2, 2.29, ..., 4:
    # frame 3 at t=2..5, nominal 2.86 (t=3) and 3.14 (t=4) tie -> earliest.
    ("uniform", 2, 3, 4, 8, 3),
    # positions 0, .5, ..., 3
    ("interpolate", 0, 2, 3, 7, 4), ("interpolate", 0, 3, 3, 7, 6),
    # positions 0, 3.33, 6.67, 10
    ("interpolate", 0, 4, 10, 4, 1), ("interpolate", 0, 6, 10, 4, 2),
    # frames 3, 5, ..., 17 (L = 20, stride 2)
    ("stride", 3, 9, 22, 8, 3), ("stride", 3, 3, 22, 8, 0),
    ("stride", 3, 8, 22, 8, 2),  # 7 and 9 tie -> earliest
    ("stride", 3, 21, 22, 8, 7),  # past the last sampled frame
])
def test_apex_index_per_mode(mode, onset, apex, offset, t, want):
  got = sampling.apex_index(40, onset, apex, offset, t, mode)
  assert got == want
  # It is the sampled frame (position) nearest to the apex.
  pos = sampling.plan_positions(sampling.frame_plan(40, onset, offset, t, mode))
  assert abs(pos[got] - apex) == pytest.approx(np.min(np.abs(pos - apex)))


def test_apex_index_is_the_sampled_apex_frame():
  # Frame values = frame numbers: the frame at apex_index shows the apex.
  frames = _clip(40)
  for mode in sampling.MODES:
    for apex in (6, 11, 17):
      x = sampling.sample_clip(frames, 3, 22, 8, mode)[:, 0, 0, 0]
      a = sampling.apex_index(40, 3, apex, 22, 8, mode)
      assert abs(int(x[a]) - apex) == np.min(np.abs(x.astype(int) - apex)), mode


@pytest.mark.parametrize("apex", [-1, 4, 20, 45])
def test_apex_index_unknown_or_outside(apex):
  for mode in sampling.MODES:
    assert sampling.apex_index(40, 5, apex, 19, 8, mode) == -1
  assert sampling.apex_index(0, 0, 0, 0, 8) == -1
  # onset/offset are clipped to the clip like frame_plan does.
  assert sampling.apex_index(10, 2, 9, 50, 8, "uniform") == 7
  assert sampling.apex_index(10, 2, 10, 50, 8, "uniform") == -1


_ABSENT = object()


def _corpus(onset_apex_offset, n=12, size=8, apex_annotated=()):
  """A Corpus of PNG-encoded clips whose pixel values are frame numbers.

  `apex_annotated[k]` is clip k's `apex_annotated` value; `_ABSENT` (or no
  entry) leaves the field out, like records built before it existed.
  """
  clips, records = [], []
  for k, (onset, apex, offset) in enumerate(onset_apex_offset):
    frames = [record_schema.encode_png(np.full((size, size, 3), 10 * i, np.uint8))
              for i in range(n)]
    rec = {"frames": frames, "onset": np.int32(onset), "offset": np.int32(offset)}
    if apex is not None:
      rec["apex"] = np.int32(apex)
    if k < len(apex_annotated) and apex_annotated[k] is not _ABSENT:
      rec["apex_annotated"] = apex_annotated[k]
    records.append(rec)
    clips.append(sources.Clip(0, k, f"d/s{k % 2}", k % 2, f"d/s{k % 2}/c{k}"))
  return sources.Corpus(("d",), ("a", "b"), [records], clips, 0)


def _input_cfg(mode="uniform"):
  from ml_collections import ConfigDict
  return ConfigDict(dict(
      num_frames=4, temporal_sampling=mode, size=8, channels=1, targets=(),
      mean=0.5, std=0.5, read_threads=1, prefetch=1, workers=0,
      augment=dict(enabled=True, flip=True, max_rotate_deg=5.0,
                   scale=(0.95, 1.05), max_shift=0.04, brightness=0.05,
                   contrast=0.1)))


def test_pipeline_batches_carry_apex_index():
  # onset 0, offset 9, T=4: frames 0, 3, 6, 9.
  annotations = [(0, 6, 9), (0, -1, 9), (0, 2, 9), (2, 1, 9), (0, None, 9)]
  corpus = _corpus(annotations)
  want = [2, -1, 1, -1, -1]
  cfg = _input_cfg()
  batches = list(pipeline.eval_batches(corpus, corpus.clips, cfg, 4))
  assert [b["apex_index"].dtype for b in batches] == [np.int32] * 2
  got = np.concatenate([b["apex_index"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  assert got.tolist() == want + [-1] * 3  # padding rows: -1
  assert mask.tolist() == [1.0] * 5 + [0.0] * 3
  assert batches[0]["frames"].shape == (4, 4, 8, 8, 1)
  # Train batches carry it too, per clip (batch `index` says which clip).
  it = pipeline.train_dataset(corpus, corpus.clips, cfg, 2, seed=0)
  for _ in range(3):
    b = next(it)
    assert b["apex_index"].shape == (2,) and b["apex_index"].dtype == np.int32
    assert b["apex_index"].tolist() == [want[i] for i in b["index"]]
  # Interpolation: positions 0, 3, 6, 9 as well; same answer.
  cfg = _input_cfg("interpolate")
  got = pipeline.LoadClip(corpus, corpus.clips, cfg)(0)["apex_index"]
  assert got == 2 and got.dtype == np.int32


def test_stand_in_apex_is_unknown_to_the_pipeline():
  """`apex_annotated` False (a builder's middle-frame stand-in) -> apex_index -1.

  True, absent (records built before the field) and None (the field missing
  from a parsed record) keep the apex.
  """
  flags = [np.bool_(False), False, np.bool_(True), True, _ABSENT, None,
           np.asarray(False)]
  corpus = _corpus([(0, 6, 9)] * len(flags), apex_annotated=flags)
  cfg = _input_cfg()
  load = pipeline.LoadClip(corpus, corpus.clips, cfg)
  got = [int(load(i)["apex_index"]) for i in range(len(flags))]
  assert got == [-1, -1, 2, 2, 2, 2, -1]
  # Batches carry it the same way, train and eval.
  (b,) = list(pipeline.eval_batches(corpus, corpus.clips, cfg, len(flags)))
  assert b["apex_index"].tolist() == got
  it = pipeline.train_dataset(corpus, corpus.clips, cfg, 4, seed=0)
  for _ in range(2):
    b = next(it)
    assert b["apex_index"].tolist() == [got[i] for i in b["index"]]


def test_has_annotated_apex():
  base = {"onset": 2, "apex": 5, "offset": 9}
  assert sources.has_annotated_apex(base)
  assert sources.has_annotated_apex({**base, "apex_annotated": None})
  assert sources.has_annotated_apex({**base, "apex_annotated": np.bool_(True)})
  assert not sources.has_annotated_apex({**base, "apex_annotated": False})
  assert not sources.has_annotated_apex({**base, "apex": -1})
  assert not sources.has_annotated_apex({**base, "apex": 11})
  assert not sources.has_annotated_apex({"onset": 2, "offset": 9})


@pytest.mark.parametrize("start", [0, 3])
def test_process_shards_of_train_batches_make_the_global_batch(start):
  """Each process decodes only its rows; together they are the 1-process batch."""
  corpus = _corpus([(0, 3, 9)] * 10)
  cfg = _input_cfg()
  one = pipeline.train_dataset(corpus, corpus.clips, cfg, 4, seed=7,
                               start_step=start)
  parts = [pipeline.train_dataset(corpus, corpus.clips, cfg, 4, seed=7,
                                  start_step=start, shard_index=p,
                                  shard_count=2) for p in range(2)]
  for _ in range(4):
    want = next(one)
    got = [next(it) for it in parts]
    assert [g["index"].shape for g in got] == [(2,), (2,)]
    for k in want:
      np.testing.assert_array_equal(np.concatenate([g[k] for g in got]), want[k])
  with pytest.raises(ValueError, match="not divisible"):
    pipeline.train_dataset(corpus, corpus.clips, cfg, 3, seed=0, shard_count=2)


def test_targets_are_dynamic_images_of_the_augmented_frames():
  """With augmentation on, each batch target is its own input's dynamic image.

  The clips are left-right asymmetric and move over time, so a target made
  before a flip, rotation or shift would not match the frames the model sees.
  """
  from mer_jax.data import dynamic_image
  size, n = 16, 8
  yy, xx = np.mgrid[:size, :size]
  clips, records = [], []
  for k in range(6):
    frames = []
    for i in range(n):  # a blob that drifts right and brightens, off centre
      blob = np.exp(-((xx - 3 - 0.6 * i - k % 3) ** 2 + (yy - 5 - k % 2) ** 2) / 6.0)
      img = np.clip(40 + 8 * xx + 120 * blob * (1 + 0.1 * i), 0, 255)
      frames.append(record_schema.encode_png(np.repeat(img[..., None], 3, -1)
                                       .astype(np.uint8)))
    records.append({"frames": frames, "onset": np.int32(0),
                    "offset": np.int32(n - 1), "apex": np.int32(4)})
    clips.append(sources.Clip(0, k, f"d/s{k % 2}", k % 2, f"d/s{k % 2}/c{k}"))
  corpus = sources.Corpus(("d",), ("a", "b"), [records], clips, 0)
  cfg = _input_cfg()
  cfg.size, cfg.num_frames, cfg.targets = size, n, ("dynamic_image",)
  cfg.augment.max_shift = 0.1
  load = pipeline.LoadClip(corpus, corpus.clips, cfg)
  it = pipeline.train_dataset(corpus, corpus.clips, cfg, 6, seed=0)
  mismatched_before = 0
  for _ in range(2):
    b = next(it)
    seen = (b["frames"] * cfg.std + cfg.mean) * 255.0  # un-normalise
    for j in range(len(b["index"])):
      want = dynamic_image.dynamic_image(seen[j])
      # Float round trip: a truncation may land one uint8 step away.
      np.testing.assert_allclose(b["dynamic_image"][j], want, atol=1 / 255 + 1e-6)
      assert np.mean(np.abs(b["dynamic_image"][j] - want)) < 2e-3
      raw = dynamic_image.dynamic_image(load(int(b["index"][j]))["frames"])
      mismatched_before += np.abs(raw - b["dynamic_image"][j]).max() > 0.1
  assert mismatched_before > 0  # the un-augmented target would be wrong
  # Evaluation (no augmentation): the official uint8 target, bit for bit.
  (e,) = list(pipeline.eval_batches(corpus, corpus.clips, cfg, 6))
  for j in range(6):
    np.testing.assert_array_equal(
        e["dynamic_image"][j], dynamic_image.dynamic_image(load(j)["frames"]))

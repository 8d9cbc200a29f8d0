"""Temporal sampling, LOSO splitting, grey conversion, augmentation."""

import numpy as np
import pytest

from mer_jax.data import pipeline
from mer_jax.data import sampling
from mer_jax.data import sources


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
  with pytest.raises(ValueError, match="stride sampling needs"):
    sampling.sample_clip(_clip(40), 3, 6, 8, "stride")


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

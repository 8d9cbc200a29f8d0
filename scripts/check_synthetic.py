r"""Controls for `synthetic_me`: can one frame tell the class, or only motion?

Leave-one-subject-out over the corpus' subjects, accuracy pooled over folds
(5 classes: chance 20 %), on four inputs:

* `apex HOG`: HOG of the grey apex frame + logistic regression;
* `onset HOG`: HOG of the grey onset frame (neutral) + logistic regression;
* `|apex-onset| HOG`: HOG of the absolute grey change + logistic regression
  (the motion control: it should be well above chance);
* `apex CNN`: a small CNN trained on the apex frame alone (a model control);
* `|apex-onset| CNN`: the same CNN, same budget, on the absolute grey change
  (shows the CNN control can learn when the input carries the class).

A corpus that needs motion gives the single-frame controls (apex, onset, apex
CNN) near chance; the target for `synthetic_me` 2.0 is at most 35 %.

  python scripts/check_synthetic.py                       # the built synthetic_me/s64
  python scripts/check_synthetic.py --seed 1 --seed 2     # the same corpus drawn with seeds 1, 2
  python scripts/check_synthetic.py --json out.json       # also write the numbers

Needs scikit-image (the `test` extra) for HOG.

`--dataset` (default) reads a built corpus through `mer_jax.data.sources`
(building it if needed); `--seed N` renders the corpus a builder config
with `seed=N` would hold (`synth.render_clip`, byte-identical to a build),
and seeds the CNN with N. HOG: skimage, 9 orientations, 8 x 8 px cells, 2 x 2
blocks at 64 px. Logistic regression: full-batch gradient descent on
standardised features, L2 1e-2, fixed 300 steps. CNN: three 3x3 conv (16,
32, 32, stride 2) + flatten + dense, AdamW 1e-3, 300 steps of 32 with
random flips and +-2 px shifts, fixed schedule (no selection).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

NUM_CLASSES = 5
CONTROLS = ("apex HOG", "onset HOG", "|apex-onset| HOG", "apex CNN",
            "|apex-onset| CNN")
SINGLE_FRAME = ("apex HOG", "onset HOG", "apex CNN")
TARGET_SINGLE_FRAME = 0.35


def _grey(frame: np.ndarray) -> np.ndarray:
  return frame.astype(np.float32).mean(-1) / 255.0


def hog(img: np.ndarray) -> np.ndarray:
  """HOG of a grey `[H, W]` float image (cells of H/8 px), `[D]` float32."""
  try:
    from skimage.feature import hog as sk_hog  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit("check_synthetic.py needs scikit-image for HOG: "
                     "pip install -e '.[test]' (or pip install scikit-image)") from e
  cell = max(2, img.shape[0] // 8)
  return sk_hog(img, orientations=9, pixels_per_cell=(cell, cell),
                cells_per_block=(2, 2), feature_vector=True).astype(np.float32)


def clip_frames(frames: np.ndarray, onset: int, apex: int) -> dict[str, np.ndarray]:
  """The grey onset and apex frames of one clip, `[H, W]` float32 in [0, 1]."""
  return {"onset": _grey(frames[onset]), "apex": _grey(frames[apex])}


def frames_from_render(seed: int, size: int, num_subjects: int | None = None,
                       clips_per_class: int = 6):
  """(onset, apex) grey frames, labels and subjects of the corpus drawn with `seed`."""
  from tfds_builders.synthetic_me import synth  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  onset, apex, labels, subjects = [], [], [], []
  n = num_subjects or len(synth.SUBJECTS)
  plans = [c for s in range(n) for c in synth.plan_subject(seed, s, clips_per_class)]
  for clip in tqdm(plans, desc="rendering", leave=False, mininterval=5):
    f = clip_frames(synth.render_clip(seed, clip, size), clip.onset, clip.apex)
    onset.append(f["onset"])
    apex.append(f["apex"])
    labels.append(clip.label)
    subjects.append(clip.subject_index)
  return np.stack(onset), np.stack(apex), np.array(labels), np.array(subjects)


def frames_from_dataset(name: str, data_dir: str | None):
  """(onset, apex) grey frames, labels and subjects of a built corpus."""
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_corpus([name], data_dir, show_progress=False)
  subject_ids = {s: i for i, s in enumerate(corpus.subjects)}
  onset, apex, labels, subjects = [], [], [], []
  for c in corpus.clips:
    rec = corpus.record(c)
    on, ap = int(rec["onset"]), int(rec["apex"])
    onset.append(_grey(sources.decode_frame(rec["frames"][on])))
    apex.append(_grey(sources.decode_frame(rec["frames"][ap])))
    labels.append(c.label)
    subjects.append(subject_ids[c.subject])
  return np.stack(onset), np.stack(apex), np.array(labels), np.array(subjects)


def standardise(train: np.ndarray, test: np.ndarray):
  """Both `[N, D]` with the training rows' per-feature mean and std."""
  mu, sd = train.mean(0), train.std(0) + 1e-6
  return (train - mu) / sd, (test - mu) / sd


def softmax_xent_grad(logits: np.ndarray, onehot: np.ndarray) -> np.ndarray:
  """Gradient of the mean softmax cross-entropy with respect to `logits` `[N, K]`."""
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  return (p - onehot) / len(logits)


def logistic(xtr, ytr, xte, num_classes=NUM_CLASSES, l2=1e-2, steps=300, lr=0.5):
  """Multinomial logistic regression, full-batch gradient descent.

  Run in the span of the training rows (w = X^T a, exact since w starts at
  0), so a step costs `[N, N]` work instead of `[N, D]`: HOG has D >> N.
  """
  xtr, xte = standardise(xtr.astype(np.float64), xte.astype(np.float64))
  gram, cross = xtr @ xtr.T, xte @ xtr.T
  a = np.zeros((len(xtr), num_classes))
  b = np.zeros(num_classes)
  onehot = np.eye(num_classes)[ytr]
  for _ in range(steps):
    g = softmax_xent_grad(gram @ a + b, onehot)
    a = a * (1.0 - lr * l2) - lr * g  # w -= lr * (X^T g + l2 * w)
    b -= lr * g.sum(0)
  return (cross @ a + b).argmax(1)


def loso(x, y, subjects, fit_predict) -> tuple[float, list[float]]:
  """Pooled LOSO accuracy and the per-fold accuracies."""
  correct, per_fold = 0, []
  for s in np.unique(subjects):
    test = subjects == s
    pred = fit_predict(x[~test], y[~test], x[test])
    correct += int((pred == y[test]).sum())
    per_fold.append(float((pred == y[test]).mean()))
  return correct / len(y), per_fold


def cnn_fit_predict(seed: int, steps: int = 300, batch: int = 32):
  """A LOSO `fit_predict` for grey `[N, H, W]` frames: a small CNN, fixed schedule."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top

  class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x):  # [B, H, W, 1] -> [B, NUM_CLASSES]
      for width in (16, 32, 32):
        x = nn.relu(nn.Conv(width, (3, 3), strides=2)(x))
      # Flattened, not pooled: where a brow sits relative to an eye is the
      # one-frame cue this control looks for.
      return nn.Dense(NUM_CLASSES)(x.reshape(x.shape[0], -1))

  model = SmallCNN()
  tx = optax.adamw(1e-3, weight_decay=1e-4)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  predict = jax.jit(lambda p, x: model.apply({"params": p}, x).argmax(-1))

  def fit_predict(xtr, ytr, xte, train_accuracy=None):
    mu, sd = xtr.mean(), xtr.std() + 1e-6
    norm = lambda a: ((a - mu) / sd)[..., None].astype(np.float32)
    xtr_n, xte_n = norm(xtr), norm(xte)
    rng = np.random.default_rng(seed)
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1,) + xtr_n.shape[1:]))["params"]
    opt_state = tx.init(params)
    for _ in range(steps):
      idx = rng.integers(0, len(xtr_n), batch)
      xb = xtr_n[idx]
      flip = rng.random(batch) < 0.5
      xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
      dy, dx = rng.integers(-2, 3, 2)
      xb = np.roll(xb, (int(dy), int(dx)), axis=(1, 2))
      params, opt_state = step(params, opt_state, xb, ytr[idx])
    if train_accuracy is not None:  # how well it fits its own training set
      train_accuracy.append(float((np.asarray(predict(params, xtr_n)) == ytr).mean()))
    return np.asarray(predict(params, xte_n))

  return fit_predict


def run_controls(onset: np.ndarray, apex: np.ndarray, labels: np.ndarray,
                 subjects: np.ndarray, seed: int = 0, cnn_steps: int = 300,
                 controls=CONTROLS) -> dict[str, dict]:
  """Every control's pooled LOSO accuracy and per-fold accuracies."""
  out = {}
  feats = {}
  if "apex HOG" in controls:
    feats["apex HOG"] = np.stack([hog(a) for a in apex])
  if "onset HOG" in controls:
    feats["onset HOG"] = np.stack([hog(o) for o in onset])
  if "|apex-onset| HOG" in controls:
    feats["|apex-onset| HOG"] = np.stack([hog(np.abs(a - o))
                                          for a, o in zip(apex, onset)])
  for name, x in feats.items():
    acc, folds = loso(x, labels, subjects, logistic)
    out[name] = {"accuracy": acc, "folds": folds}
  for name, x in (("apex CNN", apex), ("|apex-onset| CNN", np.abs(apex - onset))):
    if name in controls:
      fit = cnn_fit_predict(seed, cnn_steps)
      train_acc = []
      acc, folds = loso(x, labels, subjects,
                        lambda a, b, c: fit(a, b, c, train_acc))
      out[name] = {"accuracy": acc, "folds": folds,
                   "train_accuracy": float(np.mean(train_acc))}
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--dataset", default="synthetic_me/s64",
                  help="a built corpus (read when no --seed is given)")
  ap.add_argument("--data_dir", default=None)
  ap.add_argument("--seed", type=int, action="append", default=None,
                  help="render the corpus drawn with this seed (repeatable)")
  ap.add_argument("--size", type=int, default=64, help="with --seed")
  ap.add_argument("--cnn_steps", type=int, default=300)
  ap.add_argument("--json", default=None, help="write the results here")
  args = ap.parse_args()
  runs = [(f"seed {s}", s) for s in args.seed] if args.seed else [(args.dataset, 0)]
  results = {}
  for name, seed in runs:
    t0 = time.time()
    if args.seed:
      data = frames_from_render(seed, args.size)
    else:
      data = frames_from_dataset(args.dataset, args.data_dir)
    t_load = time.time() - t0
    res = run_controls(*data, seed=seed, cnn_steps=args.cnn_steps)
    results[name] = {"controls": res, "num_clips": int(len(data[2])),
                     "num_subjects": int(len(np.unique(data[3]))),
                     "load_seconds": t_load,
                     "seconds": time.time() - t0}
    print(f"{name}: {len(data[2])} clips, {len(np.unique(data[3]))} subjects "
          f"(loaded in {t_load:.0f} s, all in {time.time() - t0:.0f} s); "
          f"chance {100 / NUM_CLASSES:.0f} %")
    for control, r in res.items():
      flag = ""
      if control in SINGLE_FRAME:
        flag = "  ok (<= 35 %)" if r["accuracy"] <= TARGET_SINGLE_FRAME else "  ABOVE TARGET"
      fit = (f" (train {100 * r['train_accuracy']:.0f} %)"
             if "train_accuracy" in r else "")
      print(f"  {control:18s} LOSO acc {100 * r['accuracy']:5.1f} %{fit}  folds "
            + " ".join(f"{100 * f:.0f}" for f in r["folds"]) + flag)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.run_main(main))

#!/usr/bin/env python
"""Benchmarks the LOSO machinery: input pipeline, train step, fold-parallel steps.

  python scripts/bench_loso.py --config configs/baseline_synthetic.py --out bench_loso.json

Sections (JSON + a printed table):
  input_pipeline: training clips/s the grain pipeline delivers (decode,
    temporal sampling, augmentation, batching) with `input.workers` workers;
  train_step: clips/s one jitted train step consumes;
  fold_parallel: K folds in one vmapped program vs K sequential steps
    (K = 1, 2, 4, 8), clips/s over all folds and the speed-up;
  peak_rss_mb: the process' peak resident memory.
Numbers depend on the machine and its load: the load average is recorded.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402


def _median_time(fn, steps: int, warmup: int) -> float:
  times = []
  for i in range(warmup + steps):
    t = time.perf_counter()
    fn()
    if i >= warmup:
      times.append(time.perf_counter() - t)
  return statistics.median(times)


def main(argv) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from mer_jax import models, train  # pylint: disable=g-import-not-at-top
  from mer_jax.data import pipeline, sources  # pylint: disable=g-import-not-at-top

  del argv
  args = FLAGS
  config = FLAGS.config
  b = config.input.batch_size

  corpus = sources.load_corpus(list(config.input.datasets),
                               config.input.data_dir or None, show_progress=False)
  it = pipeline.train_dataset(corpus, corpus.clips, config.input, b, seed=0)
  pipe_s = _median_time(lambda: next(it), args.steps, 2)

  model = models.get_model(config.model_name, len(corpus.class_names),
                           **config.model.to_dict())
  tx = train.make_optimizer(config)
  step = train.make_train_step(model, tx, None, {})
  batch = {k: jnp.asarray(v) for k, v in next(it).items()}
  rng = jax.random.PRNGKey(0)

  def states(k):
    return [train.create_train_state(model, tx, config, jax.random.PRNGKey(i))
            for i in range(k)]

  single = jax.jit(step)
  state = states(1)[0]
  box = [state]

  def run_single():
    box[0], m = single(box[0], batch, rng)
    jax.block_until_ready(m)

  step_s = _median_time(run_single, args.steps, 2)

  vstep = jax.jit(jax.vmap(step))
  fold_rows = []
  for k in [int(x) for x in args.folds.split(",")]:
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states(k))
    sbatch = jax.tree.map(lambda x: jnp.stack([x] * k), batch)
    rngs = jnp.stack([rng] * k)
    sbox = [stacked]

    def run_k():
      sbox[0], m = vstep(sbox[0], sbatch, rngs)
      jax.block_until_ready(m)

    t = _median_time(run_k, args.steps, 2)
    fold_rows.append({"k": k, "step_s": round(t, 4),
                      "clips_per_s": round(k * b / t, 1),
                      "sequential_clips_per_s": round(b / step_s, 1),
                      "speedup": round(k * step_s / t, 2)})

  result = {
      "config": FLAGS["config"].config_filename,
      "model": config.model_name, "batch": b,
      "input": {"frames": config.input.num_frames, "size": config.input.size,
                "channels": config.input.channels},
      "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
      "input_pipeline": {"batch_s": round(pipe_s, 4),
                         "clips_per_s": round(b / pipe_s, 1),
                         "workers": config.input.workers},
      "train_step": {"step_s": round(step_s, 4), "clips_per_s": round(b / step_s, 1)},
      "fold_parallel": fold_rows,
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "loadavg": [round(x, 2) for x in os.getloadavg()],
  }
  print(f"{config.model_name}, batch {b}, {config.input.num_frames}x"
        f"{config.input.size}x{config.input.size}x{config.input.channels}, "
        f"{len(jax.devices())} device(s), load {result['loadavg']}")
  print(f"{'what':<28}{'s/step':>10}{'clips/s':>10}{'speed-up':>10}")
  print(f"{'input pipeline':<28}{pipe_s:>10.4f}{b / pipe_s:>10.1f}{'':>10}")
  print(f"{'train step (1 fold)':<28}{step_s:>10.4f}{b / step_s:>10.1f}{'':>10}")
  for r in fold_rows:
    print(f"{'fold-parallel K=' + str(r['k']):<28}{r['step_s']:>10.4f}"
          f"{r['clips_per_s']:>10.1f}{r['speedup']:>9.2f}x")
  print(f"peak RSS {result['peak_rss_mb']} MB")
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  return 0


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/baseline_synthetic.py",
                                "Config whose model and input are measured.")
flags.DEFINE_string("out", "bench_loso.json", "JSON output path.")
flags.DEFINE_integer("steps", 10, "Timed steps per measurement (median).")
flags.DEFINE_string("folds", "1,2,4,8", "K values for fold-parallel steps.")

if __name__ == "__main__":
  app.run(main)

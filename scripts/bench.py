#!/usr/bin/env python
r"""Benchmarks: the FDP train step against PyTorch, fold-parallel LOSO, input.

  python scripts/bench.py --json bench.json
  python scripts/bench.py --sections fdp_train_step --fdp_width small   # quick

Sections (`--sections`, comma-separated; all by default), printed as a table
and written with `--json OUT` as
`{"fdp_train_step": {...}, "fold_parallel": [...], "input_pipeline": {...},
  "memory": {...}, "machine": {...}}`:

  fdp_train_step: the jitted `fdp_official` training step at the official
    shapes (batch 8, 8 grey 64x64 frames, CE + 100 x DI MSE, Adam 1e-4 with
    coupled L2 1e-3, train mode) against the same step of our PyTorch
    transcription of the official model (`scripts/fdp_torch.py`, needs the
    `bench` extra: torch) on the same machine with the same thread count;
    clips/s and the ratio. Also the step's FLOPs (XLA cost analysis), the
    FLOP rate reached and this machine's fp32 matmul rate, i.e. how close
    the step is to what the hardware allows. Without torch the torch entries
    are null and the reason is printed. `--fdp_bfloat16` (default on) also
    times both in bfloat16: JAX with `matmul_dtype="bfloat16"` (bfloat16
    operands, float32 accumulation), PyTorch under `torch.autocast`; these
    rows are in `fdp_train_step["bfloat16"]`.
  fold_parallel: K = 1, 2, 4, 8 LOSO folds trained in one vmapped program
    (`protocol.parallel_folds`) against K sequential steps, for `--config`.
  input_pipeline: clips/s the grain training pipeline delivers for
    `--config` (decode, temporal sampling, augmentation, batching) against
    the clips/s one train step consumes.
  checkpoint_cost (only when named): trains the first LOSO fold of
    `--config` through `loso.train_and_evaluate` and reports the wall time
    spent blocked in orbax saves (`CheckpointManager.save` and
    `wait_until_finished`) against the fold's wall time, for the config's
    `checkpoint_every`.
  memory: peak resident memory of this process, and the devices' peak
    memory when the backend reports it (GPU/TPU).

Numbers depend on the machine and its load: the load average is recorded
before and after each section. Compare only numbers from one run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

SECTIONS = ("fdp_train_step", "fold_parallel", "input_pipeline")
# Not in the default run (it trains a whole fold): --sections checkpoint_cost.
EXTRA_SECTIONS = ("checkpoint_cost",)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", "configs/fdp_synthetic.py",
    "Config whose model and input the fold_parallel / input_pipeline "
    "sections measure.")
flags.DEFINE_string("json", None, "Write the results as JSON here.")
flags.DEFINE_list("sections", list(SECTIONS), "Sections to run.")
flags.DEFINE_integer("steps", 5, "Timed steps per measurement (median).")
flags.DEFINE_integer("warmup", 2, "Untimed steps before each measurement.")
flags.DEFINE_integer("fdp_batch", 8, "Batch of the FDP train step.")
flags.DEFINE_enum("fdp_width", "full", ["full", "small"],
                  "full: the official model; small: the reduced widths of "
                  "the reference file (a quick smoke run).")
flags.DEFINE_bool("fdp_bfloat16", True,
                  "Also time the FDP step with bfloat16 products (JAX "
                  "matmul_dtype='bfloat16', PyTorch autocast).")
flags.DEFINE_integer("threads", None,
                     "PyTorch intra-op threads (default: all cores, as XLA "
                     "uses on the CPU).")
flags.DEFINE_list("folds", ["1", "2", "4", "8"], "K values for fold_parallel.")


def _loadavg() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def _time(fn: Callable[[], Any], steps: int, warmup: int) -> dict[str, float]:
  """Median / min / max wall seconds and median CPU/wall of `fn()`."""
  wall, cpu = [], []
  for i in range(warmup + steps):
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    w, c = time.perf_counter() - w0, time.process_time() - c0
    if i >= warmup:
      wall.append(w)
      cpu.append(c / w)
  return {"median_s": statistics.median(wall), "min_s": min(wall),
          "max_s": max(wall), "cpu_over_wall": statistics.median(cpu)}


def matmul_gflops(n: int = 2048) -> float:
  """This machine's fp32 [n, n] @ [n, n] rate under XLA (best of 5)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b).lower(x, x).compile()
  jax.block_until_ready(f(x, x))
  best = min(_once(lambda: jax.block_until_ready(f(x, x))) for _ in range(5))
  return 2 * n ** 3 / best / 1e9


def _once(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


# ----------------------------------------------------------------------------
# FDP train step: JAX vs PyTorch.


def _jax_fdp_step(model_kwargs: dict[str, Any], batch: int
                  ) -> tuple[Callable[[], None], dict[str, Any]]:
  """Compiles the official FDP train step; `(run, info)`, `run()` does one step."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top
  from mer_jax.models import fdp_official
  from mer_jax.models.fdp_official import reference as fdp_reference
  # pylint: enable=g-import-not-at-top

  model = fdp_official.Model(**model_kwargs)
  tx = fdp_reference.official_optimizer()
  rng = np.random.default_rng(0)
  frames = jnp.asarray(rng.standard_normal((batch, 8, 64, 64, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 5, (batch,)), jnp.int32)
  di = jnp.asarray(rng.integers(0, 256, (batch, 64, 64)) / 255.0, jnp.float32)

  t0 = time.perf_counter()
  variables = jax.jit(lambda k: model.init(k, frames[:1], train=False))(
      jax.random.key(0))
  box = [variables["params"], variables["batch_stats"],
         tx.init(variables["params"])]
  n_params = sum(x.size for x in jax.tree.leaves(box[0]))
  step = jax.jit(fdp_reference.make_train_step(model, tx, return_grads=False),
                 donate_argnums=(0, 1, 2))
  lowered = step.lower(*box, frames, labels, di, jax.random.key(1))
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  flops = float((lowered.cost_analysis() or {}).get("flops", 0.0))
  key = [jax.random.key(1)]

  def run():
    key[0], k = jax.random.split(key[0])
    *box[:], out = compiled(*box, frames, labels, di, k)
    jax.block_until_ready(out["losses"]["final"])

  return run, {"compile_s": compile_s, "flops": flops, "n_params": int(n_params)}


def _interleave(runs: dict[str, Callable[[], Any]], steps: int, warmup: int
                ) -> dict[str, list[float]]:
  """Wall seconds of each run, taking turns: a, b, c, a, b, c, ...

  On a shared machine the load drifts over a minute; taking turns exposes
  every route to the same drift, so per-round ratios are fair.
  """
  times: dict[str, list[float]] = {k: [] for k in runs}
  for i in range(warmup + steps):
    for k, fn in runs.items():
      t = _once(fn)
      if i >= warmup:
        times[k].append(t)
  return times


def _ratio(num: list[float], den: list[float]) -> float:
  """Median over rounds of num / den (same-round pairs)."""
  return round(statistics.median(n / d for n, d in zip(num, den)), 2)


def _stats(t: list[float]) -> dict[str, Any]:
  return {"step_s": round(statistics.median(t), 3),
          "step_s_range": [round(min(t), 3), round(max(t), 3)]}


def bench_fdp_train_step(batch: int, width: str, steps: int, warmup: int,
                         threads: int, bfloat16: bool = True
                         ) -> dict[str, Any]:
  """Times the official FDP train step in JAX and (if installed) PyTorch.

  The routes take turns (JAX float32, PyTorch float32, JAX bfloat16,
  PyTorch bfloat16, JAX float32, ...), and each speed-up is the median over
  rounds of the same-round ratio: PyTorch's step time swings most on a
  shared machine, so timing one side after the other is not fair.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from mer_jax.models import fdp_official  # pylint: disable=g-import-not-at-top

  cfg = dict(fdp_official.FULL_CONFIG if width == "full"
             else fdp_official.SMALL_CONFIG)
  backend = jax.default_backend()
  # On a CPU only dots gain from bfloat16 (XLA:CPU upcasts convolutions), so
  # convs on maps up to 32x32 go through im2col; accelerators take bfloat16
  # convs natively.
  routes = {"float32": {"matmul_dtype": "float32", "im2col_max_pixels": 4}}
  if bfloat16:
    routes["bfloat16"] = {"matmul_dtype": "bfloat16",
                          "im2col_max_pixels": 1024 if backend == "cpu" else 0}
  auto = fdp_official.resolve_kwargs(
      {"matmul_dtype": "auto", "im2col_max_pixels": -1}, backend)
  runs, infos = {}, {}
  for name, kw in routes.items():
    runs[f"jax_{name}"], infos[name] = _jax_fdp_step(dict(cfg, **kw), batch)
  torch_skipped, torch_version = None, None
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import fdp_torch  # pylint: disable=g-import-not-at-top
    torch_version = torch.__version__
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    for name in routes:
      runs[f"torch_{name}"] = fdp_torch.make_step(
          batch, model_kwargs=cfg, bfloat16=name == "bfloat16")[0]
  except ImportError as e:
    torch_skipped = (
        f"PyTorch is not installed ({e}); install the `bench` extra "
        "(pip install -e '.[bench]') to time the PyTorch step side by side.")
    print(torch_skipped)
  # Interleave in the order jax_f32, torch_f32, jax_bf16, torch_bf16.
  order = [k for n in routes for k in (f"jax_{n}", f"torch_{n}") if k in runs]
  times = _interleave({k: runs[k] for k in order}, steps, warmup)
  if torch_version is not None:
    torch.set_num_threads(prev_threads)
  flops = infos["float32"]["flops"]
  peak = matmul_gflops()
  jt = times["jax_float32"]
  tt = times.get("torch_float32")
  result: dict[str, Any] = {
      "model": f"fdp_official ({width})", "n_params": infos["float32"]["n_params"],
      "batch": batch, "input": [8, 64, 64, 1], "interleaved_rounds": steps,
      "jax_model_kwargs": routes["float32"],
      "jax_step_s": _stats(jt)["step_s"], "jax_step_s_range": _stats(jt)["step_s_range"],
      "jax_clips_per_s": round(batch / statistics.median(jt), 3),
      "jax_compile_s": round(infos["float32"]["compile_s"], 1),
      "step_gflop": round(flops / 1e9, 1),
      "jax_gflops": round(flops / 1e9 / statistics.median(jt), 1),
      "fp32_matmul_gflops": round(peak, 1),
      "torch_step_s": None, "torch_clips_per_s": None, "speedup": None,
      "torch_threads": threads, "torch": torch_version,
      "torch_skipped": torch_skipped, "bfloat16": None,
      # What `matmul_dtype="auto"`, `im2col_max_pixels=-1` pick here.
      "auto_model_kwargs": auto,
  }
  if tt:
    result.update({
        "torch_step_s": _stats(tt)["step_s"],
        "torch_step_s_range": _stats(tt)["step_s_range"],
        "torch_clips_per_s": round(batch / statistics.median(tt), 3),
        "torch_gflops": round(flops / 1e9 / statistics.median(tt), 1),
        "speedup": _ratio(tt, jt)})
  if bfloat16:
    bt = times["jax_bfloat16"]
    b16 = {"jax_model_kwargs": routes["bfloat16"], **{
               "jax_" + k: v for k, v in _stats(bt).items()},
           "jax_clips_per_s": round(batch / statistics.median(bt), 3),
           "jax_compile_s": round(infos["bfloat16"]["compile_s"], 1),
           "speedup_vs_jax_fp32": _ratio(jt, bt),
           "torch_step_s": None, "torch_clips_per_s": None,
           "speedup_vs_torch_fp32": None, "speedup_vs_torch_bf16": None}
    tb = times.get("torch_bfloat16")
    if tt and tb:
      b16.update({"torch_" + k: v for k, v in _stats(tb).items()})
      b16.update({"torch_clips_per_s": round(batch / statistics.median(tb), 3),
                  "speedup_vs_torch_fp32": _ratio(tt, bt),
                  "speedup_vs_torch_bf16": _ratio(tb, bt)})
    result["bfloat16"] = b16
    # The same-round ratio, as every speed-up here.
    result["fastest_route"] = ("bfloat16" if b16["speedup_vs_jax_fp32"] > 1
                               else "float32")
  return result


# ----------------------------------------------------------------------------
# LOSO machinery: fold-parallel steps and the input pipeline.


def _loso_setup(config):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from mer_jax import models  # pylint: disable=g-import-not-at-top
  from mer_jax.training import state as state_lib, steps as steps_lib  # pylint: disable=g-import-not-at-top
  from mer_jax.data import pipeline, sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_corpus(list(config.input.datasets),
                               config.input.data_dir or None,
                               show_progress=False)
  it = pipeline.train_dataset(corpus, corpus.clips, config.input,
                              config.input.batch_size, seed=0)
  model = models.get_model(config.model_name, len(corpus.class_names),
                           **config.model.to_dict())
  tx = state_lib.make_optimizer(config)
  aux = getattr(models.get_module(config.model_name), "aux_losses", None)
  step = steps_lib.make_train_step(model, tx, aux, config.aux_loss.to_dict())
  batch = {k: jnp.asarray(v) for k, v in next(it).items()}

  def states(k):
    return [state_lib.create_train_state(model, tx, config, jax.random.key(i))
            for i in range(k)]
  return it, step, batch, states


def bench_input_pipeline(config, it, step_clips_per_s: float, steps: int,
                         warmup: int) -> dict[str, Any]:
  b = config.input.batch_size
  t = _time(lambda: next(it), max(steps, 5), warmup)
  rate = b / t["median_s"]
  return {"batch": b, "workers": config.input.workers,
          "batch_s": round(t["median_s"], 4), "clips_per_s": round(rate, 1),
          "train_step_clips_per_s": round(step_clips_per_s, 1),
          "headroom": round(rate / step_clips_per_s, 2)}


def bench_fold_parallel(step, batch, states, ks, steps: int, warmup: int
                        ) -> tuple[list[dict[str, Any]], float]:
  """K folds in one vmapped step vs K sequential single-fold steps."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  b = int(batch["frames"].shape[0])
  rng = jax.random.key(0)
  single = jax.jit(step, donate_argnums=0)
  box = [states(1)[0]]

  def run_single():
    box[0], m = single(box[0], batch, rng)
    jax.block_until_ready(m)

  seq = _time(run_single, steps, warmup)["median_s"]
  vstep = jax.jit(jax.vmap(step), donate_argnums=0)
  rows = []
  for k in ks:
    sbox = [jax.tree.map(lambda *xs: jnp.stack(xs), *states(k))]
    sbatch = jax.tree.map(lambda x: jnp.stack([x] * k), batch)
    rngs = jax.random.split(rng, k)

    def run_k():
      sbox[0], m = vstep(sbox[0], sbatch, rngs)
      jax.block_until_ready(m)

    t = _time(run_k, steps, warmup)["median_s"]
    rows.append({"k": k, "step_s": round(t, 4),
                 "clips_per_s": round(k * b / t, 1),
                 "sequential_clips_per_s": round(b / seq, 1),
                 "speedup": round(k * seq / t, 2)})
  return rows, b / seq


def bench_checkpoint_cost(config) -> dict[str, Any]:
  """Share of one fold's wall time spent blocked in checkpoint saves."""
  import tempfile  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  if not config.protocol.folds:
    corpus = sources.load_corpus(list(config.input.datasets),
                                 config.input.data_dir or None,
                                 show_progress=False)
    config.protocol.folds = (corpus.subjects[0],)
  spent, saves = [0.0], [0]
  originals = {n: getattr(ocp.CheckpointManager, n)
               for n in ("save", "wait_until_finished")}

  def timed(name):
    def fn(self, *a, **k):
      t = time.perf_counter()
      try:
        return originals[name](self, *a, **k)
      finally:
        spent[0] += time.perf_counter() - t
        saves[0] += name == "save"
    return fn

  for n in originals:
    setattr(ocp.CheckpointManager, n, timed(n))
  try:
    with tempfile.TemporaryDirectory() as workdir:
      t0 = time.perf_counter()
      loso.train_and_evaluate(config, workdir)
      wall = time.perf_counter() - t0
  finally:
    for n, f in originals.items():
      setattr(ocp.CheckpointManager, n, f)
  return {"fold": list(config.protocol.folds), "num_steps": config.num_steps,
          "checkpoint_every": config.checkpoint_every, "saves": saves[0],
          "save_blocked_s": round(spent[0], 2), "wall_s": round(wall, 1),
          "share": round(spent[0] / wall, 4),
          "note": "time the trainer waits on orbax; the async write's own "
                  "CPU time on the other thread is not counted"}


def memory_stats() -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  out: dict[str, Any] = {"peak_rss_mb": round(
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
  devices = []
  for d in jax.local_devices():
    stats = d.memory_stats() if hasattr(d, "memory_stats") else None
    if stats:
      devices.append({"device": str(d), "peak_mb": round(
          stats.get("peak_bytes_in_use", 0) / 2 ** 20, 1)})
  out["device_peak"] = devices or None
  return out


# ----------------------------------------------------------------------------


def print_table(r: dict[str, Any]) -> None:
  m = r["machine"]
  flags = [k for k, v in m["cpu_flags"].items() if v]
  print(f"\n{m['cpu_model']} ({m['cpu_kind']}: {' '.join(flags)})")
  print(f"{m['processor']} x{m['cpu_count']}, {m['backend']} "
        f"{m['devices']}, jax {m['jax']}, load {m['loadavg_start']} -> "
        f"{m['loadavg_end']}")
  f = r.get("fdp_train_step")
  if f:
    print(f"\nFDP train step, {f['model']}, batch {f['batch']}, "
          f"{f['step_gflop']} GFLOP/step")
    print(f"{'':<10}{'s/step':>9}{'clips/s':>9}{'GFLOP/s':>9}")
    print(f"{'jax':<10}{f['jax_step_s']:>9.3f}{f['jax_clips_per_s']:>9.2f}"
          f"{f['jax_gflops']:>9.1f}")
    if f["torch_step_s"] is not None:
      print(f"{'torch':<10}{f['torch_step_s']:>9.3f}"
            f"{f['torch_clips_per_s']:>9.2f}{f['torch_gflops']:>9.1f}"
            f"   ({f['torch_threads']} threads, torch {f['torch']})")
      print(f"speed-up jax/torch: {f['speedup']:.2f}x (median of same-round "
            f"ratios over {f['interleaved_rounds']} interleaved rounds)")
    else:
      print(f"torch: skipped ({f['torch_skipped']})")
    b = f.get("bfloat16")
    if b:
      print(f"{'jax bf16':<10}{b['jax_step_s']:>9.3f}{b['jax_clips_per_s']:>9.2f}"
            f"{'':>9}   ({b['jax_model_kwargs']})")
      if b["torch_step_s"] is not None:
        print(f"{'torch bf16':<10}{b['torch_step_s']:>9.3f}"
              f"{b['torch_clips_per_s']:>9.2f}{'':>9}   (torch.autocast)")
        print(f"speed-up jax bf16 / jax fp32: {b['speedup_vs_jax_fp32']:.2f}x; "
              f"jax bf16 / torch fp32: "
              f"{b['speedup_vs_torch_fp32']:.2f}x; "
              f"/ torch bf16: {b['speedup_vs_torch_bf16']:.2f}x")
    if f.get("fastest_route"):
      print(f"fastest route here: {f['fastest_route']}; matmul_dtype='auto' "
            f"picks {f['auto_model_kwargs']}")
    print(f"fp32 matmul on this machine: {f['fp32_matmul_gflops']} GFLOP/s, "
          f"so a step cannot take less than "
          f"{f['step_gflop'] / f['fp32_matmul_gflops']:.2f} s here")
  if r.get("fold_parallel"):
    print(f"\nfold-parallel LOSO, {r['loso_config']}")
    print(f"{'K':>3}{'s/step':>10}{'clips/s':>10}{'sequential':>12}{'speed-up':>10}")
    for row in r["fold_parallel"]:
      print(f"{row['k']:>3}{row['step_s']:>10.4f}{row['clips_per_s']:>10.1f}"
            f"{row['sequential_clips_per_s']:>12.1f}{row['speedup']:>9.2f}x")
  p = r.get("input_pipeline")
  if p:
    print(f"\ninput pipeline, {r['loso_config']}: {p['clips_per_s']} clips/s "
          f"({p['workers']} workers) vs train step {p['train_step_clips_per_s']}"
          f" clips/s: {p['headroom']}x headroom")
  mem = r["memory"]
  print(f"\npeak RSS {mem['peak_rss_mb']} MB; device peak {mem['device_peak']}")


def main(argv) -> int:
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  unknown = sorted(set(FLAGS.sections) - set(SECTIONS) - set(EXTRA_SECTIONS))
  if unknown:
    print(f"Unknown --sections {unknown}; choose from {list(SECTIONS)}",
          file=sys.stderr)
    return 2
  threads = FLAGS.threads or os.cpu_count() or 1
  from mer_jax import hardware  # pylint: disable=g-import-not-at-top
  cpu = hardware.cpu_info()
  result: dict[str, Any] = {"machine": {
      "processor": platform.processor() or platform.machine(),
      "cpu_model": cpu["model"], "cpu_flags": cpu["flags"],
      "cpu_kind": ("avx512" if cpu["flags"]["avx512f"] else "no-avx512"),
      "cpu_count": os.cpu_count(), "backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
      "loadavg_start": _loadavg()}}
  if "fdp_train_step" in FLAGS.sections:
    result["fdp_train_step"] = bench_fdp_train_step(
        FLAGS.fdp_batch, FLAGS.fdp_width, FLAGS.steps, FLAGS.warmup, threads,
        FLAGS.fdp_bfloat16)
  loso = [s for s in ("fold_parallel", "input_pipeline") if s in FLAGS.sections]
  if loso:
    config = FLAGS.config
    result["loso_config"] = (f"{FLAGS['config'].config_filename}: "
                             f"{config.model_name}, batch "
                             f"{config.input.batch_size}, "
                             f"{config.input.num_frames}x{config.input.size}^2"
                             f"x{config.input.channels}")
    it, step, batch, states = _loso_setup(config)
    rows, step_rate = bench_fold_parallel(
        step, batch, states, [int(k) for k in FLAGS.folds]
        if "fold_parallel" in loso else [], FLAGS.steps, FLAGS.warmup)
    if "fold_parallel" in loso:
      result["fold_parallel"] = rows
    if "input_pipeline" in loso:
      result["input_pipeline"] = bench_input_pipeline(
          config, it, step_rate, FLAGS.steps, FLAGS.warmup)
  if "checkpoint_cost" in FLAGS.sections:
    result["checkpoint_cost"] = bench_checkpoint_cost(FLAGS.config)
    c = result["checkpoint_cost"]
    print(f"checkpoint cost: {c['saves']} saves (every {c['checkpoint_every']} of "
          f"{c['num_steps']} steps) blocked {c['save_blocked_s']} s of "
          f"{c['wall_s']} s = {100 * c['share']:.1f} %")
  result["memory"] = memory_stats()
  result["machine"]["loadavg_end"] = _loadavg()
  print_table(result)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(result, f, indent=1)
    print(f"wrote {FLAGS.json}")
  return 0


if __name__ == "__main__":
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  app.run(lambda argv: cli.run_main(main, argv))

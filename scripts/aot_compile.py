#!/usr/bin/env python
r"""Compiles a config's train and eval steps for a TPU topology, without a TPU.

  pip install -e '.[tpu-aot]'      # jax[tpu]: libtpu holds the TPU compiler
  python scripts/aot_compile.py --config configs/fdp_official_samm.py \
      --topology v5e:2x2 --json aot.json [--config.key=value ...]

The same config flags and overrides as `scripts/main.py`, and the same code
path: `sharding.make_sharder` (mesh, batch checks) and `steps.build_steps`
(model, optimizer, state shardings, jitted steps) are what
`loso.train_and_evaluate` runs; only the devices differ (those of
`jax.experimental.topologies.get_topology_desc`) and the inputs are
`jax.ShapeDtypeStruct`s. The real TPU compiler (libtpu) compiles them.

Reported per compiled step (train and eval; with `protocol.parallel_folds`
> 1, the fold-parallel train step and eval, plus the one-fold step with
`--single_fold_step`): per-device argument / output / temp
bytes and their sum against the device's HBM, FLOPs and bytes accessed per
device (XLA cost analysis of the partitioned program), a roofline time
max(FLOPs / peak, bytes / HBM bandwidth) from `CHIPS` below, clips per
second at that time, and the shardings of the largest state leaves. Then a
LOSO wall-time estimate (folds x steps x train step + eval) for real
corpora. The roofline is a lower bound: small convolutions, 1-channel
inputs and many small ops keep a real TPU well below peak.

Exit status 2 with a message when the config does not divide over the
topology (batch sizes, `mesh.*`) or does not fit in HBM (the JSON is still
written). libtpu warns about TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES on
a machine without TPUs; that is harmless here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import os
import sys
import time
from typing import Any

# Compile for the topology only: never look for local TPU chips, and let
# several compiling processes load libtpu at once (its lockfile guards chips).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # noqa: E402  pylint: disable=g-import-not-at-top
from absl import flags  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("topology", "v5e:2x2",
                    "TPU topology, e.g. v5e:2x2, v5e:4x4, v4:2x2x1, v6e:2x2.")
flags.DEFINE_string("json", None, "Write the report as JSON here.")
flags.DEFINE_integer("num_classes", 0,
                     "Classes of the head (0: from the dataset builder's "
                     "metadata, which needs no built data).")
flags.DEFINE_bool("single_fold_step", False,
                  "With protocol.parallel_folds > 1, also compile the one-fold "
                  "train step (used only for a group left with one fold).")
flags.DEFINE_integer("largest", 4, "How many of the largest state leaves to list.")
flags.DEFINE_string("program_cache", None,
                    "Folder of analyses keyed by the lowered program's sha256: "
                    "a step whose program (StableHLO text, topology, jax "
                    "and libtpu versions) is byte-identical to one compiled before "
                    "reuses its memory and cost analyses instead of "
                    "compiling again. JAX's own compilation cache cannot "
                    "load executables compiled for a topology without "
                    "chips, hence this.")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS

# Per chip, dense bfloat16 peak (f32 matmuls at JAX's default precision also
# run as one bfloat16 pass on the MXU), HBM capacity and bandwidth. Source:
# Google Cloud TPU system architecture pages (cloud.google.com/tpu/docs/v4,
# /v5e, /v5p, /v6e), "chip specifications" tables.
CHIPS = {
    "TPU v4": {"name": "v4", "bf16_tflops": 275.0, "hbm_gib": 32.0,
               "hbm_gbps": 1200.0, "source": "https://cloud.google.com/tpu/docs/v4"},
    "TPU v5 lite": {"name": "v5e", "bf16_tflops": 197.0, "hbm_gib": 16.0,
                    "hbm_gbps": 819.0, "source": "https://cloud.google.com/tpu/docs/v5e"},
    "TPU v5": {"name": "v5p", "bf16_tflops": 459.0, "hbm_gib": 95.0,
               "hbm_gbps": 2765.0, "source": "https://cloud.google.com/tpu/docs/v5p"},
    "TPU v6 lite": {"name": "v6e", "bf16_tflops": 918.0, "hbm_gib": 32.0,
                    "hbm_gbps": 1640.0, "source": "https://cloud.google.com/tpu/docs/v6e"},
}

# LOSO size of each corpus (subjects = folds, clips), from the builders'
# docstrings (whole corpus: a protocol that drops classes has fewer clips,
# and possibly fewer subjects).
CORPORA = {"casme2": (26, 255), "samm": (32, 159), "smic": (16, 164),
           "casme3": (100, 860), "casme_sq": (22, 57), "ck_plus": (123, 593),
           "mmew": (36, 300)}


class AotError(Exception):
  """The config cannot run on the topology (divisibility or memory)."""


def topology_devices(name: str) -> tuple[list[Any], dict[str, Any]]:
  """The topology's devices and the per-device spec (a v4 chip holds 2)."""
  try:
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
    topo = topologies.get_topology_desc(topology_name=name, platform="tpu")
  except Exception as e:  # pylint: disable=broad-except
    raise AotError(
        f"cannot describe TPU topology {name!r} ({type(e).__name__}: {e}). "
        "Install the TPU compiler (pip install -e '.[tpu-aot]') and use a "
        "name such as v5e:2x2, v5e:4x4, v4:2x2x1, v6e:2x2.") from None
  devices = list(topo.devices)
  kind = devices[0].device_kind
  if kind not in CHIPS:
    raise AotError(f"no chip spec for {kind!r}; add it to CHIPS in {__file__}")
  chips = math.prod(int(x) for x in name.split(":")[1].split("x"))
  per_chip = max(len(devices) // chips, 1)
  c = CHIPS[kind]
  spec = {"chip": c["name"], "device_kind": kind, "devices": len(devices),
          "chips": chips, "devices_per_chip": per_chip,
          "processes": len({d.process_index for d in devices}),
          "hbm_bytes": c["hbm_gib"] * 2 ** 30 / per_chip,
          "peak_flops": c["bf16_tflops"] * 1e12 / per_chip,
          "hbm_bytes_per_s": c["hbm_gbps"] * 1e9 / per_chip,
          "source": c["source"]}
  return devices, spec


def num_classes_of(config, num_classes: int = 0) -> int:
  """Head size: `num_classes`, else the builder's class names (no data read)."""
  if num_classes:
    return num_classes
  if config.input.class_order:
    return len(config.input.class_order)
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  name = config.input.datasets[0]
  builder = sources.get_builder(name, config.input.data_dir or
                                sources.default_data_dir())
  names = (builder.info.metadata or {}).get("class_names")
  if not names:
    raise AotError(f"{name}: no class_names in the builder metadata; pass --num_classes")
  return len(names)


def abstract(tree, shardings):
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def abstract_batch(config, batch_size: int, sharding, folds: int = 0):
  from mer_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  lead = (folds,) if folds else ()
  return {k: jax.ShapeDtypeStruct(lead + shape, dtype, sharding=sharding)
          for k, (shape, dtype) in pipeline.batch_shapes(config.input,
                                                         batch_size).items()}


def _compile_analyses(lowered) -> dict[str, Any]:
  t0 = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis() or {}
  if isinstance(cost, list):  # older jax: one dict per program
    cost = cost[0] if cost else {}
  return {"compile_s": round(compile_s, 1),
          "argument_bytes": int(mem.argument_size_in_bytes),
          "output_bytes": int(mem.output_size_in_bytes),
          "alias_bytes": int(mem.alias_size_in_bytes),
          "temp_bytes": int(mem.temp_size_in_bytes),
          "flops": float(cost.get("flops", 0.0)),
          "bytes_accessed": float(cost.get("bytes accessed", 0.0))}


def program_key(lowered, topology: str) -> str:
  """sha256 of what the compiler sees: program text, topology, versions."""
  h = hashlib.sha256()
  for part in (topology, jax.__version__, _libtpu_version(), lowered.as_text()):
    h.update(part.encode())
    h.update(b"\0")
  return h.hexdigest()


def _libtpu_version() -> str:
  try:
    return importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    return ""


def analyse(name: str, jitted, args, spec: dict[str, Any], clips: int,
            topology: str = "", cache: str | None = None,
            source: str = "") -> dict[str, Any]:
  """Compiles `jitted(*args)` and reads its memory and cost analyses.

  With `cache`, a program already compiled for this topology (same sha256 of
  its lowered text) reuses the stored analyses: they are functions of the
  program and the compiler alone.
  """
  lowered = jitted.lower(*args)
  key = program_key(lowered, topology)
  path = os.path.join(cache, key + ".json") if cache else None
  reused_from = None
  if path and os.path.exists(path):
    with open(path) as f:
      a = json.load(f)
    reused_from = a.pop("source")
  else:
    a = _compile_analyses(lowered)
    if path:
      os.makedirs(cache, exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        json.dump({**a, "source": source or "an earlier compile"}, f)
      os.replace(tmp, path)
  compile_s = a["compile_s"]
  arg, out = a["argument_bytes"], a["output_bytes"]
  alias, temp = a["alias_bytes"], a["temp_bytes"]
  # Donated inputs alias their outputs: count those bytes once.
  total = arg + out - alias + temp
  flops, nbytes = a["flops"], a["bytes_accessed"]
  t_flops, t_bytes = flops / spec["peak_flops"], nbytes / spec["hbm_bytes_per_s"]
  t = max(t_flops, t_bytes)
  return {"step": name, "compile_s": compile_s, "program_sha256": key,
          "reused_from": reused_from,
          "argument_bytes": int(arg), "output_bytes": int(out),
          "alias_bytes": int(alias), "temp_bytes": int(temp),
          "total_bytes": int(total), "hbm_bytes": int(spec["hbm_bytes"]),
          "hbm_fraction": round(total / spec["hbm_bytes"], 4),
          "fits": bool(total <= spec["hbm_bytes"]),
          "flops": flops, "bytes_accessed": nbytes,
          "roofline_flops_s": t_flops, "roofline_bytes_s": t_bytes,
          "roofline_s": t, "bound": "compute" if t_flops >= t_bytes else "memory",
          "clips": clips, "clips_per_s": round(clips / t, 1) if t else None}


def largest_leaves(abstract_state, shardings, n: int) -> list[dict[str, Any]]:
  rows = []
  for (path, x), s in zip(jax.tree_util.tree_leaves_with_path(abstract_state),
                          jax.tree.leaves(shardings)):
    shard = s.shard_shape(x.shape)
    rows.append({"path": jax.tree_util.keystr(path), "shape": list(x.shape),
                 "dtype": str(x.dtype), "spec": str(s.spec),
                 "bytes_per_device": int(np.prod(shard, dtype=np.int64)
                                         * x.dtype.itemsize)})
  rows.sort(key=lambda r: -int(np.prod(r["shape"], dtype=np.int64)))
  return rows[:n]


def loso_estimate(config, train: dict[str, Any] | None, evals: dict[str, Any],
                  fold_train: dict[str, Any] | None) -> dict[str, Any] | None:
  """Roofline wall time of the whole protocol, sequential vs fold-parallel.

  `train` None (a fold-parallel report): no sequential time; take it from
  the data-parallel report of the same config and topology.
  """
  bases = [d.split("/")[0] for d in config.input.datasets]
  if not all(b in CORPORA for b in bases):
    return None
  subjects = sum(CORPORA[b][0] for b in bases)
  clips = sum(CORPORA[b][1] for b in bases)
  if config.protocol.folds:
    clips = round(clips * len(config.protocol.folds) / subjects)
    subjects = len(config.protocol.folds)
  steps = config.num_steps
  # Each clip is tested once; a fold's last batch is padded.
  eval_batches = math.ceil(clips / config.input.eval_batch_size) + subjects
  eval_s = eval_batches * evals["roofline_s"]
  out = {"folds": subjects, "clips": clips, "steps_per_fold": steps,
         "sequential_s": (subjects * steps * train["roofline_s"] + eval_s
                          if train else None),
         "eval_s": eval_s, "note": ("roofline (lower bound); corpus sizes "
                                    "from the builders; inner_val selection "
                                    "evals not included")}
  if fold_train is not None:
    k = int(config.protocol.parallel_folds)
    out["parallel_folds"] = k
    out["fold_parallel_s"] = (math.ceil(subjects / k) * steps
                              * fold_train["roofline_s"] + eval_s)
  return out


def compile_config(config, topology: str, num_classes: int = 0,
                   largest: int = 4, cache: str | None = None,
                   source: str = "", single_fold_step: bool = False
                   ) -> dict[str, Any]:
  """Builds everything as `loso.train_and_evaluate` would and compiles it.

  With `protocol.parallel_folds` > 1 the steps are the fold-parallel train
  step and the eval step; the one-fold train step (run only for a group
  left with one fold, and replicated over the fold axis on this mesh) is
  compiled too with `single_fold_step`. `cache`/`source`: see `analyse`
  (source names this row in the cache).
  """
  from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mer_jax.training import sharding, steps as steps_lib  # pylint: disable=g-import-not-at-top
  config_lib.validate(config)
  devices, spec = topology_devices(topology)
  if config.task == "ma2mi_pretrain":
    return compile_pretraining(config, topology, devices, spec, largest,
                               cache, source)
  try:
    sharder = sharding.make_sharder(config, devices)
    steps = steps_lib.build_steps(config, num_classes_of(config, num_classes), sharder)
  except ValueError as e:
    raise AotError(f"{e} (topology {topology}: {len(devices)} devices)") from None
  state = abstract(steps.abstract_state, steps.state_sharding)
  rng = jax.ShapeDtypeStruct((2,), np.uint32, sharding=sharder.replicated)
  b, eb = config.input.batch_size, config.input.eval_batch_size
  report = {"topology": topology, "device": spec,
            "mesh": dict(sharder.mesh.shape), "model": config.model_name,
            "datasets": list(config.input.datasets), "batch_size": b,
            "eval_batch_size": eb,
            "num_params": int(sum(x.size for x in jax.tree.leaves(
                steps.abstract_state.params))),
            "model_config": config.model.to_dict(), "steps": []}
  run = functools.partial(analyse, spec=spec, topology=topology, cache=cache,
                          source=source)
  train_r = None
  if steps.fold_train_step is None or single_fold_step:
    train_r = run("train", steps.train_step,
                  (state, abstract_batch(config, b, sharder.data), rng), clips=b)
    report["steps"].append(train_r)
  eval_r = run("eval", steps.eval_step,
               (state.params, state.batch_stats,
                abstract_batch(config, eb, sharder.data)), clips=eb)
  report["steps"].append(eval_r)
  fold_r = None
  if steps.fold_train_step is not None:
    k = steps.parallel_folds
    stacked = sharder.stacked(steps.state_sharding)
    sstate = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct((k, *x.shape), x.dtype, sharding=s),
        steps.abstract_state, stacked)
    rngs = jax.ShapeDtypeStruct((k, 2), np.uint32,
                                sharding=sharder.stacked(sharder.replicated))
    fold_r = run(f"train x{k} folds", steps.fold_train_step,
                 (sstate, abstract_batch(config, b, sharder.stacked_data, k),
                  rngs), clips=k * b)
    report["steps"].append(fold_r)
  report["largest_leaves"] = largest_leaves(steps.abstract_state,
                                            steps.state_sharding, largest)
  report["fits"] = all(r["fits"] for r in report["steps"])
  # The one-fold step of a fold-parallel mesh is replicated over the fold
  # axis: no sequential estimate from it.
  report["loso"] = loso_estimate(config, train_r if fold_r is None else None,
                                 eval_r, fold_r)
  return report


def compile_pretraining(config, topology: str, devices, spec: dict[str, Any],
                        largest: int, cache: str | None = None,
                        source: str = "") -> dict[str, Any]:
  """MA2MI pretraining's step, built as `tasks/ma2mi_pretrain.run` builds it."""
  from mer_jax.data import macro_pairs  # pylint: disable=g-import-not-at-top
  from mer_jax.tasks import ma2mi_pretrain  # pylint: disable=g-import-not-at-top
  from mer_jax.training import sharding  # pylint: disable=g-import-not-at-top
  if int(config.protocol.parallel_folds) > 1:
    raise AotError("fold-parallel LOSO does not apply to task ma2mi_pretrain "
                   "(pretraining has no folds; its transfer runs are MER configs)")
  try:
    sharder = sharding.make_sharder(config, devices, batch_sizes=("batch_size",))
    built = ma2mi_pretrain.build_step(config, sharder)
  except ValueError as e:
    raise AotError(f"{e} (topology {topology}: {len(devices)} devices)") from None
  b = config.input.batch_size
  state = abstract(built.abstract_state, built.state_sharding)
  batch = {k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharder.data)
           for k, (shape, dtype) in macro_pairs.batch_shapes(config, b).items()}
  rng = jax.ShapeDtypeStruct((2,), np.uint32, sharding=sharder.replicated)
  train_r = analyse("pretrain", built.train_step, (state, batch, rng), spec, b,
                    topology=topology, cache=cache, source=source)
  return {"topology": topology, "device": spec, "task": config.task,
          "mesh": dict(sharder.mesh.shape), "model": config.model_name,
          "datasets": list(config.input.datasets), "batch_size": b,
          "eval_batch_size": None,
          "num_params": int(sum(x.size for x in jax.tree.leaves(
              built.abstract_state.params))),
          "model_config": config.model.to_dict(), "steps": [train_r],
          "largest_leaves": largest_leaves(built.abstract_state,
                                           built.state_sharding, largest),
          "fits": train_r["fits"], "loso": None,
          "num_steps": config.num_steps,
          "pretrain_s": config.num_steps * train_r["roofline_s"]}


def _gib(x: float) -> str:
  return f"{x / 2 ** 30:.3f}"


def print_report(r: dict[str, Any]) -> None:
  d = r["device"]
  print(f"\n{r['model']} on {','.join(r['datasets'])}, {r['num_params']:,} "
        f"params; {r['topology']}: {d['devices']} x {d['device_kind']} "
        f"({d['processes']} processes), mesh {r['mesh']}; per device "
        f"{d['hbm_bytes'] / 2 ** 30:.1f} GiB HBM, "
        f"{d['peak_flops'] / 1e12:.0f} TFLOP/s bf16, "
        f"{d['hbm_bytes_per_s'] / 1e9:.0f} GB/s ({d['source']})")
  print(f"{'step':<16}{'args':>8}{'out':>8}{'temp':>8}{'total':>8}{'HBM%':>7}"
        f"{'GFLOP':>9}{'GB acc':>8}{'roofline':>10}{'bound':>8}{'clips/s':>10}")
  for s in r["steps"]:
    print(f"{s['step']:<16}{_gib(s['argument_bytes']):>8}{_gib(s['output_bytes']):>8}"
          f"{_gib(s['temp_bytes']):>8}{_gib(s['total_bytes']):>8}"
          f"{100 * s['hbm_fraction']:>6.1f}%{s['flops'] / 1e9:>9.2f}"
          f"{s['bytes_accessed'] / 1e9:>8.3f}{1e3 * s['roofline_s']:>8.3f}ms"
          f"{s['bound']:>8}{s['clips_per_s'] or 0:>10.0f}")
  print("(bytes in GiB per device; FLOPs and bytes accessed per device)")
  for s in r["steps"]:
    if s.get("reused_from"):
      print(f"{s['step']}: program {s['program_sha256'][:12]} is byte-identical "
            f"to {s['reused_from']}'s; its analyses were reused, not recompiled")
  print("largest state leaves (per-device bytes, sharding):")
  for leaf in r["largest_leaves"]:
    print(f"  {leaf['path']:<60} {leaf['shape']} {leaf['dtype']} "
          f"{leaf['spec']} {leaf['bytes_per_device']:,} B")
  lo = r.get("loso")
  if lo:
    parts = []
    if lo["sequential_s"] is not None:
      parts.append(f"sequential {lo['sequential_s']:.1f} s")
    if "fold_parallel_s" in lo:
      parts.append(f"fold-parallel (K={lo['parallel_folds']}) "
                   f"{lo['fold_parallel_s']:.1f} s (sequential: see the "
                   "data-parallel report)")
    line = (f"LOSO estimate ({lo['folds']} folds x {lo['steps_per_fold']} steps, "
            f"{lo['clips']} test clips): " + ", ".join(parts))
    print(line + f" [{lo['note']}]")
  if "pretrain_s" in r:
    print(f"Pretraining estimate ({r['num_steps']} steps): "
          f"{r['pretrain_s']:.1f} s [roofline (lower bound)]")


def _row_name() -> str:
  """The config file and its non-default overrides, to name a cached row."""
  name = os.path.basename(FLAGS["config"].config_filename)
  over = [a for a in sys.argv[1:] if a.startswith("--config.")]
  return " ".join([name, f"--topology={FLAGS.topology}", *over])


def main(argv) -> int:
  del argv
  # JAX's persistent cache cannot load executables compiled for a topology
  # without chips (it warns on every read): `--program_cache` replaces it.
  jax.config.update("jax_enable_compilation_cache", False)
  try:
    report = compile_config(FLAGS.config, FLAGS.topology, FLAGS.num_classes,
                            FLAGS.largest, FLAGS.program_cache,
                            source=_row_name(),
                            single_fold_step=FLAGS.single_fold_step)
  except AotError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  report["config"] = FLAGS["config"].config_filename
  report["jax"] = jax.__version__
  print_report(report)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(report, f, indent=1, default=str)
    print(f"wrote {FLAGS.json}")
  if not report["fits"]:
    over = [s["step"] for s in report["steps"] if not s["fits"]]
    print(f"error: {', '.join(over)} needs more than the "
          f"{report['device']['hbm_bytes'] / 2 ** 30:.1f} GiB of HBM per device "
          "on this topology: lower config.input.batch_size or shard the state "
          "with --config.mesh.fsdp.", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))

#!/usr/bin/env python
r"""The README's TPU table: `aot_compile.py` once per (config, topology, mode).

  python scripts/aot_table.py --out aot/ [--configs fdp_official_samm,...]
      [--topologies v5e:2x2,...] [--modes dp,fsdp,folds]

Each row is one command, printed before it runs, e.g.

  python scripts/aot_compile.py --config configs/fdp_official_samm.py \
      --topology v5e:2x2 --config.mesh.fsdp=2 --json aot/fdp_official_samm.v5e_2x2.fsdp.json

Modes: dp (data parallel over every device), fsdp (`mesh.fsdp=2`: state
leaves of >= `mesh.fsdp_min_size` elements split in two), folds (fold-
parallel LOSO, `protocol.parallel_folds = mesh.folds =` the device count:
one fold per device); for `fdp_official_*` also f32 (data parallel with
`model.matmul_dtype=float32`: the official float32 operands instead of the
TPU default bfloat16) and im2col (data parallel with
`model.im2col_max_pixels=1024`: the CPU route's 3x3 convs as matmuls instead
of the TPU's convolutions). Writes one JSON per row and `table.md`
(markdown) in `--out`; a row that does not divide or fit shows the error.

Rows run in `--jobs` processes. Rows of one (topology, mode) run in order in
one process and share `--program_cache`: a step whose lowered program is
byte-identical to one compiled before (e.g. `fdp_samm` and `fdp_casme2`:
same model, classes and shapes) reuses its analyses, and its JSON says so
(`reused_from`).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from concurrent import futures

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGY_DEVICES = {"v5e:2x2": 4, "v5e:4x4": 16, "v4:2x2x1": 8, "v6e:2x2": 4}

flags.DEFINE_string("out", "aot", "Folder for the JSON files and table.md.")
flags.DEFINE_list("configs", None, "Config names (default: fdp_*, miacnet_*, "
                  "ma2mi_* in configs/).")
flags.DEFINE_list("topologies", list(TOPOLOGY_DEVICES), "TPU topologies.")
flags.DEFINE_list("modes", ["dp", "fsdp", "folds"],
                  "dp, fsdp, folds, f32, im2col (the last two: fdp_official_* only).")
flags.DEFINE_integer("jobs", 1, "Rows compiled at once (one process each).")
flags.DEFINE_string("program_cache", None, "Analyses by program sha256 "
                    "(default: <out>/.programs, not meant for git).")
flags.DEFINE_bool("table_only", False, "Only rebuild table.md from the JSONs.")
FLAGS = flags.FLAGS


def overrides(mode: str, devices: int) -> list[str]:
  if mode == "dp":
    return []
  if mode == "fsdp":
    return ["--config.mesh.fsdp=2"]
  if mode == "folds":
    return [f"--config.protocol.parallel_folds={devices}",
            f"--config.mesh.folds={devices}"]
  if mode == "f32":
    return ["--config.model.matmul_dtype=float32"]
  if mode == "im2col":
    return ["--config.model.im2col_max_pixels=1024"]
  raise ValueError(f"unknown mode {mode!r}: dp, fsdp, folds, f32, im2col")


def applies(config: str, mode: str) -> bool:
  """Fold-parallel needs folds; the matmul options exist in fdp_official."""
  if mode == "folds":
    return not config.startswith("ma2mi_")  # pretraining has no folds
  if mode in ("f32", "im2col"):
    return config.startswith("fdp_official_")
  return True


def run_row(config: str, topology: str, mode: str, out: str, cache: str) -> str:
  path = os.path.join(out, f"{config}.{topology.replace(':', '_')}.{mode}.json")
  cmd = [sys.executable, "scripts/aot_compile.py",
         f"--config=configs/{config}.py", f"--topology={topology}",
         *overrides(mode, TOPOLOGY_DEVICES[topology]), f"--json={path}"]
  print("$", " ".join(cmd[1:]), flush=True)
  proc = subprocess.run(cmd + [f"--program_cache={cache}"], cwd=ROOT,
                        capture_output=True, text=True)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  if proc.returncode and not os.path.exists(path):
    with open(path, "w") as f:
      json.dump({"config": f"configs/{config}.py", "topology": topology,
                 "error": errors[-1] if errors else proc.stderr[-500:]}, f)
  return f"{config} {topology} {mode}: " + ("; ".join(errors) or "ok")


def run_group(rows: list[tuple[str, str, str]], out: str, cache: str) -> None:
  for config, topology, mode in rows:
    print(run_row(config, topology, mode, out, cache), flush=True)


def row(r: dict) -> str:
  name = os.path.basename(r["config"]).replace(".py", "")
  mode = r["mode"]
  if "error" in r:
    return f"| {name} | {r['topology']} | {mode} | no: {r['error'].removeprefix('error: ')} ||||||"
  cells = []
  for s in r["steps"]:
    if s["step"] == "eval":
      continue
    cells.append(s)
  train = cells[-1]  # the fold-parallel step when there is one
  b = r["batch_size"]
  mem = max(s["total_bytes"] for s in r["steps"]) / 2 ** 20
  lo = r.get("loso") or {}
  loso = ""
  if lo:
    loso = f"{lo['sequential_s']:.0f}"
    if "fold_parallel_s" in lo:
      loso += f" / {lo['fold_parallel_s']:.0f}"
  elif "pretrain_s" in r:
    loso = f"pretraining {r['pretrain_s']:.0f}"
  return (f"| {name} ({b}) | {r['topology']} | {mode} | "
          f"{'yes' if r['fits'] else 'NO'} | {mem:.0f} MiB "
          f"({100 * max(s['hbm_fraction'] for s in r['steps']):.1f} %) | "
          f"{1e3 * train['roofline_s']:.2f} ms ({train['bound']}) | "
          f"{train['clips_per_s']:.0f} | {train['flops'] / 1e9:.1f} | {loso} |")


def table(out: str) -> str:
  lines = ["| config (batch) | topology | mode | fits | peak memory / device "
           "(% HBM) | est. train step | clips/s | GFLOP / device / step | "
           "LOSO est. s (seq / fold-par.) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    with open(path) as f:
      r = json.load(f)
    r["mode"] = os.path.basename(path).split(".")[-2]
    lines.append(row(r))
  return "\n".join(lines)


def main(argv) -> None:
  del argv
  os.makedirs(FLAGS.out, exist_ok=True)
  if not FLAGS.table_only:
    configs = FLAGS.configs or sorted(
        os.path.basename(p)[:-3] for pat in ("fdp_*", "miacnet_*", "ma2mi_*")
        for p in glob.glob(os.path.join(ROOT, "configs", pat + ".py")))
    cache = FLAGS.program_cache or os.path.join(FLAGS.out, ".programs")
    groups = {(t, m): [(c, t, m) for c in configs if applies(c, m)]
              for t in FLAGS.topologies for m in FLAGS.modes}
    with futures.ThreadPoolExecutor(FLAGS.jobs) as pool:
      for f in [pool.submit(run_group, rows, FLAGS.out, cache)
                for rows in groups.values() if rows]:
        f.result()
  text = table(FLAGS.out)
  with open(os.path.join(FLAGS.out, "table.md"), "w") as f:
    f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  app.run(main)

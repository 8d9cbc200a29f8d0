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
one process and share `--programs` (aot_compile.py's `--program_cache`): a
step whose lowered program is byte-identical to one compiled before (e.g.
`fdp_samm` and `fdp_casme2`: same model, classes and shapes) reuses its
analyses, and its JSON says so (`reused_from`).
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
flags.DEFINE_string("programs", None, "Analyses by program sha256 "
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


TOPOLOGY_ORDER = list(TOPOLOGY_DEVICES)
MODE_ORDER = ["dp", "fsdp", "folds", "f32", "im2col"]


def load(out: str) -> list[dict]:
  """Every row JSON in `out`, with `name` and `mode` from its file name."""
  rows = []
  for path in glob.glob(os.path.join(out, "*.json")):
    with open(path) as f:
      r = json.load(f)
    name, topo, mode = os.path.basename(path)[:-len(".json")].split(".")
    r.update(name=name, mode=mode)
    rows.append(r)
  rank = lambda r: (r["name"], TOPOLOGY_ORDER.index(r["topology"])
                    if r["topology"] in TOPOLOGY_ORDER else 99,
                    MODE_ORDER.index(r["mode"]) if r["mode"] in MODE_ORDER else 99)
  return sorted(rows, key=rank)


def keyed(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
  """Rows by (config name, topology, mode)."""
  return {(r["name"], r["topology"], r["mode"]): r for r in rows}


def topologies(rows: list[dict]) -> list[str]:
  """The topologies that have rows, in TOPOLOGY_ORDER."""
  return [t for t in TOPOLOGY_ORDER if any(r["topology"] == t for r in rows)]


def indivisible(r: dict) -> bool:
  """An error row whose batch or mesh does not divide over the devices."""
  return "divis" in r["error"]


def train_step(r: dict) -> dict:
  """The step the protocol repeats: the fold-parallel one when there is one."""
  return [s for s in r["steps"] if s["step"] != "eval"][-1]


def peak(r: dict) -> str:
  mem = max(s["total_bytes"] for s in r["steps"]) / 2 ** 20
  return f"{mem:.0f} MiB ({100 * max(s['hbm_fraction'] for s in r['steps']):.1f} %)"


def loso_cell(r: dict, by_key: dict) -> str:
  """Sequential / fold-parallel protocol time in seconds (roofline).

  A fold-parallel row's own sequential step is replicated over the fold
  axis, so its sequential time is taken from the data-parallel row.
  """
  lo = r.get("loso") or {}
  if "pretrain_s" in r:
    return f"pretraining {r['pretrain_s']:.0f}"
  if not lo:
    return ""
  if "fold_parallel_s" not in lo:
    return f"{lo['sequential_s']:.0f}"
  dp = by_key.get((r["name"], r["topology"], "dp"))
  seq = (f"{dp['loso']['sequential_s']:.0f}" if dp and dp.get("loso")
         else "?")
  return f"{seq} / {lo['fold_parallel_s']:.0f} (K={lo['parallel_folds']})"


def compiled_cell(r: dict) -> str:
  sources = {s.get("reused_from") for s in r["steps"]} - {None}
  if sources:
    # A source is "<config>.py[:arg] --topology=... [overrides]".
    return "reused: " + ", ".join(sorted(x.split(".py")[0] for x in sources))
  return f"{sum(s['compile_s'] for s in r['steps']):.0f}"


def row(r: dict, by_key: dict) -> str:
  where = f"| {r['topology']} | {r['mode']} | "
  if "error" in r:  # no batch: the config did not build on this topology
    return (f"| {r['name']} " + where
            + f"no: {r['error'].removeprefix('error: ')} | | | | | | |")
  t = train_step(r)
  return f"| {r['name']} ({r['batch_size']}) " + where + (f"{'yes' if r['fits'] else 'NO'} | {peak(r)} | "
                 f"{1e3 * t['roofline_s']:.2f} ms ({t['bound']}) | "
                 f"{t['clips_per_s']:.0f} | {t['flops'] / 1e9:.1f} | "
                 f"{loso_cell(r, by_key)} | {compiled_cell(r)} |")


def table(rows: list[dict]) -> str:
  """Every row: config x topology x mode."""
  by_key = keyed(rows)
  lines = ["| config (batch) | topology | mode | fits | peak memory / device "
           "(% HBM) | est. train step | clips/s | GFLOP / device / step | "
           "LOSO est. s (seq / fold-par.) | compile s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  lines += [row(r, by_key) for r in rows]
  return "\n".join(lines)


def summary(rows: list[dict]) -> str:
  """Config x topology, data parallel: est. train step and peak memory."""
  by_key = keyed(rows)
  names = sorted({r["name"] for r in rows})
  topos = topologies(rows)
  lines = ["| config (batch) | " + " | ".join(
      f"{t} ({TOPOLOGY_DEVICES[t]} devices)" for t in topos) + " |",
           "|---|" + "---|" * len(topos)]
  for name in names:
    cells, batch = [], "?"
    for t in topos:
      r = by_key.get((name, t, "dp"))
      if r is None:
        cells.append("not run")
      elif "error" in r:
        cells.append("does not divide" if indivisible(r) else "no")
      else:
        batch = r["batch_size"]
        s = train_step(r)
        cells.append(f"{'' if r['fits'] else 'NO: '}{1e3 * s['roofline_s']:.1f} ms, "
                     f"{s['clips_per_s']:.0f} clips/s, {peak(r)}")
    lines.append(f"| {name} ({batch}) | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def loso_summary(rows: list[dict], topology: str = "v5e:2x2") -> str:
  """Per real-corpus config on `topology`: protocol time by mode."""
  by_key = keyed(rows)
  lines = ["| config | folds x steps | sequential, dp (s) | sequential, fsdp (s) "
           "| fold-parallel (s) |", "|---|---|---|---|---|"]
  for name in sorted({r["name"] for r in rows}):
    got = {m: by_key.get((name, topology, m)) for m in ("dp", "fsdp", "folds")}
    lo = next((g["loso"] for g in got.values() if g and g.get("loso")), None)
    if lo is None:
      continue
    def seq(r):
      return f"{r['loso']['sequential_s']:.0f}" if r and r.get("loso") else "-"
    f = got["folds"]
    par = (f"{f['loso']['fold_parallel_s']:.0f} (K={f['loso']['parallel_folds']})"
           if f and f.get("loso") and "fold_parallel_s" in f["loso"]
           else (f["error"].removeprefix("error: ") if f and "error" in f else "-"))
    lines.append(f"| {name} | {lo['folds']} x {lo['steps_per_fold']} | "
                 f"{seq(got['dp'])} | {seq(got['fsdp'])} | {par} |")
  return "\n".join(lines)


def loso_by_topology(rows: list[dict]) -> str:
  """Per real-corpus config: the fastest protocol estimate on each topology.

  Each cell is the lowest of the modes compiled there (dp, fsdp: sequential;
  folds: fold-parallel), named, so a researcher can pick a slice and a mode.
  """
  by_key = keyed(rows)
  topos = topologies(rows)
  lines = ["| config | " + " | ".join(topos) + " |",
           "|---|" + "---|" * len(topos)]
  for name in sorted({r["name"] for r in rows}):
    cells, any_loso = [], False
    for t in topos:
      options, failed, missing = [], [], []
      for m in ("dp", "fsdp", "folds"):
        r = by_key.get((name, t, m))
        lo = (r or {}).get("loso") or {}
        if r is None:
          missing.append(m)
        elif "error" in r:
          failed.append((m, indivisible(r)))
        elif m == "folds" and "fold_parallel_s" in lo:
          options.append((lo["fold_parallel_s"], f"folds K={lo['parallel_folds']}"))
        elif m != "folds" and "sequential_s" in lo:
          options.append((lo["sequential_s"], m))
      any_loso |= bool(options)
      best = min(options, default=None)
      parts = [f"{best[0]:.0f} s ({best[1]})"] if best else []
      for divides_not, one, many in ((True, "does not divide", "do not divide"),
                                     (False, "fails", "fail")):
        modes = [m for m, why in failed if why == divides_not]
        if modes:
          parts.append(", ".join(modes) + " " + (one if len(modes) == 1 else many))
      if missing:
        parts.append(f"{', '.join(missing)} not run")
      cells.append("; ".join(parts))
    if any_loso:
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv) -> None:
  del argv
  os.makedirs(FLAGS.out, exist_ok=True)
  if not FLAGS.table_only:
    configs = FLAGS.configs or sorted(
        os.path.basename(p)[:-3] for pat in ("fdp_*", "miacnet_*", "ma2mi_*")
        for p in glob.glob(os.path.join(ROOT, "configs", pat + ".py")))
    cache = FLAGS.programs or os.path.join(FLAGS.out, ".programs")
    groups = {(t, m): [(c, t, m) for c in configs if applies(c, m)]
              for t in FLAGS.topologies for m in FLAGS.modes}
    with futures.ThreadPoolExecutor(FLAGS.jobs) as pool:
      for f in [pool.submit(run_group, rows, FLAGS.out, cache)
                for rows in groups.values() if rows]:
        f.result()
  rows = load(FLAGS.out)
  text = "\n\n".join([summary(rows), loso_summary(rows),
                       loso_by_topology(rows), table(rows)])
  with open(os.path.join(FLAGS.out, "table.md"), "w") as f:
    f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  app.run(main)

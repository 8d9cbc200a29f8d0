"""scripts/aot_table.py: the README's TPU tables from aot_compile.py's JSONs.

No compiler needed: the rows are written here as aot_compile.py writes them.
"""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def aot_table():
  sys.path.insert(0, os.path.join(ROOT, "scripts"))
  import aot_table  # pylint: disable=g-import-not-at-top
  return aot_table


def _step(name, seconds, total=2 ** 20, reused_from=None):
  return {"step": name, "compile_s": 3.0, "roofline_s": seconds,
          "bound": "memory", "clips_per_s": 32 / seconds, "flops": 1e9,
          "total_bytes": total, "hbm_fraction": total / 2 ** 34,
          "reused_from": reused_from}


def _row(tmp, name, topology, mode, **extra):
  r = {"config": f"configs/{name}.py", "topology": topology, "batch_size": 32,
       "fits": True, **extra}
  with open(tmp / f"{name}.{topology.replace(':', '_')}.{mode}.json", "w") as f:
    json.dump(r, f)


def test_tables_combine_modes_and_flag_reuse(aot_table, tmp_path):
  # dp: sequential 100 s; the fold-parallel row's own "sequential" (900 s)
  # is replicated over the fold axis and must not reach the table.
  _row(tmp_path, "fdp_samm", "v5e:2x2", "dp",
       steps=[_step("train", 0.005), _step("eval", 0.001)],
       loso={"folds": 32, "steps_per_fold": 500, "sequential_s": 100.0})
  _row(tmp_path, "fdp_samm", "v5e:2x2", "folds",
       steps=[_step("train", 0.05), _step("eval", 0.001),
              _step("train x4 folds", 0.006, total=2 ** 28)],
       loso={"folds": 32, "steps_per_fold": 500, "sequential_s": 900.0,
             "fold_parallel_s": 25.0, "parallel_folds": 4})
  _row(tmp_path, "fdp_casme2", "v5e:2x2", "dp",
       steps=[_step("train", 0.005, reused_from="fdp_samm.py --topology=v5e:2x2"),
              _step("eval", 0.001, reused_from="fdp_samm.py --topology=v5e:2x2")],
       loso={"folds": 26, "steps_per_fold": 500, "sequential_s": 80.0})
  _row(tmp_path, "fdp_official_samm", "v5e:4x4", "dp",
       error="error: batch_size 36 is not divisible by the 16 devices of the data axes")
  rows = aot_table.load(str(tmp_path))
  summary, loso, full = (aot_table.summary(rows), aot_table.loso_summary(rows),
                         aot_table.table(rows))
  fastest = aot_table.loso_by_topology(rows)

  lines = {l.split(" | ")[0] + " " + l.split(" | ")[2]: l
           for l in full.splitlines()[2:]}
  folds = lines["| fdp_samm (32) folds"]
  assert "100 / 25 (K=4)" in folds and "900" not in folds
  assert "256 MiB" in folds  # the fold-parallel step's memory is the peak
  assert "reused: fdp_samm" in lines["| fdp_casme2 (32) dp"]
  error = next(l for l in full.splitlines() if "is not divisible" in l)
  # Every row has the header's cells.
  header = full.splitlines()[0]
  assert error.count("|") == header.count("|") == folds.count("|")

  assert "| fdp_samm | 32 x 500 | 100 | - | 25 (K=4) |" in loso
  assert "| fdp_casme2 | 26 x 500 | 80 | - | - |" in loso
  assert "fdp_official_samm" not in loso  # no compiled row, no estimate

  head = summary.splitlines()[0]
  assert "v5e:2x2 (4 devices)" in head and "v5e:4x4 (16 devices)" in head
  official = next(l for l in summary.splitlines() if "fdp_official_samm" in l)
  assert "does not divide" in official and "not run" in official
  samm = next(l for l in summary.splitlines() if l.startswith("| fdp_samm"))
  assert "5.0 ms" in samm

  # The fastest mode per topology, named; what was not compiled says so.
  assert fastest.splitlines()[0] == "| config | v5e:2x2 | v5e:4x4 |"
  assert "| fdp_samm | 25 s (folds K=4); fsdp not run | dp, fsdp, folds not run |" in fastest
  assert "| fdp_official_samm |" not in fastest  # no estimate anywhere
  _row(tmp_path, "fdp_official_samm", "v5e:2x2", "folds",
       steps=[_step("eval", 0.001), _step("train x4 folds", 0.03)],
       loso={"folds": 32, "steps_per_fold": 501, "sequential_s": 999.0,
             "fold_parallel_s": 300.0, "parallel_folds": 4})
  fastest = aot_table.loso_by_topology(aot_table.load(str(tmp_path)))
  assert ("| fdp_official_samm | 300 s (folds K=4); dp, fsdp not run | "
          "dp does not divide; fsdp, folds not run |") in fastest
  _row(tmp_path, "fdp_official_samm", "v5e:4x4", "fsdp",
       error="error: batch_size 36 is not divisible by the 16 devices of the data axes")
  fastest = aot_table.loso_by_topology(aot_table.load(str(tmp_path)))
  assert "| dp, fsdp do not divide; folds not run |" in fastest

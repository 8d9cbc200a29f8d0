"""notebooks/quickstart.ipynb: valid nbformat 4, committed without outputs, and
every code cell runs in QUICK mode (tiny config, 2 folds).

The cells are exec'd in order in one fresh namespace, as a kernel would run
them, so no Jupyter package is needed. `nbformat`, when installed, also
validates the file against the nbformat schema.
"""

import json
import logging
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def _load():
  with open(NOTEBOOK, encoding="utf-8") as f:
    return json.load(f)


def _source(cell) -> str:
  src = cell["source"]
  return src if isinstance(src, str) else "".join(src)


def _python(src: str) -> str:
  """The cell's code with IPython-only lines (`!cmd`, `%magic`) made no-ops."""
  return re.sub(r"(?m)^(\s*)([!%].*)$", r"\1pass  # \2", src)


def test_notebook_is_valid_and_has_no_outputs():
  nb = _load()
  assert nb["nbformat"] == 4
  assert nb["metadata"]["kernelspec"]["language"] == "python"
  cells = nb["cells"]
  assert cells, "empty notebook"
  ids = [c.get("id") for c in cells]
  assert len(set(ids)) == len(ids), "cell ids must be unique"
  kinds = {c["cell_type"] for c in cells}
  assert kinds <= {"code", "markdown", "raw"}
  assert "code" in kinds and "markdown" in kinds
  for c in cells:
    assert isinstance(c["source"], (str, list))
    if c["cell_type"] == "code":
      assert c["outputs"] == [], "commit the notebook with outputs cleared"
      assert c["execution_count"] is None, "commit the notebook with outputs cleared"
      compile(_python(_source(c)), "cell", "exec")  # valid Python
  try:
    import nbformat  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))


def test_notebook_runs_in_quick_mode(data_dir, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  monkeypatch.setenv("MER_JAX_QUICK", "1")
  monkeypatch.setenv("MER_JAX_WORKDIR", str(workdir))
  monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.chdir(ROOT)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  verbosity = absl_logging.get_verbosity()
  mer_jax_level = logging.getLogger("mer_jax").level

  ns = {"__name__": "__main__"}
  try:
    for i, cell in enumerate(_load()["cells"]):
      if cell["cell_type"] == "code":
        exec(compile(_python(_source(cell)), f"quickstart.ipynb cell {i}", "exec"), ns)  # pylint: disable=exec-used
  finally:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    plt.close("all")
    absl_logging.set_verbosity(verbosity)
    logging.getLogger("mer_jax").setLevel(mer_jax_level)

  assert ns["QUICK"] is True
  results = ns["results"]
  assert 0.0 <= results["uf1"] <= 1.0
  assert {"uar", "accuracy", "per_fold"} <= set(results)
  assert results["dataset"] == "synthetic_me/tiny"
  assert len(results["per_fold"]) == 2  # QUICK keeps 2 folds
  with open(workdir / "results.json") as f:
    assert json.load(f)["uf1"] == results["uf1"]
  for png in (ns["CONFUSION_PNG"], ns["DYNAMIC_PNG"]):
    png = os.path.join(ROOT, png)  # relative to the checkout, as in the notebook
    with open(png, "rb") as f:
      assert f.read(4) == b"\x89PNG", png
  assert ns["DYNAMIC_PNG"].endswith(os.path.join("folds", "synthetic_me__sub01",
                                                 "dynamic_images.png"))
  # The checkpoint loaded in the notebook predicts its fold's test clips.
  outs = ns["outs"]
  assert len(outs) == 4
  assert all(o["pred_name"] in results["class_names"] for o in outs)
  assert "dynamic_image" in outs[0]

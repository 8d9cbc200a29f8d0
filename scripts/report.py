r"""Results tables over finished runs: mean +- std over seeds, per fold, confusions.

  python scripts/report.py runs/fdp_casme2_seed*       # runs given one by one
  python scripts/report.py runs/ --out report/          # every run under runs/

A run is a workdir with `results.json` (written when all its folds finish);
a directory without one is searched for runs below it. Runs are grouped by
dataset, model, protocol, selection and configuration (every config key but
the seed and paths: the `cfg` column is its short hash), so a group's rows
differ only in seed. Headline numbers are pooled over folds within a run
(MEGC UF1/UAR), then mean +- sample std over the group's seeds.

The `paper` column shows numbers reported in papers, from the hand-copied
table `mer_jax/paper_results.json` (each entry cites its source; `oracle`
marks numbers selected on the test subject, as FDP's official code does).

Runs that cannot be reported are listed with the reason (stderr, and in
report.md), never dropped silently: a workdir whose folds did not all
finish (killed, still running, or empty), or whose results.json is damaged.

With --out: report.md (the same tables in Markdown), report.json and one
confusion matrix PNG per group (summed over seeds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys

# Runnable from a clone without installing the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # pylint: disable=g-import-not-at-top

PAPER_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "mer_jax", "paper_results.json")
# Config keys that do not change what a run measures.
_IGNORED_KEYS = ("seed", "input.data_dir", "progress", "input.read_threads",
                 "input.prefetch", "input.workers", "log_every",
                 "checkpoint_every", "keep_checkpoints", "mesh.data",
                 "input.auto_build", "preview_samples")
_SKIP_DIRS = ("folds", "tensorboard", "checkpoints")


class ReportError(ValueError):
  pass


# ----------------------------------------------------------------------------
# Loading.


# A folder with one of these but no results.json is a run that did not finish.
_RUN_MARKERS = ("folds", "run.json", "config.json", ".lock")


def _unfinished_reason(path: str) -> str:
  folds = os.path.join(path, "folds")
  names = sorted(os.listdir(folds)) if os.path.isdir(folds) else []
  done = sum(os.path.isfile(os.path.join(folds, d, "result.json")) for d in names)
  if not names:
    return "no results.json and no fold started (empty or killed at start)"
  return (f"no results.json: {done} of {len(names)} started folds finished "
          "(killed, still running, or run with protocol.folds; rerun the same "
          "command to finish it)")


def find_runs(paths: list[str], skipped: list | None = None) -> list[str]:
  """Run workdirs (holding results.json) at or below each path, sorted.

  Workdirs that look like runs but hold no results.json are appended to
  `skipped` as `(path, reason)`.
  """
  runs = []
  skipped = [] if skipped is None else skipped
  for p in paths:
    if not os.path.isdir(p):
      raise ReportError(f"{p} is not a directory")
    if os.path.isfile(os.path.join(p, "results.json")):
      runs.append(os.path.abspath(p))
      continue
    found = []
    for root, dirs, files in os.walk(p):
      if "results.json" in files:
        found.append(os.path.abspath(root))
        dirs[:] = []
        continue
      if any(m in files or m in dirs for m in _RUN_MARKERS):
        skipped.append((os.path.abspath(root), _unfinished_reason(root)))
        dirs[:] = []
        continue
      dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
    if not found and not skipped:
      raise ReportError(f"no results.json in or below {p} (a run writes it when "
                        "all its folds have finished)")
    runs += found
  return sorted(dict.fromkeys(runs))


def load_runs(paths: list[str], skipped: list) -> list[dict]:
  """`load_run` of each path; damaged ones go to `skipped` with the reason."""
  out = []
  for path in paths:
    try:
      out.append(load_run(path))
    except (ValueError, KeyError, OSError) as e:
      what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
      skipped.append((path, what))
  return out


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ReportError(f"{path} is damaged (truncated or not JSON: {e})") from None


def load_run(path: str) -> dict:
  r = _read_json(os.path.join(path, "results.json"))
  for key in ("dataset", "model", "protocol", "per_fold", "uf1", "class_names"):
    if key not in r:
      raise ReportError(f"{os.path.join(path, 'results.json')} has no {key!r}")
  config = {}
  if os.path.isfile(os.path.join(path, "config.json")):
    config = _flatten(_read_json(os.path.join(path, "config.json")))
  fingerprint = {k: v for k, v in config.items() if k not in _IGNORED_KEYS}
  if not fingerprint:  # runs from before config.json was written
    fingerprint = {"num_steps": r.get("num_steps")}
  r["cfg"] = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()
                          ).hexdigest()[:6]
  r["path"] = path
  return r


def group_runs(runs: list[dict]) -> list[dict]:
  """Groups runs that differ only in seed (and paths / logging)."""
  groups = {}
  for r in runs:
    selection = r.get("selection", "?") + ("+oracle" if r.get("oracle") else "")
    key = (r["dataset"], r["model"], r["protocol"], selection, r["cfg"])
    groups.setdefault(key, []).append(r)
  out = []
  for (dataset, model, protocol, selection, cfg), rs in sorted(groups.items()):
    rs = sorted(rs, key=lambda r: (r.get("seed", 0), r["path"]))
    names = [tuple(r["class_names"]) for r in rs]
    if len(set(names)) > 1:
      raise ReportError(f"runs of one group have different classes: "
                        f"{[r['path'] for r in rs]}")
    g = {"dataset": dataset, "model": model, "protocol": protocol,
         "selection": selection, "cfg": cfg, "runs": [r["path"] for r in rs],
         "seeds": [r.get("seed") for r in rs], "class_names": list(names[0]),
         "n": rs[0]["n"], "folds": len(rs[0]["per_fold"])}
    for m in ("uf1", "uar", "accuracy"):
      v = np.array([r[m] for r in rs], np.float64)
      g[m] = {"mean": float(v.mean()),
              "std": float(v.std(ddof=1)) if len(v) > 1 else None,
              "values": v.tolist()}
    g["confusion"] = np.sum([np.array(r["confusion"]) for r in rs], 0).tolist()
    g["per_fold"] = _per_fold(rs)
    out.append(g)
  return out


def _per_fold(rs: list[dict]) -> list[dict]:
  """Per test subject: n, mean UF1/UAR/acc over seeds, selected steps."""
  rows = {}
  for r in rs:
    for pf in r["per_fold"]:
      row = rows.setdefault(pf["subject"], {"subject": pf["subject"], "n": pf["n"],
                                            "uf1": [], "uar": [], "accuracy": [],
                                            "selected_step": []})
      for m in ("uf1", "uar", "accuracy"):
        row[m].append(pf[m])
      row["selected_step"].append(pf.get("selected_step"))
  out = []
  for row in rows.values():
    for m in ("uf1", "uar", "accuracy"):
      v = np.array(row[m], np.float64)
      row[m] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    out.append(row)
  return out


def load_paper_table(path: str) -> list[dict]:
  with open(path) as f:
    return json.load(f).get("results", [])


def paper_matches(group: dict, table: list[dict]) -> list[dict]:
  out = []
  for e in table:
    ds = e.get("dataset", "")
    if group["model"] not in e.get("models", []):
      continue
    if not (group["dataset"] == ds or group["dataset"].startswith(ds.rstrip("/") + "/")
            or group["dataset"].startswith(ds + "_")):
      continue
    if e.get("protocol", group["protocol"]) != group["protocol"]:
      continue
    out.append(e)
  return out


def _paper_text(entries: list[dict]) -> str:
  parts = []
  for e in entries:
    nums = "/".join("—" if e.get(m) is None else f"{e[m]:.3f}"
                    for m in ("uf1", "uar", "accuracy"))
    parts.append(f"{nums} [{e.get('selection', '?')}] {e.get('paper', '')}")
  return "; ".join(parts) if parts else "—"


# ----------------------------------------------------------------------------
# Tables.


def _pm(stat: dict) -> str:
  if stat["std"] is None:
    return f"{stat['mean']:.3f}"
  return f"{stat['mean']:.3f}±{stat['std']:.3f}"


def _table(header: list[str], rows: list[list[str]], markdown: bool,
           left: int = 5) -> str:
  """Markdown, or aligned text (the first `left` columns left-aligned)."""
  if markdown:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
  widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(header)]
  fmt = lambda r: "  ".join(c.ljust(w) if i < left else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths)))
  return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def render(groups: list[dict], table: list[dict], per_fold: bool,
           markdown: bool) -> str:
  header = ["dataset", "model", "protocol", "selection", "cfg", "seeds", "folds",
            "n", "UF1", "UAR", "acc", "paper UF1/UAR/acc [selection]"]
  rows = [[g["dataset"], g["model"], g["protocol"], g["selection"], g["cfg"],
           str(len(g["seeds"])), str(g["folds"]), str(g["n"]), _pm(g["uf1"]),
           _pm(g["uar"]), _pm(g["accuracy"]), _paper_text(paper_matches(g, table))]
          for g in groups]
  out = [("## Results\n\n" if markdown else "") + _table(header, rows, markdown),
         "",
         "UF1/UAR pooled over folds per run; mean±std (sample std) over seeds. "
         "paper: numbers reported in papers (mer_jax/paper_results.json"
         + ("" if table else ", currently empty: no citable source") +
         "); 'oracle' = best epoch chosen on the test subject."]
  if per_fold:
    for i, g in enumerate(groups):
      title = (f"{g['dataset']} / {g['model']} / {g['protocol']} / "
               f"{g['selection']} / cfg {g['cfg']} (seeds {g['seeds']})")
      rows = [[pf["subject"], str(pf["n"]), f"{pf['uf1']:.3f}", f"{pf['uar']:.3f}",
               f"{pf['accuracy']:.3f}",
               ",".join(str(s) for s in pf["selected_step"])]
              for pf in g["per_fold"]]
      out += ["", (f"### Per fold: {title}" if markdown
                   else f"Per fold [{i}]: {title}"), ""]
      out.append(_table(["test subject", "n", "UF1", "UAR", "acc", "step"], rows,
                        markdown, left=1))
  return "\n".join(out)


def _slug(g: dict) -> str:
  s = f"{g['dataset']}_{g['model']}_{g['protocol']}_{g['selection']}_{g['cfg']}"
  return re.sub(r"[^0-9A-Za-z_.+-]", "_", s.replace("/", "-"))


def _print_skipped(skipped: list) -> None:
  if skipped:
    print(f"skipped {len(skipped)} run(s):\n" + "\n".join(
        f"  {p}: {why}" for p, why in skipped), file=sys.stderr, flush=True)


def write_outputs(groups: list[dict], table: list[dict], out_dir: str,
                  skipped: list = ()) -> None:
  from mer_jax import plots  # pylint: disable=g-import-not-at-top
  os.makedirs(out_dir, exist_ok=True)
  for g in groups:
    png = os.path.join(out_dir, f"confusion_{_slug(g)}.png")
    plots.plot_confusion(
        np.array(g["confusion"]), g["class_names"], png,
        f"{g['model']} on {g['dataset']}, {g['protocol']} ({g['selection']}), "
        f"{len(g['seeds'])} seed(s) summed\nUF1 {_pm(g['uf1'])}  UAR {_pm(g['uar'])}")
    g["confusion_png"] = os.path.basename(png)
  md = render(groups, table, per_fold=True, markdown=True)
  md += "\n\n## Confusion matrices\n\n" + "\n".join(
      f"![{g['confusion_png']}]({g['confusion_png']})" for g in groups) + "\n"
  if skipped:
    md += "\n## Skipped runs\n\n" + "\n".join(
        f"- `{p}`: {why}" for p, why in skipped) + "\n"
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write("# mer-jax results\n\n" + md)
  with open(os.path.join(out_dir, "report.json"), "w") as f:
    json.dump({"groups": groups,
               "skipped": [{"path": p, "reason": why} for p, why in skipped],
               "paper": {_slug(g): paper_matches(g, table) for g in groups}},
              f, indent=1)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="\n\n".join(__doc__.split("\n\n")[1:]))
  p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                 help="run workdirs, or directories holding runs")
  p.add_argument("--out", default=None,
                 help="write report.md, report.json and confusion PNGs here")
  p.add_argument("--no_per_fold", action="store_true",
                 help="print only the summary table")
  p.add_argument("--markdown", action="store_true", help="print Markdown tables")
  p.add_argument("--paper_table", default=PAPER_TABLE,
                 help="paper numbers (default: mer_jax/paper_results.json)")
  args = p.parse_args(argv)
  skipped = []
  try:
    runs = load_runs(find_runs(args.runs, skipped), skipped)
    _print_skipped(skipped)
    if not runs:
      raise ReportError("no run could be reported (see the skipped runs above)")
    groups = group_runs(runs)
    table = load_paper_table(args.paper_table)
    print(render(groups, table, per_fold=not args.no_per_fold,
                 markdown=args.markdown))
    if args.out:
      write_outputs(groups, table, args.out, skipped)
      print(f"\nwrote {os.path.join(args.out, 'report.md')}, report.json and "
            f"{len(groups)} confusion PNG(s)")
  except (ReportError, OSError, ValueError, KeyError) as e:
    msg = f"missing key {e}" if isinstance(e, KeyError) else str(e)
    print(f"error: {msg}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())

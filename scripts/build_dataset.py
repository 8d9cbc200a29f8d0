r"""Builds a mer-jax TFDS dataset (array_record files) from its manual_dir.

  python scripts/build_dataset.py --dataset casme2 --manual_dir /data/CASME2 \
      --data_dir ~/tensorflow_datasets [--config 3class_112] [--strict]
  python scripts/build_dataset.py casme2/5class_112 --manual_dir /data/CASME2
  python scripts/build_dataset.py synthetic_me/s64          # needs no manual_dir

Frames are read one clip at a time (memory does not grow with the corpus);
TFDS shows a progress bar per subject split. Rows that cannot be written
(missing or unreadable frames, onset > offset, unknown emotion, empty
folder, ...) are skipped and listed with their reason in
`<data_dir>/<builder>/<config>/<version>/build_report.json`; a short summary
is printed. With --strict the build stops with an error at the first such
defect instead; exclusions (rows outside the protocol or an official list,
unlabelled CK+ sequences, SMIC non_micro folders) and applied errata never
stop it.

An existing build is checked against the request: if it was built with
other options (alignment, a lenient build with skips under --strict, a
builder config whose definition changed), the script refuses (exit 2) and
names them; --overwrite moves the old build to
<data_dir>/replaced/<builder>/<config>/<version>-<time>/ and builds again.
Every build writes shard_checksums.json (records, bytes and sha256 of each
file); --verify reads every record of an existing build and checks it.

Exit status: 0 built (skips included) or verified, 2 bad arguments /
missing or wrong manual_dir / a build with other options / a damaged build
under --verify, 1 a defect under --strict or another build error. The `tfds
build` CLI needs TensorFlow; this entry point does not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from typing import Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("name", nargs="?", default=None,
                 help="<builder>/<config>, e.g. casme2/5class_112 (or use --dataset)")
  p.add_argument("--dataset", default=None,
                 help="builder name, e.g. casme2 (or <builder>/<config>)")
  p.add_argument("--config", default=None,
                 help="builder config, e.g. 3class_112 (default: the builder's default)")
  p.add_argument("--manual_dir", default=None,
                 help="folder holding the corpus as distributed")
  p.add_argument("--data_dir", default=None,
                 help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  p.add_argument("--strict", action="store_true",
                 help="stop with an error at the first defect instead of skipping it")
  p.add_argument("--alignment", default=None, choices=("dlib", "dlib_or_center", "none"),
                 help="override the config's face alignment (e.g. 'none' for "
                      "frames that are already aligned crops); recorded in the "
                      "dataset metadata")
  p.add_argument("--annotation", default=None, metavar="FILE",
                 help="the annotation file to read (absolute, or relative to "
                      "--manual_dir) when the release holds several versions "
                      "side by side; recorded with its sha256 in the report")
  p.add_argument("--overwrite", action="store_true",
                 help="rebuild even if a build exists: the old one is moved "
                      "aside (to <data_dir>/replaced/...), never deleted")
  p.add_argument("--verify", action="store_true",
                 help="read every record of the existing build and check it "
                      "against the checksums written at build time")
  p.add_argument("--debug", action="store_true",
                 help="show the Python traceback of an unexpected error")
  args = p.parse_args(argv)
  if args.name and args.dataset:
    p.error("give the dataset either positionally or with --dataset, not both")
  name = args.name or args.dataset
  if not name:
    p.error("which dataset? e.g. --dataset casme2 (see tfds_builders/README.md)")
  if "/" in name and args.config:
    p.error(f"{name!r} already names a config; drop --config {args.config}")
  args.full_name = f"{name}/{args.config}" if args.config else name
  return args


def _paragraph(text: str) -> str:
  return "\n".join(textwrap.wrap(" ".join(str(text).split()), 79))


def _print_report(builder, report_path: str) -> None:
  info = builder.info
  print(f"built {info.full_name} in {builder.data_dir}")
  report = getattr(builder, "report", None)
  if report is None and os.path.exists(report_path):
    with open(report_path) as f:
      report = json.load(f)
  if report is None:   # a builder without a report (synthetic_me)
    for split, s in sorted(info.splits.items()):
      print(f"  {split:<16} {s.num_examples:>5} clips")
    return
  per_class = ", ".join(f"{k} {v}" for k, v in report["per_class"].items())
  print(f"  rows read {report['rows_read']}, samples written "
        f"{report['samples_written']} ({per_class}; -1 = not in the protocol) "
        f"in {len(report['per_split'])} subject splits")
  skipped = report["skipped"]
  print(f"  skipped {report['skipped_total']}"
        + (": " + ", ".join(f"{len(v)} {k}" for k, v in skipped.items())
           if skipped else ""))
  for kind in ("repaired", "excluded"):
    if report[kind]:
      print(f"  {kind}: " + ", ".join(f"{len(v)} {k}" for k, v in report[kind].items()))
  if report.get("annotation"):
    a = report["annotation"]
    print(f"  annotation: {a['file']} (sha256 {a['sha256'][:12]}...)")
  print(f"  report: {report_path}")


def build_mismatches(builder, args) -> list[str]:
  """How the existing build of `builder` differs from what `args` request.

  Compared: the builder config's metadata as the code defines it now
  (protocol, classes, size, alignment, variant) with the stored one; with
  --strict, a stored lenient build that skipped defects.
  """
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  from tfds_builders import corpus, corpus_io, skiplog  # pylint: disable=g-import-not-at-top
  root = os.fspath(builder.data_dir)
  stored_meta = {}
  meta_path = os.path.join(root, "metadata.json")
  if os.path.isfile(meta_path):
    with open(meta_path) as f:
      stored_meta = json.load(f)
  report = {}
  if os.path.isfile(os.path.join(root, skiplog.REPORT_FILE)):
    with open(os.path.join(root, skiplog.REPORT_FILE)) as f:
      report = json.load(f)
  out = []
  if isinstance(builder, corpus.CorpusBuilderMixin):
    # The metadata this request would write (the code's, not the stored one).
    wanted = dict(builder._info().metadata)  # pylint: disable=protected-access
    for k, v in wanted.items():
      if k in stored_meta and _canon(stored_meta[k]) != _canon(v):
        out.append(f"{k}: built {stored_meta[k]!r}, requested {v!r}")
    if "alignment" in report and report["alignment"] != builder.alignment:
      out.append(f"alignment: built {report['alignment']!r}, requested "
                 f"{builder.alignment!r}")
    if args.strict and report.get("skipped_total", 0):
      out.append(f"strict: built leniently with {report['skipped_total']} "
                 "skipped defect(s) (see its build_report.json), requested "
                 "--strict")
  annotation = getattr(args, "annotation", None)
  if annotation and not os.path.isabs(annotation) and getattr(args, "manual_dir", None):
    annotation = os.path.join(args.manual_dir, annotation)
  if annotation and os.path.isfile(annotation):
    digest = corpus_io.sha256_file(annotation)
    built = ((report.get("annotation") or {}).get("sha256")
             or stored_meta.get("annotation_sha256"))
    if built and built != digest:
      out.append(f"annotation: built from a file with sha256 {built[:12]}..., "
                 f"requested {annotation} with sha256 {digest[:12]}...")
  del sources
  return list(dict.fromkeys(out))


def _canon(v):
  return json.loads(json.dumps(v, default=str))


def move_build_aside(builder, data_dir: str) -> str:
  """Moves the build's version folder under <data_dir>/replaced/; returns it."""
  import time  # pylint: disable=g-import-not-at-top
  src = os.fspath(builder.data_dir)
  cfg = builder.builder_config.name if builder.builder_config else "default"
  dest = os.path.join(data_dir, "replaced", builder.name, cfg,
                      f"{builder.version}-{time.strftime('%Y%m%d-%H%M%S')}")
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  os.rename(src, dest)
  return dest


def main(argv: Sequence[str] | None = None) -> int:
  args = _parse(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
  # absl (TFDS) logs every skipped clip at INFO too; ours already did.
  logging.getLogger("absl").setLevel(logging.WARNING)

  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  from tfds_builders import corpus, skiplog  # pylint: disable=g-import-not-at-top
  name = args.full_name
  data_dir = os.path.expanduser(args.data_dir or sources.default_data_dir())
  try:
    builder = sources.get_builder(name, data_dir)   # imports + checks the name
    if isinstance(builder, corpus.CorpusBuilderMixin):
      # `strict` reaches the builder as a constructor keyword.
      builder = tfds.builder(name, data_dir=data_dir, file_format="array_record",
                             strict=args.strict, alignment=args.alignment,
                             annotation=args.annotation)
    elif args.strict or args.alignment or args.annotation:
      print(f"note: {name} is not a licensed-corpus builder; --strict, "
            "--alignment and --annotation have no effect.", file=sys.stderr)
  except sources.DatasetError as e:
    print(f"error: {_paragraph(e)}", file=sys.stderr)
    return 2
  try:
    rc = _check_existing(builder, args, name, data_dir, sources)
  except (OSError, ValueError, sources.DatasetError) as e:
    if args.debug:
      raise
    print(f"error: {name}: {_paragraph(e)}", file=sys.stderr)
    return 2
  if rc is not None:
    return rc
  if args.overwrite and builder.is_prepared():
    moved = move_build_aside(builder, data_dir)
    print(f"--overwrite: moved the old build to {moved}")
    builder = _fresh_builder(name, data_dir, args, corpus, sources)
  was_built = builder.is_prepared()
  instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) or ""
  if instructions and not builder.is_prepared():
    if not args.manual_dir or not os.path.isdir(args.manual_dir):
      what = (f"--manual_dir {args.manual_dir} is not a directory"
              if args.manual_dir else "--manual_dir is required")
      print(f"error: {name}: {what}.\n\n{instructions.strip()}", file=sys.stderr)
      return 2
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.abspath(args.manual_dir) if args.manual_dir else None)
  try:
    builder.download_and_prepare(file_format="array_record",
                                 download_config=download_config)
  except BaseException as e:  # pylint: disable=broad-except
    # A build that fails midway leaves no folder that looks finished.
    sources.remove_incomplete(builder)
    rc = _build_error(e, name, args)
    if rc is None:
      raise
    return rc
  try:
    if not was_built:  # never re-hash an existing (possibly damaged) build
      sources.write_shard_checksums(builder)
  except OSError as e:
    print(f"error: {name}: built, but cannot write its shard checksums: {e}",
          file=sys.stderr)
    return 1
  _print_report(builder, os.path.join(builder.data_dir, skiplog.REPORT_FILE))
  return 0


def _fresh_builder(name, data_dir, args, corpus, sources):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = sources.get_builder(name, data_dir)
  if isinstance(builder, corpus.CorpusBuilderMixin):
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record",
                           strict=args.strict, alignment=args.alignment)
  return builder


def _check_existing(builder, args, name, data_dir, sources) -> int | None:
  """--verify, and the refusal of a build with other options; None = go on."""
  if args.verify:
    if not builder.is_prepared():
      print(f"error: {name} is not built in {data_dir}; nothing to verify.",
            file=sys.stderr)
      return 2
    problems = sources.verify_shards(builder, show_progress=True)
    if problems:
      print(f"error: {name}: {len(problems)} damaged file(s):\n  "
            + "\n  ".join(problems) + "\nRebuild it with:\n  "
            + sources.rebuild_command(builder, data_dir), file=sys.stderr)
      return 2
    if sources.read_shard_checksums(builder) is None:
      print(f"note: {name} was built before shard checksums were written: "
            "every record was read, but not compared with the build's hashes.")
    print(f"verified {name} in {builder.data_dir}: every record of "
          f"{sum(len(v) for v in sources.shard_files(builder).values())} "
          "shard file(s) reads and matches")
    return 0
  if builder.is_prepared() and not args.overwrite:
    diff = build_mismatches(builder, args)
    if diff:
      print(f"error: {name} in {builder.data_dir} was built with other "
            "options:\n  " + "\n  ".join(diff) + "\nUse another --data_dir, "
            "or add --overwrite to move the old build aside and build again.",
            file=sys.stderr)
      return 2
  return None


def _build_error(e, name, args) -> int | None:
  """Exit status and one message for a failed build (None: re-raise)."""
  from tfds_builders import corpus_io, skiplog  # pylint: disable=g-import-not-at-top
  if not isinstance(e, Exception):
    return None  # KeyboardInterrupt / SystemExit
  if isinstance(e, corpus_io.ManualDirError):
    print(f"error building {name}: {e}", file=sys.stderr)
    return 2
  if isinstance(e, skiplog.CorpusDefectError):
    print(f"error building {name} (--strict): {_paragraph(e)}", file=sys.stderr)
    return 1
  if args.debug:
    return None
  msg = str(e)
  if isinstance(e, ValueError) and "manual_dir" in msg.lower():
    print(f"error building {name}: {msg}", file=sys.stderr)
    return 2
  if isinstance(e, OSError):
    print(f"error building {name}: {_paragraph(f'{type(e).__name__}: {msg}')}\n"
          "Nothing half-built was left behind; free disk space (or fix the "
          "permissions) and run again.", file=sys.stderr)
    return 2
  print(f"error building {name}: {_paragraph(f'{type(e).__name__}: {msg}')}\n"
        "(run again with --debug for the traceback)", file=sys.stderr)
  return 1


if __name__ == "__main__":
  sys.exit(main())

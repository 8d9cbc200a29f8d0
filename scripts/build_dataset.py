r"""Builds a mer-jax TFDS dataset (array_record files) from its manual_dir.

  python scripts/build_dataset.py casme2/5class_112 --manual_dir /data/CASME2
  python scripts/build_dataset.py synthetic_me/s64          # needs no manual_dir

The `tfds build` CLI needs TensorFlow; this entry point does not.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("name", help="<builder>/<config>, e.g. casme2/5class_112")
  p.add_argument("--manual_dir", default=None,
                 help="folder holding the corpus as distributed")
  p.add_argument("--data_dir", default=None,
                 help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  args = p.parse_args()
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  data_dir = args.data_dir or sources.default_data_dir()
  try:
    builder = sources.get_builder(args.name, data_dir)
  except sources.DatasetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.manual_dir and not os.path.isdir(args.manual_dir):
    print(f"error: --manual_dir {args.manual_dir} is not a directory.\n"
          f"{getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', '')}", file=sys.stderr)
    return 2
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.abspath(args.manual_dir) if args.manual_dir else None)
  try:
    builder.download_and_prepare(file_format="array_record",
                                 download_config=download_config)
  except (ValueError, FileNotFoundError, AssertionError) as e:
    # Builders raise ValueError subclasses naming the corpus and its layout.
    print(f"error building {args.name}: {e}", file=sys.stderr)
    return 2
  info = builder.info
  print(f"built {info.full_name} in {builder.data_dir}")
  for split, s in sorted(info.splits.items()):
    print(f"  {split:<16} {s.num_examples:>5} clips")
  return 0


if __name__ == "__main__":
  sys.exit(main())

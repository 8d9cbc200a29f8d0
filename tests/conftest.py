"""Test setup: 8 fake CPU devices, parsed absl flags, a persistent compile cache."""

import os
import sys

# Must be set before jax initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import flags  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

# grain worker processes and absl-using code expect parsed flags.
flags.FLAGS.mark_as_parsed()

jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("MER_JAX_TEST_CACHE",
                                 os.path.join(ROOT, ".pytest_cache", "jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A TFDS data dir shared by the whole session (builds happen once)."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def fdp_ref():
  """The official-FDP reference vectors, reduced widths (tests/data)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  with np.load(os.path.join(ROOT, "tests", "data", "fdp_ref_small.npz")) as f:
    yield {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def fdp_state_dict(fdp_ref):
  """The PyTorch state_dict stored in `fdp_ref` (name -> array)."""
  from mer_jax.models import fdp_official  # pylint: disable=g-import-not-at-top
  return {k: fdp_ref[k] for k in fdp_official.state_dict_keys(fdp_ref)}

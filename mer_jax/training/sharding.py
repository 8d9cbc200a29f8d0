"""Devices: the ('folds', 'data', 'fsdp') mesh and where arrays live on it."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def make_mesh(config: ml_collections.ConfigDict,
              devices: list[Any] | None = None) -> jax.sharding.Mesh:
  """A ('folds', 'data', 'fsdp') mesh over all devices of all processes.

  `devices` defaults to `jax.devices()`; `scripts/aot_compile.py` passes the
  devices of a TPU topology description (compiling without the chips).
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("JAX found no devices: check the jax install (CPU: pip "
                     "install jax) or JAX_PLATFORMS.")
  fsdp, folds = config.mesh.fsdp, config.mesh.folds
  if fsdp < 1 or folds < 1 or len(devices) % (fsdp * folds):
    raise ValueError(f"config.mesh fsdp={fsdp} x folds={folds} must divide the "
                     f"{len(devices)} devices")
  data = (len(devices) // (fsdp * folds) if config.mesh.data in (-1, None)
          else config.mesh.data)
  if data * fsdp * folds > len(devices):
    raise ValueError(f"config.mesh folds={folds} x data={data} x fsdp={fsdp} needs "
                     f"more than the {len(devices)} devices that exist")
  # Auto axis types: explicit sharding would reject the model's reshapes of
  # batch-sharded arrays.
  shape, names = (folds, data, fsdp), ("folds", "data", "fsdp")
  axis_types = (jax.sharding.AxisType.Auto,) * 3
  used = devices[:folds * data * fsdp]
  try:
    return jax.make_mesh(shape, names, axis_types=axis_types, devices=used)
  except (ValueError, NotImplementedError, AssertionError):
    # jax's topology-aware layout (it asserts) wants one device per chip; a TPU v4
    # described per core (2 per chip, e.g. a v4:2x2x1 topology description)
    # is refused: keep the devices in their given order.
    return jax.sharding.Mesh(np.array(used).reshape(shape), names,
                             axis_types=axis_types)


class Sharder:
  """Where arrays live: batches split over all devices, parameters by rule.

  Parameters (and optimizer state of the same shape) are replicated, except,
  with `mesh.fsdp > 1`, leaves of at least `mesh.fsdp_min_size` elements,
  which are split on the 'fsdp' axis along their largest divisible dimension
  (FSDP is a config change, not a code change).
  """

  def __init__(self, mesh: jax.sharding.Mesh, fsdp_min_size: int = 2 ** 14):
    self.mesh = mesh
    self.data = NamedSharding(mesh, P(("data", "fsdp")))
    self.stacked_data = NamedSharding(mesh, P("folds", ("data", "fsdp")))
    self.replicated = NamedSharding(mesh, P())
    self.size = mesh.shape["data"] * mesh.shape["fsdp"]
    self.fsdp = mesh.shape["fsdp"]
    self.fsdp_min_size = fsdp_min_size

  def leaf(self, x) -> NamedSharding:
    shape = getattr(x, "shape", ())
    if self.fsdp == 1 or np.prod(shape, dtype=np.int64) < self.fsdp_min_size:
      return self.replicated
    for axis in np.argsort(shape)[::-1]:
      if shape[axis] % self.fsdp == 0:
        spec = [None] * len(shape)
        spec[axis] = "fsdp"
        return NamedSharding(self.mesh, P(*spec))
    return self.replicated

  def tree(self, tree):
    return jax.tree.map(self.leaf, tree)

  def stacked(self, shardings):
    """Shardings of fold-stacked trees: a leading axis on the 'folds' mesh axis."""
    return jax.tree.map(
        lambda sh: NamedSharding(self.mesh, P("folds", *sh.spec)), shardings)

  def check_batch_size(self, batch_size: int, what: str) -> None:
    if batch_size % self.size:
      raise ValueError(f"config.input.{what}={batch_size} is not divisible by "
                       f"the {self.size} devices of the mesh.")

  def put_batch(self, batch: dict[str, np.ndarray], stacked: bool = False,
                process_local: bool = False) -> dict[str, jax.Array]:
    """Host batch -> global arrays sharded over the mesh's batch axes.

    `process_local`: each process holds its own consecutive `B / n` rows of
    the global batch (training: `pipeline.train_dataset(shard_index=...)`);
    otherwise every process holds the whole global batch (evaluation) and
    feeds its slice. `stacked`: arrays are `[K, B, ...]` (K folds), the batch
    axis is axis 1.
    """
    n, pid = jax.process_count(), jax.process_index()
    sharding = self.stacked_data if stacked else self.data
    axis = int(stacked)

    def put(x):
      if n == 1:
        return jax.device_put(x, sharding)
      if process_local:
        shape = x.shape[:axis] + (x.shape[axis] * n,) + x.shape[axis + 1:]
        return jax.make_array_from_process_local_data(sharding, x, shape)
      local = x.shape[axis] // n
      part = x[:, pid * local:(pid + 1) * local] if stacked else x[pid * local:(pid + 1) * local]
      return jax.make_array_from_process_local_data(sharding, part, x.shape)

    return {k: put(v) for k, v in batch.items()}

  def fetch(self, x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def make_sharder(config: ml_collections.ConfigDict,
                 devices: list[Any] | None = None,
                 batch_sizes: Sequence[str] = ("batch_size", "eval_batch_size")
                 ) -> Sharder:
  """The mesh of `config.mesh` over `devices`; checks `config.input.<batch_sizes>` divide."""
  sharder = Sharder(make_mesh(config, devices), config.mesh.fsdp_min_size)
  for what in batch_sizes:
    sharder.check_batch_size(config.input[what], what)
  return sharder

"""Small pieces shared by the models."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Mean of per-clip `values` `[B]` over the clips with `mask` `[B]` > 0.

  `mask` None = every clip is real. A masked row's value never leaks into
  the result (even inf / nan: `where`, not a product); an all-zero mask
  gives 0.
  """
  if mask is None:
    return jnp.mean(values)
  keep = mask > 0
  mask = mask.astype(values.dtype)
  total = jnp.sum(jnp.where(keep, values * mask, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1.0)

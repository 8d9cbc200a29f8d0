"""What the machine at hand offers: CPU instruction-set flags.

Numbers in this project depend on the CPU kind (README): the same x86 code
runs on cores with AVX-512 and AVX512-BF16 and on cores without them, and
which numerics are fastest differs (`fdp_official.resolve_kwargs`).
"""

from __future__ import annotations

import functools
import platform

# The flags that decide which matmul route is fastest on XLA:CPU.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni")


@functools.lru_cache(maxsize=None)
def cpu_info() -> dict[str, object]:
  """`{"model": str, "flags": {name: bool for CPU_FLAGS}}` from /proc/cpuinfo.

  On a system without /proc/cpuinfo (macOS, Windows) every flag is False
  and the model is `platform.processor()`.
  """
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
          model = value.strip()
        elif key == "flags":
          flags = set(value.split())
          break
  except OSError:
    pass
  return {"model": model, "flags": {n: n in flags for n in CPU_FLAGS}}


def cpu_has_bf16_dots() -> bool:
  """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
  f = cpu_info()["flags"]
  return bool(f["avx512_bf16"] or f["amx_bf16"])

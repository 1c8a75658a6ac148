"""Process-wide JAX settings: the persistent compilation cache and CPU worker flags."""

from __future__ import annotations

import os
from pathlib import Path

# Ray workers share the machine's cores; one Eigen thread each avoids oversubscription.
WORKER_ENV = {
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
}


def cache_dir() -> Path:
    """Returns the folder of the persistent compilation cache.

    `ICRL_CACHE_DIR` overrides it; otherwise `$XDG_CACHE_HOME/icrl/jax` (or `~/.cache`).
    """
    if override := os.environ.get("ICRL_CACHE_DIR"):
        return Path(override) / "jax"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "icrl" / "jax"


def enable_compilation_cache() -> Path:
    """Turns on JAX's persistent compilation cache so reruns and workers reuse programs."""
    import jax

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder

"""Learning-history sources by name: each returns `collect(key, env_params) -> Transition`."""

from __future__ import annotations

from typing import Any, Callable

from icrl.collect.noise_curriculum import Transition, make_noise_curriculum

# Optional columns each source adds to the required ones.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {"noise_curriculum": ("epsilon",)}


def make_source(env: Any, name: str, settings: dict[str, Any]) -> Callable[[Any, Any], Transition]:
    """Returns the collect function of source `name` configured by `settings`."""
    if name == "noise_curriculum":
        if not hasattr(env, "oracle_action"):
            raise ValueError(f"{env.name} has no scripted oracle for the noise curriculum")
        return make_noise_curriculum(
            env,
            episodes=settings["episodes_per_history"],
            epsilon_floor=settings["epsilon_floor"],
            floor_fraction=settings["floor_fraction"],
        )
    raise ValueError(f"unknown source {name!r}")

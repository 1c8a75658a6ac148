"""Learning-history sources by name: each config section becomes a `Learner` for an environment."""

from __future__ import annotations

from typing import Any

from icrl.collect.learner import Learner


def make_source(env: Any, cfg: Any) -> Learner:
    """Returns the Learner of the source config section `cfg` (its `algorithm` picks it) on `env`.

    Raises ValueError when the source cannot run on `env` (the message says why).
    """
    algorithm = cfg.algorithm
    if algorithm == "noise_curriculum":
        from icrl.collect.noise_curriculum import make_noise_curriculum

        teacher = cfg.demonstrator
        demonstrator = None if teacher.algorithm == "oracle" else make_source(env, teacher)
        return make_noise_curriculum(env, cfg, demonstrator=demonstrator)
    if algorithm == "ppo":
        from icrl.collect.ppo import make_train

        return make_train(env, cfg)
    if algorithm == "q_learning":
        from icrl.collect.q_learning import make_train

        return make_train(env, cfg)
    if algorithm in ("thompson", "ucb", "linucb"):
        from icrl.collect import bandit_algorithms

        return getattr(bandit_algorithms, f"make_{algorithm}")(env, cfg)
    if algorithm == "random":
        from icrl.collect.random_policy import make_random

        return make_random(env, cfg)
    raise ValueError(f"unknown source {algorithm!r}")

"""Learning-history sources and the executors (Ray or serial) that run them unit by unit."""

from icrl.collect.executors import RayExecutor, SerialExecutor, make_executor, start_ray
from icrl.collect.noise_curriculum import Transition, linear_epsilon, make_noise_curriculum

__all__ = [
    "RayExecutor", "SerialExecutor", "Transition", "linear_epsilon", "make_executor", "make_noise_curriculum", "start_ray",
]

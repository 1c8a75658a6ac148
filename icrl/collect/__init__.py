"""Learning-history sources and the executors (Ray or serial) that run them unit by unit."""

from icrl.collect.executors import RayExecutor, SerialExecutor, make_executor, start_ray
from icrl.collect.learner import Learner
from icrl.collect.transition import Transition

__all__ = ["Learner", "RayExecutor", "SerialExecutor", "Transition", "make_executor", "make_source", "start_ray"]


def __getattr__(name: str):
    if name == "make_source":  # loads JAX and gymnax: only on use, so a driver can start Ray first
        from icrl.collect.sources import make_source

        return make_source
    raise AttributeError(f"module 'icrl.collect' has no attribute {name!r}")

"""Executors run units of work: on Ray (a local cluster, or one named by address) or serially.

Both take a picklable function and its jobs and yield the results as units finish.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from icrl.errors import IcrlError
from icrl.jax_runtime import WORKER_ENV, cache_dir


class ExecutorError(IcrlError, RuntimeError):
    """An executor that cannot start (no Ray cluster at the address, ...)."""


class SerialExecutor:
    """Runs every job in this process, in order: for tests and debugging."""

    name = "serial"

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        """Yields fn(job) for each job."""
        for job in jobs:
            yield fn(job)

    def close(self) -> None:
        pass

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def worker_runtime_env() -> dict[str, Any]:
    """Returns the Ray runtime_env of icrl workers: CPU JAX, one thread each, the shared compile cache."""
    env_vars = dict(WORKER_ENV)
    env_vars["ICRL_CACHE_DIR"] = str(cache_dir().parent)
    return {"env_vars": env_vars}


def start_ray(*, address: str | None = None, num_cpus: int | None = None) -> None:
    """Starts a local Ray (or joins the cluster at `address`) for icrl workers."""
    import ray

    kwargs: dict[str, Any] = {"runtime_env": worker_runtime_env(), "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)


class RayExecutor:
    """Runs each job as a Ray task; a task whose worker dies is retried `max_retries` times.

    Joins Ray if this process already started it (a test session, a notebook); otherwise
    starts it and shuts it down on close.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3):
        import ray

        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                start_ray(address=address, num_cpus=num_cpus)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray"
                raise ExecutorError(f"cannot start {where}: {err}") from None
        self.max_retries = max_retries

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        """Yields fn(job) for each job, in the order the tasks finish."""
        import ray

        # The runtime_env travels with each task, so workers get it even on a Ray started elsewhere.
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, runtime_env=worker_runtime_env())(fn)
        pending = [remote.remote(job) for job in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as err:  # a failed task, or a worker that died past its retries
                    raise ExecutorError(f"a unit failed on a Ray worker: {err}") from None
                yield result
        finally:
            for ref in pending:  # an error or an interrupt: stop what is still queued
                ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(kind: str, *, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3):
    """Returns the executor named `kind` (`ray` or `serial`)."""
    if kind == "serial":
        return SerialExecutor()
    if kind == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus, max_retries=max_retries)
    raise ValueError(f"unknown executor {kind!r}: use 'ray' or 'serial'")

"""The distillation trainer: windows of learning histories in, an action-predicting model out.

One jitted train step (AdamW, warmup + cosine, gradient clipping), orbax checkpoints with
automatic resume, metrics as JSON lines. The same config and seed give the same run,
interrupted or not: model init and data order both derive from `distill.seed`.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from icrl.atomic import write_text
from icrl.console import progress, say
from icrl.datasets.sampler import WindowSampler
from icrl.distill.checkpoints import CheckpointError, Checkpoints
from icrl.distill.headless import ActionSet, random_action_sets
from icrl.errors import IcrlError

METRICS_FILE = "metrics.jsonl"


class TrainState(NamedTuple):
    step: jax.Array
    params: Any
    opt_state: Any


class DivergenceError(IcrlError, RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


def lr_schedule(distill: Any) -> optax.Schedule:
    """Returns the learning rate per step: linear warmup to the peak, cosine decay to 10% of it."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=distill.learning_rate,
        warmup_steps=distill.warmup_steps,
        decay_steps=distill.steps,
        end_value=distill.learning_rate * 0.1,
    )


def make_optimizer(distill: Any) -> optax.GradientTransformation:
    """Returns AdamW on `lr_schedule(distill)`, after global-norm gradient clipping."""
    return optax.chain(
        optax.clip_by_global_norm(distill.grad_clip),
        optax.adamw(lr_schedule(distill), weight_decay=distill.weight_decay),
    )


def headless(model: Any) -> bool:
    """Returns whether `model` is a headless one (it scores an ActionSet instead of fixed action slots)."""
    return getattr(model, "head", "linear") == "headless"


def make_train_step(model: Any, optimizer: optax.GradientTransformation, *, seed: int):
    """Returns the jitted `train_step(state, batch) -> (state, metrics)`.

    A headless model gets fresh random orthonormal action embeddings for every sequence of
    every batch (from `seed` and the step), and the batch's `available` mask: its loss is the
    contrastive cross-entropy over the available actions, the others at −∞.
    """
    dropout_root = jax.random.fold_in(jax.random.key(seed), 1)
    actions_root = jax.random.fold_in(jax.random.key(seed), 2)

    def loss_fn(params, batch, step):
        kwargs = {}
        if headless(model):
            kwargs["actions"] = random_action_sets(
                jax.random.fold_in(actions_root, step), batch["available"], model.action_embed_dim
            )
        logits = model.apply(
            params, batch["obs"], batch["prev_action"], batch["prev_reward"],
            deterministic=False, rngs={"dropout": jax.random.fold_in(dropout_root, step)}, **kwargs,
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["action"]).mean()
        accuracy = (logits.argmax(-1) == batch["action"]).mean()
        return loss, accuracy

    @jax.jit
    def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, state.step)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "accuracy": accuracy, "grad_norm": optax.tree.norm(grads)}
        return TrainState(state.step + 1, params, opt_state), metrics

    return train_step


def init_state(model: Any, optimizer: optax.GradientTransformation, obs: np.ndarray, *, seed: int) -> TrainState:
    """Returns the step-0 training state for observations like `obs` (one, unbatched).

    The parameters depend only on `seed`.
    """
    obs = np.asarray(obs)[None]
    # A headless model's parameters do not depend on the number of actions: one will do.
    kwargs = {"actions": ActionSet(jnp.eye(1, model.action_embed_dim), jnp.ones(1, bool))} if headless(model) else {}
    params = model.init(jax.random.key(seed), obs, np.zeros(1, np.int32), np.zeros(1, np.float32), **kwargs)
    return TrainState(jnp.int32(0), params, optimizer.init(params))


def _trim_metrics(path: Path, last_step: int) -> dict[str, Any]:
    """Keeps the metric lines up to `last_step` (the checkpoint a run resumes from); returns the last.

    Lines written after that checkpoint, and a line cut short by a kill, are dropped.
    """
    if not path.exists():
        return {}
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("step", last_step + 1) <= last_step:
            kept.append(record)
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept[-1] if kept else {}


def train(model: Any, sampler: WindowSampler, distill: Any, out: Path) -> dict[str, Any]:
    """Trains `model` on `sampler`'s windows per `distill`, checkpointing into `out`; returns a summary.

    Resumes from the newest checkpoint in `out/checkpoints` if there is one.
    """
    optimizer = make_optimizer(distill)
    train_step = make_train_step(model, optimizer, seed=distill.seed)
    state = init_state(model, optimizer, sampler.example_obs, seed=distill.seed)
    checkpoints = Checkpoints(out / "checkpoints")
    metrics_path = out / METRICS_FILE
    start = checkpoints.latest_step()
    if start is not None:
        state = checkpoints.restore(start, state)
        say(f"distill: resuming from the checkpoint of step {start}")
    else:
        start = 0
    last_logged = _trim_metrics(metrics_path, start)
    schedule = lr_schedule(distill)
    tokens_per_step = distill.batch_size * distill.context_length
    last_good = start
    window_start, window_steps = time.monotonic(), 0
    begun = time.monotonic()
    summary: dict[str, Any] = last_logged
    with open(metrics_path, "a") as log, contextlib.closing(checkpoints), contextlib.ExitStack() as stack:
        # Batches are drawn ahead in a background thread while the jitted step runs.
        batches = stack.enter_context(contextlib.closing(sampler.batches(distill.batch_size, start, distill.steps)))
        steps = progress(range(start, distill.steps), total=distill.steps, initial=start, desc="distill", unit="step")
        for step, batch in zip(steps, batches):
            state, metrics = train_step(state, batch)
            done = step + 1
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                kept = f"the last good checkpoint (step {last_good}) is kept" if last_good else "no checkpoint was written yet"
                raise DivergenceError(f"distill: the loss became {loss} at step {done}; {kept} in {checkpoints.folder}")
            window_steps += 1
            if done % distill.log_every == 0 or done == distill.steps:
                elapsed = time.monotonic() - window_start
                summary = {
                    "step": done,
                    **{k: round(float(v), 6) for k, v in metrics.items()},
                    "learning_rate": float(schedule(done)),
                    "transitions_per_s": round(window_steps * tokens_per_step / elapsed, 1),
                    "elapsed_s": round(time.monotonic() - begun, 2),
                }
                log.write(json.dumps(summary) + "\n")
                log.flush()
                window_start, window_steps = time.monotonic(), 0
            if done % distill.checkpoint_every == 0 or done == distill.steps:
                checkpoints.save(done, state)
                last_good = done
    return {"steps": distill.steps, "final": summary, "resumed_from": start or None}


def load_params(out: Path, model: Any, distill: Any, obs: np.ndarray) -> tuple[int, Any]:
    """Returns (step, params) of the newest checkpoint in `out/checkpoints` of `model`.

    `distill` is the config the model was trained with, `obs` one observation.
    """
    like = jax.eval_shape(lambda: init_state(model, make_optimizer(distill), obs, seed=0))
    checkpoints = Checkpoints(out / "checkpoints")
    try:
        step = checkpoints.latest_step()
        if step is None:
            raise CheckpointError(f"{out / 'checkpoints'}: no checkpoint to evaluate")
        return step, checkpoints.restore(step, like).params
    finally:
        checkpoints.close()


__all__ = [
    "DivergenceError", "TrainState", "headless", "init_state", "load_params", "lr_schedule", "make_optimizer", "make_train_step", "train",
]

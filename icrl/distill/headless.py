"""Headless-AD's action handling: actions as random orthonormal embeddings, scored by dot product.

A headless model has no output layer per action. Each action of a task enters as a vector of
an orthonormal set (drawn afresh for every training sequence, fixed and seeded at
evaluation), the available actions are listed as prompt tokens at the start of the context,
and the model outputs one vector per step: an action's logit is that vector's dot product
with the action's embedding. Nothing ties the model to an action count or to what an
action index means, so one model can act with more actions than it trained on, with
permuted actions or with actions it has never seen.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class ActionSet(NamedTuple):
    """The actions a headless model chooses among: embeddings [..., A, D] and which are available, bool [..., A]."""

    embeddings: jax.Array
    available: jax.Array

    @property
    def size(self) -> int:
        return self.embeddings.shape[-2]


def orthonormal_rows(key: jax.Array, count: int, dim: int) -> jax.Array:
    """Returns `count` random orthonormal vectors in R^dim, float32 [count, dim] (needs count <= dim).

    Gram-Schmidt on Gaussian rows: the rows are uniform on the sphere and mutually
    orthogonal. (A batched `jnp.linalg.qr` under vmap can stall XLA on small CPUs.)
    """
    if count > dim:
        raise ValueError(f"cannot draw {count} orthonormal vectors in {dim} dimensions")
    rows = jax.random.normal(key, (count, dim), jnp.float32)

    def orthogonalise(i, rows):
        earlier = jnp.where((jnp.arange(count) < i)[:, None], rows, 0.0)
        v = rows[i]
        for _ in range(2):  # projecting twice keeps float32 rows orthogonal to round-off
            v = v - earlier.T @ (earlier @ v)
        return rows.at[i].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, count, orthogonalise, rows)


def random_action_sets(key: jax.Array, available: jax.Array, dim: int) -> ActionSet:
    """Returns an ActionSet per row of `available` [B, A], each with its own orthonormal embeddings."""
    keys = jax.random.split(key, available.shape[0])
    embeddings = jax.vmap(lambda k: orthonormal_rows(k, available.shape[-1], dim))(keys)
    return ActionSet(embeddings, available)


def fixed_action_set(available: jax.Array, dim: int, *, key: jax.Array) -> ActionSet:
    """Returns an evaluation ActionSet for the mask `available` [A]: orthonormal embeddings drawn from `key`.

    The set stays fixed for a whole rollout; each rollout draws its own from its seeded key.
    """
    return ActionSet(orthonormal_rows(key, available.shape[-1], dim), available)


class ActionTokens(nn.Module):
    """Embeds what a headless model reads about actions: previous actions and the prompt listing the set.

    `prev_action` indexes the set; an index past its end (the dataset's marker for a
    history's first step) embeds as a learned "no previous action" vector. The prompt is one
    token per action of the set, or with `summary` a single token: the offered actions'
    projected embeddings summed and divided by √count (for a recurrence, which would read a
    list in order), so its scale does not grow with the number of actions.
    """

    dim: int
    summary: bool = False

    @nn.compact
    def __call__(self, prev_action: jax.Array, actions: ActionSet) -> tuple[jax.Array, jax.Array]:
        """Returns (previous-action embeddings [..., n, dim], prompt tokens [..., A or 1, dim])."""
        project = nn.Dense(self.dim, use_bias=False, name="action")
        index = jnp.minimum(prev_action, actions.size - 1)
        chosen = jnp.take_along_axis(actions.embeddings, index[..., None], axis=-2)  # [..., n, D]
        start = self.param("no_previous_action", nn.initializers.normal(0.02), (self.dim,))
        e_chosen = project(chosen)
        e_prev = jnp.where((prev_action >= actions.size)[..., None], jnp.broadcast_to(start, e_chosen.shape), e_chosen)
        prompt_type = self.param("prompt", nn.initializers.normal(0.02), (self.dim,))
        prompt = project(actions.embeddings)
        if self.summary:
            available = actions.available[..., None]
            count = jnp.maximum(available.sum(-2, keepdims=True), 1).astype(jnp.float32)
            prompt = jnp.where(available, prompt, 0.0).sum(-2, keepdims=True) / jnp.sqrt(count)  # [..., 1, dim]
        return e_prev, prompt + jnp.broadcast_to(prompt_type, prompt.shape)


def prepend_prompt(prompt: jax.Array, x: jax.Array) -> jax.Array:
    """Returns the token sequence `x` [..., n, dim] with the prompt tokens [..., P, dim] (or unbatched [P, dim]) in front."""
    return jnp.concatenate([jnp.broadcast_to(prompt, x.shape[:-2] + prompt.shape[-2:]), x], axis=-2)


class HeadlessHead(nn.Module):
    """Scores every action of the set: logit_a = out · e_a, −∞ for unavailable actions."""

    embed_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, actions: ActionSet) -> jax.Array:
        out = nn.Dense(self.embed_dim, name="head")(nn.LayerNorm()(x))  # [..., n, D]
        logits = jnp.einsum("...nd,...ad->...na", out, actions.embeddings)
        return jnp.where(actions.available[..., None, :], logits, -jnp.inf)


__all__ = [
    "ActionSet", "ActionTokens", "HeadlessHead", "fixed_action_set", "orthonormal_rows", "prepend_prompt", "random_action_sets",
]

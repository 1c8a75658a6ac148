"""A causal Transformer over learning histories: one token per transition, predicts the action.

`Transformer` is the network. `TransformerPolicy` runs it one environment step at a time
with a key/value cache, re-reading the last half of the context whenever the cache is full,
so every prediction sees a window exactly like the windows it was trained on.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from icrl.distill.headless import ActionSet, ActionTokens, HeadlessHead, prepend_prompt


class TransitionEmbedding(nn.Module):
    """Embeds a transition as embed(obs) + embed(previous action) + embed(previous reward).

    `prev_action == num_actions` marks the first step of a history (there is no previous
    action). Discrete observations (`num_obs` set) use a lookup table, vectors a projection.
    """

    num_actions: int
    dim: int
    num_obs: int | None = None

    @nn.compact
    def __call__(
        self, obs: jax.Array, prev_action: jax.Array, prev_reward: jax.Array, e_act: jax.Array | None = None
    ) -> jax.Array:
        """`e_act`, when given, replaces the lookup of `prev_action` (a headless model embeds actions itself)."""
        if self.num_obs is not None:
            e_obs = nn.Embed(self.num_obs, self.dim, name="obs")(obs)
        else:
            e_obs = nn.Dense(self.dim, name="obs")(obs.astype(jnp.float32))
        if e_act is None:
            e_act = nn.Embed(self.num_actions + 1, self.dim, name="prev_action")(prev_action)
        e_rew = nn.Dense(self.dim, name="prev_reward")(prev_reward[..., None].astype(jnp.float32))
        return e_obs + e_act + e_rew


class KVCache(NamedTuple):
    """Keys and values of one attention layer, [..., capacity, heads, head_dim] each."""

    k: jax.Array
    v: jax.Array


def rotary(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rotates feature pairs of `x` [..., n, heads, d] by angles proportional to `positions` [n] (RoPE).

    Attention scores between rotated queries and keys then depend only on relative position.
    """
    half = x.shape[-1] // 2
    freq = 1.0 / (10_000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
    angle = positions[:, None].astype(jnp.float32) * freq[None, :]  # [n, half]
    shape = (1,) * (x.ndim - 3) + (angle.shape[0], 1, half)  # broadcast over batch and heads
    cos, sin = jnp.cos(angle).reshape(shape), jnp.sin(angle).reshape(shape)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class CausalSelfAttention(nn.Module):
    num_heads: int
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool, cache: KVCache | None = None, start: jax.Array | int = 0,
        prefix: int = 0, key_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """`prefix` slots at the front hold a prompt, a set: they all sit at position 0 and
        see each other, and the tokens after them sit at positions 1, 2, ..., so nothing
        depends on the prompt's order or length. `key_mask` [..., slots] hides slots (a
        prompt's padding) from every query but their own."""
        n, dim = x.shape[-2], x.shape[-1]
        head_dim = dim // self.num_heads
        qkv = nn.DenseGeneral((3, self.num_heads, head_dim), name="qkv")(x)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        query_slot = start + jnp.arange(n)
        position = jnp.maximum(query_slot - prefix + 1, 0) if prefix else query_slot
        q, k = rotary(q, position), rotary(k, position)
        if cache is not None:  # the new tokens sit at slots start..start+n-1 of the cache
            k = jax.lax.dynamic_update_slice_in_dim(cache.k, k, start, axis=-3)
            v = jax.lax.dynamic_update_slice_in_dim(cache.v, v, start, axis=-3)
            cache = KVCache(k, v)
        key_slot = jnp.arange(k.shape[-3])
        visible = key_slot[None, :] <= query_slot[:, None]
        if prefix:  # the prompt is a set: its tokens see each other whatever their order
            visible = visible | ((key_slot[None, :] < prefix) & (query_slot[:, None] < prefix))
        if key_mask is not None:
            own = key_slot[None, :] == query_slot[:, None]  # a query always sees itself: no empty softmax
            lead = key_mask.shape[:-1]
            visible = jnp.broadcast_to(visible, lead + visible.shape) & key_mask[..., None, :]
            visible = (visible | jnp.broadcast_to(own, lead + own.shape))[..., None, :, :]  # [..., heads, q, k]
        logits = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(float(head_dim))
        weights = jax.nn.softmax(jnp.where(visible, logits, -jnp.inf), axis=-1)
        weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("...hqk,...khd->...qhd", weights, v)
        return nn.DenseGeneral(dim, axis=(-2, -1), name="out")(out), cache


class Block(nn.Module):
    num_heads: int
    mlp_ratio: int
    dropout: float

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool, cache: KVCache | None, start: jax.Array | int,
        prefix: int = 0, key_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        dim = x.shape[-1]
        h, cache = CausalSelfAttention(self.num_heads, self.dropout)(
            nn.LayerNorm()(x), deterministic=deterministic, cache=cache, start=start, prefix=prefix, key_mask=key_mask
        )
        x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
        h = nn.Dense(self.mlp_ratio * dim)(nn.LayerNorm()(x))
        h = nn.Dense(dim)(nn.gelu(h))
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic), cache


class Transformer(nn.Module):
    """Maps n transitions [..., n] to action logits [..., n, num_actions].

    Position t sees transitions 0..t only, so every position is a training target. With a
    `cache` (one KVCache per layer), the transitions sit at positions start..start+n-1
    after those already cached, and the updated cache is returned beside the logits.

    With `head: headless`, `actions` (an ActionSet) lists the actions: their prompt tokens
    come first (cache slots 0..A-1; `read_prompt=False` when they are cached already) and
    the logits are [..., n, A], one per action of the set, −∞ where unavailable.
    """

    num_actions: int
    context_length: int
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    num_obs: int | None = None
    head: str = "linear"
    action_embed_dim: int = 64

    @nn.compact
    def __call__(
        self,
        obs: jax.Array,
        prev_action: jax.Array,
        prev_reward: jax.Array,
        *,
        deterministic: bool = True,
        cache: tuple[KVCache, ...] | None = None,
        start: jax.Array | int = 0,
        actions: ActionSet | None = None,
        read_prompt: bool = True,
    ) -> Any:
        prefix, key_mask = 0, None
        if self.head == "headless":
            if actions is None:
                raise ValueError("a headless model needs the action set (actions=)")
            e_act, prompt = ActionTokens(self.dim)(prev_action, actions)
            x = TransitionEmbedding(self.num_actions, self.dim, self.num_obs)(obs, prev_action, prev_reward, e_act)
            prefix = actions.size
            if read_prompt:
                x = prepend_prompt(prompt, x)
            if cache is None and not read_prompt:
                raise ValueError("without a cache the prompt must be read (read_prompt=True)")
            slots = x.shape[-2] if cache is None else cache[0].k.shape[-3]
            pad = jnp.ones(actions.available.shape[:-1] + (slots - prefix,), bool)
            key_mask = jnp.concatenate([actions.available, pad], axis=-1)
        else:
            x = TransitionEmbedding(self.num_actions, self.dim, self.num_obs)(obs, prev_action, prev_reward)
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        new_cache = []
        for i in range(self.num_layers):
            x, layer_cache = Block(self.num_heads, self.mlp_ratio, self.dropout)(
                x, deterministic=deterministic, cache=None if cache is None else cache[i], start=start,
                prefix=prefix, key_mask=key_mask,
            )
            new_cache.append(layer_cache)
        if self.head == "headless":
            if read_prompt:
                x = x[..., prefix:, :]
            logits = HeadlessHead(self.action_embed_dim)(x, actions)
        else:
            logits = nn.Dense(self.num_actions, name="head")(nn.LayerNorm()(x))
        return logits if cache is None else (logits, tuple(new_cache))

    def empty_cache(self, prefix: int = 0) -> tuple[KVCache, ...]:
        """Returns a zeroed cache for one sequence of a `prefix`-token prompt and up to `context_length` transitions."""
        shape = (prefix + self.context_length, self.num_heads, self.dim // self.num_heads)
        return tuple(KVCache(jnp.zeros(shape), jnp.zeros(shape)) for _ in range(self.num_layers))


class PolicyState(NamedTuple):
    tokens: tuple[jax.Array, jax.Array, jax.Array]  # the window's raw transitions, [L] each
    cache: tuple[KVCache, ...]
    actions: ActionSet | None = None  # a headless model's action set, its prompt in the first cache slots


class TransformerPolicy:
    """Steps a frozen Transformer through an unbounded stream of transitions, one at a time.

    When the window of `context_length` is full, the oldest `stride` transitions are
    dropped and the remaining ones are re-read in one pass (a prefill), so each prediction
    conditions on between `context_length - stride` and `context_length` transitions, the
    same computation as the full model on that window. A headless model's prompt stays in
    front of the window all along.
    """

    def __init__(self, model: Transformer, *, stride: int | None = None):
        self.model = model
        self.length = model.context_length
        self.stride = stride or max(self.length // 2, 1)
        self.keep = self.length - self.stride

    def init(self, params: Any, obs: jax.Array, actions: ActionSet | None = None) -> PolicyState:
        """Returns the state before the first transition, for observations shaped and typed like `obs`.

        A headless model reads the prompt of `actions` here.
        """
        tokens = (
            jnp.zeros((self.length,) + obs.shape, obs.dtype),
            jnp.zeros((self.length,), jnp.int32),
            jnp.zeros((self.length,), jnp.float32),
        )
        if self.model.head != "headless":
            return PolicyState(tokens, self.model.empty_cache())
        none = jax.tree.map(lambda buf: buf[:0], tokens)
        _, cache = self.model.apply(params, *none, cache=self.model.empty_cache(actions.size), start=0, actions=actions)
        return PolicyState(tokens, cache, actions)

    def _prefix(self, state: PolicyState) -> int:
        return 0 if state.actions is None else state.actions.size

    def position(self, t: jax.Array) -> jax.Array:
        """Returns the window position of the t-th transition of the stream."""
        wrapped = self.keep + (t - self.length) % self.stride
        return jnp.where(t < self.length, t, wrapped)

    def _slide(self, params: Any, state: PolicyState) -> PolicyState:
        tokens = jax.tree.map(lambda buf: jnp.roll(buf, -self.stride, axis=0), state.tokens)
        kept = jax.tree.map(lambda buf: buf[: self.keep], tokens)
        prefix = self._prefix(state)
        # The prompt's slots are kept; stale slots after the kept tokens are hidden by causality.
        cache = state.cache if prefix else self.model.empty_cache()
        _, cache = self.model.apply(
            params, *kept, cache=cache, start=prefix, actions=state.actions, read_prompt=False
        )
        return PolicyState(tokens, cache, state.actions)

    def step(self, params: Any, state: PolicyState, token: tuple, t: jax.Array) -> tuple[jax.Array, PolicyState]:
        """Appends transition `token` = (obs, prev_action, prev_reward), the t-th of the stream.

        Returns the action logits for it and the new state. `t` must not be batched (it is
        the same for every stream in a vmap), so the slide runs only when the window is full.
        """
        full = (t >= self.length) & ((t - self.length) % self.stride == 0)
        state = jax.lax.cond(full, self._slide, lambda _, s: s, params, state)
        pos = self.position(t)
        tokens = jax.tree.map(lambda buf, x: buf.at[pos].set(x), state.tokens, token)
        one = jax.tree.map(lambda x: jnp.asarray(x)[None], token)
        logits, cache = self.model.apply(
            params, *one, cache=state.cache, start=self._prefix(state) + pos, actions=state.actions, read_prompt=False
        )
        return logits[0], PolicyState(tokens, cache, state.actions)

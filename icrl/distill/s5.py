"""S5: a stack of diagonal state-space layers over learning histories, one token per transition.

Each layer keeps a complex diagonal state x (initialised from HiPPO-LegS, half of each
conjugate pair kept, output 2·Re(C x)) discretised by zero-order hold with learnable
timescales: x_k = Λ̄ x_{k-1} + B̄ u_k. A *reset* at step k (the first step of a new learning
history) drops everything before k: x_k = B̄ u_k. Episode ends inside a history never reset.

The recurrence runs as a sequential `lax.scan` or, with the resettable associative operator
on elements (Λ̄, B̄u_k, reset_k), as a parallel `lax.associative_scan`; both give the same
states. `S5Policy` steps the model one transition at a time in O(1) time and memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icrl.distill.headless import ActionSet, ActionTokens, HeadlessHead, prepend_prompt
from icrl.distill.transformer import TransitionEmbedding

SCANS = ("auto", "parallel", "sequential")


def resolve_scan(scan: str) -> str:
    """Returns the scan to use: `auto` is sequential on CPUs (faster there) and parallel on accelerators."""
    if scan not in SCANS:
        raise ValueError(f"unknown scan {scan!r}; use one of {', '.join(SCANS)}")
    if scan == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "parallel"
    return scan


def hippo_legs_diagonal(state_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (eigenvalues, eigenvectors) of the normal part of HiPPO-LegS of size `state_size`.

    The normal part is -1/2·I plus a skew-symmetric matrix, so every eigenvalue has real part
    -1/2; they come in conjugate pairs.
    """
    n = np.arange(state_size)
    p = np.sqrt(n + 0.5)
    below = np.tril(np.outer(p, p), -1)
    skew = below.T - below  # S_nk = -p_n p_k below the diagonal, +p_n p_k above
    imag, vectors = np.linalg.eigh(-1j * skew)  # skew is anti-Hermitian: -i·skew is Hermitian
    return -0.5 + 1j * imag, vectors


def combine(earlier: tuple, later: tuple) -> tuple:
    """The resettable associative operator on scan elements (a, b, reset): applies `earlier`, then `later`.

    A reset in `later` drops everything before it; otherwise the affine maps compose.
    """
    a_i, b_i, r_i = earlier
    a_j, b_j, r_j = later
    return (
        jnp.where(r_j, a_j, a_j * a_i),
        jnp.where(r_j, b_j, a_j * b_i + b_j),
        jnp.logical_or(r_i, r_j),
    )


def linear_recurrence(
    a: jax.Array, bu: jax.Array, reset: jax.Array, x0: jax.Array, *, scan: str
) -> jax.Array:
    """Returns the states x [..., L, P] of x_k = a_k x_{k-1} + bu_k (x_k = bu_k where reset_k), x_{-1} = x0.

    `a` and `bu` are [..., L, P], `reset` [..., L], `x0` [..., P]. `scan` is parallel or sequential.
    """
    a = jnp.broadcast_to(a, bu.shape)
    reset = reset[..., None]
    if scan == "parallel":
        cum_a, cum_b, seen_reset = jax.lax.associative_scan(combine, (a, bu, reset), axis=bu.ndim - 2)
        return cum_b + jnp.where(seen_reset, 0, cum_a * x0[..., None, :])

    def step(x, inputs):
        a_k, bu_k, r_k = inputs
        x = jnp.where(r_k, bu_k, a_k * x + bu_k)
        return x, x

    time_first = [jnp.moveaxis(v, -2, 0) for v in (a, bu, reset)]
    _, xs = jax.lax.scan(step, x0, time_first)
    return jnp.moveaxis(xs, 0, -2)


class S5Layer(nn.Module):
    """One S5 state-space layer: H features in and out, `state_size` complex states (P/2 kept)."""

    state_size: int
    scan: str = "sequential"
    dt_min: float = 0.001
    dt_max: float = 0.1

    @nn.compact
    def __call__(self, u: jax.Array, reset: jax.Array, x0: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        features = u.shape[-1]
        eigenvalues, vectors = hippo_legs_diagonal(self.state_size)
        half = self.state_size // 2
        order = np.argsort(eigenvalues.imag)[::-1][:half]  # one of each conjugate pair
        lam_init, v = eigenvalues[order], vectors[:, order]
        lam_re = self.param("lambda_re", lambda _: jnp.asarray(lam_init.real, jnp.float32))
        lam_im = self.param("lambda_im", lambda _: jnp.asarray(lam_init.imag, jnp.float32))
        v_inv = np.conj(v).T  # V is unitary

        # B and C are drawn in the HiPPO basis and expressed in the eigenbasis: B̃ = V⁻¹B, C̃ = CV.
        def projected_b(key):
            b = nn.initializers.lecun_normal()(key, (self.state_size, features))
            bt = jnp.asarray(v_inv, jnp.complex64) @ b.astype(jnp.complex64)
            return jnp.stack([bt.real, bt.imag], -1)

        def projected_c(key):
            c = nn.initializers.normal(stddev=0.5**0.5)(key, (features, self.state_size, 2))
            ct = (c[..., 0] + 1j * c[..., 1]).astype(jnp.complex64) @ jnp.asarray(v, jnp.complex64)
            return jnp.stack([ct.real, ct.imag], -1)

        b = self.param("B", projected_b)
        c = self.param("C", projected_c)
        d = self.param("D", nn.initializers.normal(1.0), (features,))
        log_dt = self.param(
            "log_dt",
            lambda key: jax.random.uniform(key, (half,), minval=np.log(self.dt_min), maxval=np.log(self.dt_max)),
        )
        lam = jnp.minimum(lam_re, -1e-4) + 1j * lam_im  # keep the state stable
        b_tilde = b[..., 0] + 1j * b[..., 1]
        c_tilde = c[..., 0] + 1j * c[..., 1]
        dt = jnp.exp(log_dt)
        lam_bar = jnp.exp(lam * dt)  # zero-order hold
        b_bar = ((lam_bar - 1) / lam)[:, None] * b_tilde
        bu = jnp.einsum("ph,...lh->...lp", b_bar, u.astype(jnp.complex64))
        if x0 is None:
            x0 = jnp.zeros(bu.shape[:-2] + (half,), jnp.complex64)
        xs = linear_recurrence(lam_bar, bu, reset, x0, scan=self.scan)
        y = 2 * jnp.einsum("hp,...lp->...lh", c_tilde, xs).real + u * d.reshape((1,) * (u.ndim - 1) + (-1,))
        return y, xs[..., -1, :]


def timescales(context_length: int) -> tuple[float, float]:
    """Returns the (dt_min, dt_max) range the timesteps are drawn from, matched to the training context.

    S5's usual range, [0.001, 0.1], suits sequences of thousands of steps. On shorter
    contexts its slowest states act as integrators that never decay within a training
    window, so a model run for longer than it was trained on (evaluation across many
    episodes) drives them beyond anything it has seen. With dt_min = 4 / context the
    slowest state starts out decaying by e^-2 within one context (every eigenvalue's real
    part starts at -1/2), so a long run stays in the range of states training saw. This holds
    at initialisation and for contexts of 40 or more (dt_min is capped at 0.1); training may
    move the timesteps and eigenvalues.
    """
    dt_min = min(max(4.0 / context_length, 0.001), 0.1)
    return dt_min, max(0.1, 10 * dt_min)


class S5Block(nn.Module):
    """LayerNorm, S5, GELU, gated linear unit, dropout, residual."""

    state_size: int
    scan: str
    dropout: float
    dt_min: float = 0.001
    dt_max: float = 0.1

    @nn.compact
    def __call__(self, x, reset, x0, *, deterministic: bool):
        h, last = S5Layer(self.state_size, self.scan, self.dt_min, self.dt_max)(nn.LayerNorm()(x), reset, x0)
        h = nn.gelu(h)
        h = nn.Dense(x.shape[-1])(h) * jax.nn.sigmoid(nn.Dense(x.shape[-1])(h))
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic), last


class S5(nn.Module):
    """Maps n transitions [..., n] to action logits [..., n, num_actions], like the Transformer.

    The recurrent state resets where a learning history starts (`prev_action == num_actions`).
    With `state` (one complex vector per layer), the transitions continue from it and the new
    state is returned beside the logits.

    With `head: headless`, `actions` (an ActionSet) lists the actions: the sequence starts
    with one prompt token summarising the offered actions (`ActionTokens(summary=True)`), so
    that the recurrence reads the set without an order (`read_prompt=False` when the state has
    read it already). Nothing resets after the prompt. The logits are [..., n, A], one per
    action of the set, −∞ where unavailable.
    """

    num_actions: int
    context_length: int
    dim: int = 64
    num_layers: int = 2
    state_size: int = 64
    dropout: float = 0.0
    num_obs: int | None = None
    scan: str = "auto"
    head: str = "linear"
    action_embed_dim: int = 64

    @nn.compact
    def __call__(
        self, obs: jax.Array, prev_action: jax.Array, prev_reward: jax.Array, *, deterministic: bool = True,
        state: tuple[jax.Array, ...] | None = None, actions: ActionSet | None = None, read_prompt: bool = True,
    ) -> Any:
        if self.head == "headless":
            if actions is None:
                raise ValueError("a headless model needs the action set (actions=)")
            e_act, prompt = ActionTokens(self.dim, summary=True)(prev_action, actions)
            x = TransitionEmbedding(self.num_actions, self.dim, self.num_obs)(obs, prev_action, prev_reward, e_act)
            if read_prompt:
                x = prepend_prompt(prompt, x)
            reset = jnp.zeros(x.shape[:-1], bool)
        else:
            x = TransitionEmbedding(self.num_actions, self.dim, self.num_obs)(obs, prev_action, prev_reward)
            reset = prev_action == self.num_actions
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        scan = resolve_scan(self.scan)
        dt_min, dt_max = timescales(self.context_length)
        last = []
        for i in range(self.num_layers):
            x, x_last = S5Block(self.state_size, scan, self.dropout, dt_min, dt_max)(
                x, reset, None if state is None else state[i], deterministic=deterministic
            )
            last.append(x_last)
        if self.head == "headless":
            if read_prompt:
                x = x[..., 1:, :]
            logits = HeadlessHead(self.action_embed_dim)(x, actions)
        else:
            logits = nn.Dense(self.num_actions, name="head")(nn.LayerNorm()(x))
        return logits if state is None else (logits, tuple(last))

    def empty_state(self) -> tuple[jax.Array, ...]:
        """Returns the zero state of one sequence."""
        return tuple(jnp.zeros((self.state_size // 2,), jnp.complex64) for _ in range(self.num_layers))


class S5PolicyState(NamedTuple):
    state: tuple[jax.Array, ...]
    actions: ActionSet | None = None  # a headless model's action set (its prompt is read into the state)


class S5Policy:
    """Steps a frozen S5 through an unbounded stream of transitions: O(1) time and memory per step, no window."""

    def __init__(self, model: S5):
        self.model = model

    def init(self, params: Any, obs: jax.Array, actions: ActionSet | None = None) -> S5PolicyState:
        """Returns the state before the first transition; a headless model reads the prompt of `actions` here."""
        if self.model.head != "headless":
            return S5PolicyState(self.model.empty_state())
        none = (jnp.zeros((0,) + obs.shape, obs.dtype), jnp.zeros((0,), jnp.int32), jnp.zeros((0,), jnp.float32))
        _, state = self.model.apply(params, *none, state=self.model.empty_state(), actions=actions)
        return S5PolicyState(state, actions)

    def step(self, params: Any, state: S5PolicyState, token: tuple, t: jax.Array) -> tuple[jax.Array, S5PolicyState]:
        """Appends transition `token` = (obs, prev_action, prev_reward); returns its action logits and the new state."""
        one = jax.tree.map(lambda x: jnp.asarray(x)[None], token)
        logits, new = self.model.apply(params, *one, state=state.state, actions=state.actions, read_prompt=False)
        return logits[0], S5PolicyState(new, state.actions)

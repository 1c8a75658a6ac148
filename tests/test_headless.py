"""Headless-AD models: orthonormal action embeddings, the prompt, stepping, and indifference to action order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.config import DistillConfig
from icrl.distill.headless import (
    ActionSet,
    fixed_action_set,
    orthonormal_rows,
    random_action_sets,
)
from icrl.distill.s5 import S5, S5Policy
from icrl.distill.trainer import init_state, make_optimizer, make_train_step
from icrl.distill.transformer import Transformer, TransformerPolicy

L, A, D = 10, 6, 16


def _model(kind, **kw):
    common = {"num_actions": A, "context_length": L, "dim": 16, "num_layers": 2, "num_obs": 3, "head": "headless",
              "action_embed_dim": D}
    if kind == "transformer":
        return Transformer(num_heads=2, **common, **kw), TransformerPolicy
    return S5(state_size=8, scan="sequential", **common, **kw), S5Policy


@pytest.fixture(scope="module", params=["transformer", "s5"])
def headless(request):
    model, policy = _model(request.param)
    params = init_state(model, make_optimizer(DistillConfig(steps=10, warmup_steps=1)), np.int32(0), seed=0).params
    return model, policy, params


def _stream(n, *, arms=A, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.randint(keys[0], (n,), 0, 3),
        jax.random.randint(keys[1], (n,), 0, arms),
        jax.random.bernoulli(keys[2], 0.4, (n,)).astype(jnp.float32),
    )


def test_orthonormal_rows_are_orthonormal_and_differ_per_key():
    e = orthonormal_rows(jax.random.key(0), 50, 64)
    np.testing.assert_allclose(e @ e.T, np.eye(50), atol=1e-5)
    assert not np.allclose(e, orthonormal_rows(jax.random.key(1), 50, 64))
    sets = random_action_sets(jax.random.key(0), jnp.ones((3, 5), bool), 8)
    assert sets.embeddings.shape == (3, 5, 8) and not np.allclose(sets.embeddings[0], sets.embeddings[1])
    with pytest.raises(ValueError, match="cannot draw 9 orthonormal vectors in 8"):
        orthonormal_rows(jax.random.key(0), 9, 8)


def test_fixed_action_set_depends_only_on_the_key_and_size():
    mask = jnp.arange(A) < 4
    key = jax.random.key(3)
    a, b = fixed_action_set(mask, D, key=key), fixed_action_set(jnp.ones(A, bool), D, key=key)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert not np.allclose(a.embeddings, fixed_action_set(mask, D, key=jax.random.key(4)).embeddings)


def test_unavailable_actions_score_minus_infinity(headless):
    model, _, params = headless
    actions = fixed_action_set(jnp.arange(A) < 4, D, key=jax.random.key(0))
    logits = model.apply(params, *_stream(L, arms=4), actions=actions)
    assert logits.shape == (L, A)
    assert np.all(np.isneginf(logits[:, 4:])) and np.all(np.isfinite(logits[:, :4]))


def test_permuting_the_actions_permutes_the_logits(headless):
    """The model never sees an action's index: relabelling the actions relabels its choice."""
    model, _, params = headless
    obs, act, rew = _stream(L, arms=5)
    act = act.at[0].set(A)  # a history's first step: no previous action
    actions = fixed_action_set(jnp.arange(A) < 5, D, key=jax.random.key(1))
    perm = jnp.array([3, 0, 4, 1, 2, 5])  # new index i holds old action perm[i]
    inverse = jnp.argsort(perm)
    permuted = ActionSet(actions.embeddings[perm], actions.available[perm])
    relabelled = jnp.where(act < A, inverse[jnp.minimum(act, A - 1)], A)
    logits = model.apply(params, obs, act, rew, actions=actions)
    again = model.apply(params, obs, relabelled, rew, actions=permuted)
    np.testing.assert_allclose(again, logits[:, perm], atol=2e-5)


def test_padding_slots_change_nothing(headless):
    """A task with 4 arms gives the same scores whether the set has 4 slots or 6 (2 of them padding)."""
    model, _, params = headless
    obs, act, rew = _stream(L, arms=4)
    six = fixed_action_set(jnp.arange(A) < 4, D, key=jax.random.key(2))
    four = ActionSet(six.embeddings[:4], jnp.ones(4, bool))
    padded = model.apply(params, obs, act, rew, actions=six)
    np.testing.assert_allclose(model.apply(params, obs, act, rew, actions=four), padded[:, :4], atol=2e-5)


def test_the_prompt_tells_the_model_which_actions_exist(headless):
    model, _, params = headless
    obs, act, rew = _stream(L, arms=3)
    actions = fixed_action_set(jnp.ones(A, bool), D, key=jax.random.key(0))
    fewer = actions._replace(available=jnp.arange(A) < 5)
    a = model.apply(params, obs, act, rew, actions=actions)
    b = model.apply(params, obs, act, rew, actions=fewer)
    assert not np.allclose(a[:, :5], b[:, :5])  # the same arms, scored differently: the listed set matters


def test_stepping_equals_the_whole_sequence(headless):
    model, policy_cls, params = headless
    policy = policy_cls(model)
    n = L if isinstance(model, Transformer) else 3 * L  # S5 has no window: any length
    obs, act, rew = _stream(n, arms=5)
    act = act.at[0].set(A)
    actions = fixed_action_set(jnp.arange(A) < 5, D, key=jax.random.key(0))
    state, step = policy.init(params, obs[0], actions), jax.jit(policy.step)
    stepped = []
    for t in range(n):
        logits, state = step(params, state, (obs[t], act[t], rew[t]), jnp.int32(t))
        stepped.append(logits)
    np.testing.assert_allclose(jnp.stack(stepped), model.apply(params, obs, act, rew, actions=actions), atol=2e-5)


def test_a_sliding_window_keeps_the_prompt():
    model, _ = _model("transformer")
    params = init_state(model, make_optimizer(DistillConfig(steps=10, warmup_steps=1)), np.int32(0), seed=1).params
    policy = TransformerPolicy(model, stride=4)
    obs, act, rew = _stream(3 * L, arms=5, seed=2)
    actions = fixed_action_set(jnp.arange(A) < 5, D, key=jax.random.key(0))
    state, step = policy.init(params, obs[0], actions), jax.jit(policy.step)
    for t in range(3 * L):
        logits, state = step(params, state, (obs[t], act[t], rew[t]), jnp.int32(t))
        start = t - int(policy.position(t))
        full = model.apply(params, obs[start : t + 1], act[start : t + 1], rew[start : t + 1], actions=actions)[-1]
        np.testing.assert_allclose(logits, full, atol=2e-5)


@pytest.mark.parametrize("kind", ["transformer", "s5"])
def test_a_headless_train_step_learns_with_masked_actions(kind):
    """The contrastive loss over available actions stays finite with −∞ scores and goes down."""
    model, _ = _model(kind)
    distill = DistillConfig(steps=60, warmup_steps=2, learning_rate=1e-2, weight_decay=0.0)
    optimizer = make_optimizer(distill)
    state = init_state(model, optimizer, np.int32(0), seed=0)
    step = make_train_step(model, optimizer, seed=0)
    rng = np.random.default_rng(0)
    arms = np.array([[3], [4], [6], [5]])
    available = np.arange(A)[None] < arms
    # The target repeats the previous action: learnable only through the action embeddings.
    prev = (rng.integers(0, 100, (4, L)) % arms).astype(np.int32)
    batch = {"obs": np.zeros((4, L), np.int32), "prev_action": prev, "action": prev,
             "prev_reward": np.zeros((4, L), np.float32), "available": available}
    losses = []
    for _ in range(60):
        state, metrics = step(state, batch)
        assert np.isfinite(float(metrics["grad_norm"]))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]

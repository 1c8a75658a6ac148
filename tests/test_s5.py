"""S5: the parallel scan, the sequential scan and step-by-step inference agree; resets drop the past."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.distill.s5 import S5, S5Policy, hippo_legs_diagonal, linear_recurrence, resolve_scan
from icrl.distill.transformer import Transformer, TransformerPolicy

NUM_ACTIONS, NUM_OBS, L = 4, 9, 24


def _tokens(rng, batch, length, *, reset_rate=0.0):
    obs = rng.integers(0, NUM_OBS, (batch, length)).astype(np.int32)
    prev_action = rng.integers(0, NUM_ACTIONS, (batch, length)).astype(np.int32)
    prev_action[rng.random((batch, length)) < reset_rate] = NUM_ACTIONS  # a new history starts here
    prev_reward = rng.random((batch, length)).astype(np.float32)
    return obs, prev_action, prev_reward


@pytest.fixture(scope="module")
def s5():
    model = S5(NUM_ACTIONS, L, dim=16, num_layers=2, state_size=8, num_obs=NUM_OBS, scan="sequential")
    params = model.init(jax.random.key(0), *_tokens(np.random.default_rng(0), 1, L))
    return model, params


def test_hippo_legs_eigenvalues_have_real_part_minus_half_in_conjugate_pairs():
    values, vectors = hippo_legs_diagonal(8)
    n = np.arange(8)
    p = np.sqrt(n + 0.5)
    normal = np.where(n[:, None] > n[None, :], -np.outer(p, p), np.outer(p, p))
    np.fill_diagonal(normal, -0.5)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.conj().T, normal, atol=1e-9)  # S5's HiPPO-N
    np.testing.assert_allclose(values.real, -0.5)
    np.testing.assert_allclose(np.sort(values.imag), np.sort(-values.imag), atol=1e-9)
    np.testing.assert_allclose(vectors.conj().T @ vectors, np.eye(8), atol=1e-9)  # unitary


def test_parallel_and_sequential_recurrences_agree_with_resets_and_an_initial_state():
    rng = np.random.default_rng(1)
    p, n = 6, 41
    a = jnp.asarray(np.exp((-0.5 + 1j * rng.normal(size=p)) * 0.2), jnp.complex64)
    bu = jnp.asarray(rng.normal(size=(3, n, p)) + 1j * rng.normal(size=(3, n, p)), jnp.complex64)
    reset = jnp.asarray(rng.random((3, n)) < 0.15)
    x0 = jnp.asarray(rng.normal(size=(3, p)) + 1j * rng.normal(size=(3, p)), jnp.complex64)
    parallel = linear_recurrence(a, bu, reset, x0, scan="parallel")
    sequential = linear_recurrence(a, bu, reset, x0, scan="sequential")
    np.testing.assert_allclose(parallel, sequential, rtol=1e-5, atol=1e-5)
    # and both equal the recurrence written out by hand
    x, expected = np.asarray(x0), []
    for k in range(n):
        x = np.where(np.asarray(reset[:, k])[:, None], bu[:, k], np.asarray(a) * x + np.asarray(bu[:, k]))
        expected.append(x)
    np.testing.assert_allclose(sequential, np.stack(expected, 1), rtol=1e-5, atol=1e-5)


def test_the_model_gives_the_same_logits_in_both_scans_and_step_by_step(s5):
    model, params = s5
    rng = np.random.default_rng(2)
    tokens = _tokens(rng, 2, L, reset_rate=0.1)
    state = tuple(
        jnp.asarray(rng.normal(size=(2, 4)) + 1j * rng.normal(size=(2, 4)), jnp.complex64) for _ in range(2)
    )  # a carried initial state (4 = state_size / 2 per layer)
    sequential, last = model.apply(params, *tokens, state=state)
    parallel, last_parallel = model.clone(scan="parallel").apply(params, *tokens, state=state)
    np.testing.assert_allclose(parallel, sequential, rtol=1e-4, atol=1e-4)
    for a, b in zip(last, last_parallel):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    policy = S5Policy(model)
    step = jax.jit(policy.step)
    for row in range(2):
        carried = policy.init(None, tokens[0][row, 0])._replace(state=tuple(s[row] for s in state))
        for t in range(L):
            logits, carried = step(params, carried, tuple(x[row, t] for x in tokens), jnp.int32(t))
            np.testing.assert_allclose(logits, sequential[row, t], rtol=1e-4, atol=1e-4)


def test_a_reset_drops_everything_before_it(s5):
    model, params = s5
    rng = np.random.default_rng(3)
    obs, prev_action, prev_reward = _tokens(rng, 1, L)
    prev_action[0, 10] = NUM_ACTIONS  # a new history starts at step 10
    other_obs, other_action, other_reward = _tokens(rng, 1, L)
    other_action[0, 10:], other_obs[0, 10:], other_reward[0, 10:] = prev_action[0, 10:], obs[0, 10:], prev_reward[0, 10:]
    a = model.apply(params, obs, prev_action, prev_reward)
    b = model.apply(params, other_obs, other_action, other_reward)
    np.testing.assert_allclose(a[0, 10:], b[0, 10:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[0, :10], b[0, :10])
    # an episode end inside a history is not a reset: nothing marks it in the tokens


def _greedy_stepping(policy, params, tokens):
    state, step = policy.init(None, tokens[0][0]), jax.jit(policy.step)
    actions = []
    for t in range(len(tokens[0])):
        logits, state = step(params, state, tuple(x[t] for x in tokens), jnp.int32(t))
        actions.append(int(jnp.argmax(logits)))
    return actions


@pytest.mark.parametrize("backbone", ["transformer", "s5"])
def test_stepping_through_a_window_picks_the_actions_of_the_whole_window(backbone, s5):
    rng = np.random.default_rng(4)
    tokens = _tokens(rng, 1, L)
    tokens[1][0, 0] = NUM_ACTIONS  # the window is a history's start
    if backbone == "s5":
        model, params = s5
        policy = S5Policy(model)
    else:
        model = Transformer(NUM_ACTIONS, L, dim=16, num_layers=2, num_heads=2, num_obs=NUM_OBS)
        params = model.init(jax.random.key(0), *tokens)
        policy = TransformerPolicy(model)
    whole = np.asarray(jnp.argmax(model.apply(params, *tokens), -1))[0].tolist()
    assert _greedy_stepping(policy, params, tuple(x[0] for x in tokens)) == whole


def test_auto_scan_is_sequential_on_the_cpu_and_unknown_scans_are_refused():
    assert jax.default_backend() == "cpu" and resolve_scan("auto") == "sequential"
    assert resolve_scan("parallel") == "parallel"
    with pytest.raises(ValueError, match="unknown scan 'fast'"):
        resolve_scan("fast")


def test_s5_trains_resumes_and_loads_through_the_trainer(tmp_path):
    from icrl.config import DistillConfig
    from icrl.datasets.sampler import WindowSampler
    from icrl.distill.model import build_model, build_policy, model_spec
    from icrl.distill.trainer import load_params, train

    rng = np.random.default_rng(5)
    n = 400
    sampler = WindowSampler(
        {
            "history_id": np.repeat(np.arange(4), n // 4),
            "episode": np.tile(np.repeat(np.arange(10), 10), 4),
            "obs": rng.integers(0, NUM_OBS, n).astype(np.int32),
            "action": (np.arange(n) % NUM_ACTIONS).astype(np.int32),  # a pattern to learn
            "reward": rng.random(n).astype(np.float32),
        },
        context_length=16, num_actions=NUM_ACTIONS, seed=0,
    )
    distill = DistillConfig(
        model="s5", context_length=16, embed_dim=16, num_layers=2, state_size=8, batch_size=8, steps=60,
        warmup_steps=5, learning_rate=1e-2, checkpoint_every=30, log_every=10,
    )
    spec = model_spec(distill, num_actions=NUM_ACTIONS, num_obs=NUM_OBS)
    summary = train(build_model(spec), sampler, distill, tmp_path)
    assert summary["final"]["step"] == 60 and summary["final"]["loss"] < 1.0  # chance is log(4) = 1.39
    step, params = load_params(tmp_path, build_model(spec), distill, np.int32(0))
    assert step == 60
    assert isinstance(build_policy(spec), S5Policy)

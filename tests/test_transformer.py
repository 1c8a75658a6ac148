import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.distill.transformer import Transformer, TransformerPolicy

L = 12


@pytest.fixture(scope="module")
def model_and_params():
    model = Transformer(num_actions=5, context_length=L, dim=16, num_layers=2, num_heads=2, num_obs=25)
    obs = jnp.zeros(L, jnp.int32)
    params = model.init(jax.random.key(0), obs, jnp.zeros(L, jnp.int32), jnp.zeros(L))
    return model, params


def _stream(n, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.randint(keys[0], (n,), 0, 25),
        jax.random.randint(keys[1], (n,), 0, 6),
        jax.random.bernoulli(keys[2], 0.3, (n,)).astype(jnp.float32),
    )


def test_predictions_never_look_ahead(model_and_params):
    model, params = model_and_params
    obs, act, rew = _stream(L)
    logits = model.apply(params, obs, act, rew)
    changed = model.apply(params, obs.at[7:].set(3), act.at[7:].set(1), rew.at[7:].set(1.0))
    np.testing.assert_allclose(logits[:7], changed[:7], atol=1e-6)
    assert not np.allclose(logits[7:], changed[7:])


def test_batched_and_unbatched_calls_agree(model_and_params):
    model, params = model_and_params
    obs, act, rew = _stream(L)
    batched = model.apply(params, obs[None].repeat(3, 0), act[None].repeat(3, 0), rew[None].repeat(3, 0))
    np.testing.assert_allclose(batched[1], model.apply(params, obs, act, rew), atol=1e-5)


@pytest.mark.parametrize("stride", [1, 4, 6])
def test_stepping_equals_the_model_on_the_current_window(model_and_params, stride):
    model, params = model_and_params
    policy = TransformerPolicy(model, stride=stride)
    obs, act, rew = _stream(40, seed=stride)
    state = policy.init(None, obs[0])
    step = jax.jit(policy.step)
    for t in range(40):
        logits, state = step(params, state, (obs[t], act[t], rew[t]), jnp.int32(t))
        start = t - int(policy.position(t))
        assert L - stride <= t + 1 - start <= L or t < L
        full = model.apply(params, obs[start : t + 1], act[start : t + 1], rew[start : t + 1])[-1]
        np.testing.assert_allclose(logits, full, atol=1e-5)
        assert int(jnp.argmax(logits)) == int(jnp.argmax(full))


def test_dropout_is_off_unless_training(model_and_params):
    model = Transformer(num_actions=5, context_length=L, dim=16, num_layers=1, num_heads=2, num_obs=25, dropout=0.5)
    obs, act, rew = _stream(L)
    params = model.init(jax.random.key(0), obs, act, rew)
    a = model.apply(params, obs, act, rew)
    np.testing.assert_allclose(a, model.apply(params, obs, act, rew))
    train = model.apply(params, obs, act, rew, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, train)

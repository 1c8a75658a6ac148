"""PPO with a single environment stream, so that its learning history is one contiguous sequence.

Each update collects `rollout_steps` steps with the current policy, then makes `epochs`
passes of `minibatches` shuffled minibatches over them (clipped surrogate, value loss,
entropy bonus). Episodes run on across update boundaries: the environment is never reset
between rollouts, so the history reads like one agent learning one task.

Truncation is not termination: GAE bootstraps from the value of the true next observation,
which gymnax's auto-reset hides from `env.step`'s returned obs but keeps in
`info["final_observation"]`. Only `terminated` ends a return; either kind of done stops
the advantage from leaking into the next episode. An environment whose `step` lacks that
info entry has truncation treated as termination (the returned obs is the next episode's).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from icrl.collect.learner import Learner
from icrl.collect.transition import Transition
from icrl.config import PPOConfig
from icrl.envs import spaces

COLUMNS = ("logp", "update")
_LOG_2PI = float(np.log(2.0 * np.pi))


def _dense(features: int, scale: float) -> nn.Dense:
    """Returns a Dense layer whose weights have variance scale**2 / fan_in.

    A small policy-head scale starts the policy near uniform. Not `orthogonal`: its QR runs as
    a LAPACK call that, batched under vmap, waits on the XLA CPU thread pool it runs on and
    can deadlock when the pool is small (seen with jaxlib 0.10 on 2 cores).
    """
    init = nn.initializers.variance_scaling(scale * scale, "fan_in", "truncated_normal")
    return nn.Dense(features, kernel_init=init, bias_init=nn.initializers.zeros)


class _Torso(nn.Module):
    """Two tanh layers. A discrete observation (`num_obs` set) enters as its index: the first
    layer looks up its row, which is the Dense layer applied to its one-hot vector without the
    multiplications by zero (most of PPO's arithmetic on a tabular environment)."""

    hidden: int
    num_obs: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gain = float(np.sqrt(2.0))
        if self.num_obs is None:
            x = _dense(self.hidden, gain)(x)
        else:
            init = nn.initializers.variance_scaling(gain * gain, "fan_in", "truncated_normal")
            bias = self.param("bias", nn.initializers.zeros, (self.hidden,))
            x = self.param("kernel", init, (self.num_obs, self.hidden))[x] + bias.reshape((1,) * x.ndim + bias.shape)
        return nn.tanh(_dense(self.hidden, gain)(nn.tanh(x)))


class Actor(nn.Module):
    """Returns the logits [actions] (discrete) or the (mean [dim], log-std [dim]) of a diagonal Gaussian."""

    hidden: int
    action_dim: int
    discrete: bool
    num_obs: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
        out = _dense(self.action_dim, 0.01)(_Torso(self.hidden, self.num_obs)(x))
        if self.discrete:
            return out
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return out, log_std


class Critic(nn.Module):
    """Returns the state value (a scalar per input row)."""

    hidden: int
    num_obs: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.squeeze(_dense(1, 1.0)(_Torso(self.hidden, self.num_obs)(x)), -1)


class _Batch(NamedTuple):
    """What an update learns from, one row per rollout step."""

    x: jax.Array  # encoded obs: an index (discrete observations) or a float vector
    action: jax.Array  # as sampled: before clipping, for continuous actions
    logp: jax.Array
    advantage: jax.Array
    target: jax.Array  # the value target: advantage + old value


def gae(
    *, reward: jax.Array, value: jax.Array, next_value: jax.Array, terminated: jax.Array, done: jax.Array,
    gamma: float, gae_lambda: float,
) -> jax.Array:
    """Returns the GAE advantages [T] of one rollout.

    `next_value[t]` is the value of the observation that followed step t (before any reset);
    `terminated` stops bootstrapping from it, `done` (terminated or truncated) stops the
    advantage of the next episode from flowing back.
    """
    delta = reward + gamma * next_value * (1.0 - terminated.astype(jnp.float32)) - value
    carry_on = gamma * gae_lambda * (1.0 - done.astype(jnp.float32))

    def back(later, inputs):
        d, c = inputs
        adv = d + c * later
        return adv, adv

    _, advantage = jax.lax.scan(back, jnp.float32(0.0), (delta, carry_on), reverse=True)
    return advantage


def make_train(env: Any, cfg: PPOConfig) -> Learner:
    """Returns the Learner of PPO on `env`; its agent is the actor's parameters.

    Raises ValueError unless `cfg.minibatches` divides `cfg.rollout_steps`.
    """
    if cfg.rollout_steps % cfg.minibatches:
        raise ValueError(f"ppo: minibatches ({cfg.minibatches}) must divide rollout_steps ({cfg.rollout_steps})")
    discrete = spaces.discrete_actions(env)
    action_dim = spaces.action_dim(env)
    num_obs = spaces.num_observations(env)
    actor = Actor(hidden=cfg.hidden, action_dim=action_dim, discrete=discrete, num_obs=num_obs)
    critic = Critic(hidden=cfg.hidden, num_obs=num_obs)

    def encode(obs: jax.Array) -> jax.Array:
        return obs.astype(jnp.int32) if num_obs is not None else spaces.encode_obs(env, obs)

    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))
    low, high = spaces.action_bounds(env) if not discrete else (None, None)
    rollout_steps, minibatch_size = cfg.rollout_steps, cfg.rollout_steps // cfg.minibatches
    steps = cfg.updates * cfg.rollout_steps

    def masked(logits: jax.Array, mask: jax.Array) -> jax.Array:
        # -inf (not a large negative number): an unavailable action must have probability exactly 0.
        return jnp.where(mask, logits, -jnp.inf)

    def sample(actor_params: Any, x: jax.Array, mask: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (action as sampled, its log-probability) for one encoded obs."""
        if discrete:
            logits = masked(actor.apply(actor_params, x), mask)
            action = jax.random.categorical(key, logits).astype(jnp.int32)
            return action, jax.nn.log_softmax(logits)[action]
        mean, log_std = actor.apply(actor_params, x)
        action = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, jnp.float32)
        return action, gaussian_logp(action, mean, log_std)

    def gaussian_logp(action: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
        z = (action - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z * z - log_std - 0.5 * _LOG_2PI, axis=-1)

    def policy_stats(actor_params: Any, x: jax.Array, action: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (log-probabilities [B] of `action`, entropies [B]) of the policy at rows `x`."""
        if discrete:
            log_probs = jax.nn.log_softmax(masked(actor.apply(actor_params, x), mask))
            logp = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
            # Masked entries are -inf; zero them before multiplying so neither value nor gradient is NaN.
            safe = jnp.where(mask, log_probs, 0.0)
            return logp, -jnp.sum(jnp.exp(log_probs) * safe, axis=-1)
        mean, log_std = actor.apply(actor_params, x)
        entropy = jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI))
        return gaussian_logp(action, mean, log_std[None, :]), jnp.broadcast_to(entropy, action.shape[:1])

    def loss_fn(params: Any, batch: _Batch, mask: jax.Array) -> jax.Array:
        """Returns the PPO loss of one minibatch."""
        logp, entropy = policy_stats(params["actor"], batch.x, batch.action, mask)
        ratio = jnp.exp(logp - batch.logp)
        # Advantages are not normalised: with a sparse reward most rollouts hold none, and scaling
        # their critic noise up to unit variance drives the policy to a premature deterministic
        # choice before the goal is ever found. Gradient clipping bounds the step instead.
        adv = batch.advantage
        surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - cfg.clip, 1.0 + cfg.clip) * adv)
        value = critic.apply(params["critic"], batch.x)
        value_loss = 0.5 * jnp.mean(jnp.square(value - batch.target))
        return -surrogate.mean() + cfg.value_coef * value_loss - cfg.entropy_coef * entropy.mean()

    def learn(params: Any, opt_state: Any, batch: _Batch, mask: jax.Array, key: jax.Array) -> tuple[Any, Any]:
        """Returns (params, opt_state) after `epochs` passes of shuffled minibatches over `batch`."""

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, rollout_steps)
            minibatches = jax.tree.map(
                lambda a: a[order].reshape((cfg.minibatches, minibatch_size) + a.shape[1:]), batch
            )

            def minibatch_step(carry, minibatch):
                params, opt_state = carry
                grads = jax.grad(loss_fn)(params, minibatch, mask)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            return jax.lax.scan(minibatch_step, carry, minibatches)[0], None

        return jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, cfg.epochs))[0]

    def train(key: jax.Array, env_params: Any) -> tuple[Transition, Any]:
        """Returns (history with arrays of leading shape [steps], the final actor parameters)."""
        mask = spaces.action_mask(env, env_params) if discrete else jnp.ones(action_dim, bool)
        actor_key, critic_key, reset_key, key = jax.random.split(key, 4)
        obs, state = env.reset(reset_key, env_params)
        x0 = encode(obs)
        params = {"actor": actor.init(actor_key, x0), "critic": critic.init(critic_key, x0)}
        opt_state = tx.init(params)

        def update(carry, inputs):
            params, opt_state, obs, state, episode = carry
            index, update_key = inputs
            rollout_key, learn_key = jax.random.split(update_key)

            def step(carry, step_key):
                obs, state, episode = carry
                policy_key, env_key = jax.random.split(step_key)
                x = encode(obs)
                sampled, logp = sample(params["actor"], x, mask, policy_key)
                action = sampled if discrete else jnp.clip(sampled, low, high)
                next_obs, state, reward, terminated, truncated, info = env.step(env_key, state, action, env_params)
                if "final_observation" in info:
                    final_obs, ends_return = info["final_observation"], terminated
                else:
                    final_obs, ends_return = next_obs, jnp.logical_or(terminated, truncated)
                done = jnp.logical_or(terminated, truncated)
                record = Transition(
                    obs=obs,
                    action=action,
                    reward=reward.astype(jnp.float32),
                    terminated=terminated,
                    truncated=truncated,
                    episode=episode,
                    extra={"logp": logp.astype(jnp.float32), "update": index},
                )
                learn_row = (x, sampled, encode(final_obs), ends_return, done)
                return (next_obs, state, episode + done.astype(jnp.int32)), (record, learn_row)

            (obs, state, episode), (record, rows) = jax.lax.scan(
                step, (obs, state, episode), jax.random.split(rollout_key, rollout_steps)
            )
            x, sampled, next_x, ends_return, done = rows
            # Values in one batched pass after the rollout: the critic does not change during it.
            value = critic.apply(params["critic"], x)
            next_value = critic.apply(params["critic"], next_x)
            advantage = gae(
                reward=record.reward, value=value, next_value=next_value, terminated=ends_return, done=done,
                gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
            )
            batch = _Batch(x=x, action=sampled, logp=record.extra["logp"], advantage=advantage, target=advantage + value)
            params, opt_state = learn(params, opt_state, batch, mask, learn_key)
            return (params, opt_state, obs, state, episode), record

        inputs = (jnp.arange(cfg.updates, dtype=jnp.int32), jax.random.split(key, cfg.updates))
        (params, *_), history = jax.lax.scan(update, (params, opt_state, obs, state, jnp.int32(0)), inputs)
        # [updates, rollout_steps, ...] -> [steps, ...]: one contiguous stream.
        history = jax.tree.map(lambda a: a.reshape((steps,) + a.shape[2:]), history)
        return history, params["actor"]

    def act(actor_params: Any, obs: jax.Array, env_params: Any, key: jax.Array) -> jax.Array:
        """Returns the final policy's greedy action at `obs`: the top logit among the actions the
        task offers, or the mean clipped to the bounds. `key` is unused."""
        del key
        out = actor.apply(actor_params, encode(obs))
        if discrete:
            return jnp.argmax(masked(out, spaces.action_mask(env, env_params))).astype(jnp.int32)
        return jnp.clip(out[0], low, high)

    return Learner(train=train, act=act, steps=steps, columns=COLUMNS)

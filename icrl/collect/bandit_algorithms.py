"""Bandit learners: Thompson sampling, UCB1 and LinUCB, each a `Learner` over a fixed number of pulls.

All three choose among the arms the task offers (`spaces.action_mask`) only, record every
pull as a Transition (every pull is an episode on the bandit environments, so `episode`
counts pulls there) and keep the mask in their agent state, so that the final agent's
greedy `act` never picks an arm the task lacks.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from icrl.collect.learner import Learner
from icrl.collect.transition import Transition
from icrl.config import LinUCBConfig, ThompsonConfig, UCBConfig
from icrl.envs import spaces

__all__ = ["ArmCounts", "BetaPosterior", "LinearArms", "make_linucb", "make_thompson", "make_ucb"]


class BetaPosterior(NamedTuple):
    """Thompson sampling's agent: Beta(alpha, beta) per arm (float32 [arms]) and the task's arm mask."""

    alpha: jax.Array
    beta: jax.Array
    mask: jax.Array


class ArmCounts(NamedTuple):
    """UCB1's agent: pulls and summed rewards per arm (float32 [arms]) and the task's arm mask."""

    counts: jax.Array
    sums: jax.Array
    mask: jax.Array


class LinearArms(NamedTuple):
    """LinUCB's agent: per arm A = ridge·I + Σ x xᵀ ([arms, d, d]), b = Σ r x ([arms, d]), and the arm mask."""

    a: jax.Array
    b: jax.Array
    mask: jax.Array


def _masked_argmax(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Returns the index (int32) of the largest of `values` where `mask` holds; the lowest among equals."""
    return jnp.argmax(jnp.where(mask, values, -jnp.inf)).astype(jnp.int32)


def _check_discrete(env: Any, algorithm: str) -> None:
    if not spaces.discrete_actions(env):
        raise ValueError(f"{algorithm} needs discrete actions (arms); {env.name} takes continuous actions")


def _run_pulls(
    env: Any,
    pulls: int,
    choose: Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array],
    update: Callable[[Any, jax.Array, jax.Array, jax.Array], Any],
) -> Callable[[jax.Array, Any, Any], tuple[Transition, Any]]:
    """Returns `run(key, params, agent) -> (history, agent)`: `pulls` steps of `choose` then `update`.

    `choose(agent, obs, t, key)` returns the arm to pull at pull index `t`;
    `update(agent, obs, action, reward)` returns the agent after seeing the reward.
    """

    def run(key: jax.Array, params: Any, agent: Any) -> tuple[Transition, Any]:
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry, inputs):
            agent, obs, state, episode = carry
            t, step_key = inputs
            choose_key, env_key = jax.random.split(step_key)
            action = choose(agent, obs, t, choose_key)
            next_obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action, params)
            reward = reward.astype(jnp.float32)
            agent = update(agent, obs, action, reward)
            record = Transition(
                obs=obs,
                action=action,
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                episode=episode,
                extra={},
            )
            done = jnp.logical_or(terminated, truncated)
            return (agent, next_obs, state, episode + done.astype(jnp.int32)), record

        inputs = (jnp.arange(pulls, dtype=jnp.int32), jax.random.split(key, pulls))
        (agent, *_), history = jax.lax.scan(step, (agent, obs, state, jnp.int32(0)), inputs)
        return history, agent

    return run


def make_thompson(env: Any, cfg: ThompsonConfig) -> Learner:
    """Returns the Learner of Thompson sampling with Beta posteriors; its agent state is a BetaPosterior.

    Each pull samples a mean per arm from Beta(prior_alpha + successes, prior_beta + failures)
    and pulls the best sample. A reward r in [0, 1] adds r successes and 1 - r failures: exact
    for Bernoulli rewards.
    """
    _check_discrete(env, "Thompson sampling")
    num_arms = spaces.action_dim(env)

    def choose(agent: BetaPosterior, obs: jax.Array, t: jax.Array, key: jax.Array) -> jax.Array:
        sample = jax.random.beta(key, agent.alpha, agent.beta, dtype=jnp.float32)
        return _masked_argmax(sample, agent.mask)

    def update(agent: BetaPosterior, obs: jax.Array, action: jax.Array, reward: jax.Array) -> BetaPosterior:
        return agent._replace(alpha=agent.alpha.at[action].add(reward), beta=agent.beta.at[action].add(1.0 - reward))

    run = _run_pulls(env, cfg.pulls, choose, update)

    def train(key: jax.Array, params: Any) -> tuple[Transition, BetaPosterior]:
        prior = BetaPosterior(
            alpha=jnp.full((num_arms,), cfg.prior_alpha, jnp.float32),
            beta=jnp.full((num_arms,), cfg.prior_beta, jnp.float32),
            mask=spaces.action_mask(env, params),
        )
        return run(key, params, prior)

    def act(agent: BetaPosterior, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        """Returns the available arm of highest posterior mean (`obs` and `key` are unused)."""
        del obs, key
        return _masked_argmax(agent.alpha / (agent.alpha + agent.beta), agent.mask)

    return Learner(train=train, act=act, steps=cfg.pulls, columns=())


def make_ucb(env: Any, cfg: UCBConfig) -> Learner:
    """Returns the Learner of UCB1; its agent state is ArmCounts.

    The first pulls try every available arm once, lowest index first; after that pull t
    (counting from 0, so t pulls have been made) takes the argmax of
    mean_a + sqrt(c · ln t / n_a).
    """
    _check_discrete(env, "UCB")
    num_arms = spaces.action_dim(env)

    def choose(agent: ArmCounts, obs: jax.Array, t: jax.Array, key: jax.Array) -> jax.Array:
        untried = jnp.logical_and(agent.mask, agent.counts == 0)
        # Unavailable arms keep n = 0; the floor only keeps their (masked) score finite.
        n = jnp.maximum(agent.counts, 1.0)
        log_t = jnp.log(jnp.maximum(t, 1).astype(jnp.float32))
        score = agent.sums / n + jnp.sqrt(cfg.c * log_t / n)
        return jnp.where(jnp.any(untried), jnp.argmax(untried).astype(jnp.int32), _masked_argmax(score, agent.mask))

    def update(agent: ArmCounts, obs: jax.Array, action: jax.Array, reward: jax.Array) -> ArmCounts:
        return agent._replace(counts=agent.counts.at[action].add(1.0), sums=agent.sums.at[action].add(reward))

    run = _run_pulls(env, cfg.pulls, choose, update)

    def train(key: jax.Array, params: Any) -> tuple[Transition, ArmCounts]:
        zeros = jnp.zeros((num_arms,), jnp.float32)
        return run(key, params, ArmCounts(counts=zeros, sums=zeros, mask=spaces.action_mask(env, params)))

    def act(agent: ArmCounts, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        """Returns the available arm of highest empirical mean (untried arms count as 0; `obs`, `key` unused)."""
        del obs, key
        return _masked_argmax(agent.sums / jnp.maximum(agent.counts, 1.0), agent.mask)

    return Learner(train=train, act=act, steps=cfg.pulls, columns=())


def make_linucb(env: Any, cfg: LinUCBConfig) -> Learner:
    """Returns the Learner of LinUCB with a separate ridge regression per arm; its agent state is LinearArms.

    The context is `spaces.encode_obs(env, obs)` (the observation vector; one-hot for discrete
    observations). Pull t takes the argmax over available arms of
    θ_a·x + alpha·sqrt(xᵀ A_a⁻¹ x), with θ_a = A_a⁻¹ b_a.
    """
    _check_discrete(env, "LinUCB")
    num_arms = spaces.action_dim(env)
    dim = spaces.obs_size(env)

    def estimates(agent: LinearArms, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (θ_a·x, xᵀ A_a⁻¹ x) for every arm, each float32 [arms]."""

        def one_arm(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
            # One solve for both right-hand sides; A is symmetric, so θ·x = bᵀ A⁻¹ x.
            a_inv_x = jnp.linalg.solve(a, x)
            return b @ a_inv_x, x @ a_inv_x

        return jax.vmap(one_arm)(agent.a, agent.b)

    def choose(agent: LinearArms, obs: jax.Array, t: jax.Array, key: jax.Array) -> jax.Array:
        mean, variance = estimates(agent, spaces.encode_obs(env, obs))
        # Round-off can make a tiny variance negative.
        return _masked_argmax(mean + cfg.alpha * jnp.sqrt(jnp.maximum(variance, 0.0)), agent.mask)

    def update(agent: LinearArms, obs: jax.Array, action: jax.Array, reward: jax.Array) -> LinearArms:
        x = spaces.encode_obs(env, obs)
        return agent._replace(a=agent.a.at[action].add(jnp.outer(x, x)), b=agent.b.at[action].add(reward * x))

    run = _run_pulls(env, cfg.pulls, choose, update)

    def train(key: jax.Array, params: Any) -> tuple[Transition, LinearArms]:
        agent = LinearArms(
            a=jnp.broadcast_to(cfg.ridge * jnp.eye(dim, dtype=jnp.float32), (num_arms, dim, dim)),
            b=jnp.zeros((num_arms, dim), jnp.float32),
            mask=spaces.action_mask(env, params),
        )
        return run(key, params, agent)

    def act(agent: LinearArms, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        """Returns the available arm of highest estimated reward θ_a·x for the context `obs` (`key` unused)."""
        del key
        mean, _ = estimates(agent, spaces.encode_obs(env, obs))
        return _masked_argmax(mean, agent.mask)

    return Learner(train=train, act=act, steps=cfg.pulls, columns=())

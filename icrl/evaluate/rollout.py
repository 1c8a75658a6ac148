"""In-context rollouts: a frozen model acts on a task for K episodes, its context carried across them."""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp

from icrl.envs import spaces


class ContextPolicy(Protocol):
    """A sequence model that reads a stream of transitions one at a time."""

    def init(self, params: Any, obs: jax.Array, actions: Any = None) -> Any: ...

    def step(self, params: Any, state: Any, token: tuple, t: jax.Array) -> tuple[jax.Array, Any]: ...


def choose_action(logits: jax.Array, key: jax.Array, *, policy: str, temperature: float) -> jax.Array:
    """Returns the action `policy` picks from `logits`: `greedy` (argmax) or `sample` at `temperature`."""
    if policy == "greedy":
        return jnp.argmax(logits).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature).astype(jnp.int32)


def make_rollout(
    model: ContextPolicy, env: Any, *, episodes: int, policy: str, temperature: float,
    action_set: Callable[[jax.Array, jax.Array], Any] | None = None, regret: bool = False,
) -> Callable[[Any, Any, jax.Array], Any]:
    """Returns `rollout(params, env_params, key) -> returns [episodes]`.

    The model's context runs on across episode boundaries: it is never reset inside a
    rollout, and each token carries the previous step's action and reward even when that
    step ended an episode. Episodes that end early (termination) are followed by the next
    one, and the rollout stops counting after `episodes` of them. Actions the task does not
    offer (a bandit's masked arms) are never chosen.

    `action_set(mask, key)` gives a headless model its ActionSet for the task's action mask,
    fixed for the rollout and drawn from the rollout's key.
    With `regret`, the rollout returns (returns, regret), both [episodes]: the expected
    regret of every step (`env.pull_regret`, bandits) summed per episode.
    """
    num_actions = env.num_actions
    max_steps = episodes * spaces.episode_steps(env)

    def rollout(params: Any, env_params: Any, key: jax.Array) -> Any:
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)
        mask = spaces.action_mask(env, env_params)

        def step(carry, inputs):
            t, step_key = inputs
            obs, env_state, prev_action, prev_reward, episode, returns, regrets, state = carry
            logits, state = model.step(params, state, (obs, prev_action, prev_reward), t)
            logits = jnp.where(mask, logits, -jnp.inf)
            act_key, env_key = jax.random.split(step_key)
            action = choose_action(logits, act_key, policy=policy, temperature=temperature)
            if regret:
                regrets = regrets.at[episode].add(env.pull_regret(env_params, obs, action))
            obs, env_state, reward, terminated, truncated, _ = env.step(env_key, env_state, action, env_params)
            done = jnp.logical_or(terminated, truncated)
            returns = returns.at[episode].add(reward)  # slot `episodes` absorbs steps past the last
            prev_action, prev_reward = action.astype(jnp.int32), reward.astype(jnp.float32)
            episode = jnp.minimum(episode + done.astype(jnp.int32), episodes)
            return (obs, env_state, prev_action, prev_reward, episode, returns, regrets, state), None

        zeros = jnp.zeros(episodes + 1, jnp.float32)
        # A fold, not a split: the rollout's other random streams stay as they are without a set.
        actions = None if action_set is None else action_set(mask, jax.random.fold_in(key, 1))
        init = (
            obs, env_state, jnp.int32(num_actions), jnp.float32(0.0), jnp.int32(0), zeros, zeros,
            model.init(params, obs, actions),
        )
        (*_, returns, regrets, _), _ = jax.lax.scan(step, init, (jnp.arange(max_steps), jax.random.split(key, max_steps)))
        return (returns[:episodes], regrets[:episodes]) if regret else returns[:episodes]

    return rollout

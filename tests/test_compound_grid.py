import json
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.envs.compound_grid import (
    DOWN,
    LEFT,
    NOOP,
    RIGHT,
    UP,
    CompoundGrid,
    compound_code,
    compound_grid_tasks,
    compound_moves,
    split_codes,
)

SIZE, LENGTH, MOVES = 9, 20, 3
RRR = compound_code([RIGHT, RIGHT, RIGHT])
STEP = {NOOP: (0, 0), UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}


@pytest.fixture(scope="module")
def env():
    return CompoundGrid(size=SIZE, episode_length=LENGTH, moves=MOVES, max_actions=125)


def stacked(env, tasks):
    """Returns the env params of the task dicts `tasks`, stacked along a leading axis."""
    return jax.vmap(env.params_for)(**{name: jnp.asarray([t[name] for t in tasks]) for name in tasks[0]})


def land(pos, code, size=SIZE, moves=MOVES):
    """Returns where `code` takes the agent from `pos`, computed independently in plain Python."""
    r, c = pos
    for move in compound_moves(code, moves):
        dr, dc = STEP[move]
        r, c = min(max(r + dr, 0), size - 1), min(max(c + dc, 0), size - 1)
    return r, c


def bfs_steps(goal, codes, start=(SIZE // 2, SIZE // 2)):
    """Returns the fewest steps from `start` to a step ending on `goal` with `codes`, or None if never."""
    goal = tuple(goal)
    seen, frontier, steps = {start}, deque([start]), 0
    while frontier:
        steps += 1
        nxt = deque()
        for pos in frontier:
            for code in codes:
                cell = land(pos, code)
                if cell == goal:
                    return steps
                if cell not in seen:
                    seen.add(cell)
                    nxt.append(cell)
        frontier = nxt
    return None


def first(env, codes, num_actions=None, goal=(0, 0)):
    num_actions = len(codes) if num_actions is None else num_actions
    params = env.params_for(goal=list(goal), codes=codes, num_actions=num_actions)
    _, state = env.reset(jax.random.key(0), params)
    return params, state


# --------------------------------------------------------------------------------------
# Codes and moves


def test_codes_decode_first_move_most_significant():
    assert compound_moves(0, 3) == [NOOP, NOOP, NOOP]
    assert compound_moves(RRR, 3) == [RIGHT, RIGHT, RIGHT] and RRR == 62
    assert compound_moves(1 * 25 + 2 * 5 + 4, 3) == [UP, RIGHT, LEFT]
    assert all(compound_code(compound_moves(c, 3)) == c for c in range(125))
    with pytest.raises(ValueError, match="lies in"):
        compound_moves(125, 3)


def test_a_compound_action_runs_all_its_moves_in_one_step(env):
    params, state = first(env, [RRR, compound_code([UP, UP, LEFT])])
    obs, state, *_ = env.step(jax.random.key(1), state, 0, params)
    assert state.pos.tolist() == [4, 7] and int(obs) == 4 * 9 + 7 and int(state.time) == 1
    _, state, *_ = env.step(jax.random.key(1), state, 1, params)
    assert state.pos.tolist() == [2, 6]


def test_walls_stop_each_move_not_the_ones_after_it(env):
    params, state = first(env, [RRR, compound_code([RIGHT, RIGHT, LEFT])])
    _, state, *_ = env.step(jax.random.key(1), state, 0, params)
    _, state, *_ = env.step(jax.random.key(1), state, 0, params)
    assert state.pos.tolist() == [4, 8]  # 4 -> 7 -> 8: clipped at the right wall
    _, state, *_ = env.step(jax.random.key(1), state, 1, params)
    assert state.pos.tolist() == [4, 7]  # right, right bump the wall; left still moves


def test_step_matches_plain_python_for_every_code(env):
    rng = np.random.default_rng(0)
    starts = rng.integers(0, SIZE, (125, 2))
    ends = jax.vmap(env.land)(jnp.asarray(starts, jnp.int32), jnp.arange(125, dtype=jnp.int32))
    assert np.asarray(ends).tolist() == [list(land(tuple(s), c)) for s, c in zip(starts.tolist(), range(125))]


# --------------------------------------------------------------------------------------
# Rewards, termination, truncation, action sets


def test_reaching_the_goal_pays_one_and_terminates(env):
    params, state = first(env, [0, RRR], goal=(4, 7))
    _, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 0, params)
    assert float(reward) == 0.0 and not bool(terminated) and not bool(truncated)
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 1, params)
    assert float(reward) == 1.0 and bool(terminated) and not bool(truncated)
    assert int(info["final_observation"]) == 4 * 9 + 7
    assert state.pos.tolist() == [4, 4] and int(state.time) == 0 and int(obs) == 40  # auto-reset


def test_passing_over_the_goal_mid_action_pays_nothing(env):
    params, state = first(env, [RRR], goal=(4, 5))
    _, state, reward, terminated, *_ = env.step(jax.random.key(1), state, 0, params)
    assert float(reward) == 0.0 and not bool(terminated)


def test_truncates_after_the_episode_length(env):
    params, state = first(env, [0, RRR], goal=(0, 0))
    for t in range(LENGTH):
        _, state, reward, terminated, truncated, _ = env.step(jax.random.key(t), state, 1, params)
        assert float(reward) == 0.0 and not bool(terminated)
        assert bool(truncated) == (t == LENGTH - 1)
    assert int(state.time) == 0 and state.pos.tolist() == [4, 4]


def test_unavailable_slots_act_as_noop_and_are_masked(env):
    params, state = first(env, [RRR, RRR, RRR], num_actions=1, goal=(4, 7))
    mask = np.asarray(env.action_mask(params))
    assert mask.shape == (125,) and mask[0] and not mask[1:].any()
    for slot in (1, 2, 124):  # slots 1, 2 hold right-right-right, but are not offered
        _, after, reward, terminated, *_ = env.step(jax.random.key(1), state, slot, params)
        assert after.pos.tolist() == [4, 4] and float(reward) == 0.0 and not bool(terminated)
    assert env.num_actions == 125 and env.action_space().n == 125 and env.observation_space().n == 81


def test_params_for_pads_and_checks_shapes(env):
    params = env.params_for(goal=[1, 2], codes=[RRR, 7], num_actions=2)
    assert params.codes.shape == (125,) and params.codes[:3].tolist() == [RRR, 7, 0]
    assert params.codes.dtype == jnp.int32 and int(params.num_actions) == 2
    with pytest.raises(ValueError, match="at most max_actions"):
        env.params_for(goal=[1, 2], codes=list(range(126)), num_actions=3)
    with pytest.raises(ValueError, match="goal"):
        env.params_for(goal=[1, 2, 3], codes=[1], num_actions=1)
    with pytest.raises(ValueError, match="num_actions"):
        env.params_for(goal=[1, 2], codes=[1, 2], num_actions=3)


# --------------------------------------------------------------------------------------
# Oracle and optimal return


def oracle_steps(env, params):
    """Returns, per task, how many oracle steps the first episode took to terminate (0: it never did)."""

    def episode(p):
        _, state = env.reset(jax.random.key(0), p)

        def step(state, _):
            _, state, reward, terminated, _, _ = env.step(jax.random.key(0), state, env.oracle_action(state, p), p)
            return state, (reward, terminated, env.action_mask(p)[env.oracle_action(state, p)])

        return jax.lax.scan(step, state, None, length=LENGTH)[1]

    rewards, terminated, available = (np.asarray(x) for x in jax.jit(jax.vmap(episode))(params))
    assert available.all()
    done = terminated.any(axis=1)
    steps = np.where(done, terminated.argmax(axis=1) + 1, 0)
    np.testing.assert_array_equal(rewards.sum(axis=1) > 0, done)
    return steps


def test_oracle_follows_shortest_paths(env):
    train, _ = split_codes(moves=MOVES, train=100, seed=3)
    goals = [(r, c) for r in range(0, SIZE, 2) for c in range(0, SIZE, 3)] + [(4, 4)]
    tasks = compound_grid_tasks(goals, codes=train, num_actions=4, permute=True, seed=1, max_actions=125)
    # Hand-made action sets: a slow one (one cell per step) and a one-way one (never up or left).
    slow = [compound_code([m, NOOP, NOOP]) for m in (UP, RIGHT, DOWN, LEFT)]
    one_way = [RRR, compound_code([DOWN, DOWN, DOWN]), compound_code([DOWN, RIGHT, NOOP])]
    for goal in [(0, 0), (8, 8), (4, 4), (0, 8)]:
        tasks += compound_grid_tasks([goal], codes=slow, num_actions=4, permute=False, seed=0, max_actions=125)
        tasks += compound_grid_tasks([goal], codes=one_way, num_actions=3, permute=True, seed=0, max_actions=125)
    params = stacked(env, tasks)
    steps = oracle_steps(env, params)
    optimal = np.asarray(jax.vmap(env.optimal_return)(params))
    expected = [bfs_steps(t["goal"], t["codes"][: t["num_actions"]]) for t in tasks]
    reachable = [e is not None and e <= LENGTH for e in expected]
    np.testing.assert_array_equal(optimal, np.asarray(reachable, np.float32))
    np.testing.assert_array_equal(steps, [e if ok else 0 for e, ok in zip(expected, reachable)])
    steps_to_goal = np.asarray(jax.vmap(env.steps_to_goal)(params))
    np.testing.assert_array_equal(steps_to_goal, [-1 if e is None else e for e in expected])
    # The checks above would be vacuous on easy tasks only: both kinds must occur, and long paths.
    assert 0 < sum(reachable) < len(tasks) and max(e for e in expected if e is not None) >= 8


def test_oracle_heads_toward_an_unreachable_goal(env):
    params, state = first(env, [0, RRR, compound_code([LEFT, NOOP, NOOP])], goal=(0, 8))
    assert float(env.optimal_return(params)) == 0.0
    assert int(env.oracle_action(state, params)) == 1  # right-right-right lands closest to (0, 8)


def test_distances_are_zero_on_the_goal_and_mark_unreachable_cells(env):
    params, _ = first(env, [RRR, compound_code([DOWN, NOOP, NOOP])], goal=(8, 8))
    dist = np.asarray(env.distances(params)).reshape(SIZE, SIZE)
    assert dist[8, 8] == 0 and dist[8, 5] == 1 and dist[4, 4] == 6  # down x4, right-right-right x2
    assert dist[0, 0] == 11 and (dist <= 81).all()
    params, _ = first(env, [RRR], goal=(0, 0))
    dist = np.asarray(env.distances(params)).reshape(SIZE, SIZE)
    assert dist[0, 0] == 0 and (dist.ravel()[1:] == env.unreachable).all()


# --------------------------------------------------------------------------------------
# Code splits and task generators


def test_split_codes():
    train, held = split_codes(moves=3, train=100, seed=0)
    assert len(train) == 100 and len(held) == 25
    assert not set(train) & set(held) and sorted(train + held) == list(range(125))
    assert train == sorted(train) and held == sorted(held)
    assert split_codes(moves=3, train=100, seed=0) == (train, held)
    assert split_codes(moves=3, train=100, seed=1) != (train, held)
    assert set(split_codes(moves=3, train=50, seed=0)[0]) <= set(train)
    with pytest.raises(ValueError, match="train"):
        split_codes(moves=3, train=126, seed=0)


def test_tasks_keep_or_permute_the_codes():
    codes = [3, 17, 40, 62, 99]
    goals = [(0, 0), (1, 2), (8, 8), (3, 5)]
    kept = compound_grid_tasks(goals, codes=codes, num_actions=5, permute=False, seed=0, max_actions=8)
    assert all(t["codes"] == codes + [0, 0, 0] and t["num_actions"] == 5 for t in kept)
    assert [t["goal"] for t in kept] == [list(g) for g in goals]
    shuffled = compound_grid_tasks(goals, codes=codes, num_actions=5, permute=True, seed=0, max_actions=8)
    assert all(sorted(t["codes"][:5]) == codes and t["codes"][5:] == [0, 0, 0] for t in shuffled)
    assert len({tuple(t["codes"]) for t in shuffled}) > 1


def test_tasks_sample_distinct_codes_and_are_deterministic():
    codes = list(range(10, 60))
    goals = [(i % 9, i // 9) for i in range(12)]
    for permute in (False, True):
        tasks = compound_grid_tasks(goals, codes=codes, num_actions=6, permute=permute, seed=4, max_actions=20)
        for t in tasks:
            chosen = t["codes"][:6]
            assert len(set(chosen)) == 6 and set(chosen) <= set(codes) and t["codes"][6:] == [0] * 14
            if not permute:
                assert chosen == sorted(chosen)
        assert len({tuple(t["codes"]) for t in tasks}) > 1
        assert json.loads(json.dumps(tasks)) == tasks
        assert compound_grid_tasks(goals, codes=codes, num_actions=6, permute=permute, seed=4, max_actions=20) == tasks
        # Task i depends only on (seed, i): a shorter goal list gives a prefix.
        shorter = compound_grid_tasks(goals[:5], codes=codes, num_actions=6, permute=permute, seed=4, max_actions=20)
        assert shorter == tasks[:5]
        assert compound_grid_tasks(goals, codes=codes, num_actions=6, permute=permute, seed=5, max_actions=20) != tasks


def test_tasks_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_actions"):
        compound_grid_tasks([(0, 0)], codes=[1, 2], num_actions=3, permute=False, seed=0, max_actions=5)
    with pytest.raises(ValueError, match="max_actions"):
        compound_grid_tasks([(0, 0)], codes=[1, 2, 3], num_actions=3, permute=False, seed=0, max_actions=2)
    with pytest.raises(ValueError, match="distinct"):
        compound_grid_tasks([(0, 0)], codes=[1, 1], num_actions=1, permute=False, seed=0, max_actions=5)


def test_task_dicts_round_trip_through_json_into_params(env):
    tasks = compound_grid_tasks([(2, 3)], codes=[RRR, 7, 99], num_actions=2, permute=True, seed=0, max_actions=125)
    task = json.loads(json.dumps(tasks[0]))
    params = env.params_for(**task)
    assert params.goal.tolist() == [2, 3] and params.codes.tolist() == task["codes"] and int(params.num_actions) == 2


# --------------------------------------------------------------------------------------
# jit and vmap


def test_jit_and_vmap_over_stacked_tasks(env):
    goals = [(4, 7), (4, 1), (1, 4), (7, 4)]
    codes = [RRR, compound_code([LEFT] * 3), compound_code([UP] * 3), compound_code([DOWN] * 3)]
    tasks = compound_grid_tasks(goals, codes=codes, num_actions=4, permute=True, seed=2, max_actions=125)
    params = stacked(env, tasks)
    n = len(tasks)
    keys = jax.random.split(jax.random.key(0), n)
    obs, state = jax.jit(jax.vmap(env.reset))(keys, params)
    assert obs.tolist() == [40] * n and obs.dtype == jnp.int32
    # Task i's goal is reached by the compound action codes[i], wherever its slot ended up.
    slots = jnp.asarray([t["codes"].index(c) for t, c in zip(tasks, codes)], jnp.int32)
    obs, state, reward, terminated, _, info = jax.jit(jax.vmap(env.step))(keys, state, slots, params)
    assert reward.tolist() == [1.0] * n and terminated.tolist() == [True] * n
    assert np.asarray(info["final_observation"]).tolist() == [r * 9 + c for r, c in goals]
    masks = jax.jit(jax.vmap(env.action_mask))(params)
    assert masks.shape == (n, 125) and np.asarray(masks.sum(axis=1)).tolist() == [4] * n
    assert jax.jit(jax.vmap(env.oracle_action))(state, params).tolist() == slots.tolist()

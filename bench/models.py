"""Transformer against S5: evaluation time per environment step and training throughput, by context length.

    python bench/models.py [--contexts 256 512 ...] [--s5-contexts ... 16384]

Both models are the default pipeline's, at similar parameter counts: the Transformer of
pipeline.yaml (2 layers, width 64) and S5 of pipelines/darkroom-s5.yaml (6 layers, width 64,
64 states). Evaluation runs the real in-context rollout on Dark Room (the environment step
included), one stream, for twice the context length (so the Transformer's window fills and
slides) and reports milliseconds per environment step: the median of five calls, after
compilation. S5 has no window:
its per-step cost does not depend on how long it has run. Training times the real jitted
train step on batches of 8,192 transitions (batch size = 8192 / context), after
compilation. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENS_PER_BATCH = 8192


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--s5-contexts", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 16384])
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()

    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    import jax
    import numpy as np

    from icrl.config import DistillConfig
    from icrl.distill.model import build_model, build_policy, model_spec
    from icrl.distill.trainer import init_state, make_optimizer, make_train_step
    from icrl.envs import make_env, spaces
    from icrl.config import DarkRoomConfig
    from icrl.evaluate.rollout import make_rollout

    env, params_for = make_env(DarkRoomConfig())
    env_params = env.default_params
    settings = {
        "transformer": dict(model="transformer", embed_dim=64, num_layers=2, num_heads=4),
        "s5": dict(model="s5", embed_dim=64, num_layers=6, state_size=64, scan="auto"),
    }
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind, contexts in (("transformer", args.contexts), ("s5", args.s5_contexts)):
        results[kind] = {}
        for context in contexts:
            distill = DistillConfig(**settings[kind], context_length=context, batch_size=max(1, TOKENS_PER_BATCH // context))
            spec = model_spec(distill, num_actions=env.num_actions, num_obs=81)
            model = build_model(spec)
            optimizer = make_optimizer(distill)
            state = init_state(model, optimizer, np.int32(0), seed=0)
            count = sum(x.size for x in jax.tree.leaves(state.params))

            # evaluation: in-context rollouts of 2 x context steps; the median of 5 timed calls
            length = spaces.episode_steps(env)
            episodes = max(1, 2 * context // length)
            rollout = jax.jit(
                make_rollout(build_policy(spec), env, episodes=episodes, policy="sample", temperature=0.5)
            )
            jax.block_until_ready(rollout(state.params, env_params, jax.random.key(0)))  # compile
            seconds = []
            for call in range(5):
                start = time.perf_counter()
                jax.block_until_ready(rollout(state.params, env_params, jax.random.key(1 + call)))
                seconds.append(time.perf_counter() - start)
            eval_ms = float(np.median(seconds)) / (episodes * length) * 1000

            # training: the real train step on random tokens of the same shapes as windows
            b = distill.batch_size
            batch = {
                "obs": rng.integers(0, 81, (b, context)).astype(np.int32),
                "action": rng.integers(0, 5, (b, context)).astype(np.int32),
                "prev_action": rng.integers(0, 5, (b, context)).astype(np.int32),
                "prev_reward": rng.random((b, context)).astype(np.float32),
            }
            step = make_train_step(model, optimizer, seed=0)
            state, metrics = step(state, batch)  # compile
            jax.block_until_ready(metrics)
            start = time.perf_counter()
            for _ in range(args.train_steps):
                state, metrics = step(state, batch)
            jax.block_until_ready(metrics)
            train_tps = args.train_steps * b * context / (time.perf_counter() - start)
            results[kind][str(context)] = {"eval_ms_per_step": round(eval_ms, 4), "train_tps": round(train_tps, 1)}
            print(
                f"{kind:11s} context {context:6d} ({count:,} parameters): evaluation {eval_ms:.3f} ms/step, "
                f"training {train_tps:,.0f} transitions/s (batches of {b} x {context})",
                flush=True,
            )
    common = [c for c in args.contexts if str(c) in results["s5"]]
    for context in common:
        t, s = results["transformer"][str(context)], results["s5"][str(context)]
        print(f"context {context:6d}: S5 evaluates {t['eval_ms_per_step'] / s['eval_ms_per_step']:.1f}x faster per step, "
              f"trains {s['train_tps'] / t['train_tps']:.2f}x as fast")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""The evaluation report: summary.json figures, report.md and a plot of return vs episode."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from icrl.atomic import atomic_open, write_text

PLOT_FILE = "returns.png"


def split_summary(returns: np.ndarray) -> dict[str, Any]:
    """Returns the figures of one split from its [rollouts, episodes] returns."""
    per_episode = returns.mean(axis=0)
    last = min(5, len(per_episode))
    return {
        "returns_per_episode": [round(float(x), 4) for x in per_episode],
        "std_per_episode": [round(float(x), 4) for x in returns.std(axis=0)],
        "rollouts": int(returns.shape[0]),
        "episode_1": round(float(per_episode[0]), 4),
        "last5_mean": round(float(per_episode[-last:].mean()), 4),
    }


def plot_returns(path: Path, summary: dict[str, Any], title: str) -> None:
    """Draws mean return per in-context episode, per split, with the reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    model = summary.get("model", "model")
    styles = {"heldout": ("tab:blue", f"{model}, held-out tasks"), "train": ("tab:cyan", f"{model}, training tasks")}
    for split, (color, label) in styles.items():
        if split not in summary:
            continue
        mean = np.asarray(summary[split]["returns_per_episode"])
        err = np.asarray(summary[split]["std_per_episode"]) / np.sqrt(summary[split]["rollouts"])
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=color, marker="o", ms=3, label=label)
        ax.fill_between(x, mean - err, mean + err, color=color, alpha=0.2)
    refs = summary["references"]
    for key, color, label in (
        ("optimal", "tab:green", "optimal"),
        ("pi_data", "tab:orange", "π_data (best policy in the data)"),
        ("random", "tab:gray", "random"),
    ):
        if refs.get(key) is not None:
            ax.axhline(refs[key], color=color, ls="--", lw=1.2, label=f"{label}: {refs[key]:.2f}")
    colors = itertools.cycle(("tab:purple", "tab:brown", "tab:pink", "tab:olive"))
    for other, color in zip(summary.get("compare", []), colors):
        for split, ls in (("heldout", "-"), ("train", ":")):
            if split in other:
                curve = other[split]["returns_per_episode"]
                label = f"{other['model']} ({Path(other['run']).name}), {'held-out' if split == 'heldout' else 'training'}"
                ax.plot(np.arange(1, len(curve) + 1), curve, color=color, ls=ls, lw=1.2, label=label)
    # The source's own curve over as many episodes as the model had: who learns faster.
    curve = (refs.get("source_curve") or [])[: summary["episodes"]]
    if curve:
        label = f"source ({refs.get('source', 'training data')}), same episodes"
        ax.plot(np.arange(1, len(curve) + 1), curve, color="tab:red", lw=1, alpha=0.7, label=label)
    _save(fig, ax, path, title=title, xlabel="episode (in context)", ylabel="mean return")


def _save(fig: Any, ax: Any, path: Path, *, title: str, xlabel: str, ylabel: str) -> None:
    """Labels, lays out and writes the figure to `path` (atomically), then closes it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def set_plot_file(name: str) -> str:
    return f"set-{name}.png"


def _count(span: list[int]) -> str:
    return f"{span[0]}" if span[0] == span[1] else f"{span[0]}–{span[1]}"


def plot_set(path: Path, name: str, figures: dict[str, Any]) -> None:
    """Draws evaluation set `name`: every model that ran against the references.

    Bandits: mean cumulative regret per pull, beside the source algorithm and random.
    Otherwise: success rate per episode, beside the oracle's and random's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regret = figures["metric"] == "regret"
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=110)
    colors = itertools.cycle(("tab:blue", "tab:purple", "tab:brown", "tab:pink"))
    for label, result in figures["models"].items():
        color = next(colors)
        if "curve" in result:
            ax.plot(np.arange(1, len(result["curve"]) + 1), result["curve"], color=color, lw=1.6, label=label)
    refs = figures["references"]
    if regret:
        for key, color, label in (("source_curve", "tab:red", refs["source"]), ("random_curve", "tab:gray", "random")):
            ax.plot(np.arange(1, len(refs[key]) + 1), refs[key], color=color, ls="--", lw=1.2, label=label)
    else:
        for key, color, label in (("optimal_success", "tab:green", "optimal"), ("random_success", "tab:gray", "random")):
            ax.axhline(refs[key], color=color, ls="--", lw=1.2, label=f"{label}: {refs[key]:.2f}")
    _save(
        fig, ax, path, title=f"{name}: {figures['tasks']} tasks, {_count(figures['actions'])} actions",
        xlabel="pull (in context)" if regret else "episode (in context)",
        ylabel="cumulative expected regret" if regret else "success rate",
    )


def _set_cell(result: dict[str, Any]) -> str:
    if "cannot_run" in result:
        return f"cannot run: {result['cannot_run']}"
    if "regret" in result:
        norm = result["normalised_regret"]
        return f"{result['regret']:.1f} ({'n/a' if norm is None else f'{norm:.2f}'})"
    return f"{result['success_first']:.2f} → {result['success_last5']:.2f}"


def _paired_lines(sets: dict[str, Any], labels: list[str]) -> list[str]:
    """Returns a line per set that holds another set's tasks (e.g. with the actions permuted): what changed, per model."""
    lines = []
    for name, fig in sets.items():
        base = sets.get(fig.get("same_tasks_as") or "")
        if base is None:
            continue
        key = "regret" if fig["metric"] == "regret" else "success_last5"
        changes = []
        for label in labels:
            before, after = base["models"].get(label, {}), fig["models"].get(label, {})
            if key in before and key in after:
                rise = f" ({(after[key] - before[key]) / before[key]:+.0%})" if before[key] else ""
                digits = 1 if key == "regret" else 2
                changes.append(f"{label} {before[key]:.{digits}f} → {after[key]:.{digits}f}{rise}")
        what = "the actions permuted" if fig["permuted"] and not base["permuted"] else "the same tasks"
        lines += [f"- {name} holds the tasks of {fig['same_tasks_as']} with {what}: {key.replace('_', ' ')} " + "; ".join(changes), ""]
    return lines


def render_sets(summary: dict[str, Any]) -> list[str]:
    """Returns report.md's section on the evaluation sets: regret or success per model and set."""
    labels, order = summary["set_models"], summary.get("set_order") or sorted(summary["sets"])
    sets = {name: summary["sets"][name] for name in order}
    first = next(iter(sets.values()))
    if first["metric"] == "regret":
        source = first["references"]["source"]
        explain = (
            "Expected cumulative regret at the horizon, mean over rollouts; in brackets the normalised "
            f"regret: 0 for a uniformly random policy, 1 for {source} learning each task from scratch."
        )
        heads, refs, ref_keys = [f"{label}: regret (normalised)" for label in labels], [source, "random"], ("source_regret", "random_regret")
    else:
        explain = "Success rate (the share of episodes that reach the goal): first episode → last five."
        heads, refs, ref_keys = [f"{label}: success" for label in labels], ["optimal", "random"], ("optimal_success", "random_success")
    lines = [
        "## Evaluation sets",
        "",
        explain,
        "",
        f"| set | actions | tasks × rollouts | {' | '.join(heads)} | {' | '.join(refs)} |",
        "|---|---|---|" + "---|" * (len(labels) + 2),
    ]
    for name, fig in sets.items():
        per_task = fig["rollouts"] // max(fig["tasks"], 1)
        cells = [f"{name} ({fig['draw']} draw{', permuted' if fig['permuted'] else ''})", _count(fig["actions"]), f"{fig['tasks']} × {per_task}"]
        cells += [_set_cell(fig["models"].get(label, {"cannot_run": "not evaluated"})) for label in labels]
        cells += [f"{fig['references'][key]:.{1 if fig['metric'] == 'regret' else 2}f}" for key in ref_keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += _paired_lines(sets, labels)
    lines += [f"![{name}]({set_plot_file(name)})" for name in sets]
    lines.append("")
    return lines


def _figure(value: float | None, missing: str) -> str:
    return f"{value:.2f}" if value is not None else f"n/a ({missing})"


def render_report(summary: dict[str, Any]) -> str:
    """Returns report.md for `summary`."""
    refs = summary["references"]
    policy = summary["policy"]
    rule = "argmax (greedy)" if policy["rule"] == "greedy" else f"sampling at temperature {policy['temperature']}"
    lines = [
        f"# Evaluation: {summary['dataset']} → {summary['model']}",
        "",
        f"The frozen model (checkpoint step {summary['checkpoint_step']}) acted for {summary['episodes']} episodes "
        "per rollout, its context carried across episodes and never reset. "
        f"Actions: {rule}.",
        "",
        "| split | tasks | rollouts | episode 1 | last 5 episodes |",
        "|---|---|---|---|---|",
    ]
    for split in ("heldout", "train"):
        if split in summary:
            s = summary[split]
            lines.append(f"| {split} | {s['tasks']} | {s['rollouts']} | {s['episode_1']:.2f} | {s['last5_mean']:.2f} |")
    lines += [
        "",
        f"References (mean episode return; random and optimal on the {refs['tasks']} tasks):",
        "",
        f"- random policy: {refs['random']:.2f}",
        f"- optimal policy: {_figure(refs['optimal'], 'no scripted oracle for this environment')}",
        f"- π_data, the best policy in the data ({refs['pi_data_from']}): {_figure(refs['pi_data'], 'no episodes')}",
        "",
    ]
    for other in summary.get("compare", []):
        if "missing" in other:
            lines += [f"Comparison with {other['run']}: {other['missing']}.", ""]
            continue
        for split in ("heldout", "train"):
            if split in other and split in summary:
                mine, theirs = summary[split]["last5_mean"], other[split]["last5_mean"]
                ratio = f" ({mine / theirs:.2f}× of it)" if theirs else ""
                lines.append(
                    f"- {split}, {other['model']} of `{other['run']}`: episode 1 {other[split]['episode_1']:.2f}, "
                    f"last 5 {theirs:.2f}; this {summary['model']}: {mine:.2f}{ratio}"
                )
        lines.append("")
    if "heldout" in summary and refs["pi_data"]:
        ratio = summary["heldout"]["last5_mean"] / refs["pi_data"]
        lines.append(f"On held-out tasks the last five episodes reach {ratio:.2f}× π_data.")
        lines.append("")
    lines += [f"![return per episode]({PLOT_FILE})", ""]
    if summary.get("sets"):
        lines += render_sets(summary)
    return "\n".join(lines)


def write_report(folder: Path, summary: dict[str, Any]) -> None:
    """Writes report.md and the plot into `folder`."""
    plot_returns(folder / PLOT_FILE, summary, f"{summary['dataset']}: in-context returns")
    for name, figures in summary.get("sets", {}).items():
        plot_set(folder / set_plot_file(name), name, figures)
    write_text(folder / "report.md", render_report(summary))

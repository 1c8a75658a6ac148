"""pipeline.yaml as pydantic models: every key typed, unknown keys refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from icrl.errors import BadInputError

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, lt=2**31 - 1)]  # JAX keys hold 32 bits
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RunConfig(Section):
    name: Name = "darkroom-ad-eps"
    """The run's folder: `<root>/<name>/`."""
    root: str = "runs"


class DarkRoomConfig(Section):
    id: Literal["DarkRoom-v0"] = "DarkRoom-v0"
    size: Annotated[int, Field(ge=2, le=64)] = 9
    episode_length: PositiveInt = 20

    def settings(self) -> dict[str, Any]:
        """Returns the environment's fixed settings (everything but the id)."""
        return self.model_dump(exclude={"id"})

    @property
    def num_tasks(self) -> int:
        return self.size * self.size


class TasksConfig(Section):
    heldout: NonNegativeInt = 16
    """How many tasks are held out of the training data (chosen by a seeded permutation)."""
    split_seed: Seed = 0


class CollectConfig(Section):
    source: Literal["noise_curriculum"] = "noise_curriculum"
    epsilon_floor: Probability = 0.5
    floor_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """ε reaches its floor after this fraction of a history's episodes."""
    episodes_per_history: PositiveInt = 10
    histories_per_task: PositiveInt = 32
    histories_per_unit: PositiveInt = 64
    """Histories per unit of work: one jitted program run and one shard."""
    executor: Literal["ray", "serial"] = "ray"
    seed: Seed = 0

    def fingerprint_fields(self) -> dict[str, Any]:
        """Returns the settings that decide the bytes collected (not how they are scheduled)."""
        return self.model_dump(exclude={"executor"})


class RayConfig(Section):
    address: str | None = None
    """A cluster to join (`auto`, `ray://host:port`); none starts a local Ray for the run."""
    num_cpus: PositiveInt | None = None
    """CPUs of the local Ray (default: all)."""
    max_retries: NonNegativeInt = 3


class DatasetsConfig(Section):
    name: Name = "darkroom-ad-eps"
    version: PositiveInt = 1
    license: str = "CC-BY-4.0"

    @property
    def dataset_id(self) -> str:
        return f"{self.name}-v{self.version}"


class DistillConfig(Section):
    model: Literal["transformer"] = "transformer"
    context_length: PositiveInt = 100
    """Transitions per training window (one token each)."""
    embed_dim: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    batch_size: PositiveInt = 64
    steps: PositiveInt = 2300
    learning_rate: Annotated[float, Field(gt=0.0)] = 2e-3
    warmup_steps: NonNegativeInt = 100
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.1
    grad_clip: Annotated[float, Field(gt=0.0)] = 1.0
    checkpoint_every: PositiveInt = 500
    log_every: PositiveInt = 50
    seed: Seed = 0


class EvaluateConfig(Section):
    episodes: PositiveInt = 40
    """In-context episodes per rollout; the context is carried across them."""
    rollouts_per_task: PositiveInt = 4
    train_tasks: NonNegativeInt = 16
    """How many training tasks (a seeded sample) are evaluated beside all held-out ones."""
    policy: Literal["sample", "greedy"] = "sample"
    temperature: Annotated[float, Field(gt=0.0)] = 0.5
    """Softmax temperature when `policy` is `sample`: below 1 sharpens the model's choice."""
    reference_episodes: PositiveInt = 200
    """Episodes per task used to measure the random and π_data reference returns."""
    seed: Seed = 0


class PipelineConfig(Section):
    run: RunConfig = RunConfig()
    env: DarkRoomConfig = DarkRoomConfig()
    tasks: TasksConfig = TasksConfig()
    collect: CollectConfig = CollectConfig()
    ray: RayConfig = RayConfig()
    datasets: DatasetsConfig = DatasetsConfig()
    distill: DistillConfig = DistillConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @property
    def run_dir(self) -> Path:
        return Path(self.run.root) / self.run.name


class ConfigError(BadInputError, ValueError):
    """A pipeline config that cannot be used; the message names the file and the key path."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key written twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: a key must be a plain name, not {type(key).__name__}")
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads 1e-3 (no dot) as a string; read it as the number everyone means.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _check_consistency(cfg: PipelineConfig) -> None:
    """Raises ConfigError for settings that are valid alone but not together."""
    n_tasks = cfg.env.num_tasks
    if cfg.tasks.heldout >= n_tasks:
        raise ConfigError(f"tasks.heldout: {cfg.tasks.heldout} held out of {n_tasks} tasks leaves none to train on")
    if cfg.evaluate.train_tasks > n_tasks - cfg.tasks.heldout:
        raise ConfigError(
            f"evaluate.train_tasks: {cfg.evaluate.train_tasks} exceeds the {n_tasks - cfg.tasks.heldout} training tasks"
        )
    history = cfg.collect.episodes_per_history * cfg.env.episode_length
    if cfg.distill.context_length > history:
        raise ConfigError(
            f"distill.context_length: {cfg.distill.context_length} is longer than a history "
            f"({cfg.collect.episodes_per_history} episodes x {cfg.env.episode_length} steps = {history})"
        )
    if cfg.distill.embed_dim % cfg.distill.num_heads or (cfg.distill.embed_dim // cfg.distill.num_heads) % 2:
        raise ConfigError(
            f"distill.num_heads: distill.embed_dim {cfg.distill.embed_dim} must split into {cfg.distill.num_heads} "
            "heads of an even width (rotary position encoding rotates pairs of features)"
        )
    if cfg.distill.warmup_steps >= cfg.distill.steps:
        raise ConfigError(
            f"distill.warmup_steps: {cfg.distill.warmup_steps} is not shorter than the run (distill.steps {cfg.distill.steps})"
        )


def parse_config(data: Any, *, source: str = "pipeline.yaml") -> PipelineConfig:
    """Returns the validated config of `data` (a parsed YAML document); raises ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, not {type(data).__name__}")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_key_path(first['loc'])}: {message}{more}") from None
    try:
        _check_consistency(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


def load_config(path: str | Path) -> PipelineConfig:
    """Returns the validated config in the YAML file at `path`; raises ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_config(data, source=str(path))

"""pipeline.yaml as pydantic models: every key typed, unknown keys refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator, model_validator

from icrl.errors import BadInputError

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, lt=2**31 - 1)]  # JAX keys hold 32 bits
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


STAGES = ("collect", "datasets", "distill", "evaluate")


class RunConfig(Section):
    name: Name = "darkroom-ad-eps"
    """The run's folder: `<root>/<name>/`."""
    root: str = "runs"
    until: Literal["collect", "datasets", "distill", "evaluate"] = "evaluate"
    """The last stage to run: `datasets` only generates and publishes learning histories."""


# gymnax 1.0.1's registered environments (a test checks this list against gymnax itself);
# listed here because importing gymnax starts JAX, and configs are read before Ray starts.
GYMNAX_IDS = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite", "UmbrellaChain-bsuite", "DiscountingChain-bsuite",
    "MNISTBandit-bsuite", "SimpleBandit-bsuite", "FourRooms-misc", "MetaMaze-misc", "PointRobot-misc",
    "BernoulliBandit-misc", "GaussianBandit-misc", "Reacher-misc", "Swimmer-misc", "Pong-misc", "FrozenLake-misc",
)
# Those whose actions are float vectors, and those whose observations are an index.
GYMNAX_CONTINUOUS = ("Pendulum-v1", "MountainCarContinuous-v0", "PointRobot-misc", "Reacher-misc", "Swimmer-misc")
GYMNAX_DISCRETE_OBS = ("FrozenLake-misc",)


class EnvSection(Section):
    """What every environment section tells the rest of the config."""

    discrete_obs: ClassVar[bool | None] = None
    """Whether observations are an index (tabular learners need that); None: unknown until built."""

    def settings(self) -> dict[str, Any]:
        """Returns the environment's settings (everything but the id)."""
        return self.model_dump(exclude={"id"})

    def task_count(self) -> int:
        """Returns how many tasks the environment offers."""
        return self.num_tasks  # type: ignore[attr-defined]

    def steps_per_episode(self) -> int | None:
        """Returns the (maximum) steps per episode, or None where only the built environment knows it."""
        return getattr(self, "episode_length", None)

    def continuous_actions(self) -> bool:
        return False

    def oracle(self) -> bool:
        """Returns whether the environment has a scripted optimal agent (a noise-curriculum demonstrator)."""
        return False

    def max_actions(self) -> int | None:
        """Returns the most actions a task offers where the config says (bandits, the compound grid)."""
        return getattr(self, "max_arms", None)


class DarkRoomConfig(EnvSection):
    id: Literal["DarkRoom-v0"] = "DarkRoom-v0"
    size: Annotated[int, Field(ge=2, le=64)] = 9
    episode_length: PositiveInt = 20
    discrete_obs: ClassVar[bool | None] = True

    def oracle(self) -> bool:
        return True

    def task_count(self) -> int:
        return self.size * self.size


class KeyToDoorConfig(EnvSection):
    id: Literal["DarkKeyToDoor-v0"] = "DarkKeyToDoor-v0"
    size: Annotated[int, Field(ge=2, le=64)] = 9
    episode_length: PositiveInt = 50
    random_start: bool = True
    num_tasks: PositiveInt | None = None
    """Use a seeded sample of this many (key, door) pairs; none: all of them."""
    discrete_obs: ClassVar[bool | None] = True

    def oracle(self) -> bool:
        return True

    def task_count(self) -> int:
        cells = self.size * self.size
        return self.num_tasks or cells * (cells - 1)


class BernoulliBanditConfig(EnvSection):
    id: Literal["BernoulliBandit-v0"] = "BernoulliBandit-v0"
    min_arms: Annotated[int, Field(ge=2)] = 10
    max_arms: Annotated[int, Field(ge=2)] = 10
    """Tasks draw their arm count from [min_arms, max_arms]; arms past a task's count are masked."""
    distribution: Literal["uniform", "adversarial"] = "uniform"
    """`adversarial`: odd arms high in 95% of training tasks, even arms high in held-out ones (AD)."""
    num_tasks: PositiveInt = 100
    discrete_obs: ClassVar[bool | None] = True

    def oracle(self) -> bool:
        return True

    def steps_per_episode(self) -> int:
        return 1  # one pull


class ContextualBanditConfig(EnvSection):
    id: Literal["ContextualBandit-v0"] = "ContextualBandit-v0"
    min_arms: Annotated[int, Field(ge=2)] = 10
    max_arms: Annotated[int, Field(ge=2)] = 10
    context_dim: PositiveInt = 5
    noise: Annotated[float, Field(ge=0.0)] = 0.1
    num_tasks: PositiveInt = 100
    discrete_obs: ClassVar[bool | None] = False

    def oracle(self) -> bool:
        return True

    def steps_per_episode(self) -> int:
        return 1  # one pull


class CompoundGridConfig(EnvSection):
    """A dark grid whose actions are compound: `moves` base moves in one step (Headless-AD's gridworld).

    A task is a goal cell (held-out goals via `tasks.heldout`) and the compound actions it offers."""

    id: Literal["CompoundGrid-v0"] = "CompoundGrid-v0"
    size: Annotated[int, Field(ge=2, le=64)] = 9
    episode_length: PositiveInt = 20
    """Steps per episode; reaching the goal pays 1 and ends it (success)."""
    moves: Annotated[int, Field(ge=1, le=4)] = 3
    """Base moves per action: 5**moves compound actions (125 for 3)."""
    train_actions: PositiveInt = 50
    """How many compound actions training may use (a seeded split by tasks.split_seed); the rest are held out."""
    action_pool: Literal["train", "heldout", "all"] = "train"
    """The compound actions tasks offer: training uses `train`; evaluation sets may ask for the others."""
    num_actions: PositiveInt | None = None
    """Actions per task: a seeded sample of the pool per task; none: the whole pool, in code order."""
    discrete_obs: ClassVar[bool | None] = True

    def oracle(self) -> bool:
        return True

    def task_count(self) -> int:
        return self.size * self.size

    def pool_size(self) -> int:
        """Returns how many compound actions the pool holds."""
        return {"train": self.train_actions, "heldout": 5**self.moves - self.train_actions, "all": 5**self.moves}[
            self.action_pool
        ]

    def max_actions(self) -> int:
        return self.num_actions or self.pool_size()


class GymnaxConfig(EnvSection):
    """Any environment registered with gymnax, as it comes: a single task."""

    id: str = "CartPole-v1"

    @field_validator("id")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GYMNAX_IDS:
            own = ", ".join(sorted(_OWN_ENVS))
            raise ValueError(f"unknown environment {value!r}; icrl's own: {own}; or a gymnax id: {', '.join(GYMNAX_IDS)}")
        return value

    def task_count(self) -> int:
        return 1

    def continuous_actions(self) -> bool:
        return self.id in GYMNAX_CONTINUOUS

    @property
    def discrete_obs(self) -> bool:  # type: ignore[override]
        return self.id in GYMNAX_DISCRETE_OBS


class ProjectedConfig(EnvSection):
    """A base environment seen through a random linear projection; each projection seed is a task."""

    id: Literal["Projected-v0"] = "Projected-v0"
    base: str = "CartPole-v1"
    """A gymnax id, or DarkRoom-v0 (its cell index is one-hot encoded before the projection)."""
    obs_dim: PositiveInt = 16
    num_tasks: PositiveInt = 64
    discrete_obs: ClassVar[bool | None] = False

    def steps_per_episode(self) -> int | None:
        return DarkRoomConfig().episode_length if self.base == "DarkRoom-v0" else None

    def oracle(self) -> bool:
        return self.base == "DarkRoom-v0"

    def continuous_actions(self) -> bool:
        return self.base in GYMNAX_CONTINUOUS


_OWN_ENVS = {"DarkRoom-v0", "DarkKeyToDoor-v0", "BernoulliBandit-v0", "ContextualBandit-v0", "Projected-v0", "CompoundGrid-v0"}


_UNION_TAGS = _OWN_ENVS | {"gymnax", "oracle", "ppo", "q_learning", "noise_curriculum", "thompson", "ucb", "linucb", "random"}


def _env_kind(data: Any) -> str:
    env_id = data.get("id", "DarkRoom-v0") if isinstance(data, dict) else getattr(data, "id", None)
    return env_id if isinstance(env_id, str) and env_id in _OWN_ENVS else "gymnax"


EnvConfig = Annotated[
    Annotated[DarkRoomConfig, Tag("DarkRoom-v0")]
    | Annotated[KeyToDoorConfig, Tag("DarkKeyToDoor-v0")]
    | Annotated[BernoulliBanditConfig, Tag("BernoulliBandit-v0")]
    | Annotated[ContextualBanditConfig, Tag("ContextualBandit-v0")]
    | Annotated[ProjectedConfig, Tag("Projected-v0")]
    | Annotated[CompoundGridConfig, Tag("CompoundGrid-v0")]
    | Annotated[GymnaxConfig, Tag("gymnax")],
    Discriminator(_env_kind),
]


class TasksConfig(Section):
    heldout: NonNegativeInt = 16
    """How many tasks are held out of the training data: a seeded choice among the family's
    tasks, except for bandits, whose held-out tasks are drawn apart (from the test
    distribution, for `adversarial`) and count towards `env.num_tasks`."""
    split_seed: Seed = 0
    """Seeds the split, and the drawing of generated tasks (bandits, a Key-to-Door sample)."""


class OracleConfig(Section):
    """The environment's scripted optimal agent (Dark Room, Key-to-Door, bandits)."""

    algorithm: Literal["oracle"] = "oracle"


class PPOConfig(Section):
    """PPO with one environment stream per learner, so its history is one contiguous sequence."""

    algorithm: Literal["ppo"] = "ppo"
    updates: PositiveInt = 60
    """Policy updates per history; the history holds `updates * rollout_steps` steps."""
    rollout_steps: PositiveInt = 100
    epochs: PositiveInt = 2
    minibatches: PositiveInt = 4
    learning_rate: Annotated[float, Field(gt=0.0)] = 5e-3
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    gae_lambda: Annotated[float, Field(ge=0.0, le=1.0)] = 0.95
    clip: Annotated[float, Field(gt=0.0)] = 0.2
    entropy_coef: Annotated[float, Field(ge=0.0)] = 0.01
    value_coef: Annotated[float, Field(ge=0.0)] = 0.5
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 0.5
    hidden: PositiveInt = 32

    @model_validator(mode="after")
    def _whole_minibatches(self) -> "PPOConfig":
        if self.rollout_steps % self.minibatches:
            raise ValueError(f"minibatches ({self.minibatches}) must divide rollout_steps ({self.rollout_steps})")
        return self

    def history_steps(self, episode_length: int) -> int:
        return self.updates * self.rollout_steps


class QLearningConfig(Section):
    """Tabular Q-learning, ε-greedy with ε annealed linearly; needs discrete observations."""

    algorithm: Literal["q_learning"] = "q_learning"
    steps: PositiveInt = 6000
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    epsilon_start: Probability = 1.0
    epsilon_floor: Probability = 0.05
    floor_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5

    def history_steps(self, episode_length: int) -> int:
        return self.steps


Demonstrator = Annotated[OracleConfig | PPOConfig | QLearningConfig, Field(discriminator="algorithm")]


class NoiseCurriculumConfig(Section):
    """AD-ε: a demonstrator acting ε-greedily while ε anneals from `epsilon_start` to a floor."""

    algorithm: Literal["noise_curriculum"] = "noise_curriculum"
    demonstrator: Demonstrator = OracleConfig()
    """The scripted oracle, or the final policy of a PPO / Q-learning run on the same task."""
    schedule: Literal["linear", "exponential"] = "linear"
    epsilon_start: Probability = 1.0
    epsilon_floor: Probability = 0.5
    floor_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """ε reaches its floor after this fraction of the history."""
    episodes: PositiveInt = 10
    """Episodes per history (more if episodes end early: the history has `episodes` x episode length steps)."""

    def history_steps(self, episode_length: int) -> int:
        return self.episodes * episode_length


class ThompsonConfig(Section):
    """Thompson sampling with Beta posteriors, for Bernoulli bandits."""

    algorithm: Literal["thompson"] = "thompson"
    pulls: PositiveInt = 300
    prior_alpha: Annotated[float, Field(gt=0.0)] = 1.0
    prior_beta: Annotated[float, Field(gt=0.0)] = 1.0

    def history_steps(self, episode_length: int) -> int:
        return self.pulls


class UCBConfig(Section):
    """UCB1 for Bernoulli bandits: mean + sqrt(c ln t / n), each arm pulled once first."""

    algorithm: Literal["ucb"] = "ucb"
    pulls: PositiveInt = 300
    c: Annotated[float, Field(ge=0.0)] = 2.0

    def history_steps(self, episode_length: int) -> int:
        return self.pulls


class LinUCBConfig(Section):
    """LinUCB (disjoint arms) for contextual linear bandits."""

    algorithm: Literal["linucb"] = "linucb"
    pulls: PositiveInt = 300
    alpha: Annotated[float, Field(ge=0.0)] = 1.0
    ridge: Annotated[float, Field(gt=0.0)] = 1.0

    def history_steps(self, episode_length: int) -> int:
        return self.pulls


class RandomConfig(Section):
    """Uniformly random actions: no learning; the environment's throughput ceiling."""

    algorithm: Literal["random"] = "random"
    steps: PositiveInt = 1000

    def history_steps(self, episode_length: int) -> int:
        return self.steps


Source = Annotated[
    NoiseCurriculumConfig | PPOConfig | QLearningConfig | ThompsonConfig | UCBConfig | LinUCBConfig | RandomConfig,
    Field(discriminator="algorithm"),
]


class CollectConfig(Section):
    source: Source = NoiseCurriculumConfig()
    """The learner (or noise curriculum) whose learning histories are recorded."""
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


DataFormat = Literal["ipc", "parquet", "hdf5"]


class DatasetsConfig(Section):
    name: Name = "darkroom-ad-eps"
    version: PositiveInt = 1
    license: str = "CC-BY-4.0"
    formats: Annotated[list[DataFormat], Field(min_length=1)] = ["ipc", "parquet", "hdf5"]
    """Which formats the dataset is written in: Arrow IPC (training), Parquet (publishing), HDF5."""
    hdf5_chunk_length: PositiveInt = 100
    """Steps per HDF5 chunk: set it to distill.context_length, so a window reads one or two chunks.
    It is a setting of the dataset, not taken from distill, so a new context needs no new dataset."""

    @field_validator("formats")
    @classmethod
    def _distinct(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise ValueError(f"lists a format twice: {formats}")
        return sorted(formats, key=["ipc", "parquet", "hdf5"].index)  # the order is not a setting

    @property
    def dataset_id(self) -> str:
        return f"{self.name}-v{self.version}"


class DistillConfig(Section):
    model: Literal["transformer", "s5"] = "transformer"
    """The backbone: a causal Transformer (KV-cached evaluation) or S5 (recurrent, O(1) per step)."""
    context_length: PositiveInt = 100
    """Transitions per training window (one token each)."""
    embed_dim: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    """Transformer only."""
    mlp_ratio: PositiveInt = 4
    """Transformer only."""
    state_size: PositiveInt = 64
    """S5 only: states per layer (HiPPO-LegS, conjugate pairs: half are kept); even."""
    scan: Literal["auto", "parallel", "sequential"] = "auto"
    """S5 only: how training runs the recurrence; auto: sequential on CPUs, parallel on accelerators."""
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
    every_kth_episode: PositiveInt = 1
    """Train on episodes 0, k, 2k, ... of each history: k times more learning progress per window."""
    data_format: Literal["auto", "ipc", "parquet", "hdf5"] = "auto"
    """The dataset format windows are read from; auto: the fastest the dataset holds."""
    head: Literal["linear", "headless"] = "linear"
    """linear: one output per action of the dataset (plain AD). headless (Headless-AD): actions
    enter as random orthonormal embeddings, listed at the start of the context, and the model
    scores them by dot product, so it can act with other action counts, orders and actions."""
    action_embed_dim: PositiveInt = 64
    """Headless only: the size of the action embeddings; at least the most actions any task offers."""
    baseline: bool = False
    """Headless only: also train plain AD (a linear head, same backbone and settings) on the same
    data; the evaluation reports it beside Headless-AD, or says where it cannot run."""

    def fingerprint_fields(self) -> dict[str, Any]:
        """Returns the settings that decide the trained model: not the other backbone's, nor
        the scan (parallel and sequential compute the same function)."""
        other = {"state_size"} if self.model == "transformer" else {"num_heads", "mlp_ratio"}
        if self.head == "linear":  # as before heads existed: plain-AD runs keep their fingerprints
            other |= {"head", "action_embed_dim", "baseline"}
        return self.model_dump(exclude={"scan", *other})


class EvalSetConfig(Section):
    """A set of new tasks the model is evaluated on, drawn at evaluation (never in the data)."""

    name: Name
    tasks: PositiveInt = 20
    draw: Literal["train", "heldout"] = "heldout"
    """The task distribution: the training one or the held-out one (Bernoulli `adversarial`:
    held-out tasks have the even arms high; the compound-action grid: held-out goals;
    contextual bandits have one distribution, so both draw alike)."""
    env: dict[str, Any] = {}
    """Settings of the env section that differ for this set (e.g. min_arms / max_arms)."""
    permute_actions: bool = False
    """Shuffle which action index does what, per task (bandit arms; grid compound actions)."""
    same_tasks_as: Name | None = None
    """Draw the tasks of that other set (same draw and env), e.g. to permute them: a paired comparison."""

    @property
    def task_seed_name(self) -> str:
        """Returns the name the set's tasks and rollout streams are seeded by."""
        return self.same_tasks_as or self.name


class EvaluateConfig(Section):
    episodes: PositiveInt = 40
    """In-context episodes per rollout; the context is carried across them."""
    rollouts_per_task: PositiveInt = 4
    train_tasks: NonNegativeInt = 16
    """Up to this many training tasks (a seeded sample) are evaluated beside all held-out ones."""
    policy: Literal["sample", "greedy"] = "sample"
    temperature: Annotated[float, Field(gt=0.0)] = 0.5
    """Softmax temperature when `policy` is `sample`: below 1 sharpens the model's choice."""
    reference_episodes: PositiveInt = 200
    """Episodes per task used to measure the random and π_data reference returns."""
    seed: Seed = 0
    compare_with: list[str] = []
    """Other run folders whose evaluated curves the report draws beside this run's (e.g. another backbone)."""
    sets: list[EvalSetConfig] = []
    """Evaluation sets of new tasks (bandits, the compound-action grid): regret or success per set."""

    def fingerprint_fields(self) -> dict[str, Any]:
        """Returns the settings that decide the evaluation (not which other runs the report shows).

        No sets, no key: evaluations from before sets existed keep their fingerprints."""
        return self.model_dump(exclude={"compare_with"} | (set() if self.sets else {"sets"}))


class PipelineConfig(Section):
    run: RunConfig = RunConfig()
    env: EnvConfig = DarkRoomConfig()
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
    """A YAML loader that refuses a key written twice in one mapping, and nesting past MAX_DEPTH."""

    MAX_DEPTH = 64  # PyYAML composes nodes recursively: deep enough nesting is a RecursionError

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self.MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"line {line}: nested more than {self.MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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


_BANDIT_SOURCES = {"thompson": "BernoulliBandit-v0", "ucb": "BernoulliBandit-v0", "linucb": "ContextualBandit-v0"}


def _check_consistency(cfg: PipelineConfig) -> None:
    """Raises ConfigError for settings that are valid alone but not together."""
    env, source = cfg.env, cfg.collect.source
    n_tasks = env.task_count()
    if cfg.tasks.heldout >= n_tasks:
        raise ConfigError(f"tasks.heldout: {cfg.tasks.heldout} held out of {n_tasks} tasks leaves none to train on")
    if isinstance(env, (BernoulliBanditConfig, ContextualBanditConfig)) and env.min_arms > env.max_arms:
        raise ConfigError(f"env.min_arms: {env.min_arms} is more than env.max_arms {env.max_arms}")
    if isinstance(env, CompoundGridConfig):
        _check_grid(env, "env")
        if env.action_pool != "train":
            raise ConfigError(
                f"env.action_pool: training tasks offer the train pool; {env.action_pool} is for evaluate.sets"
            )
    if isinstance(env, ProjectedConfig) and env.base not in ("DarkRoom-v0", *GYMNAX_IDS):
        raise ConfigError(f"env.base: unknown environment {env.base!r}; use DarkRoom-v0 or a gymnax id")
    needs = _BANDIT_SOURCES.get(source.algorithm)
    if needs and env.id != needs:
        raise ConfigError(f"collect.source.algorithm: {source.algorithm} runs on {needs}, not {env.id}")
    learners = [("collect.source", source)]
    if isinstance(source, NoiseCurriculumConfig):
        learners.append(("collect.source.demonstrator", source.demonstrator))
        if source.demonstrator.algorithm == "oracle" and not env.oracle():
            raise ConfigError(
                f"collect.source.demonstrator: {env.id} has no scripted oracle; use a ppo or q_learning demonstrator"
            )
        if source.epsilon_floor > source.epsilon_start:
            raise ConfigError(
                f"collect.source.epsilon_floor: {source.epsilon_floor} is above epsilon_start {source.epsilon_start}"
            )
    for where, learner in learners:
        if learner.algorithm == "q_learning" and env.discrete_obs is False:
            raise ConfigError(f"{where}: tabular Q-learning needs discrete observations; {env.id} has vectors")
        if learner.algorithm == "q_learning" and env.continuous_actions():
            raise ConfigError(f"{where}: tabular Q-learning needs discrete actions; {env.id} has continuous ones")
    if isinstance(env, KeyToDoorConfig) and env.num_tasks and env.num_tasks > (pairs := env.size**2 * (env.size**2 - 1)):
        raise ConfigError(f"env.num_tasks: {env.num_tasks} is more than the {pairs} (key, door) pairs")
    if STAGES.index(cfg.run.until) < STAGES.index("distill"):
        return
    if env.continuous_actions():
        raise ConfigError(
            f"env.id: {env.id} has continuous actions, which the distill stage does not model yet; "
            "set run.until: datasets to collect and publish its histories"
        )
    episode_length = env.steps_per_episode()
    history = source.history_steps(episode_length) if episode_length or source.algorithm != "noise_curriculum" else None
    if history is not None and cfg.distill.context_length > history:
        raise ConfigError(
            f"distill.context_length: {cfg.distill.context_length} is longer than a history ({history} steps)"
        )
    k = cfg.distill.every_kth_episode
    if history is not None and episode_length and k > 1:
        kept = -(-history // episode_length // k) * episode_length  # episodes 0, k, 2k, ... of fixed length
        if cfg.distill.context_length > kept:
            raise ConfigError(
                f"distill.context_length: {cfg.distill.context_length} is longer than the {kept} steps of a history "
                f"that distill.every_kth_episode: {k} keeps; lower one of them"
            )
    if cfg.distill.data_format not in ("auto", *cfg.datasets.formats):
        raise ConfigError(
            f"distill.data_format: {cfg.distill.data_format} is not among datasets.formats {cfg.datasets.formats}"
        )
    if cfg.distill.model == "s5" and cfg.distill.state_size % 2:
        raise ConfigError(f"distill.state_size: {cfg.distill.state_size} must be even (S5 keeps one of each conjugate pair)")
    if cfg.distill.model == "transformer" and (
        cfg.distill.embed_dim % cfg.distill.num_heads or (cfg.distill.embed_dim // cfg.distill.num_heads) % 2
    ):
        raise ConfigError(
            f"distill.num_heads: distill.embed_dim {cfg.distill.embed_dim} must split into {cfg.distill.num_heads} "
            "heads of an even width (rotary position encoding rotates pairs of features)"
        )
    _check_heads(cfg)
    if cfg.distill.warmup_steps >= cfg.distill.steps:
        raise ConfigError(
            f"distill.warmup_steps: {cfg.distill.warmup_steps} is not shorter than the run (distill.steps {cfg.distill.steps})"
        )


# What an evaluation set may change: never what the model reads (grid size, context size) nor
# which actions or goals count as held out (the grid's action split), so sets stay unseen.
SET_OVERRIDES = {
    "BernoulliBandit-v0": ("min_arms", "max_arms", "distribution"),
    "ContextualBandit-v0": ("min_arms", "max_arms", "noise"),
    "CompoundGrid-v0": ("action_pool", "num_actions", "episode_length"),
}
SET_ENVS = tuple(SET_OVERRIDES)


def set_env(cfg: PipelineConfig, index: int) -> EnvSection:
    """Returns the env section of evaluation set `index`: the pipeline's, with the set's settings over it."""
    overrides = cfg.evaluate.sets[index].env
    where = f"evaluate.sets.{index}.env"
    if "id" in overrides:
        raise ConfigError(f"{where}.id: an evaluation set keeps the pipeline's environment ({cfg.env.id})")
    allowed = SET_OVERRIDES.get(cfg.env.id, ())
    for key in overrides:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: an evaluation set may change only {', '.join(allowed) or 'nothing'}")
    try:
        return env_section({**cfg.env.model_dump(), **overrides})
    except ValidationError as err:
        first = err.errors()[0]
        loc = first["loc"][1:] if first["loc"] and first["loc"][0] in _UNION_TAGS else first["loc"]
        raise ConfigError(f"{where}.{_key_path(loc)}: {_message(first)}") from None


def _check_grid(env: CompoundGridConfig, where: str) -> None:
    codes = 5**env.moves
    if env.train_actions >= codes:
        raise ConfigError(f"{where}.train_actions: {env.train_actions} leaves none of the {codes} compound actions held out")
    if env.num_actions and env.num_actions > env.pool_size():
        raise ConfigError(
            f"{where}.num_actions: {env.num_actions} is more than the {env.pool_size()} actions of the {env.action_pool} pool"
        )


def _check_heads(cfg: PipelineConfig) -> None:
    """Raises ConfigError for head and evaluation-set settings that do not fit together."""
    distill, sets = cfg.distill, cfg.evaluate.sets
    if distill.head == "linear" and distill.baseline:
        raise ConfigError("distill.baseline: the plain-AD baseline is trained beside a headless model (distill.head: headless)")
    if sets and cfg.env.id not in SET_ENVS:
        raise ConfigError(f"evaluate.sets: {cfg.env.id} has no task generator; sets work on {', '.join(SET_ENVS)}")
    if sets and cfg.env.id in _BANDIT_SOURCES.values() and cfg.collect.source.algorithm not in _BANDIT_SOURCES:
        raise ConfigError(
            "evaluate.sets: bandit sets normalise regret by the source algorithm learning each task; "
            f"collect.source.algorithm must be thompson, ucb or linucb, not {cfg.collect.source.algorithm}"
        )
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"evaluate.sets: two sets are called {next(n for n in names if names.count(n) > 1)!r}")
    for i, eval_set in enumerate(sets):
        if eval_set.same_tasks_as is None:
            continue
        other = next((s for s in sets if s.name == eval_set.same_tasks_as and s is not eval_set), None)
        if other is None:
            raise ConfigError(f"evaluate.sets.{i}.same_tasks_as: no other set is called {eval_set.same_tasks_as!r}")
        if (other.draw, other.env, other.tasks) != (eval_set.draw, eval_set.env, eval_set.tasks):
            raise ConfigError(
                f"evaluate.sets.{i}.same_tasks_as: set {other.name!r} draws other tasks "
                "(its draw, env and tasks must be this set's)"
            )
    count_key = "max_arms" if hasattr(cfg.env, "max_arms") else "num_actions"
    counts = [(f"env.{count_key}", cfg.env.max_actions())] if cfg.env.max_actions() else []
    for i in range(len(sets)):
        env = set_env(cfg, i)
        if hasattr(env, "min_arms") and env.min_arms > env.max_arms:
            raise ConfigError(f"evaluate.sets.{i}.env.min_arms: {env.min_arms} is more than max_arms {env.max_arms}")
        if isinstance(env, CompoundGridConfig):
            _check_grid(env, f"evaluate.sets.{i}.env")
            if sets[i].draw == "heldout" and not cfg.tasks.heldout:
                raise ConfigError(f"evaluate.sets.{i}.draw: heldout needs held-out goals (tasks.heldout is 0)")
            if sets[i].draw == "train" and not sets[i].permute_actions and env == cfg.env:
                raise ConfigError(
                    f"evaluate.sets.{i}: training goals with the training actions are the dataset's own tasks; "
                    "permute the actions, offer others, or use evaluate.train_tasks"
                )
        counts.append((f"evaluate.sets.{i}.env.{count_key}", env.max_actions()))
    if distill.head == "headless":
        for where, count in counts:
            if count > distill.action_embed_dim:
                raise ConfigError(
                    f"{where}: {count} actions need distill.action_embed_dim >= {count} "
                    f"(orthonormal embeddings; it is {distill.action_embed_dim})"
                )


_UNION_PARENTS = {"env", "source", "demonstrator"}


def _key_path(loc: tuple[Any, ...]) -> str:
    """Returns the dotted key path of a pydantic error location, without the union tags pydantic inserts."""
    parts = [p for i, p in enumerate(loc) if not (i and loc[i - 1] in _UNION_PARENTS and p in _UNION_TAGS)]
    return ".".join(str(part) if str(part).isprintable() else repr(part) for part in parts) or "(top level)"


def _message(error: dict[str, Any]) -> str:
    """Returns a pydantic error's message in the words of a config file."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_not_found":
        return "missing: say which one"
    if kind == "union_tag_invalid":
        return f"unknown value {ctx.get('tag')!r}; one of {ctx.get('expected_tags', '')}"
    return error["msg"].removeprefix("Value error, ")


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
        path, message = _key_path(first["loc"]), _message(first)
        if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path += "." + first["ctx"]["discriminator"].strip("'")
        more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
        raise ConfigError(f"{source}: {path}: {message}{more}") from None
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
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:  # a folder, no permission, a name too long, not UTF-8
        raise ConfigError(f"{path}: cannot read: {err}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        if isinstance(err, yaml.reader.ReaderError):  # a control character: no mark, a two-line str()
            line: int | None = text.count("\n", 0, err.position) + 1
            problem = f"unacceptable character #x{err.character:04x}: {err.reason}"
        else:
            line = mark.line + 1 if mark else None
            problem = getattr(err, "problem", None) or str(err).replace("\n", " ")
        where = f"line {line}: " if line else ""
        raise ConfigError(f"{path}: {where}not valid YAML ({problem})") from None
    return parse_config(data, source=str(path))


def env_section(data: dict[str, Any]) -> EnvSection:
    """Returns the env config section of `data` (a dumped section, as units carry it to workers)."""
    return TypeAdapter(EnvConfig).validate_python(data)


def source_section(data: dict[str, Any]) -> Any:
    """Returns the collect source config section of `data` (a dumped section)."""
    return TypeAdapter(Source).validate_python(data)

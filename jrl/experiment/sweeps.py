"""Hyperparameter sweeps: every configuration x seed of a grid (and random samples) trained with
``vmap`` in one compiled call per group, sharded over every device, on one host or several.

A sweep is an algorithm, an environment, a base config and axes:

- **grid axes** list values; **sample axes** draw ``num_samples`` points uniformly (or
  log-uniformly) from ranges with ``jax.random.key(sample_seed)``. The configurations are the
  Cartesian product of the grid axes, crossed with the samples (sample index fastest).
- An axis over a numeric hyperparameter (the config's ``HYPERPARAMS`` fields: ``alpha``,
  ``gamma``, ``learning_rate``, ...) is data: its values ride along ``vmap``. An axis over any other
  field (``num_envs``, ``hidden_sizes``, ``algorithm``) changes shapes or code, so it splits the
  sweep into **groups**, one compilation each.

Every (configuration, seed) pair, a *member*, trains exactly as ``jrl train`` trains that seed:
key ``jax.random.key(seed)`` for training, ``evaluation_key(seed)`` for the final greedy
evaluation. Members are cut into **batches** of whole configurations that fit the memory budget;
a batch is one call of the group's compiled function with its member axis sharded over
``jax.devices()`` (``Mesh`` + ``NamedSharding``), the last batch padded to the same shape. With
``jax.distributed`` initialized, ``jax.devices()`` spans every process: each trains the shards on
its own devices and process 0 gathers the results and writes the files. A tabular member's
numbers do not depend on its batch, device or the device count; a DQN member's can, in the last
bits, when the number of members per call changes a lot (docs/sweeps.md, "Devices").

Per configuration the table holds the mean, standard deviation and a 95% bootstrap interval over
seeds of the final greedy return (for tabular runs the exact expected return of the greedy policy,
computed from the model over the time limit), the area under the learning curve, the steps to
reach a threshold and whether it diverged (a seed with a non-finite logging interval: the
configuration is marked failed; its finite seeds are still summarized).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
import tomllib
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tomli_w

from jrl import algorithms
from jrl._validation import check_bool, check_float, check_int
from jrl.algorithms.common import coerce_field
from jrl.envs import make
from jrl.envs.tabular import TabularEnv
from jrl.evaluate import UNLIMITED_EPISODE_CAP, evaluate_episodes
from jrl.experiment import records
from jrl.experiment.curves import HELD_METRICS, held_after_stopping
from jrl.experiment.progress import Progress
from jrl.experiment.spec import RunSpec, evaluation_key, train_key

__all__ = [
    "Sample",
    "SweepError",
    "SweepResult",
    "SweepSettings",
    "SweepSpec",
    "exact_greedy_returns",
    "load_sweep",
    "resume_sweep",
    "run_sweep",
    "sweep",
    "write_table",
]

SPEC = "sweep.toml"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
BATCHES = "batches"
#: Bootstrap resamples for the 95% interval of the mean over seeds.
BOOTSTRAP_RESAMPLES = 10_000
#: ``fold_in`` data of the bootstrap's key (``key(sample_seed)``), apart from the sample axes' (0, 1, ...).
BOOTSTRAP_STREAM = 2**20


class SweepError(ValueError):
    """A sweep that cannot run as asked: bad axes, a directory in the way, not enough memory."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """A random axis: ``num_samples`` values uniform on ``[low, high)``, or log-uniform (``log=True``,
    ``0 < low``). Written ``"low:high"`` or ``"log:low:high"`` (``"uniform:low:high"`` too)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            if not number or not math.isfinite(value):
                raise SweepError(f"a sample range's {name} must be a finite number, got {value!r}")
            # As a float: Sample(0, 1) is written "0.0:1.0", and read back it is the same range.
            object.__setattr__(self, name, float(value))
        check_bool("log", self.log)
        if not self.low < self.high:
            raise SweepError(f"a sample range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise SweepError(f"log-uniform sampling needs positive bounds, got low={self.low}, high={self.high}")

    @classmethod
    def parse(cls, text: str) -> Sample:
        """``"log:1e-4:1e-2"``, ``"uniform:0.1:0.9"`` or ``"0.1:0.9"``."""
        parts = str(text).split(":")
        kind = parts.pop(0) if parts and parts[0] in ("log", "uniform") else "uniform"
        if len(parts) != 2:
            raise SweepError(f"a sample range is 'low:high' or 'log:low:high', got {text!r}")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise SweepError(f"a sample range is 'low:high' or 'log:low:high' with numbers, got {text!r}") from None
        return cls(low, high, log=kind == "log")

    def __str__(self) -> str:
        return f"{'log:' if self.log else ''}{self.low!r}:{self.high!r}"

    def draw(self, key: jax.Array, num_samples: int) -> list[float]:
        """``num_samples`` values from ``key`` (float32-exact Python floats)."""
        u = np.asarray(jax.random.uniform(key, (num_samples,), jnp.float32), np.float64)
        if self.log:
            values = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        else:
            values = self.low + u * (self.high - self.low)
        return [float(np.float32(v)) for v in values]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A fully resolved sweep (its TOML form is ``sweep.toml`` in the sweep directory).

    Attributes:
        algo, env, env_kwargs: as in ``RunSpec``.
        config: the base config (every field set); axes override its fields.
        grid: axis name -> the values, in order.
        sample: axis name -> ``Sample`` range; ``num_samples`` points are drawn for all of them
            together with ``jax.random.key(sample_seed)`` (axis ``i`` uses ``fold_in(key, i)``).
        seeds: the seeds every configuration trains with.
        threshold: the learning-curve value whose first crossing is ``steps_to_threshold``
            (``None``: not reported).
        curve: the metric that is the learning curve (``eval_return`` when the config runs
            in-loop evaluations, else ``episode_return``).
        eval_episodes: greedy episodes per seed in the final evaluation of non-tabular runs
            (tabular runs are valued exactly from the model).
    """

    algo: str
    env: str
    config: Any
    grid: dict
    sample: dict
    num_samples: int
    sample_seed: int
    seeds: tuple[int, ...]
    threshold: float | None
    curve: str
    eval_episodes: int
    env_kwargs: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        algo: str,
        env: str,
        *,
        grid: dict | None = None,
        sample: dict | None = None,
        num_samples: int = 0,
        sample_seed: int = 0,
        seeds: int | Sequence[int] = 1,
        config: Any = None,
        env_kwargs: dict | None = None,
        threshold: float | None = None,
        curve: str | None = None,
        eval_episodes: int = 100,
    ) -> SweepSpec:
        """A validated spec. ``config`` is a config of the algorithm or a dict of fields (missing
        ones: the tuned ``default_config(env)`` where there is one). Every error is raised here,
        before anything compiles, naming the field, the value and what is allowed."""
        if isinstance(config, algorithms.common.Config):
            base_fields = config.to_dict()
        elif config is None or isinstance(config, Mapping):
            base_fields = dict(config or {})
        else:
            raise SweepError(f"config must be a config or a table of field = value, got {config!r}")
        if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
            raise SweepError(f"env_kwargs must be a table of name = value, got {env_kwargs!r}")
        if isinstance(seeds, np.integer):
            seeds = int(seeds)
        if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple, range)):
            raise TypeError(f"seeds must be a count or a list of seeds, got {seeds!r}")
        if isinstance(seeds, int) and seeds < 1:
            raise SweepError(f"seeds must be at least 1, got {seeds}")
        run = RunSpec.resolve(algo, env, list(seeds) if isinstance(seeds, range) else seeds, base_fields, env_kwargs)
        base = run.config
        config_class = type(base)
        hyper = _hyperparam_names(base)
        fields = [f.name for f in dataclasses.fields(config_class)]
        if grid is not None and not isinstance(grid, Mapping):
            raise SweepError(f"grid must be a table of axis = [values], got {grid!r}")
        if sample is not None and not isinstance(sample, Mapping):
            raise SweepError(f'sample must be a table of axis = "low:high", got {sample!r}')
        grid = dict(grid or {})
        sample = dict(sample or {})
        for name in [*grid, *sample]:
            if name not in fields:
                close = algorithms.common._closest(name, set(fields))
                hint = f" (did you mean {close!r}?)" if close else ""
                raise SweepError(
                    f"{config_class.__name__} has no field {name!r}{hint}; its fields are {sorted(fields)}"
                )
        both = sorted(set(grid) & set(sample))
        if both:
            raise SweepError(f"{both} is both a grid axis and a sample axis; give each axis once")
        paths = sorted(set(grid) & set(config_class.PATH_FIELDS))
        if paths:
            raise SweepError(f"{paths} names files the algorithm reads: it cannot be a sweep axis (set it in --set)")
        resolved_grid = {}
        for name, values in grid.items():
            if hasattr(values, "shape") and hasattr(values, "tolist"):  # a NumPy or JAX array
                if len(values.shape) != 1:
                    raise SweepError(
                        f"grid axis {name!r} must be a list of values, got an array of shape {tuple(values.shape)}"
                    )
                values = np.asarray(values).tolist()
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise SweepError(f"grid axis {name!r} must be a list of values, got {values!r}")
            if len(values) == 0:
                raise SweepError(f"grid axis {name!r} is empty: give it at least one value")
            values = [coerce_field(config_class, name, v) for v in values]
            for value in values:
                base.replace(**{name: value})  # the config's own check names a bad value
            if len({json.dumps(v) for v in _plain_values(values)}) != len(values):
                raise SweepError(f"grid axis {name!r} repeats a value: {values!r}")
            resolved_grid[name] = tuple(values)
        resolved_sample = {}
        for name, rng in sample.items():
            if name not in hyper:
                raise SweepError(
                    f"only numeric hyperparameters can be sampled ({hyper}); {name!r} is not one (use a grid axis)"
                )
            try:
                rng = rng if isinstance(rng, Sample) else Sample.parse(rng)
            except SweepError as err:
                raise SweepError(f"sample axis {name!r}: {err}") from None
            for end in (rng.low, rng.high):  # draws lie between them (float32 rounding may reach high)
                try:
                    base.replace(**{name: end})
                except (TypeError, ValueError) as err:
                    raise SweepError(f"sample axis {name!r} ({rng}) leaves the field's range: {err}") from None
            resolved_sample[name] = rng
        num_samples = check_int("num_samples", num_samples, 0, 2**20)
        if resolved_sample and num_samples < 1:
            raise SweepError("sample axes need num_samples >= 1 (--samples N)")
        if num_samples and not resolved_sample:
            raise SweepError(f"num_samples={num_samples} but no sample axis: add one (--sample NAME=log:LOW:HIGH)")
        if not resolved_grid and not resolved_sample:
            raise SweepError(f"a sweep needs at least one axis (--grid NAME=V1,V2 or --sample); e.g. over {hyper}")
        sample_seed = check_int("sample_seed", sample_seed, 0, 2**31 - 1)
        if threshold is not None:
            threshold = check_float("threshold", threshold, -math.inf, math.inf)
        eval_episodes = check_int("eval_episodes", eval_episodes, 1, 2**20)
        if curve is None:
            curve = "eval_return" if getattr(base, "eval_episodes", 0) > 0 else "episode_return"
        logged = algorithms.get(run.algo).metrics
        if curve not in logged:
            raise SweepError(f"curve must name a metric {run.algo} logs, one of {list(logged)}; got {curve!r}")
        spec = cls(
            algo=run.algo,
            env=run.env,
            config=base,
            grid=resolved_grid,
            sample=resolved_sample,
            num_samples=num_samples if resolved_sample else 0,
            sample_seed=sample_seed,
            seeds=run.seeds,
            threshold=threshold,
            curve=curve,
            eval_episodes=eval_episodes,
            env_kwargs=run.env_kwargs,
        )
        configs = spec.configs()  # each validated, as a combination of the axes' values
        if curve == "eval_return" and any(getattr(c, "eval_episodes", 1) == 0 for c in configs):
            raise SweepError("curve='eval_return' needs eval_episodes > 0 in every configuration")
        return spec

    def paths(self) -> dict[str, str]:
        """The base config's path fields that are set (``Config.PATH_FIELDS``), as written."""
        fields = type(self.config).PATH_FIELDS
        return {name: getattr(self.config, name) for name in fields if getattr(self.config, name)}

    def resolve_paths(self, base: str | Path) -> SweepSpec:
        """This spec with every relative path field made absolute against ``base`` (the working
        directory for a spec as typed; the sweep directory for its ``sweep.toml``)."""
        changes = {name: os.path.abspath(Path(base, path)) for name, path in self.paths().items()}
        return self if not changes else dataclasses.replace(self, config=self.config.replace(**changes))

    # -- the configurations ---------------------------------------------------------------------

    def samples(self) -> list[dict]:
        """The sampled points: ``num_samples`` dicts of axis -> value (``[{}]`` without sample axes)."""
        if not self.sample:
            return [{}]
        key = jax.random.key(self.sample_seed)
        columns = {
            name: rng.draw(jax.random.fold_in(key, i), self.num_samples)
            for i, (name, rng) in enumerate(self.sample.items())
        }
        return [{name: columns[name][j] for name in columns} for j in range(self.num_samples)]

    def points(self) -> list[dict]:
        """Every configuration's axis values, in table order (grid row-major, samples fastest)."""
        grid_points = [dict(zip(self.grid, combo, strict=True)) for combo in itertools.product(*self.grid.values())]
        return [{**g, **s} for g in grid_points for s in self.samples()]

    def configs(self) -> list[Any]:
        """Every configuration's full, validated config."""
        return [self.config.replace(**point) for point in self.points()]

    @property
    def axes(self) -> list[str]:
        return [*self.grid, *self.sample]

    @property
    def static_axes(self) -> list[str]:
        """Axes that change shapes or code: one group (one compilation) per combination."""
        hyper = _hyperparam_names(self.config)
        return [name for name in self.axes if name not in hyper]

    def groups(self) -> list[tuple[dict, list[int]]]:
        """``(static values, configuration indices)`` per group, in order of first appearance."""
        out: dict[str, tuple[dict, list[int]]] = {}
        for index, point in enumerate(self.points()):
            static = {name: point[name] for name in self.static_axes}
            out.setdefault(json.dumps(_plain_dict(static), sort_keys=True), (static, []))[1].append(index)
        return list(out.values())

    # -- the TOML form --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = {
            "algo": self.algo,
            "env": self.env,
            "seeds": list(self.seeds),
            "sample_seed": self.sample_seed,
            "num_samples": self.num_samples,
            "curve": self.curve,
            "eval_episodes": self.eval_episodes,
            "env_kwargs": dict(self.env_kwargs),
            "config": self.config.to_dict(),
            # TOML has no null: None as "none", which coerce_field reads back as None.
            "grid": {
                name: [algorithms.common.NONE if v is None else v for v in _plain_values(values)]
                for name, values in self.grid.items()
            },
            "sample": {name: str(rng) for name, rng in self.sample.items()},
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, **overrides: Any) -> SweepSpec:
        """A spec from the TOML form (``to_dict``); ``overrides`` (the keywords of ``resolve``,
        ``None`` = not given) win; ``config``, ``grid`` and ``sample`` are merged field by field."""
        known = {"algo", "env", "seeds", "sample_seed", "num_samples", "curve", "eval_episodes", "env_kwargs"}
        known |= {"config", "grid", "sample", "threshold"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SweepError(f"unknown key(s) {unknown} in a sweep file; it takes {sorted(known)}")
        merged = dict(data)
        for table in ("config", "grid", "sample", "env_kwargs"):
            if not isinstance(data.get(table, {}), Mapping):  # resolve names what each one takes
                overrides.pop(table, None)
                continue
            merged[table] = {**data.get(table, {}), **(overrides.pop(table, None) or {})}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("algo", "env"):
            if key not in merged:
                raise SweepError(f"the sweep needs {key}: give it in the file or as --{key}")
        algo, env = merged.pop("algo"), merged.pop("env")
        return cls.resolve(algo, env, **merged)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> SweepSpec:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise FileNotFoundError(f"cannot read the sweep file {str(path)!r}: {err.strerror}") from err
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise SweepError(f"{path} is not valid TOML: {err}") from err
        return cls.from_dict(data, **overrides)

    def digest(self) -> str:
        """sha256 of the canonical JSON of ``to_dict()`` and the order of the axes, which decides
        the configurations and which the sorted JSON forgets (batch files record it)."""
        data = {**self.to_dict(), "axis_order": [list(self.grid), list(self.sample)]}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _hyperparam_names(config: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(config.HYPERPARAMS)]


def _plain_values(values: Sequence[Any]) -> list:
    return [list(v) if isinstance(v, tuple) else v for v in values]


def _plain_dict(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """How a sweep proceeds; none of it changes a number in the results.

    Attributes:
        configs_per_batch: configurations per compiled call (``None``: as many as fit
            ``memory_budget``).
        memory_budget: bytes the members of one batch may take (``None``: half the free host
            memory on CPU, half of every accelerator's memory).
        batching: ``False`` refuses a sweep that does not fit ``memory_budget`` in one batch per
            group (a ``SweepError`` before anything compiles) instead of cutting it.
        devices: how many of ``jax.devices()`` to shard over (``None``: all).
    """

    configs_per_batch: int | None = None
    memory_budget: int | None = None
    batching: bool = True
    devices: int | None = None

    def __post_init__(self) -> None:
        if self.configs_per_batch is not None:
            check_int("configs_per_batch", self.configs_per_batch, 1)
        if self.memory_budget is not None:
            check_int("memory_budget", self.memory_budget, 1)
        check_bool("batching", self.batching)
        if self.configs_per_batch is not None and not self.batching:
            raise SweepError(
                f"configs_per_batch={self.configs_per_batch} cuts groups into batches and batching=False refuses "
                "to: give one of them"
            )
        if self.devices is not None:
            check_int("devices", self.devices, 1, len(jax.devices()))


@dataclasses.dataclass
class SweepResult:
    """What ``sweep`` returns.

    Attributes:
        spec: the resolved ``SweepSpec``.
        rows: one dict per configuration (the table: ``index``, ``group``, the axes, then the
            statistics; see ``docs/sweeps.md``).
        final_returns: float64 ``[C, S]``, the final greedy return of every member (NaN: diverged).
        curves: float64 ``[C, S, L]``, the learning curve (``spec.curve``) of groups that share
            ``L`` logging intervals; ``None`` when groups differ in length.
        diverged: bool ``[C, S]``.
        directory: the sweep directory, or ``None``.
    """

    spec: SweepSpec
    rows: list[dict]
    final_returns: np.ndarray
    curves: np.ndarray | None
    diverged: np.ndarray
    directory: Path | None = None

    @property
    def best(self) -> dict | None:
        """The row with the highest mean final return among configurations that did not fail."""
        ok = [r for r in self.rows if not r["failed"] and r["final_return_mean"] is not None]
        return max(ok, key=lambda r: r["final_return_mean"]) if ok else None


# -- memory and batches ---------------------------------------------------------------------------


def _tree_bytes(tree: Any) -> int:
    def itemsize(dtype: Any) -> int:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return 4 * math.prod(_key_data_shape())
        return np.dtype(dtype).itemsize

    return sum(math.prod(x.shape) * itemsize(x.dtype) for x in jax.tree_util.tree_leaves(tree))


def _default_budget(devices: list) -> int:
    """Half the free memory: the host's for CPU devices, the accelerators' otherwise."""
    if devices[0].platform == "cpu":
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 * 2**30
        return max(free // 2, 2**20)
    total = 0
    for device in devices:
        stats = device.memory_stats() or {}
        total += stats.get("bytes_limit", 16 * 2**30) - stats.get("bytes_in_use", 0)
    return max(total // 2, 2**20)


def _mib(num_bytes: float) -> str:
    """A size for people: MiB from 0.1 MiB up (the usual scale of a batch), KiB or bytes below."""
    if num_bytes >= 0.1 * 2**20:
        return f"{num_bytes / 2**20:,.1f} MiB"
    return f"{num_bytes / 2**10:,.1f} KiB" if num_bytes >= 2**10 else f"{int(num_bytes)} bytes"


# -- one group: its compiled batch function --------------------------------------------------------


class _Group:
    """The configurations of one group: its algorithm and the function that trains a batch."""

    def __init__(self, spec: SweepSpec, static: dict, indices: list[int], env: Any, env_params: Any):
        self.spec, self.static, self.indices = spec, static, indices
        self.env, self.env_params = env, env_params
        self.config = spec.config.replace(**static)
        self.algo_spec = algorithms.get(spec.algo)
        self.algorithm = self.algo_spec.make_algorithm(self.config, env, env_params)
        self.tabular = isinstance(env, TabularEnv) and self.algo_spec.tabular
        configs = spec.configs()
        self.hyperparams = [configs[i].hyperparams() for i in indices]
        abstract_key = jax.eval_shape(jax.random.key, 0)  # a key's shape and type, no value
        single = jax.eval_shape(self.algorithm.init, abstract_key)
        # As in the runner: the interval counter is shared by the members (they advance together),
        # so DQN's "learn now?" stays a branch under vmap.
        self.state_axes = jax.tree_util.tree_map(lambda _: 0, single).replace(log_index=None)
        self.state_bytes = _tree_bytes(single)
        self.num_logs = self.algorithm.num_logs
        self._compiled: dict[tuple, Any] = {}

    def member_bytes(self) -> int:
        """Estimated bytes of one member in a batch: its state three times over (input, loop
        carry, output), its metrics and its final evaluation."""
        metrics = self.num_logs * 4 * (len(algorithms.common.METRICS) + 4)
        return 3 * self.state_bytes + metrics + 64 * self.spec.eval_episodes

    def env_steps(self) -> int | None:
        """Env steps of one training (``None`` where an iteration's vary: text, whose env steps are tokens)."""
        per_iteration = self.config.env_steps_per_iteration()
        return None if per_iteration is None else self.config.num_steps * per_iteration

    def _batch(self, key_data: jax.Array, hyperparams: Any, eval_key_data: jax.Array) -> dict:
        algorithm, spec = self.algorithm, self.spec
        keys = jax.random.wrap_key_data(key_data)
        state = jax.vmap(algorithm.init, out_axes=self.state_axes)(keys, hyperparams)
        run = jax.vmap(
            lambda s: algorithm.run(s, self.num_logs), in_axes=(self.state_axes,), out_axes=(self.state_axes, 0)
        )
        state, metrics = run(state)
        # Only the metrics the table reads leave the call: XLA then drops the work of the others
        # (tabular Q-learning's greedy_value is a linear solve per logging interval).
        names = {spec.curve, "finite", "step"}
        if spec.curve in HELD_METRICS and "stopped" in metrics:  # see held_after_stopping
            names.add("stopped")
        out = {"metrics": {name: metrics[name] for name in sorted(names)}}
        if self.tabular:
            out["q_table"] = jax.vmap(
                lambda s: self.algo_spec.greedy_table(algorithm.result(s, {})), in_axes=(self.state_axes,)
            )(state)
        else:
            eval_keys = jax.random.wrap_key_data(eval_key_data)

            def evaluate_member(member_state, key):
                result = algorithm.result(member_state, {})
                policy, params = self.algo_spec.greedy_policy(self.config, self.env, self.env_params, result)
                stats = evaluate_episodes(key, policy, params, self.env, self.env_params, spec.eval_episodes)
                return jnp.mean(stats.returns)

            out["final_return"] = jax.vmap(evaluate_member, in_axes=(self.state_axes, 0))(state, eval_keys)
        return out

    def compiled(self, mesh: Any, size: int) -> Callable:
        """The batch function for ``size`` members, compiled once per group and size."""
        if size not in self._compiled:
            from jax.sharding import NamedSharding
            from jax.sharding import PartitionSpec as P

            sharded = NamedSharding(mesh, P("members"))
            key_shape = jax.ShapeDtypeStruct((size, *_key_data_shape()), jnp.uint32, sharding=sharded)
            hyper = jax.tree_util.tree_map(
                lambda _: jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharded), self.hyperparams[0]
            )
            # shard_map, not a sharded jit: every device runs exactly the program one device runs
            # on its members (vmapped), so the device count cannot change how XLA compiles (and
            # rounds) a member's training.
            members = P("members")
            per_device = jax.shard_map(
                self._batch, mesh=mesh, in_specs=(members, members, members), out_specs=members, check_vma=False
            )
            function = jax.jit(per_device, out_shardings=sharded)
            self._compiled[size] = function.lower(key_shape, hyper, key_shape).compile()
        return self._compiled[size]


def _key_data_shape() -> tuple[int, ...]:
    return tuple(jax.eval_shape(lambda seed: jax.random.key_data(jax.random.key(seed)), 0).shape)


# -- finite-horizon value of greedy tables (exact, float64, on the host) ----------------------------


def exact_greedy_returns(env: TabularEnv, env_params: Any, q_tables: np.ndarray) -> np.ndarray:
    """Expected undiscounted return of each table's greedy policy (first maximal action, as
    ``q_learning.greedy_policy`` acts) over one episode of at most the time limit (capped at
    ``jrl.UNLIMITED_EPISODE_CAP`` steps for environments without one), from the model in float64.

    ``q_tables``: float ``[N, S, A]``. Returns float64 ``[N]``. This is the number
    ``jrl.evaluate`` estimates by sampling; comparable across discounts (a sweep over ``gamma``).
    """
    mdp = env.mdp(env_params)
    probs = np.asarray(mdp.transition_probs, np.float64)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    next_states = np.asarray(mdp.next_states)
    rewards = np.asarray(mdp.rewards, np.float64)
    continuing = ~np.asarray(mdp.terminals, bool)
    start = np.asarray(mdp.initial_distribution, np.float64)
    horizon = int(min(int(env_params.max_steps_in_episode), UNLIMITED_EPISODE_CAP))
    actions = np.argmax(np.asarray(q_tables), axis=-1)  # [N, S]
    states = np.arange(probs.shape[0])
    p = probs[states, actions]  # [N, S, K]
    ns = next_states[states, actions]
    expected_reward = np.sum(p * rewards[states, actions], axis=-1)
    weight = p * continuing[states, actions]
    values = np.zeros(actions.shape)
    rows = np.arange(actions.shape[0])[:, None, None]
    for _ in range(horizon):
        new = expected_reward + np.sum(weight * values[rows, ns], axis=-1)
        if np.array_equal(new, values):  # every episode ends within the steps taken so far
            break
        values = new
    return values @ start


# -- running --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Batch:
    group: int
    number: int  # within the sweep
    configs: list[int]  # configuration indices


def _plan(spec: SweepSpec, groups: list[_Group], settings: SweepSettings, show: Callable) -> list:
    """Cut every group into batches of whole configurations that fit the memory budget."""
    seeds = len(spec.seeds)
    budget = settings.memory_budget
    batches: list[_Batch] = []
    for g, group in enumerate(groups):
        per_config = group.member_bytes() * seeds
        if settings.configs_per_batch is not None:
            size = settings.configs_per_batch
        else:
            size = max(1, budget // per_config)
        if not settings.batching and len(group.indices) * per_config > budget:
            raise SweepError(
                f"group {g} ({len(group.indices)} configurations x {seeds} seeds) needs about "
                f"{_mib(len(group.indices) * per_config)} but the memory budget is {_mib(budget)}, and batching is "
                "off: allow batching, raise the budget, or sweep fewer configurations"
            )
        if per_config > budget:
            raise SweepError(
                f"one configuration x {seeds} seeds needs about {_mib(per_config)}, more than the memory budget "
                f"{_mib(budget)}: use fewer seeds or a smaller config (num_envs, buffer_size)"
            )
        size = min(size, len(group.indices))
        label = f"group {g} {group.static}" if group.static else "the sweep"
        show(
            f"{label}: {len(group.indices)} configuration(s) x {seeds} seed(s); estimated memory per configuration "
            f"{_mib(per_config)}, {math.ceil(len(group.indices) / size)} batch(es) of {size} configuration(s)"
        )
        for start in range(0, len(group.indices), size):
            batches.append(_Batch(g, len(batches), group.indices[start : start + size]))
    return batches


def _pad(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _run_batch(
    group: _Group, batch: _Batch, spec: SweepSpec, mesh: Any, size: int, hyperparams: list | None = None
) -> dict:
    """Train one batch; every process returns the whole batch's numbers (host arrays).
    ``hyperparams``: the group's configurations' (``None``), or one per ``batch.configs`` entry
    (an Optuna batch's proposals)."""
    seeds = spec.seeds
    members = [(c, s) for c in batch.configs for s in range(len(seeds))]
    padded = members + [members[-1]] * (size - len(members))
    if hyperparams is None:  # the group's own configurations
        index = {c: i for i, c in enumerate(group.indices)}
        hyperparams = [group.hyperparams[index[c]] for c in batch.configs]
    position = {c: i for i, c in enumerate(batch.configs)}
    # Each seed's keys once (not once per member: thousands of small host-side JAX calls).
    seed_of_member = [s for _, s in padded]
    key_data = np.stack([np.asarray(jax.random.key_data(train_key(seed))) for seed in seeds])[seed_of_member]
    eval_data = np.stack([np.asarray(jax.random.key_data(evaluation_key(seed))) for seed in seeds])[seed_of_member]
    hyper = jax.tree_util.tree_map(
        lambda *xs: np.asarray(xs, np.float32), *[hyperparams[position[c]] for c, _ in padded]
    )
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    sharded = NamedSharding(mesh, P("members"))

    def put(array: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(array.shape, sharded, lambda index: array[index])

    out = group.compiled(mesh, size)(put(key_data), jax.tree_util.tree_map(put, hyper), put(eval_data))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    out = jax.tree_util.tree_map(lambda x: np.asarray(x)[: len(members)], out)
    metrics = out["metrics"]
    finite = np.asarray(metrics["finite"]).all(axis=1)
    if group.tabular:
        final = exact_greedy_returns(group.env, group.env_params, out["q_table"])
    else:
        final = np.asarray(out["final_return"], np.float64)
    curve = np.asarray(metrics[spec.curve], np.float64)
    if "stopped" in metrics:
        curve = held_after_stopping(curve, np.asarray(metrics["stopped"], bool))
    per_iteration = group.config.env_steps_per_iteration()
    if per_iteration is None:  # they vary (text: tokens): each member's own count, as its metric says
        steps = np.asarray(metrics["env_steps"], np.int64)
    else:  # exact in int64 (the float32 metric rounds past 2**24)
        steps = np.asarray(metrics["step"], np.int64) * per_iteration
    return {
        "configs": np.asarray(batch.configs, np.int64),
        "final_return": final,
        "curve": curve,
        "env_steps": steps,
        "finite": finite,
    }


def _batch_path(directory: Path, batch: _Batch) -> Path:
    return directory / BATCHES / f"batch-{batch.number:05d}.npz"


def _save_batch(directory: Path, batch: _Batch, numbers: dict, digest: str) -> None:
    path = _batch_path(directory, batch)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, spec_sha256=np.asarray(digest), **numbers)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_batch(directory: Path, batch: _Batch, digest: str) -> dict | None:
    """A finished batch's numbers, or ``None`` if it is missing; a batch of another sweep is refused."""
    path = _batch_path(directory, batch)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            numbers = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # truncated, empty, not an npz
        raise SweepError(f"{path} is not a readable batch file ({err}); delete it to train that batch again") from err
    if str(numbers.pop("spec_sha256", "")) != digest:
        raise SweepError(f"{path} belongs to another sweep (its spec digest differs); it cannot be resumed here")
    configs = [int(c) for c in numbers.get("configs", [])]
    if configs != batch.configs:
        raise SweepError(f"{path} holds configurations {configs}, expected {batch.configs}")
    return numbers


def sweep(
    algo: str,
    env: str,
    config: Any = None,
    *,
    grid: dict | None = None,
    sample: dict | None = None,
    num_samples: int = 0,
    sample_seed: int = 0,
    seeds: int | Sequence[int] = 1,
    env_kwargs: dict | None = None,
    threshold: float | None = None,
    curve: str | None = None,
    eval_episodes: int = 100,
    out: str | Path | None = None,
    settings: SweepSettings | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train every configuration x seed of a sweep and tabulate the results.

    ``jrl.sweep("q_learning", "FrozenLake8x8-v1", grid={"alpha": [0.05, 0.1], "gamma": [0.9, 0.99]},
    seeds=16)`` trains 4 x 16 members in one compiled call. See ``SweepSpec.resolve`` for the
    arguments (all validated before anything compiles) and ``SweepSettings`` for batching. With
    ``out`` the sweep is recorded in that directory (``sweep.toml``, ``metadata.json``, one file per
    finished batch, ``results.csv`` and ``results.json``) and ``resume_sweep(out)`` continues it.
    """
    spec = SweepSpec.resolve(
        algo,
        env,
        grid=grid,
        sample=sample,
        num_samples=num_samples,
        sample_seed=sample_seed,
        seeds=seeds,
        config=config,
        env_kwargs=env_kwargs,
        threshold=threshold,
        curve=curve,
        eval_episodes=eval_episodes,
    )
    return run_sweep(spec, out, settings, progress=progress)


def run_sweep(
    spec: SweepSpec, out: str | Path | None = None, settings: SweepSettings | None = None, *, progress: bool = True
) -> SweepResult:
    """``sweep`` for a resolved spec (``out``: a new or empty directory, or ``None``)."""
    settings = settings or SweepSettings()
    source = spec.resolve_paths(Path.cwd())  # paths as typed: relative to the working directory
    if out is None:
        return _execute(source, None, settings, progress, resolved=source)
    directory = Path(out)
    # The directory keeps a copy of each file the config names (a pretrained model), and its
    # sweep.toml names the copy relative to itself: it resumes from any working directory.
    paths = source.paths()
    stored = dataclasses.replace(
        spec, config=spec.config.replace(**{name: f"{records.INPUTS}/{name}" for name in paths})
    )
    # Process 0 alone checks and writes the directory (on a shared file system another process
    # would find it made already), and only once the sweep is planned: bad input leaves nothing.
    problem = _in_the_way(directory, stored) if jax.process_index() == 0 else None
    _raise_on_every_process(problem)

    def create(planned: SweepSettings) -> None:
        inputs = {}
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, path in paths.items():
                (directory / records.INPUTS).mkdir(exist_ok=True)
                records.copy_input(path, directory / records.INPUTS / name)
                inputs[name] = {"source": path, "sha256": records.tree_sha256(directory / records.INPUTS / name)}
            (directory / SPEC).write_text(stored.to_toml())
        except OSError as err:
            raise SweepError(f"cannot write the sweep directory {str(directory)!r}: {err.strerror or err}") from err
        metadata = {
            "command": records.command_line(),
            "created": records.now(),
            # The budget as resolved, not as asked: a resumed sweep must cut the same batches,
            # whatever memory is free then and however many processes resume it.
            "settings": dataclasses.asdict(planned),
            "processes": jax.process_count(),
            **({"inputs": inputs} if inputs else {}),
            **records.environment_metadata(),
            "sessions": [],
        }
        records.write_json(directory / records.METADATA, metadata)

    return _execute(stored, directory, settings, progress, create, resolved=source)


def _in_the_way(directory: Path, spec: SweepSpec) -> str | None:
    """Why a new sweep cannot be made in ``directory`` (``None``: it can), with advice that fits
    what is there: only the same sweep can be continued."""
    if not directory.exists():
        return None
    if not directory.is_dir():
        return f"{directory} is a file: choose another --out"
    if not any(directory.iterdir()):
        return None
    if (directory / SPEC).is_file():
        try:
            same = load_sweep(directory)[0].digest() == spec.digest()
        except (ValueError, TypeError, OSError):
            same = False
        if same:
            return f"{directory} holds this sweep already: continue it with `jrl resume {directory}`"
        return f"{directory} holds another sweep (its {SPEC} differs): choose another --out"
    return f"{directory} exists and is not empty: choose another --out"


def _raise_on_every_process(problem: str | None) -> None:
    """Raise ``SweepError(problem)`` where process 0 found ``problem``: on every process, so that
    no process waits in a collective for one that stopped."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        found = bool(multihost_utils.broadcast_one_to_all(np.int32(problem is not None)))
        if found and problem is None:
            problem = "process 0 stopped the sweep (its error says why)"
    if problem is not None:
        raise SweepError(problem)


def load_sweep(directory: str | Path) -> tuple[SweepSpec, SweepSettings]:
    """The spec and settings of an existing sweep directory (``SweepError`` if it is not one)."""
    directory = Path(directory)
    if not (directory / SPEC).is_file() or not (directory / records.METADATA).is_file():
        raise SweepError(f"{directory} is not a jrl sweep directory (it needs {SPEC} and metadata.json)")
    spec = SweepSpec.load(directory / SPEC)
    recorded = records.read_json(directory / records.METADATA)["settings"]
    if recorded.get("devices") is not None and recorded["devices"] > len(jax.devices()):
        recorded["devices"] = None  # made where it had more devices: use all of these
    return spec, SweepSettings(**recorded)


def resume_sweep(directory: str | Path, *, progress: bool = True) -> SweepResult:
    """Continue an interrupted sweep: batches already on disk are read back, the rest trained.
    The finished table is the one an uninterrupted sweep writes."""
    directory = Path(directory)
    spec, settings = load_sweep(directory)
    resolved = spec.resolve_paths(directory)
    recorded = records.read_json(directory / records.METADATA).get("inputs", {})
    for name, path in resolved.paths().items():  # the files the finished batches were trained from
        if name in recorded and records.tree_sha256(path) != recorded[name]["sha256"]:
            raise SweepError(f"{path} has changed since the sweep started (its sha256 differs): it cannot be resumed")
    for stale in (directory / BATCHES).glob(".*.tmp.npz"):
        stale.unlink(missing_ok=True)
    return _execute(spec, directory, settings, progress, resolved=resolved)


def _execute(
    spec: SweepSpec,
    directory: Path | None,
    settings: SweepSettings,
    show: bool,
    create: Callable | None = None,
    *,
    resolved: SweepSpec,
) -> SweepResult:
    """Plan, train the batches not on disk yet, tabulate. ``create(settings)`` (a new sweep
    directory) is called on process 0 once the plan stands, with the settings it was made with.
    ``spec`` is the sweep as recorded (its digest marks the batch files); ``resolved`` is the same
    with its path fields absolute: what the algorithm reads."""
    from jax.sharding import Mesh

    lead = jax.process_index() == 0
    devices = jax.devices()[: settings.devices] if settings.devices else jax.devices()
    if settings.devices and jax.process_count() > 1:
        raise SweepError("devices= cannot limit a multi-process sweep: every process's devices take part")
    mesh = Mesh(np.asarray(devices), ("members",))
    env, env_params = make(spec.env, **spec.env_kwargs)
    groups = [_Group(resolved, static, indices, env, env_params) for static, indices in resolved.groups()]
    if settings.memory_budget is None:
        budget = _default_budget([d for d in devices if d.process_index == jax.process_index()])
        budget *= jax.process_count()
        if jax.process_count() > 1:  # every process must cut the same batches: process 0 decides
            from jax.experimental import multihost_utils

            # In MiB: without jax_enable_x64 the broadcast is int32, and a budget in bytes overflows it.
            budget = int(multihost_utils.broadcast_one_to_all(np.int32(min(budget // 2**20, 2**31 - 1)))) * 2**20
        settings = dataclasses.replace(settings, memory_budget=int(budget))
    messages: list[str] = []
    batches = _plan(spec, groups, settings, messages.append)
    if create is not None:
        problem = None
        if lead:
            try:
                create(settings)
            except (SweepError, OSError) as err:
                problem = str(err)
        _raise_on_every_process(problem)
    num_members = len(spec.points()) * len(spec.seeds)
    compiles = len(groups)
    head = (
        f"sweep: {len(spec.points())} configuration(s) x {len(spec.seeds)} seed(s) = {num_members} trainings of "
        f"{spec.algo} on {spec.env}, in {len(batches)} batch(es) over {len(devices)} device(s)"
        f"{f' in {jax.process_count()} processes' if jax.process_count() > 1 else ''}; "
        f"{compiles} group(s): {compiles} compilation(s)"
    )
    digest = spec.digest()
    done: dict[int, dict] = {}
    if directory is not None:
        flags = np.zeros(len(batches), np.int32)
        problem = None
        if lead:
            try:
                for batch in batches:
                    numbers = _load_batch(directory, batch, digest)
                    if numbers is not None:
                        done[batch.number] = numbers
                        flags[batch.number] = 1
            except SweepError as err:
                problem = str(err)
        _raise_on_every_process(problem)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            flags = np.asarray(multihost_utils.broadcast_one_to_all(flags))
    done_flags = {b.number for b in batches if b.number in done} if lead else set()
    if directory is not None and jax.process_count() > 1:
        done_flags = {i for i, f in enumerate(flags) if f}
    # Progress counts trainings (configuration x seed), and env steps per second over all of them.
    trainings_done = sum(len(b.configs) * len(spec.seeds) for b in batches if b.number in done_flags)
    bar = Progress(num_members, trainings_done, unit="trainings", scope="all trainings", enabled=show and lead)
    best_line = None
    session = {"started": records.now(), "batches_before": len(done_flags), "compile_seconds": 0.0, "run_seconds": 0.0}
    try:
        bar.message(head)
        for text in messages:
            bar.message(text)
        for batch in batches:
            if batch.number in done_flags:
                continue
            group = groups[batch.group]
            size = _pad(_batch_members(batches, batch, spec), len(devices))
            if size not in group._compiled:
                what = f"group {batch.group} ({size} members)"
                bar.compiling(what)
                started = time.perf_counter()
                group.compiled(mesh, size)
                session["compile_seconds"] += time.perf_counter() - started
                bar.compiled(what, time.perf_counter() - started)
            started = time.perf_counter()
            numbers = _run_batch(group, batch, spec, mesh, size)
            seconds = time.perf_counter() - started
            session["run_seconds"] += seconds
            if directory is not None:
                problem = None
                if lead:
                    try:
                        _save_batch(directory, batch, numbers, digest)
                    except OSError as err:
                        problem = f"cannot write {_batch_path(directory, batch)}: {err}"
                _raise_on_every_process(problem)
            done[batch.number] = numbers
            trainings = len(batch.configs) * len(spec.seeds)
            trainings_done += trainings
            failed = int((~numbers["finite"]).sum())
            latest = f"batch {batch.number + 1}/{len(batches)}" + (f", {failed} diverged" if failed else "")
            per_training = group.env_steps()
            bar.update(trainings_done, seconds, latest, None if per_training is None else per_training * trainings)
        if not lead:
            return SweepResult(spec, [], np.empty((0, 0)), None, np.empty((0, 0), bool), directory)
        result = _tabulate(spec, groups, batches, done, directory)
        if directory is not None:
            write_table(result)
            session["finished"] = records.now()
        best_line = _best_line(result)
        return result
    finally:
        bar.close(best_line)  # below the live display's last frame
        if directory is not None and lead:  # interrupted or broken sessions are recorded too
            session["batches_after"] = len(done)  # read back or trained
            if "finished" not in session:
                session["interrupted"] = records.now()
            try:
                meta_path = directory / records.METADATA
                metadata = records.read_json(meta_path)
                metadata["sessions"].append(session)
                records.write_json(meta_path, metadata)
            except OSError:
                if "finished" in session:
                    raise


def _batch_members(batches: list[_Batch], batch: _Batch, spec: SweepSpec) -> int:
    """Members per call of ``batch``'s group: its largest batch (every batch of a group has one shape)."""
    return max(len(b.configs) for b in batches if b.group == batch.group) * len(spec.seeds)


# -- the table ------------------------------------------------------------------------------------


def _bootstrap_indices(spec: SweepSpec, num_seeds: int) -> np.ndarray:
    key = jax.random.fold_in(jax.random.key(spec.sample_seed), BOOTSTRAP_STREAM + num_seeds)
    return np.asarray(jax.random.randint(key, (BOOTSTRAP_RESAMPLES, num_seeds), 0, num_seeds))


def _stats(values: np.ndarray, spec: SweepSpec) -> dict:
    """Mean, std and 95% percentile-bootstrap interval of the mean of ``values`` (finite seeds)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None}
    means = values[_bootstrap_indices(spec, n)].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "std": float(values.std()), "ci_low": float(low), "ci_high": float(high)}


def _curve_area(curve: np.ndarray) -> float:
    """Mean of a learning curve over its logging intervals (area under it / run length); intervals
    with no value (NaN: no episode ended) are skipped."""
    finite = curve[np.isfinite(curve)]
    return float(finite.mean()) if finite.size else math.nan


def _configuration_stats(
    final: np.ndarray, finite: np.ndarray, curves: np.ndarray, env_steps: np.ndarray, spec: SweepSpec
) -> dict:
    """One configuration's statistics over its seeds, as its row of the table has them.

    Args:
        final: float64 ``[S]``, each seed's final greedy return.
        finite: bool ``[S]``, seeds whose numbers stayed finite (the others are left out and make
            the configuration ``failed``).
        curves: float64 ``[S, L]``, the learning curve ``spec.curve`` at each log record.
        env_steps: ``[S, L]``, each seed's env steps at each log record (for ``steps_to_threshold``;
            the same for every seed but where an iteration's env steps vary: text's tokens).
    """
    num_seeds = len(final)
    row: dict[str, Any] = {f"final_return_{k}": v for k, v in _stats(final[finite], spec).items()}
    areas = np.array([_curve_area(curves[s]) for s in range(num_seeds) if finite[s]])
    areas = areas[np.isfinite(areas)]
    row["auc_mean"] = float(areas.mean()) if areas.size else None
    row["auc_std"] = float(areas.std()) if areas.size else None
    if spec.threshold is not None:
        first = []
        for s in range(num_seeds):
            crossed = np.flatnonzero(finite[s] & (curves[s] >= spec.threshold))
            first.append(float(env_steps[s, crossed[0]]) if crossed.size else math.inf)
        median = float(np.median(first))
        row["seeds_reached"] = int(np.isfinite(first).sum())
        row["steps_to_threshold"] = median if math.isfinite(median) else None
    row["diverged_seeds"] = int((~finite).sum())
    row["failed"] = bool((~finite).any())
    return row


def _tabulate(spec: SweepSpec, groups: list[_Group], batches: list[_Batch], done: dict, directory: Path | None):
    num_configs, num_seeds = len(spec.points()), len(spec.seeds)
    final = np.full((num_configs, num_seeds), np.nan)
    diverged = np.zeros((num_configs, num_seeds), bool)
    curves: dict[int, np.ndarray] = {}
    steps: dict[int, np.ndarray] = {}
    group_of = {}
    for batch in batches:
        numbers = done[batch.number]
        for j, c in enumerate(batch.configs):
            rows = slice(j * num_seeds, (j + 1) * num_seeds)
            final[c] = numbers["final_return"][rows]
            diverged[c] = ~numbers["finite"][rows]
            curves[c] = numbers["curve"][rows]
            steps[c] = numbers["env_steps"][rows]
            group_of[c] = batch.group
    final[diverged] = np.nan
    points = spec.points()
    table = []
    for c in range(num_configs):
        row = {"index": c, "group": group_of[c], **_plain_dict(points[c]), "seeds": num_seeds}
        row.update(_configuration_stats(final[c], ~diverged[c], curves[c], steps[c], spec))
        table.append(row)
    lengths = {curves[c].shape[1] for c in range(num_configs)}
    curve_array = np.stack([curves[c] for c in range(num_configs)]) if len(lengths) == 1 else None
    return SweepResult(spec, table, final, curve_array, diverged, directory)


def _best_line(result: SweepResult) -> str:
    failed = sum(r["failed"] for r in result.rows)
    note = f" ({failed} configuration(s) failed: non-finite values)" if failed else ""
    best = result.best
    if best is None:
        return f"no configuration finished with finite values{note}"
    axes = ", ".join(f"{name}={best[name]}" for name in result.spec.axes)
    return (
        f"best: {axes}: final return {best['final_return_mean']:.4g} +- {best['final_return_std']:.3g} "
        f"(95% CI {best['final_return_ci_low']:.4g} to {best['final_return_ci_high']:.4g}){note}"
    )


def write_table(result: SweepResult) -> None:
    """``results.csv`` (one row per configuration) and ``results.json`` (the rows, the spec, the
    best row, and per configuration the seeds' final returns and mean learning curve)."""
    directory = result.directory
    columns = list(result.rows[0])
    lines = [",".join(columns)]
    for row in result.rows:
        lines.append(",".join(_csv_cell(row[name]) for name in columns))
    tmp = directory / f".{RESULTS_CSV}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, directory / RESULTS_CSV)
    per_config = []
    for c, row in enumerate(result.rows):
        entry = {"index": row["index"], "final_returns": [records._plain(v) for v in result.final_returns[c]]}
        if result.curves is not None:
            with warnings.catch_warnings():  # an interval where no seed ended an episode: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_curve = np.nanmean(np.where(result.diverged[c][:, None], np.nan, result.curves[c]), axis=0)
            entry["mean_curve"] = [records._plain(v) for v in mean_curve]
        per_config.append(entry)
    records.write_json(
        directory / RESULTS_JSON,
        {"spec": result.spec.to_dict(), "rows": result.rows, "best": result.best, "members": per_config},
    )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return '"' + "x".join(str(v) for v in value) + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)

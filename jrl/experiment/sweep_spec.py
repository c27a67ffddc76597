"""What a sweep is: its axes and configurations (``SweepSpec``, ``Sample``), how it proceeds
(``SweepSettings``) and what it gives (``SweepResult``), with the TOML form of ``sweep.toml``.

A sweep is an algorithm, an environment, a base config and axes:

- **grid axes** list values; **sample axes** draw ``num_samples`` points uniformly (or
  log-uniformly) from ranges with ``jax.random.key(sample_seed)``. The configurations are the
  Cartesian product of the grid axes, crossed with the samples (sample index fastest).
- An axis over a numeric hyperparameter (the config's ``HYPERPARAMS`` fields: ``alpha``,
  ``gamma``, ``learning_rate``, ...) is data: its values ride along ``vmap``. An axis over any other
  field (``num_envs``, ``hidden_sizes``, ``algorithm``) changes shapes or code, so it splits the
  sweep into **groups**, one compilation each.

Everything here is validated before anything compiles; nothing here trains (``sweeps`` does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tomli_w

from jrl import algorithms
from jrl._validation import check_bool, check_float, check_int
from jrl.algorithms.common import coerce_field
from jrl.envs.registry import resolve_env_paths
from jrl.experiment.spec import RunSpec

__all__ = ["SPEC", "Sample", "SweepError", "SweepResult", "SweepSettings", "SweepSpec", "plain_point"]

#: The sweep file in a sweep directory.
SPEC = "sweep.toml"


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
        resolved_grid = {name: _grid_axis(base, name, values) for name, values in grid.items()}
        resolved_sample = {name: _sample_axis(base, name, rng) for name, rng in sample.items()}
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
        directory for a spec as typed; the sweep directory for its ``sweep.toml``), and the
        environment's path keywords too (``jrl.envs.registry.resolve_env_paths``: ``Tasks-v0``'s file)."""
        changes = {name: os.path.abspath(Path(base, path)) for name, path in self.paths().items()}
        env_kwargs = resolve_env_paths(self.env, self.env_kwargs, base)
        spec = self if env_kwargs == self.env_kwargs else dataclasses.replace(self, env_kwargs=env_kwargs)
        return spec if not changes else dataclasses.replace(spec, config=spec.config.replace(**changes))

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
            out.setdefault(json.dumps(plain_point(static), sort_keys=True), (static, []))[1].append(index)
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


def _grid_axis(base: Any, name: str, values: Any) -> tuple:
    """A grid axis's values, each coerced to the field's type and checked by the config."""
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
    values = [coerce_field(type(base), name, v) for v in values]
    for value in values:
        base.replace(**{name: value})  # the config's own check names a bad value
    if len({json.dumps(v) for v in _plain_values(values)}) != len(values):
        raise SweepError(f"grid axis {name!r} repeats a value: {values!r}")
    return tuple(values)


def _sample_axis(base: Any, name: str, rng: str | Sample) -> Sample:
    """A sample axis's range: over a numeric hyperparameter, both ends accepted by the config."""
    hyper = _hyperparam_names(base)
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
    return rng


def _hyperparam_names(config: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(config.HYPERPARAMS)]


def _plain_values(values: Sequence[Any]) -> list:
    return [list(v) if isinstance(v, tuple) else v for v in values]


def plain_point(point: dict) -> dict:
    """A configuration's axis values (``SweepSpec.points()``) as JSON and CSV hold them: tuples
    (``hidden_sizes``) as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items()}


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

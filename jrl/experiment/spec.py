"""What a run is: algorithm, environment, seeds and config, as one TOML file (``config.toml``).

::

    algo = "dqn"                 # a jrl.algorithms name
    env = "CartPole-v1"          # a jrl.make id
    seeds = [0, 1, 2]            # or a count: seeds = 3 means [0, 1, 2]
    devices = 2                  # one run split over 2 devices (optional; default 1)
    [env_kwargs]                 # keyword arguments of jrl.make (optional)
    [config]                     # the algorithm's config fields; missing ones: the tuned default

The rule for keys, the one every jrl run, experiment and benchmark uses: seed ``s`` trains with
``jax.random.key(s)`` (so a run's seed ``s`` is ``make_train(config, env, params)(key(s))``) and is
evaluated, after training, with ``jax.random.fold_in(jax.random.key(s), EVALUATION_STREAM)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import tomli_w

from jrl import algorithms
from jrl._validation import check_int
from jrl.envs import make, registered_envs
from jrl.envs.registry import resolve_env_paths

__all__ = ["EVALUATION_STREAM", "RunSpec", "evaluation_key", "train_key"]

#: ``fold_in`` data that turns a seed's key into its evaluation key (see the module docstring).
EVALUATION_STREAM = 1


def train_key(seed: int) -> jax.Array:
    """The training key of ``seed``: ``jax.random.key(seed)``."""
    return jax.random.key(seed)


def evaluation_key(seed: int) -> jax.Array:
    """The evaluation key of ``seed``: ``fold_in(key(seed), EVALUATION_STREAM)``, a stream no training uses."""
    return jax.random.fold_in(jax.random.key(seed), EVALUATION_STREAM)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A fully resolved run: every field of the config is set.

    Attributes:
        algo: a name of ``jrl.algorithms.names()``.
        env: a ``jrl.make`` id; ``env_kwargs`` its keyword arguments.
        seeds: the seeds trained side by side (vmapped) in one compiled call, non-negative ints.
        config: the algorithm's config (a ``jrl.algorithms.common.Config``).
        devices: the devices each seed's run is split over (data parallelism,
            ``jrl.parallel.DataParallel``); 1 (the default) is a one-device run. Part of what
            the run is: the devices' random streams and float sums differ from one device's, so
            a checkpoint resumes only on the same count. Written to TOML only when not 1.
    """

    algo: str
    env: str
    seeds: tuple[int, ...]
    config: Any
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    devices: int = 1

    def __post_init__(self) -> None:
        spec = algorithms.get(self.algo)
        check_int("devices", self.devices, 1, 2**16)
        if not isinstance(self.config, spec.config_class):
            raise TypeError(f"config must be a {spec.config_class.__name__} for algo {self.algo!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        # As Python ints: NumPy ones pass the check, but TOML and JSON cannot hold them.
        object.__setattr__(self, "seeds", tuple(check_int("seed", seed, 0, 2**31 - 1) for seed in self.seeds))
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")

    @classmethod
    def resolve(
        cls,
        algo: str,
        env: str,
        seeds: int | list[int] | tuple[int, ...] = 1,
        config: dict | None = None,
        env_kwargs: dict | None = None,
        devices: int = 1,
    ) -> RunSpec:
        """A spec from names and partial config fields; fields not given take the tuned
        ``default_config(env)`` where one exists, else the config class's defaults. Checks that
        the environment exists and the algorithm fits it (``ValueError`` naming what is wrong)."""
        spec = algorithms.get(algo)
        if env not in registered_envs():
            make(env)  # raises the registry's ValueError: unknown id, closest match, every id
        env_kwargs = dict(env_kwargs or {})
        environment, env_params = make(env, **env_kwargs)
        spec.check_env(environment, env_params)
        try:
            base = spec.default_config(env).to_dict()
        except ValueError:  # no tuned default for this environment
            base = {}
        fields = {**base, **(config or {})}
        if isinstance(seeds, np.integer):
            seeds = int(seeds)
        if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
            raise TypeError(f"seeds must be a count or a list of seeds, got {seeds!r}")
        if isinstance(seeds, int):
            check_int("seeds", seeds, 1, 2**20)
            seeds = range(seeds)
        config = spec.make_config(**fields)
        return cls(algo=algo, env=env, seeds=tuple(seeds), config=config, env_kwargs=env_kwargs, devices=devices)

    @classmethod
    def from_toml(cls, text: str, **overrides: Any) -> RunSpec:
        """A spec from the TOML form; ``overrides`` (algo, env, seeds, devices, env_kwargs, config) win."""
        data = tomllib.loads(text)
        unknown = sorted(set(data) - {"algo", "env", "seeds", "devices", "env_kwargs", "config"})
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} in a run file; it takes algo, env, seeds, devices, [env_kwargs], [config]"
            )
        config = {**data.get("config", {}), **(overrides.pop("config", None) or {})}
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        for key in ("algo", "env"):
            if key not in merged:
                raise ValueError(f"the run needs {key}: give it in the file or as --{key}")
        return cls.resolve(
            merged["algo"],
            merged["env"],
            merged.get("seeds", 1),
            config,
            merged.get("env_kwargs", {}),
            devices=merged.get("devices", 1),
        )

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> RunSpec:
        """``from_toml`` of a file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise FileNotFoundError(f"cannot read the run file {str(path)!r}: {err.strerror}") from err
        try:
            return cls.from_toml(text, **overrides)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        out = {"algo": self.algo, "env": self.env, "seeds": list(self.seeds)}
        if self.devices != 1:  # a one-device run's file (and digest) is what it always was
            out["devices"] = self.devices
        return {**out, "env_kwargs": dict(self.env_kwargs), "config": self.config.to_dict()}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def digest(self) -> str:
        """sha256 of the canonical JSON of ``to_dict()``: checkpoints record it, and refuse to
        load into a run with another algorithm, environment, seeds or config."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def paths(self) -> dict[str, str]:
        """The config's path fields that are set (``Config.PATH_FIELDS``: files the algorithm
        reads, such as ``pretrained``), as written: ``{field: path}``."""
        fields = type(self.config).PATH_FIELDS
        return {name: getattr(self.config, name) for name in fields if getattr(self.config, name)}

    def resolve_paths(self, base: str | Path) -> RunSpec:
        """This spec with every relative path field made absolute against ``base`` (the working
        directory for a spec as typed; the run directory for a run's ``config.toml``), and the
        environment's path keywords too (``jrl.envs.registry.resolve_env_paths``: ``Tasks-v0``'s file)."""
        changes = {name: os.path.abspath(Path(base, path)) for name, path in self.paths().items()}
        env_kwargs = resolve_env_paths(self.env, self.env_kwargs, base)
        spec = self if env_kwargs == self.env_kwargs else dataclasses.replace(self, env_kwargs=env_kwargs)
        return spec if not changes else dataclasses.replace(spec, config=spec.config.replace(**changes))

    @property
    def algorithm(self) -> algorithms.AlgorithmSpec:
        return algorithms.get(self.algo)

    def make_env(self) -> tuple[Any, Any]:
        return make(self.env, **self.env_kwargs)

"""What every algorithm shares: the algorithm contract, the config base (``replace``, log intervals,
TOML), hyperparameter grids, the finiteness check, epsilon-greedy exploration and its schedule.

The contract, in the spirit of optax's ``(init, update)`` pair: ``module.make_algorithm(config,
env, env_params)`` returns an ``Algorithm`` of three pure functions,

- ``init(key, hyperparams=None) -> state``: a typed pytree (a ``flax.struct`` dataclass) holding
  everything a run needs to continue (learned values, optimizer and replay state, environment
  states, keys, counters), with an int32 ``log_index`` field, the intervals done (a runner that
  vmaps seeds keeps it shared: ``jrl.experiment.runner``);
- ``run(state, num_logs) -> (state, metrics)``: advance by ``num_logs`` logging intervals
  (``num_logs`` a static int; metrics are arrays ``[num_logs]``);
- ``result(state, metrics) -> Result``: the learned values with the metrics of the whole run,

and ``make_train`` is ``init``, one ``run`` over every interval, and ``result``: bit-identical to
running the intervals in any number of chunks. ``jrl.algorithms.training.make_run`` builds ``run``
from an algorithm's training iteration (the logging scan, in-loop evaluation, ``stop_return``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
import tomllib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tomli_w

from jrl._numerics import rounded
from jrl._validation import check_int

__all__ = [
    "METRICS",
    "Algorithm",
    "Config",
    "check_finite",
    "divisor_closest_to",
    "epsilon_greedy",
    "hyperparam_grid",
    "linear_epsilon",
    "replace_config",
    "train_function",
]

#: Metrics every algorithm logs, once per logging interval (each algorithm adds its own, such as
#: ``epsilon``, after them): ``step`` (int32: steps of every environment so far), ``env_steps``
#: (float32: ``step * num_envs``, exact below 2**24), ``episode_return`` (mean undiscounted return
#: of the training episodes that ended in the interval, NaN if none did), ``episodes`` (int32: how
#: many ended), ``eval_return`` (mean greedy return of the in-loop evaluation, NaN without one) and
#: ``finite`` (bool: every number the interval's updates produced was finite).
METRICS = ("step", "env_steps", "episode_return", "episodes", "eval_return", "finite")


#: How a config's ``None`` is written in TOML, which has no null (``stop_return = "none"``).
NONE = "none"


class Algorithm(NamedTuple):
    """An algorithm bound to a config and an environment (see the module docstring).

    Attributes:
        config: the validated config.
        init: ``init(key, hyperparams=None) -> state``.
        run: ``run(state, num_logs) -> (state, metrics)``; jit it with ``static_argnums=1``.
        result: ``result(state, metrics) -> Result``.
        num_logs: logging intervals in a full run (``config.num_logs()``).
    """

    config: Any
    init: Callable[..., Any]
    run: Callable[..., tuple[Any, dict]]
    result: Callable[..., Any]
    num_logs: int


def train_function(algorithm: Algorithm) -> Callable[..., Any]:
    """``train(key, hyperparams=None) -> Result``: init, one ``run`` over every interval, result."""

    def train(key: jax.Array, hyperparams: Any = None) -> Any:
        state = algorithm.init(key, hyperparams)
        state, metrics = algorithm.run(state, algorithm.num_logs)
        return algorithm.result(state, metrics)

    return train


def _runtime_values(hyperparams: Any) -> Any:
    """``hyperparams``, hidden from XLA's constant folding.

    ``make_train(config, ...)(key)`` takes the config's hyperparameters as constants, while a
    chunked run (``run`` called again on a saved state) and a vmapped sweep read them from data.
    XLA would sink the constants into the training loop and simplify the arithmetic around them
    differently, so the same run would round differently. Behind this barrier every run computes
    with runtime values, and all three give the same bits.
    """
    return jax.lax.optimization_barrier(hyperparams)


class Config:
    """Base of every algorithm's frozen config dataclass.

    Subclasses set ``HYPERPARAMS`` (the ``flax.struct`` class of the numeric fields ``train``
    takes as data) and ``DEFAULT_RECORDS`` (logging intervals when ``log_interval`` is ``None``),
    and have ``num_steps`` and ``log_interval`` fields. The TOML form holds every field (``None``
    as ``"none"``); reading it back gives an equal config.
    """

    HYPERPARAMS: ClassVar[type]
    DEFAULT_RECORDS: ClassVar[int]
    #: Fields that name a file or directory the algorithm reads (a pretrained model). A run
    #: directory keeps a copy of each and names the copy, relative to itself, in its config.toml,
    #: so that it works from any working directory and after the original moves.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Fields added after runs were recorded with this config class: ``to_dict`` (a run's
    #: config.toml, its digest, a sweep's table) leaves each out while it holds its default, so a
    #: run recorded before the field existed reads, digests and resumes as it did.
    WRITTEN_WHEN_SET: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Store NumPy scalars (a value read from an array) as the Python numbers they equal:
        they pass the checks as numbers, but TOML, JSON and a sweep's digest cannot hold them.
        Subclasses call this first, then check their fields."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, f.name, value.item())
            elif isinstance(value, tuple):
                object.__setattr__(self, f.name, tuple(v.item() if isinstance(v, np.generic) else v for v in value))

    def _check_log_interval(self) -> None:
        """``log_interval``: ``None`` or a divisor of ``num_steps`` (the message says how to get
        one chosen: a default's interval outlives a shortened ``num_steps``)."""
        if self.log_interval is None:
            return
        check_int("log_interval", self.log_interval, 1)
        if self.num_steps % self.log_interval:
            raise ValueError(
                f"log_interval={self.log_interval} must divide num_steps={self.num_steps}; or set it to None "
                "('none' in TOML and on the command line: --set log_interval=none) to choose one"
            )

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (and validated)."""
        return replace_config(self, changes)

    def env_steps_per_iteration(self) -> int | None:
        """Env steps (transitions of one environment copy) one training iteration takes: one
        step of each of ``num_envs`` environments. ``None`` where it varies (a text iteration
        generates ``num_envs`` whole episodes of any length, and an env step is one token)."""
        return self.num_envs

    def resolved_log_interval(self) -> int:
        """``log_interval``, or the divisor of ``num_steps`` giving closest to ``DEFAULT_RECORDS`` records."""
        if self.log_interval is not None:
            return self.log_interval
        return divisor_closest_to(self.num_steps, self.DEFAULT_RECORDS)

    def num_logs(self) -> int:
        """Logging intervals in a full run: ``num_steps // resolved_log_interval()``."""
        return self.num_steps // self.resolved_log_interval()

    def hyperparams(self) -> Any:
        """This config's numeric hyperparameters as a pytree of float32 scalars."""
        names = [f.name for f in dataclasses.fields(self.HYPERPARAMS)]
        return self.HYPERPARAMS(**{name: jnp.float32(getattr(self, name)) for name in names})

    def to_dict(self) -> dict[str, Any]:
        """Every field, as TOML and JSON values: tuples as lists, ``None`` as the string ``"none"``
        (TOML has no null; ``from_dict`` reads it back as ``None`` for a field that allows it);
        a field of ``WRITTEN_WHEN_SET`` only where it differs from its default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.WRITTEN_WHEN_SET and value == f.default:
                continue
            out[f.name] = NONE if value is None else list(value) if isinstance(value, tuple) else value
        return out

    def to_toml(self) -> str:
        """The TOML text of ``to_dict()``."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """A validated config from field values (missing fields take their defaults). Unknown
        names raise ``TypeError``; values are coerced to the field's type where lossless (an int
        for a float field, a list for a tuple field)."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} fields must be a table of name = value, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            close = {name: _closest(name, known) for name in unknown}
            hints = "; ".join(f"{name!r} (did you mean {c!r}?)" if c else repr(name) for name, c in close.items())
            raise TypeError(f"{cls.__name__} has no field(s) {hints}; its fields are {sorted(known)}")
        return cls(**{name: coerce_field(cls, name, value) for name, value in data.items()})

    @classmethod
    def from_toml(cls, text: str) -> Any:
        """A validated config from TOML text (see ``from_dict``)."""
        return cls.from_dict(tomllib.loads(text))


def _closest(name: str, names: set[str]) -> str | None:
    match = difflib.get_close_matches(name, sorted(names), n=1)
    return match[0] if match else None


def coerce_field(cls: type, name: str, value: Any) -> Any:
    """``value`` converted losslessly to the type of field ``name`` of the dataclass ``cls``: a
    NumPy scalar to the Python number it equals, int -> float for a float field, list -> tuple for
    a tuple field, ``"none"`` -> ``None`` for a field that may be ``None``; anything else unchanged
    (the config's own validation then names a wrong type)."""
    if isinstance(value, np.generic):
        value = value.item()
    hint = typing.get_type_hints(cls)[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None or (value == NONE and type(None) in options):
        return None
    if float in options and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and any(typing.get_origin(o) is tuple for o in options):
        return tuple(value)
    return value


def replace_config(config: Any, changes: dict) -> Any:
    """``dataclasses.replace`` that names unknown fields (``TypeError``) and re-validates."""
    unknown = set(changes) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field(s) {sorted(unknown)}")
    return dataclasses.replace(config, **changes)


def hyperparam_grid(config: Config, **axes: Sequence[float]) -> Any:
    """Every combination of the given values (Cartesian product), stacked: leaves float32 ``[G]``.

    ``hyperparam_grid(config, alpha=[0.05, 0.1], gamma=[0.9, 0.99])`` has G = 4, in row-major order
    of the keywords; the other hyperparameters keep the config's values. Every combination is
    validated like a config. Train the grid in one call with ``jax.vmap(train, in_axes=(None, 0))(key,
    grid)`` (or per-member keys with ``in_axes=0``).
    """
    names = [f.name for f in dataclasses.fields(config.HYPERPARAMS)]
    unknown = sorted(set(axes) - set(names))
    if unknown:
        raise TypeError(f"hyperparam_grid sweeps only {names}; got {unknown}")
    if not axes:
        raise ValueError(f"hyperparam_grid needs at least one axis, e.g. {names[0]}=[...]")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise TypeError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    members = [
        config.replace(**dict(zip(axes, combo, strict=True))).hyperparams()
        for combo in itertools.product(*axes.values())
    ]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *members)


def check_finite(result: Any) -> Any:
    """Raise ``FloatingPointError`` if any logging interval of ``result`` (one run, or a vmapped
    batch) was not finite (``metrics["finite"]``); otherwise return ``result``."""
    metrics = result.metrics
    finite = np.asarray(metrics["finite"])
    if finite.all():
        return result
    steps = np.asarray(metrics["step"])
    first = int(steps.reshape(-1)[np.argmax(~finite.reshape(-1))])
    detail = ""
    if "nonfinite_updates" in metrics:
        detail = f" ({int(np.asarray(metrics['nonfinite_updates']).sum())} non-finite gradient step(s), skipped)"
    raise FloatingPointError(
        f"training produced non-finite values in {int((~finite).sum())} of {finite.size} logging intervals"
        f"{detail}, first in the interval ending at step {first}. The usual cause is a step size that is too "
        "high (alpha, learning_rate) or unbounded rewards."
    )


def epsilon_greedy(q_rows: jax.Array, epsilon: jax.Array, u: jax.Array) -> jax.Array:
    """Epsilon-greedy actions with uniformly random tie-breaking, from one uniform per row.

    ``u < epsilon`` explores (action ``floor(u / epsilon * A)``); otherwise ``(u - epsilon) /
    (1 - epsilon)``, again uniform on [0, 1), picks among the actions tied for the maximum.
    ``q_rows``: float ``[N, A]``; ``epsilon``: scalar; ``u``: ``[N]`` in [0, 1). Returns int32 ``[N]``.
    """
    num_actions = q_rows.shape[-1]
    # Loops over the (small, static) action axis: column-wise ops on [N] vectors vectorize well on
    # CPU, where reductions over a short minor axis, argmax and cumsum (reduce-window) do not.
    columns = [q_rows[..., j] for j in range(num_actions)]
    best = functools.reduce(jnp.maximum, columns)
    is_max = [(c == best).astype(jnp.int32) for c in columns]
    num_max = functools.reduce(jnp.add, is_max)
    u_greedy = (u - epsilon) / jnp.maximum(1.0 - epsilon, 1e-30)
    pick = jnp.minimum(jnp.floor(u_greedy * num_max).astype(jnp.int32), num_max - 1)
    # The pick-th (0-based) maximal action: the last index whose running count of maxima is <= pick.
    greedy_action = jnp.zeros_like(pick)
    seen = jnp.zeros_like(pick)
    for j in range(1, num_actions):
        seen = seen + is_max[j - 1]
        greedy_action = jnp.where(seen <= pick, j, greedy_action)
    random_action = jnp.floor(u / jnp.maximum(epsilon, 1e-30) * num_actions).astype(jnp.int32)
    return jnp.where(u < epsilon, jnp.minimum(random_action, num_actions - 1), greedy_action)


def linear_epsilon(start: jax.Array, end: jax.Array, decay_steps: float, t: jax.Array) -> jax.Array:
    """Epsilon at step ``t``: linear from ``start`` to ``end`` over ``decay_steps`` steps, then
    ``end``; ``decay_steps == 0`` means ``end`` from the first step. float32, shaped like ``t``."""
    if decay_steps == 0:
        return jnp.broadcast_to(end, jnp.shape(t)).astype(jnp.float32)
    frac = jnp.minimum(t.astype(jnp.float32) / decay_steps, 1.0)
    return start + rounded(frac * (end - start))


def divisor_closest_to(n: int, records: int) -> int:
    """The divisor ``d`` of ``n`` for which ``n // d`` is closest to ``records`` (ties: smaller d)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return min(small + [n // d for d in small], key=lambda d: (abs(n // d - records), d))

"""Training algorithms, each one readable file with the same contract (``jrl.algorithms.common``):
``make_algorithm(config, env, env_params)`` -> ``init`` / ``run`` / ``result``, ``make_train``,
``greedy_policy(config, env, env_params, result)``, ``default_config(env_id)``.

``get(name)`` finds one by the name the command line uses (``jrl train --algo NAME``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from jrl._extras import import_registering_module
from jrl.algorithms import common, dqn, ppo, pqn, q_learning, training
from jrl.envs.core import Environment
from jrl.parallel import SINGLE, DataParallel

__all__ = [
    "AlgorithmSpec",
    "common",
    "dqn",
    "for_config",
    "get",
    "names",
    "ppo",
    "pqn",
    "q_learning",
    "register",
    "training",
    "unregister",
]


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
    """What a runner needs to drive an algorithm by name.

    Attributes:
        name: the name (``q_learning``, ``sarsa``, ``expected_sarsa``, ``double_q_learning``, ``dqn``).
        module: the algorithm's module (``make_algorithm``, ``make_train``, ``greedy_policy``).
        config_class: its config dataclass.
        fixed: config fields this name fixes (``sarsa`` is ``q_learning`` with ``algorithm="sarsa"``).
    """

    name: str
    module: ModuleType
    config_class: type
    fixed: dict

    def default_config(self, env_id: str) -> Any:
        """The tuned config for ``env_id`` (with this name's fixed fields); ``ValueError`` if none."""
        return self.module.default_config(env_id).replace(**self.fixed)

    def make_config(self, **fields: Any) -> Any:
        """A config from fields; this name's fixed fields win (a conflicting value is refused)."""
        for key, value in self.fixed.items():
            if key in fields and fields[key] != value:
                raise ValueError(f"--algo {self.name} fixes {key}={value!r}; got {key}={fields[key]!r}")
        return self.config_class.from_dict({**fields, **self.fixed})

    def make_algorithm(
        self, config: Any, env: Environment, env_params: Any, parallel: DataParallel = SINGLE
    ) -> common.Algorithm:
        """The module's ``make_algorithm``; over several devices (``parallel``) only for a module
        that says it can (``DATA_PARALLEL = True``), else ``ValueError``."""
        if not parallel.active:
            return self.module.make_algorithm(config, env, env_params)
        if not self.data_parallel:
            able = [name for name in names() if get(name).data_parallel]
            raise ValueError(
                f"--algo {self.name} trains on one device; --devices {parallel.count} needs an algorithm that "
                f"splits a run over devices: {', '.join(able)}"
            )
        return self.module.make_algorithm(config, env, env_params, parallel=parallel)

    @property
    def data_parallel(self) -> bool:
        """Whether one run can be split over several devices (the module's ``DATA_PARALLEL``)."""
        return bool(getattr(self.module, "DATA_PARALLEL", False))

    @property
    def greedy_policy(self) -> Callable[..., Any]:
        return self.module.greedy_policy

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics a run logs: the module's ``METRICS``, or the shared ones
        (``common.METRICS``) for a registered module that does not list its own."""
        return tuple(getattr(self.module, "METRICS", common.METRICS))

    def check_env(self, env: Environment, env_params: Any) -> None:
        """Raise ``ValueError`` saying why this algorithm does not fit ``env`` (host side): the
        module's ``check_env``; a module without one accepts every environment."""
        if hasattr(self.module, "check_env"):
            self.module.check_env(env, env_params)

    @property
    def tabular(self) -> bool:
        """Whether the algorithm learns a table whose greedy policy a tabular model values exactly
        (the module offers ``greedy_table(result)``): sweeps and plots then use the model instead
        of sampled episodes."""
        return hasattr(self.module, "greedy_table")

    @property
    def exportable(self) -> bool:
        """Whether the trained network describes itself for exporters (the module offers
        ``describe_network(config, env, env_params, result)``, see ``describe_network``)."""
        return hasattr(self.module, "describe_network")

    def describe_network(self, config: Any, env: Environment, env_params: Any, result: Any) -> Any:
        """The trained network of one seed's ``result`` as a ``jrl.algorithms.networks.NetworkDescription``
        (``exportable`` only; ``ValueError`` otherwise): what ``jrl.export`` reads."""
        if not self.exportable:
            raise ValueError(f"{self.name} cannot be exported: its module has no describe_network")
        return self.module.describe_network(config, env, env_params, result)

    @property
    def decodes_text(self) -> bool:
        """Whether a trained result decodes text with language models (the module offers
        ``decoding_models(config, result)``): ``jrl generate`` and ``jrl export`` of its runs."""
        return hasattr(self.module, "decoding_models")

    def decoding_models(self, config: Any, result: Any) -> tuple:
        """``(language model, Q-model, beta)`` that decode one seed's ``result`` with ``logits +
        beta * Q`` (``decodes_text`` only; ``ValueError`` otherwise)."""
        if not self.decodes_text:
            raise ValueError(f"{self.name} writes no text: its module has no decoding_models")
        return self.module.decoding_models(config, result)

    def greedy_table(self, result: Any) -> Any:
        """The ``[..., S, A]`` table whose first maximal action is the greedy policy (``tabular`` only)."""
        if not self.tabular:
            raise ValueError(f"{self.name} learns no table (its module has no greedy_table)")
        return self.module.greedy_table(result)


_SPECS = {
    **{
        name: AlgorithmSpec(name, q_learning, q_learning.QLearningConfig, {"algorithm": name})
        for name in q_learning.ALGORITHMS
    },
    "dqn": AlgorithmSpec("dqn", dqn, dqn.DQNConfig, {}),
    "pqn": AlgorithmSpec("pqn", pqn, pqn.PQNConfig, {}),
    "ppo": AlgorithmSpec("ppo", ppo, ppo.PPOConfig, {}),
}


def register(name: str, module: ModuleType, config_class: type, fixed: dict | None = None) -> None:
    """Make an algorithm module known by ``name`` to ``get``, the runner and the command line.

    The module follows the contract above (``make_algorithm``, ``make_train``, ``greedy_policy``,
    ``default_config``); ``fixed`` holds config fields this name fixes. Optional capabilities, each
    asked through ``AlgorithmSpec``, never by the module's identity:

    - ``check_env(env, env_params)``: raise ``ValueError`` for an environment it does not fit
      (``AlgorithmSpec.check_env``; without it every environment is accepted);
    - ``METRICS``: the names of every metric it logs, which a sweep's curve may name
      (``AlgorithmSpec.metrics``; without it ``common.METRICS``);
    - ``greedy_table(result)``: for a tabular learner, valued exactly from the model
      (``AlgorithmSpec.tabular``);
    - ``describe_network(config, env, env_params, result)``: its trained network as a
      ``jrl.algorithms.networks.NetworkDescription``, which ``jrl.export`` reads
      (``AlgorithmSpec.exportable``);
    - ``decoding_models(config, result)``: the language models that decode a text learner's
      result, ``(lm, q_model, beta)`` (``AlgorithmSpec.decodes_text``: ``jrl generate``, ``jrl export``).

    ``jrl.text`` registers ``text_q_learning`` this way (the layers above ``algorithms`` add
    theirs; nothing here imports them). The shared training scaffolding (logging scan, in-loop
    evaluation, ``stop_return``) is ``jrl.algorithms.training.make_run``.
    """
    if name in _SPECS:
        raise ValueError(f"algorithm {name!r} is already registered")
    _SPECS[name] = AlgorithmSpec(name, module, config_class, dict(fixed or {}))


def unregister(name: str) -> None:
    """Forget an algorithm ``register`` added (a test's or a script's), so ``names()`` is as
    before; ``ValueError`` if ``name`` is not registered."""
    if name not in _SPECS:
        raise ValueError(f"cannot unregister {name!r}: it is not registered")
    del _SPECS[name]


def for_config(config: Any) -> AlgorithmSpec | None:
    """The first registered algorithm whose config class is ``type(config)`` (names that share a
    module and config class, such as ``sarsa`` and ``q_learning``, share its capabilities);
    ``None`` if there is none."""
    return next((spec for spec in _SPECS.values() if spec.config_class is type(config)), None)


def _import_module_of(name: str) -> str:
    """Import the ``module`` of ``"module:name"`` and return ``name``, which it must register."""
    module, bare = import_registering_module(name, ValueError)
    if bare not in _SPECS:
        raise ValueError(
            f"--algo {name!r}: the module {module!r} was imported, but it registers no algorithm {bare!r}; "
            f"known: {names()}"
        )
    return bare


def names() -> list[str]:
    """Every name ``get`` accepts."""
    return list(_SPECS)


def get(name: str) -> AlgorithmSpec:
    """The algorithm called ``name``; ``ValueError`` naming the known ones (and the closest) otherwise.

    As ``jrl.make``'s ``"module:id"``, ``"module:name"`` imports ``module`` first (a module of
    yours that calls ``register``), so a run that records ``--algo module:name`` is found again by
    ``jrl resume``, ``jrl eval`` and ``jrl plot`` in another process.
    """
    if isinstance(name, str) and name not in _SPECS and ":" in name:
        return _SPECS[_import_module_of(name)]
    if name not in _SPECS:
        close = difflib.get_close_matches(str(name), list(_SPECS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown algorithm {name!r}.{hint} Known: {names()}")
    return _SPECS[name]

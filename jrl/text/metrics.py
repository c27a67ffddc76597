"""What a text policy's generations score: reward, the KL divergence to the pretrained model, and
each environment's own numbers (optimality of walks, valid-word rate and distinct words).

``sample_episodes`` runs whole episodes of a text environment with a decoding policy (the same
``rollout`` text Q-learning trains on) and ``score_episodes`` summarises them:

- every token environment: mean return, distinct texts, and ``KL(pi || pi0)`` per generation (the
  sum over its tokens of the per-state KL of the decoding distribution to the pretrained model's,
  in nats);
- then the environment's own numbers (``TokenEnv.text_scores``): for ``GraphWalkText-v0`` the
  optimality ``(L - length) / (L - shortest)`` of each walk (ILQL's metric, ``walk_optimality``),
  averaged first within each start node and then over the start nodes, so every start node weighs
  the same whatever the sampling drew; for ``WordGen-v0`` the fraction of generations that are
  dictionary words, and how many distinct words they are.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl.envs.tokens import TokenEnv
from jrl.text.model import LanguageModel
from jrl.text.q_learning import rollout

__all__ = ["sample_episodes", "score_episodes"]


@functools.partial(jax.jit, static_argnames=("env", "lm_config", "num_episodes", "do_sample"))
def _sample(key, env, env_params, lm_config, lm_params, q_params, beta, temperature, *, num_episodes, do_sample):
    return rollout(key, env, env_params, lm_config, lm_params, q_params, beta, num_episodes, temperature, do_sample)


def sample_episodes(
    key: jax.Array,
    env: TokenEnv,
    env_params: Any,
    model: LanguageModel | None,
    q_model: LanguageModel | None = None,
    beta: float = 0.0,
    num_episodes: int = 1000,
    temperature: float = 1.0,
    do_sample: bool = True,
) -> dict:
    """``num_episodes`` episodes decoded with ``logits + beta * Q`` (``model=None``: uniformly random
    tokens; ``q_model=None``: the model alone), in one compiled call. Returns ``rollout``'s arrays
    as NumPy arrays (``tokens`` ``[N, L]``, per-token records ``[N, L - 1]``)."""
    lm_config, lm_params = (None, None) if model is None else (model.config, model.params)
    q_params = None if q_model is None else q_model.params
    out = _sample(
        key,
        env,
        env_params,
        lm_config,
        lm_params,
        q_params,
        jnp.float32(beta),
        jnp.float32(temperature),
        num_episodes=num_episodes,
        do_sample=do_sample,
    )
    return jax.tree_util.tree_map(np.asarray, out)


def score_episodes(env: TokenEnv, env_params: Any, episodes: dict) -> dict:
    """Summary numbers of ``sample_episodes``'s output, the environment's own (``env.text_scores``)
    included, and the decoded ``texts`` (a list)."""
    vocab = env.vocabulary
    texts = vocab.decode_batch(episodes["tokens"])
    returns = episodes["reward"].sum(axis=1)
    scores: dict[str, Any] = {
        "episodes": len(texts),
        "mean_return": float(returns.mean()),
        "kl": float(episodes["kl"].sum(axis=1).mean()),
        "mean_tokens": float(episodes["active"].sum(axis=1).mean()),
        "distinct_texts": len(set(texts)),
        "texts": texts,
    }
    scores.update(env.text_scores(env_params, episodes["tokens"], returns))
    return scores

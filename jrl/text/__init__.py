"""Language generation as reinforcement learning.

Token environments (``GraphWalkText-v0``, ``WordGen-v0``) live with the other environments
(``jrl.envs``); here are their vocabularies (``vocabulary``), the small causal language model
(``TransformerLM``, ``LanguageModel``, ``save_model``/``load_model`` as safetensors), supervised
``pretrain``-ing on generated data, ``generate`` (batched, compiled decoding with
``logits + beta * Q``), soft Q-learning for text (``jrl.text.q_learning``) and GRPO (``jrl.text.grpo``).
"""

from jrl import algorithms
from jrl.envs import Vocabulary, vocabulary
from jrl.text import grpo, q_learning
from jrl.text.generate import Generation, choose_tokens, generate
from jrl.text.model import (
    LanguageModel,
    LMConfig,
    ModelFileError,
    TransformerLM,
    init_model,
    load_model,
    model_vocabulary,
    save_model,
)
from jrl.text.pretrain import PretrainConfig, pretrain

__all__ = [
    "Generation",
    "LMConfig",
    "LanguageModel",
    "ModelFileError",
    "PretrainConfig",
    "TransformerLM",
    "Vocabulary",
    "choose_tokens",
    "generate",
    "grpo",
    "init_model",
    "load_model",
    "model_vocabulary",
    "pretrain",
    "q_learning",
    "save_model",
    "vocabulary",
]

algorithms.register("text_q_learning", q_learning, q_learning.TextQConfig)
algorithms.register("grpo", grpo, grpo.GRPOConfig)

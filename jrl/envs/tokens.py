"""Text generation as an MDP: what the token environments share (issue 10).

An episode writes a text into a fixed-size buffer of ``L`` token ids, one token per step. The
state is the buffer and the position the next token goes to; the action is that token; the
reward is a pure JAX function of the tokens. ``GraphWalkText-v0`` (``jrl.envs.graph_walk_text``)
and ``WordGen-v0`` (``jrl.envs.word_gen``) are the two registered ones.

Conventions every token environment follows:

- Observation: the buffer itself, ``state.tokens``, int32 ``[L]``, in ``Tokens(vocab.size, L)``.
  Unfilled positions hold the vocabulary's end token (the pad convention), so the observation
  shows where the text stops: ``positions(obs, end_id)`` recovers the write position from it,
  and a policy of the observation alone sees everything the dynamics depend on.
- Actions: ``Discrete(vocab.num_actions)``, the token to write. A beginning-of-sequence token, if
  the vocabulary has one, is the last id and is never an action.
- ``Vocabulary`` turns prompt texts into token ids (``encode``) and buffers back into text
  (``decode``, ``decode_batch``); every token environment has it as ``env.vocabulary``
  (``jrl.envs.vocabulary(env_id)`` asks it of the environment an id makes).
- What the text layer (``jrl.text``) needs of a token environment, the environment answers:
  ``pretraining_batch`` (data a language model of it pretrains on) and ``text_scores`` (its own
  numbers scoring finished texts, beside the ones every token environment shares).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl.envs.core import Environment
from jrl.spaces import Discrete, Tokens

__all__ = ["TokenEnv", "TokenState", "Vocabulary", "positions"]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token ids and their strings, with the two special tokens.

    Attributes:
        strings: ``strings[i]`` is token ``i``'s text.
        end_id: the end token: generating it ends the text, and it pads unfilled positions.
        bos_id: the beginning-of-sequence token that starts every buffer, or ``None``. It is the
            last id and not an action.
        separator: what ``decode`` puts between tokens (``" "`` for node walks, ``""`` for
            characters); ``encode`` splits a prompt by it (by whitespace when it is blank).
        num_actions: tokens ``0 .. num_actions - 1`` can be generated: every id but ``bos_id``.
    """

    strings: tuple[str, ...]
    end_id: int
    bos_id: int | None
    separator: str
    num_actions: int

    def __post_init__(self) -> None:
        strings = tuple(self.strings)
        if not strings or not all(isinstance(s, str) and s for s in strings):
            raise ValueError(f"Vocabulary: strings must be non-empty strings, got {self.strings!r}")
        if len(set(strings)) != len(strings):
            raise ValueError(f"Vocabulary: strings must be distinct, got {strings!r}")
        object.__setattr__(self, "strings", strings)
        size = len(strings)
        if not isinstance(self.separator, str):
            raise TypeError(f"Vocabulary: separator must be a str, got {self.separator!r}")
        if self.bos_id is not None and self.bos_id != size - 1:
            raise ValueError(f"Vocabulary: bos_id must be None or the last id ({size - 1}), got {self.bos_id!r}")
        if self.num_actions != size - (self.bos_id is not None):
            raise ValueError(
                f"Vocabulary: num_actions must count every id but bos ({size - (self.bos_id is not None)}), "
                f"got {self.num_actions!r}"
            )
        if not (isinstance(self.end_id, int) and 0 <= self.end_id < self.num_actions):
            raise ValueError(f"Vocabulary: end_id must be an action id in [0, {self.num_actions}), got {self.end_id!r}")

    @property
    def size(self) -> int:
        """The number of token ids, ``bos`` included."""
        return len(self.strings)

    def _content(self) -> dict[str, int]:
        """The tokens a prompt may hold: every one but end and bos, by their text."""
        return {s: i for i, s in enumerate(self.strings) if i not in (self.end_id, self.bos_id)}

    def _allowed(self) -> str:
        """The prompt tokens, described compactly for error messages (``a-z``, ``0-20``)."""
        content = list(self._content())
        if all(len(s) == 1 for s in content):
            codes = [ord(s) for s in content]
            if codes == list(range(codes[0], codes[0] + len(codes))):
                return f"the characters {content[0]}-{content[-1]}"
        if all(s.isdecimal() for s in content):
            numbers = [int(s) for s in content]
            if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
                return f"the tokens {numbers[0]}-{numbers[-1]}, separated by whitespace"
        return "the tokens " + ", ".join(repr(s) for s in content)

    def encode(self, text: str) -> list[int]:
        """A prompt text as token ids, ``bos`` first when the vocabulary has one.

        The text is split by the separator (into characters when it is ``""``, at whitespace when
        it is blank); each piece must be a token other than end and bos.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: a piece that is not a prompt token (named, with what is allowed).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__} {text!r}")
        if self.separator == "":
            pieces = list(text)
        elif self.separator.strip() == "":
            pieces = text.split()
        else:
            pieces = [p for p in text.split(self.separator) if p]
        content = self._content()
        ids = [] if self.bos_id is None else [self.bos_id]
        for index, piece in enumerate(pieces):
            if piece not in content:
                special = " (a special token: prompts hold only text)" if piece in self.strings else ""
                raise ValueError(
                    f"cannot encode {text!r}: piece {index}, {piece!r}, is not a prompt token{special}; "
                    f"allowed are {self._allowed()}"
                )
            ids.append(content[piece])
        return ids

    def _ids(self, tokens: Any, ndim: int, what: str) -> np.ndarray:
        ids = np.asarray(tokens)
        if ids.size == 0:
            ids = ids.astype(np.int64)  # np.asarray([]) is float64
        if ids.ndim != ndim:
            hint = " (for a batch [B, L] use decode_batch)" if ids.ndim == 2 and ndim == 1 else ""
            raise ValueError(f"{what} takes {ndim}-D token ids, got shape {ids.shape}{hint}")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{what} takes integer token ids, got dtype {ids.dtype}")
        bad = np.argwhere((ids < 0) | (ids >= self.size))
        if bad.size:
            index = tuple(int(i) for i in bad[0])
            raise ValueError(f"{what}: token {ids[index]} at index {index} is not an id in [0, {self.size})")
        return ids

    def decode(self, tokens: Sequence[int] | jax.Array | np.ndarray) -> str:
        """The text of one buffer (a list or 1-D array of ids): ``bos`` skipped, stopping at the first
        end token (which is not printed), the tokens joined by the separator."""
        pieces = []
        for token in self._ids(tokens, 1, "decode").tolist():
            if token == self.end_id:
                break
            if token != self.bos_id:
                pieces.append(self.strings[token])
        return self.separator.join(pieces)

    def decode_batch(self, tokens: Any) -> list[str]:
        """``decode`` of every row of ``tokens`` (ids ``[B, L]``)."""
        return [self.decode(row) for row in self._ids(tokens, 2, "decode_batch")]


@struct.dataclass
class TokenState:
    """One episode of a token environment (environments may add fields).

    Attributes:
        tokens: int32 ``[L]``, the buffer (the observation); unfilled positions hold ``end_id``.
        position: int32, the number of tokens in the buffer: the index the next one is written at.
        prompt_length: int32, how many of them the reset wrote (bos and any prompt).
        time: int32, the tokens generated (steps taken) this episode.
    """

    tokens: jax.Array
    position: jax.Array
    prompt_length: jax.Array
    time: jax.Array


def positions(obs: jax.Array, end_id: int) -> jax.Array:
    """The write position a buffer shows: the index of its first ``end_id`` (``L`` if none), int32.

    ``obs`` int32 ``[..., L]``; the result has the leading shape (a scalar for one buffer). Pure,
    so it works under ``jit`` and ``vmap``.
    """
    obs = jnp.asarray(obs)
    is_end = obs == end_id
    length = obs.shape[-1]
    return jnp.where(jnp.any(is_end, axis=-1), jnp.argmax(is_end, axis=-1), length).astype(jnp.int32)


def write(state: TokenState, token: jax.Array, length: int) -> tuple[jax.Array, jax.Array]:
    """``(tokens, position)`` after writing ``token`` at ``state.position``; a full buffer is left as
    it is (only ``step_env`` past a terminal state gets there)."""
    tokens = state.tokens.at[state.position].set(token.astype(jnp.int32), mode="drop")
    return tokens, jnp.minimum(state.position + 1, length).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class TokenEnv(Environment):
    """Base of the token environments: spaces and vocabulary from the class's ``length`` (the
    buffer's ``L``) and ``vocabulary`` (the observation is ``state.tokens``).

    A token environment whose language model can be pretrained overrides ``pretraining_batch``;
    one with numbers of its own to score texts by overrides ``text_scores``.
    """

    length: ClassVar[int]

    @property
    def vocabulary(self) -> Vocabulary:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_actions(self) -> int:
        return self.vocabulary.num_actions

    def observation_space(self, params: Any = None) -> Tokens:
        return Tokens(self.vocabulary.size, self.length)

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.vocabulary.num_actions)

    def pretraining_batch(
        self, key: jax.Array, params: Any, batch_size: int, noise: float = 0.1
    ) -> tuple[jax.Array, jax.Array]:
        """One batch of the data a language model of this environment pretrains on (generated,
        never downloaded): ``(tokens int32 [B, L], mask bool [B, L])``, ``B = batch_size``; the loss
        is taken where ``mask`` is True (position ``t``'s token predicted from tokens ``0..t-1``).

        Pure JAX (``jit``; drawn afresh from ``key`` at every training step). ``noise``: the fraction
        of examples the environment corrupts, where its data has noise (WordGen's misspelt words);
        others ignore it.

        Raises:
            NotImplementedError: here, naming the environment: it offers no pretraining data.
        """
        name = self.env_id or type(self).__name__
        raise NotImplementedError(
            f"{name} offers no pretraining data: a token environment that pretrains a language model "
            "implements TokenEnv.pretraining_batch"
        )

    def text_scores(self, params: Any, tokens: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
        """The environment's own numbers scoring finished episodes (host side, NumPy), beside those
        every token environment shares (``jrl.text.metrics.score_episodes``: returns, KL, distinct
        texts): ``tokens`` int ``[N, L]``, the buffers; ``returns`` float ``[N]``, their returns.
        Empty here: no numbers of its own."""
        del params, tokens, returns
        return {}

"""``WordGen-v0``: write an English word, one letter at a time.

A token environment (``jrl.envs.tokens``) at the character level. Tokens: ``"a"`` .. ``"z"``
(ids 0..25), ``"<end>"`` (26), ``"<bos>"`` (27, never an action): ``Discrete(27)`` actions. The
buffer holds ``LENGTH = 9`` tokens, ``[bos, up to 8 letters]``, end-padded; it is the observation,
int32 ``[9]``.

The dictionary, ``words()``, is ``jrl/envs/data/words.txt``: the 3,000 most frequent English words
of 2-8 letters a-z in wordfreq 3.1.1 (Robyn Speer; data CC BY-SA 4.0, see
``jrl/envs/data/README.md``). Membership runs in JAX through a trie built on the host:
``trie_children[node, letter]`` is the child node (-1 for none, root 0) and ``trie_is_word[node]``
whether the path to ``node`` spells a word. The state carries the trie node of the letters so far
(-1 once they are no word's prefix), so each step looks membership up in O(1).

Episodes: ``reset`` writes bos; with ``prompted=True`` it also writes a required first letter,
uniform over the letters that start at least one word (prompt length 2; otherwise 1). Each step:

- a letter is written; once the buffer holds 8 letters the episode terminates with reward
  ``word_reward`` (1.0) if they spell a word, else 0;
- the end token terminates with reward ``word_reward`` iff the letters so far spell a word (the
  empty text is none); it is written into the buffer when there is room;
- otherwise reward 0.

The text of an episode (``vocabulary().decode``) is all its letters, a prompt letter included, so
the reward is ``word_reward`` exactly when that text is in ``words()``; ``is_word(tokens, params)``
is the same test on a buffer. ``truncated`` is ``time >= max_steps_in_episode``, Gymnasium's
``TimeLimit`` as in every jrl environment (it may fire on a terminating step too); the registered
limit, 8, is the most letters a buffer holds, so it never fires before termination.

Pretraining data (``pretraining_batch``): the dictionary's words, drawn uniformly, each with
probability ``noise`` given one random letter in place of one of its own (a little noise, so the
model also learns that misspellings occur), then the end token. Scores (``text_scores``): the
fraction of texts that are dictionary words, and how many distinct words they are.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import re
import string
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._validation import check_bool
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, write

__all__ = [
    "BOS",
    "END",
    "LENGTH",
    "MAX_LETTERS",
    "WordGen",
    "WordGenParams",
    "WordGenState",
    "is_word",
    "vocabulary",
    "word_gen_factory",
    "words",
]

NUM_LETTERS = 26
END = NUM_LETTERS  # 26
BOS = NUM_LETTERS + 1  # 27, the last id: not an action
MAX_LETTERS = 8
LENGTH = MAX_LETTERS + 1  # bos, then the letters

_VOCABULARY = Vocabulary(
    strings=(*string.ascii_lowercase, "<end>", "<bos>"),
    end_id=END,
    bos_id=BOS,
    separator="",
    num_actions=NUM_LETTERS + 1,
)


def vocabulary() -> Vocabulary:
    """Letters ``"a"`` .. ``"z"`` (ids 0..25), ``"<end>"`` (26), ``"<bos>"`` (27); 27 actions; joined by ``""``."""
    return _VOCABULARY


@functools.cache
def words() -> tuple[str, ...]:
    """The dictionary, in the file's order (most frequent first): ``jrl/envs/data/words.txt``."""
    text = importlib.resources.files("jrl.envs").joinpath("data/words.txt").read_text(encoding="utf-8")
    entries = tuple(text.split())
    bad = [w for w in entries if not re.fullmatch(f"[a-z]{{1,{MAX_LETTERS}}}", w)]
    if bad:  # pragma: no cover - the shipped file is tested
        raise ValueError(f"words.txt: entries must be 1-{MAX_LETTERS} letters a-z, got {bad[:5]}")
    return entries


@functools.cache
def _trie() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(children, is_word, first_letters)`` of the dictionary (read-only NumPy arrays)."""
    children, is_word = [[-1] * NUM_LETTERS], [False]
    for word in words():
        node = 0
        for letter in (ord(c) - ord("a") for c in word):
            if children[node][letter] < 0:
                children[node][letter] = len(children)
                children.append([-1] * NUM_LETTERS)
                is_word.append(False)
            node = children[node][letter]
        is_word[node] = True
    arrays = np.array(children, np.int32), np.array(is_word), np.array(children[0]) >= 0
    for array in arrays:
        array.setflags(write=False)
    return arrays


@functools.cache
def _word_table() -> tuple[np.ndarray, np.ndarray]:
    """The dictionary as letter ids, end-padded: ``(table int32 [W, 8], sizes int32 [W])``
    (read-only)."""
    table = np.full((len(words()), MAX_LETTERS), END, np.int32)
    sizes = np.zeros(len(words()), np.int32)
    for i, word in enumerate(words()):
        table[i, : len(word)] = [ord(c) - ord("a") for c in word]
        sizes[i] = len(word)
    for array in (table, sizes):
        array.setflags(write=False)
    return table, sizes


def _noisy_words(key: jax.Array, batch_size: int, noise: float) -> tuple[jax.Array, jax.Array]:
    """Noisy dictionary words: tokens int32 ``[B, 9]`` (bos, letters, end, pad) and the target mask
    bool ``[B, 9]`` (the letters and the end token, when it fits)."""
    table, sizes = (jnp.asarray(a) for a in _word_table())
    k_word, k_noisy, k_where, k_letter = jax.random.split(key, 4)
    index = jax.random.randint(k_word, (batch_size,), 0, table.shape[0])
    letters, size = table[index], sizes[index]
    where = jax.random.randint(k_where, (batch_size,), 0, size)
    letter = jax.random.randint(k_letter, (batch_size,), 0, NUM_LETTERS)
    noisy = jax.random.uniform(k_noisy, (batch_size,)) < noise
    columns = jnp.arange(letters.shape[1])
    letters = jnp.where(noisy[:, None] & (columns == where[:, None]), letter[:, None], letters)
    tokens = jnp.concatenate([jnp.full((batch_size, 1), BOS, jnp.int32), letters], axis=1)
    positions = jnp.arange(tokens.shape[1])
    mask = (positions >= 1) & (positions <= size[:, None] + 1)
    return tokens, mask


@struct.dataclass
class WordGenParams:
    """The dictionary's trie, the reward and the time limit."""

    trie_children: jax.Array  # int32 [num_nodes, 26]: child per letter, -1 for none; root 0
    trie_is_word: jax.Array  # bool [num_nodes]: the path from the root spells a word
    first_letters: jax.Array  # bool [26]: letters that start at least one word
    word_reward: jax.Array  # float32, the reward for a word (1.0)
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class WordGenState(TokenState):
    """``TokenState`` plus ``trie_node``: int32, the trie node of the letters so far (-1 once they
    are no word's prefix)."""

    trie_node: jax.Array


def _child(params: WordGenParams, node: jax.Array, letter: jax.Array) -> jax.Array:
    """The trie node after ``letter`` (int32 in 0..25) from ``node``; -1 stays -1."""
    return jnp.where(node >= 0, params.trie_children[jnp.maximum(node, 0), letter], -1)


def _spells_word(params: WordGenParams, node: jax.Array) -> jax.Array:
    return (node >= 0) & params.trie_is_word[jnp.maximum(node, 0)]


def is_word(tokens: jax.Array, params: WordGenParams) -> jax.Array:
    """Whether a buffer's text is a dictionary word: bool scalar, pure JAX (``jit``/``vmap``).

    ``tokens``: int ``[L]``. Walks the trie over the letters up to the first end token, skipping
    bos as ``decode`` does; any other token there (an id outside the vocabulary) makes it False.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"is_word takes one buffer [L], got shape {tokens.shape}")
    node, stopped = jnp.int32(0), jnp.bool_(False)
    for token in tokens:  # L is static and small: unrolled
        stopped = stopped | (token == END)
        is_letter = (token >= 0) & (token < NUM_LETTERS)
        advanced = _child(params, node, jnp.clip(token, 0, NUM_LETTERS - 1))
        node = jnp.where(stopped | (token == BOS), node, jnp.where(is_letter, advanced, -1))
    return _spells_word(params, node)


@dataclasses.dataclass(frozen=True)
class WordGen(TokenEnv):
    """Words of the dictionary, letter by letter (see the module docstring).

    Args:
        prompted: reset also writes a required first letter (uniform over the letters that start
            a word); the text, and so the reward, includes it.
    """

    prompted: bool = False
    length = LENGTH  # a class constant, not a field

    def __post_init__(self) -> None:
        check_bool("prompted", self.prompted)

    @property
    def vocabulary(self) -> Vocabulary:
        return _VOCABULARY

    @property
    def default_params(self) -> WordGenParams:
        children, word, first_letters = _trie()
        return WordGenParams(
            trie_children=jnp.asarray(children),
            trie_is_word=jnp.asarray(word),
            first_letters=jnp.asarray(first_letters),
            word_reward=jnp.float32(1.0),
            max_steps_in_episode=jnp.int32(MAX_LETTERS),
        )

    def reset_env(self, key: jax.Array, params: WordGenParams) -> tuple[jax.Array, WordGenState]:
        tokens = jnp.full((LENGTH,), END, jnp.int32).at[0].set(BOS)
        one, zero = jnp.int32(1), jnp.int32(0)
        state = WordGenState(tokens=tokens, position=one, prompt_length=one, time=zero, trie_node=zero)
        if self.prompted:
            logits = jnp.where(params.first_letters, 0.0, -jnp.inf)
            letter = jax.random.categorical(key, logits).astype(jnp.int32)
            tokens, position = write(state, letter, LENGTH)
            state = state.replace(
                tokens=tokens, position=position, prompt_length=position, trie_node=_child(params, zero, letter)
            )
        return state.tokens, state

    def step_env(self, key: jax.Array, state: WordGenState, action: jax.Array, params: WordGenParams):
        del key
        action = jnp.asarray(action, jnp.int32)
        is_letter = action < NUM_LETTERS
        node = jnp.where(
            is_letter, _child(params, state.trie_node, jnp.clip(action, 0, NUM_LETTERS - 1)), state.trie_node
        )
        tokens, position = write(state, action, LENGTH)
        # The end token, or the 8th letter, ends the text; the trie node is then the whole text's.
        terminated = ~is_letter | (position >= LENGTH)
        reward = jnp.where(terminated & _spells_word(params, node), params.word_reward, 0.0).astype(jnp.float32)
        new = state.replace(tokens=tokens, position=position, time=state.time + 1, trie_node=node)
        truncated = new.time >= params.max_steps_in_episode  # Gymnasium's TimeLimit: also on a terminating step
        return new.tokens, new, reward, terminated, truncated, {}

    def pretraining_batch(
        self, key: jax.Array, params: WordGenParams, batch_size: int, noise: float = 0.1
    ) -> tuple[jax.Array, jax.Array]:
        """Dictionary words, a fraction ``noise`` of them with one letter redrawn (see the module
        docstring): ``(tokens int32 [B, 9], mask bool [B, 9])``."""
        del params  # the data are the dictionary's words, the params' trie holds the same
        return _noisy_words(key, batch_size, noise)

    def text_scores(self, params: WordGenParams, tokens: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
        """``valid_rate``: the fraction of texts that are words (a positive return), and
        ``distinct_valid_words``: how many distinct words they are."""
        del params
        valid = returns > 0
        texts = _VOCABULARY.decode_batch(tokens)
        return {
            "valid_rate": float(valid.mean()),
            "distinct_valid_words": len({t for t, v in zip(texts, valid, strict=True) if v}),
        }


def word_gen_factory(env_id: str, max_steps_in_episode: int, prompted: bool = False) -> tuple[WordGen, WordGenParams]:
    """Registry factory: ``prompted``, a bool (reset writes a required first letter)."""
    del env_id
    env = WordGen(check_bool("prompted", prompted))
    return env, env.default_params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))

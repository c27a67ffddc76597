"""``GraphWalkText-v0``: shortest walks on a random graph, written one node token at a time.

The "random walks" task of ILQL (Snell et al., 2022, *Offline RL for Natural Language Generation
with Implicit Language Q Learning*), as a token environment (``jrl.envs.tokens``): a fixed
directed graph of 21 nodes; a walk starts at a random node and should reach node 0, the goal,
in as few nodes as possible, following edges.

Tokens: node ``i`` is token ``i`` (text ``str(i)``), 0..20; token 21 is ``"<end>"``; no bos.
Every token is an action (``Discrete(22)``). The buffer holds ``MAX_LENGTH = 10`` tokens: a walk
has at most 10 nodes, its start included. Observation: the buffer, int32 ``[10]``, end-padded.

The graph (``random_graph(graph_seed)``, built on the host when the environment is made):
``adjacency[i, j]`` (edge i -> j) is ``jax.random.bernoulli(fold_in(key(graph_seed), attempt),
0.1, (21, 21))`` with the diagonal and node 0's row cleared (the goal has no way out: episodes end
there), for the first ``attempt = 0, 1, ...`` whose graph reaches node 0 from every other node
**within the length limit** (``shortest`` <= 9 nodes). That condition keeps the optimality
metric's denominator ``10 - shortest[start]`` positive for every start. About one draw in 18
passes, so a seed takes a few dozen draws; the graph of a seed is fixed for a JAX version.

Episodes: ``reset`` writes a start node uniform on 1..20 (``[start, end, end, ...]``, position 1).
Each step writes the action at the position; the current node is the token before it:

- the end token, or a node without an edge from the current one: reward ``invalid_penalty``
  (-10), terminated;
- an edge to node 0: reward 0, terminated;
- any other edge: reward -1, terminated when the buffer is now full (10 nodes without reaching
  the goal: the length limit is part of the task, and Markov, as the observation shows the
  position).

So an episode's return is ``-(nodes visited after the start, goal excluded)``, or that plus the
penalty. ``truncated`` is ``time >= max_steps_in_episode``, Gymnasium's ``TimeLimit`` as in every jrl
environment (it may fire on a terminating step too); the registered limit, 9, is the most steps a
walk can take, so it never fires before termination.

Metric: ``walk_optimality(tokens, params)``, ILQL's: a walk (tokens up to the first end token)
that follows edges from its first node and reaches node 0, with ``length`` nodes up to and
including that 0, scores ``(10 - length) / (10 - shortest[start])`` (1 for a shortest walk);
any other walk scores 0. ``shortest`` counts nodes as ILQL does: a direct edge to 0 gives 2.
``text_scores`` averages it first within each start node and then over the start nodes, so every
start node weighs the same whatever the sampling drew.

Pretraining data (``pretraining_batch``): random valid walks, as ILQL's random-walks data: a start
node drawn uniformly from 1..20, then a uniformly random outgoing edge at every step until node 0
(then the end token) or the length limit. A model of this data walks along edges but wanders: it
is the "pretrained model" that Q-learning then makes take the shortest paths.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._validation import check_int
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, write

__all__ = [
    "END",
    "GOAL",
    "MAX_LENGTH",
    "NUM_NODES",
    "GraphWalkText",
    "GraphWalkTextParams",
    "graph_walk_text_factory",
    "random_graph",
    "shortest_walk_lengths",
    "vocabulary",
    "walk_optimality",
]

NUM_NODES = 21
GOAL = 0
END = NUM_NODES  # the end token's id, right after the nodes
MAX_LENGTH = 10  # nodes in a walk, the start included: the buffer's length
EDGE_PROBABILITY = 0.1
#: Graph draws before giving up (never reached: about one draw in 18 is accepted).
MAX_ATTEMPTS = 10_000
_DRAWS_PER_CALL = 64  # draws per compiled call; accepted in order, so the result is the same

_VOCABULARY = Vocabulary(
    strings=(*(str(i) for i in range(NUM_NODES)), "<end>"),
    end_id=END,
    bos_id=None,
    separator=" ",
    num_actions=NUM_NODES + 1,
)


def vocabulary() -> Vocabulary:
    """Nodes ``"0"`` .. ``"20"`` (ids 0..20), ``"<end>"`` (21); no bos; 22 actions; joined by spaces."""
    return _VOCABULARY


@struct.dataclass
class GraphWalkTextParams:
    """The graph, its shortest walks, the penalty and the time limit (vmappable over graphs)."""

    adjacency: jax.Array  # bool [21, 21], edge i -> j
    shortest: jax.Array  # int32 [21], nodes on a shortest walk from each node to 0 (shortest[0] = 1)
    invalid_penalty: jax.Array  # float32, the reward of an invalid token (-10)
    max_steps_in_episode: jax.Array  # int32


def shortest_walk_lengths(adjacency: np.ndarray) -> np.ndarray:
    """Nodes on a shortest walk from each node to node 0, start and goal included (host side).

    A breadth-first search back from node 0: ``result[0] = 1``, ``2`` for a node with an edge
    to 0, and so on; ``-1`` where node 0 cannot be reached. ``adjacency``: bool ``[n, n]``, edge
    ``i -> j`` at ``[i, j]``. Returns int ``[n]``.
    """
    adjacency = np.asarray(adjacency, dtype=bool)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1] or adjacency.shape[0] < 1:
        raise ValueError(f"adjacency must be a square [n, n] matrix, got shape {adjacency.shape}")
    lengths = np.full(adjacency.shape[0], -1, np.int64)
    lengths[GOAL] = 1
    frontier = deque([GOAL])
    while frontier:
        node = frontier.popleft()
        for previous in np.flatnonzero(adjacency[:, node] & (lengths < 0)):
            lengths[previous] = lengths[node] + 1
            frontier.append(previous)
    return lengths


@functools.partial(jax.jit, static_argnums=2)
def _draw(key: jax.Array, first_attempt: jax.Array, num: int) -> jax.Array:
    """Attempts ``first_attempt .. first_attempt + num - 1``: bool ``[num, 21, 21]``, raw draws."""

    def one(attempt):
        return jax.random.bernoulli(jax.random.fold_in(key, attempt), EDGE_PROBABILITY, (NUM_NODES, NUM_NODES))

    return jax.vmap(one)(first_attempt + jnp.arange(num, dtype=jnp.uint32))


@functools.cache
def _graph(graph_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(adjacency, shortest)`` of a seed (read-only NumPy arrays, cached: one search per seed)."""
    key = jax.random.key(graph_seed)
    for first in range(0, MAX_ATTEMPTS, _DRAWS_PER_CALL):
        for adjacency in np.array(_draw(key, np.uint32(first), _DRAWS_PER_CALL)):
            np.fill_diagonal(adjacency, False)
            adjacency[GOAL] = False
            shortest = shortest_walk_lengths(adjacency)
            if np.all((shortest >= 1) & (shortest < MAX_LENGTH)):
                adjacency.setflags(write=False)
                shortest = shortest.astype(np.int32)
                shortest.setflags(write=False)
                return adjacency, shortest
    raise RuntimeError(
        f"graph_seed={graph_seed}: no graph in {MAX_ATTEMPTS} draws reaches node 0 in time"
    )  # pragma: no cover


def random_graph(graph_seed: int) -> np.ndarray:
    """The graph of ``graph_seed`` (see the module docstring): bool ``[21, 21]``, edge i -> j at [i, j]."""
    return _graph(check_int("graph_seed", graph_seed, 0, 2**32 - 1))[0]


def walk_optimality(walk_tokens: jax.Array, params: GraphWalkTextParams) -> jax.Array:
    """ILQL's optimality of a walk, float32 in [0, 1]; pure JAX (``jit``/``vmap``).

    ``walk_tokens``: int32 ``[10]``, a buffer (the walk is its tokens up to the first end token).
    A walk that follows edges from its first node and reaches node 0 (the first 0 ends it) with
    ``length`` nodes scores ``(10 - length) / (10 - shortest[start])``; a walk with an invalid
    transition or token, that stops before the goal, or does not reach it in 10 nodes scores 0.
    """
    tokens = jnp.asarray(walk_tokens)
    if tokens.shape != (MAX_LENGTH,):
        raise ValueError(f"walk_optimality takes one buffer of shape ({MAX_LENGTH},), got shape {tokens.shape}")
    index = jnp.arange(MAX_LENGTH)
    is_node = (tokens >= 0) & (tokens < NUM_NODES)
    node = jnp.clip(tokens, 0, NUM_NODES - 1)
    at_goal = tokens == GOAL
    goal_index = jnp.where(jnp.any(at_goal), jnp.argmax(at_goal), MAX_LENGTH)
    # Transition i -> i + 1 must be an edge for every i before the goal. The end token is no node,
    # so an end before the goal fails here: the walk stops at the first end token.
    edges = is_node[:-1] & is_node[1:] & params.adjacency[node[:-1], node[1:]]
    valid = is_node[0] & jnp.all(edges | (index[:-1] >= goal_index))
    length = goal_index + 1
    denominator = jnp.maximum(MAX_LENGTH - params.shortest[node[0]], 1)  # positive for the made graphs
    score = (MAX_LENGTH - length) / denominator
    return jnp.where(valid & (goal_index < MAX_LENGTH), score, 0.0).astype(jnp.float32)


def _random_walks(key: jax.Array, adjacency: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Random valid walks: tokens int32 ``[B, 10]`` and the target mask bool ``[B, 10]`` (position
    ``t`` is a target when no goal came before ``t - 1``: the walk's nodes and one end token)."""
    num_nodes = adjacency.shape[0]
    key_start, key_walk = jax.random.split(key)
    start = jax.random.randint(key_start, (batch_size,), 1, num_nodes)

    def step(carry: tuple, key: jax.Array) -> tuple:
        node, arrived = carry
        choice = jax.random.categorical(key, jnp.where(adjacency[node], 0.0, -jnp.inf))
        token = jnp.where(arrived, END, choice)
        return (jnp.where(arrived, node, choice), arrived | (choice == 0)), token

    _, walk = jax.lax.scan(step, (start, jnp.zeros(batch_size, bool)), jax.random.split(key_walk, MAX_LENGTH - 1))
    tokens = jnp.concatenate([start[:, None], walk.T], axis=1).astype(jnp.int32)
    goal_seen = jnp.cumsum(tokens == 0, axis=1) > 0  # [B, L]: a goal at or before t
    mask = jnp.concatenate([jnp.zeros((batch_size, 2), bool), ~goal_seen[:, :-2]], axis=1)
    return tokens, mask.at[:, 1].set(True)


@dataclasses.dataclass(frozen=True)
class GraphWalkText(TokenEnv):
    """Walks on the graph of ``graph_seed`` (see the module docstring).

    Args:
        graph_seed: the graph's seed, an int in [0, 2**32). The graph is data in the params, so
            the seed takes no part in equality: environments on different graphs share compiled
            functions (and vmap over stacked params).
    """

    graph_seed: int = dataclasses.field(default=0, compare=False)
    length = MAX_LENGTH  # a class constant, not a field

    def __post_init__(self) -> None:
        check_int("graph_seed", self.graph_seed, 0, 2**32 - 1)

    @property
    def vocabulary(self) -> Vocabulary:
        return _VOCABULARY

    @property
    def default_params(self) -> GraphWalkTextParams:
        adjacency, shortest = _graph(self.graph_seed)
        return GraphWalkTextParams(
            adjacency=jnp.asarray(adjacency),
            shortest=jnp.asarray(shortest),
            invalid_penalty=jnp.float32(-10.0),
            max_steps_in_episode=jnp.int32(MAX_LENGTH - 1),
        )

    def reset_env(self, key: jax.Array, params: GraphWalkTextParams) -> tuple[jax.Array, TokenState]:
        start = jax.random.randint(key, (), 1, NUM_NODES, dtype=jnp.int32)
        tokens = jnp.full((MAX_LENGTH,), END, jnp.int32).at[0].set(start)
        one, zero = jnp.int32(1), jnp.int32(0)
        state = TokenState(tokens=tokens, position=one, prompt_length=one, time=zero)
        return state.tokens, state

    def step_env(self, key: jax.Array, state: TokenState, action: jax.Array, params: GraphWalkTextParams):
        del key
        action = jnp.asarray(action, jnp.int32)
        current = state.tokens[state.position - 1]
        is_edge = (
            (action < NUM_NODES)
            & (current < NUM_NODES)  # the end token, after an invalid end (step_env past the end)
            & params.adjacency[jnp.clip(current, 0, NUM_NODES - 1), jnp.clip(action, 0, NUM_NODES - 1)]
        )
        at_goal = is_edge & (action == GOAL)
        tokens, position = write(state, action, MAX_LENGTH)
        terminated = ~is_edge | at_goal | (position >= MAX_LENGTH)
        reward = jnp.where(is_edge, jnp.where(at_goal, 0.0, -1.0), params.invalid_penalty).astype(jnp.float32)
        new = state.replace(tokens=tokens, position=position, time=state.time + 1)
        truncated = new.time >= params.max_steps_in_episode  # Gymnasium's TimeLimit: also on a terminating step
        return new.tokens, new, reward, terminated, truncated, {}

    def pretraining_batch(
        self, key: jax.Array, params: GraphWalkTextParams, batch_size: int, noise: float = 0.1
    ) -> tuple[jax.Array, jax.Array]:
        """Random valid walks on the params' graph (see the module docstring; ``noise`` is unused):
        ``(tokens int32 [B, 10], mask bool [B, 10])``."""
        del noise
        return _random_walks(key, params.adjacency, batch_size)

    def text_scores(self, params: GraphWalkTextParams, tokens: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
        """ILQL's optimality of the walks ``tokens`` ``[N, 10]``: ``optimality`` (averaged within each
        start node, then over the start nodes), ``optimality_per_start`` (start node -> mean) and
        ``success_rate`` (the fraction that reach node 0 along edges in time)."""
        del returns
        optimality = np.asarray(jax.vmap(walk_optimality, in_axes=(0, None))(tokens, params))
        starts = tokens[:, 0]
        per_start = {int(s): float(optimality[starts == s].mean()) for s in np.unique(starts)}
        return {
            "optimality": float(np.mean(list(per_start.values()))),
            "optimality_per_start": per_start,
            "success_rate": float(np.mean(optimality > 0)),
        }


def graph_walk_text_factory(
    env_id: str, max_steps_in_episode: int, graph_seed: int = 0
) -> tuple[GraphWalkText, GraphWalkTextParams]:
    """Registry factory: ``graph_seed``, an int in [0, 2**32) (the graph; see the module docstring)."""
    del env_id
    env = GraphWalkText(check_int("graph_seed", graph_seed, 0, 2**32 - 1))
    return env, env.default_params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))

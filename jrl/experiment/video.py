"""One greedy episode of a run as an animated GIF: ``jrl eval RUN_DIR --video PATH``.

The episode is the first one that ``jrl eval`` scores for the run's first seed: it is reset and
stepped with the keys that ``jrl.evaluate_episodes`` gives its episode 0 from the seed's evaluation
key (``spec.evaluation_key``), so its return and length are that episode's. The frames are the
environment's own pictures (``env.render``, for an environment whose ``render_modes`` include
``"rgb_array"``), drawn on the host, one per state from the reset to the last step, played at the
environment's ``render_fps``. The episode keeps its states (small), and the pictures are drawn
while the GIF is written, one at a time. Pillow writes the GIF; jrl's ``plot`` extra installs it.

Only ``.gif``: an MP4 needs a video encoder (ffmpeg), which no light Python package brings.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._extras import install_hint
from jrl._validation import check_int
from jrl.envs.core import NO_TIME_LIMIT, Environment
from jrl.evaluate import UNLIMITED_EPISODE_CAP

__all__ = ["Episode", "check_renders", "check_video_path", "record_episode", "record_run_video", "write_gif"]

#: The video formats ``write_gif`` writes.
VIDEO_SUFFIXES = (".gif",)
#: Formats that need an encoder jrl does not install (refused with a hint).
_ENCODED_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov")
#: The last frame stays on screen at least this long (milliseconds), so the end can be seen.
LAST_FRAME_MS = 1000
#: The most frames a run's GIF shows (the first ones): Pillow holds every frame until it writes
#: them, and no registered time limit is longer (an environment without one runs up to 10,000 steps).
MAX_FRAMES = 1000


@dataclasses.dataclass(frozen=True)
class Episode:
    """One recorded episode.

    Attributes:
        states: ``length + 1`` environment states on the host (NumPy leaves): the reset state,
            then the state after every step (the last one the state the episode ended in).
        total_return: undiscounted return.
        length: steps taken.
        terminated: ended in a terminal state.
        truncated: cut by the time limit (``UNLIMITED_EPISODE_CAP`` for an environment without one).
    """

    states: list[Any]
    total_return: float
    length: int
    terminated: bool
    truncated: bool

    def frames(self, env: Environment, env_params: Any) -> Iterator[np.ndarray]:
        """The pictures of its states, ``uint8 [H, W, 3]`` each, drawn one at a time (``env.render``)."""
        return (env.render(state, env_params) for state in self.states)


def check_video_path(path: str | Path) -> Path:
    """``path`` if a GIF can be written there: suffix ``.gif``, an existing directory, Pillow
    installed. Cheap, so ``jrl eval`` calls it before it loads any training state.

    Raises:
        ValueError: another suffix (``.mp4`` and other encoded formats with a hint), or ``path``
            is a directory.
        FileNotFoundError: its directory does not exist.
        ImportError: Pillow is not installed (the message names the extra that installs it).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _ENCODED_SUFFIXES:
        raise ValueError(
            f"--video {path}: jrl writes GIFs only ({suffix} needs a video encoder such as ffmpeg, which jrl does not "
            f"install); give a .gif path, and convert it if you need {suffix}: ffmpeg -i episode.gif episode{suffix}"
        )
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"--video {path}: the file must end in .gif (an animated GIF), got {suffix or 'no suffix'!r}")
    if path.is_dir():
        raise ValueError(f"--video {path}: is a directory; give a file path ending in .gif")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--video {path}: the directory {path.parent} does not exist")
    if importlib.util.find_spec("PIL") is None:
        raise ImportError(
            f"--video writes GIFs with Pillow, which jrl installs with its 'plot' extra: {install_hint('plot')}"
        )
    return path


def check_renders(env: Environment) -> None:
    """Refuse (``ValueError``) an environment that draws no images (``"rgb_array"`` not in
    ``env.render_modes``)."""
    if "rgb_array" not in env.render_modes:
        raise ValueError(
            f"--video: {env.env_id or type(env).__name__} does not render (its render_modes are {env.render_modes}), "
            "so there is no picture to record; the environments that render list 'rgb_array' in env.render_modes"
        )


def _time_limited(env_params: Any) -> Any:
    """``env_params`` with ``jrl.evaluate``'s cut for an environment without a time limit."""
    limit = env_params.max_steps_in_episode
    cut = jnp.where(limit >= NO_TIME_LIMIT, UNLIMITED_EPISODE_CAP, limit).astype(jnp.int32)
    return env_params.replace(max_steps_in_episode=cut)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _reset(env: Environment, key: jax.Array, n: int, env_params: Any) -> tuple[Any, Any, jax.Array]:
    """Episode 0 of ``n``'s reset, keyed as ``jrl.evaluate_episodes`` keys it; and the key of its steps."""
    key_reset, key_loop = jax.random.split(key)
    obs, state = env.reset(jax.random.split(key_reset, n)[0], env_params)
    return obs, state, key_loop


@functools.partial(jax.jit, static_argnums=(0, 1, 6))
def _step(env: Environment, policy: Callable, policy_params: Any, env_params: Any, obs: Any, carry: Any, n: int):
    """One step of episode 0 of ``n``, keyed as ``jrl.evaluate_episodes`` keys it at step ``t``."""
    state, key_loop, t = carry
    k_policy, k_env = jax.random.split(jax.random.fold_in(key_loop, t))
    action = policy(policy_params, obs, jax.random.split(k_policy, n)[0])
    obs, state, reward, terminated, truncated, _ = env.step_env(
        jax.random.split(k_env, n)[0], state, action, env_params
    )
    return obs, (state, key_loop, t + 1), reward, terminated, truncated


def record_episode(
    key: jax.Array,
    policy: Callable[[Any, jax.Array, jax.Array], jax.Array],
    policy_params: Any,
    env: Environment,
    env_params: Any,
    num_episodes: int = 1,
) -> Episode:
    """Episode 0 of ``jrl.evaluate_episodes(key, policy, policy_params, env, env_params,
    num_episodes)``, with every state it passes through. The keys depend on ``num_episodes``; the
    episode does not otherwise."""
    check_int("num_episodes", num_episodes, 1)
    env_params = _time_limited(env_params)
    obs, state, key_loop = _reset(env, key, num_episodes, env_params)
    states = [jax.device_get(state)]
    total, carry = 0.0, (state, key_loop, jnp.int32(0))
    terminated = truncated = False
    while not (terminated or truncated):
        obs, carry, reward, terminated, truncated = _step(
            env, policy, policy_params, env_params, obs, carry, num_episodes
        )
        state, reward, terminated, truncated = jax.device_get((carry[0], reward, terminated, truncated))
        total += float(reward)
        states.append(state)
    return Episode(states, total, len(states) - 1, bool(terminated), bool(truncated and not terminated))


class _Palette:
    """Pillow palette images of pictures (``uint8 [H, W, 3]``): exact for pictures of at most 256
    colours (jrl's have a handful) and quicker than Pillow's quantizer, which gets any other. The
    colours of the last picture are tried first: consecutive pictures share theirs."""

    def __init__(self) -> None:
        self.colours = np.zeros(0, np.int32)  # sorted 0xRRGGBB codes

    def image(self, frame: np.ndarray) -> Any:
        from PIL import Image

        frame = np.asarray(frame, np.uint8)
        codes = (frame[..., 0].astype(np.int32) << 16) | (frame[..., 1].astype(np.int32) << 8) | frame[..., 2]
        index = np.searchsorted(self.colours, codes)
        if not len(self.colours) or not np.array_equal(self.colours[np.minimum(index, len(self.colours) - 1)], codes):
            self.colours, index = np.unique(codes, return_inverse=True)
        if len(self.colours) > 256:
            return Image.fromarray(frame)
        image = Image.frombytes("P", (frame.shape[1], frame.shape[0]), index.astype(np.uint8).tobytes())
        rgb = np.stack([self.colours >> 16, (self.colours >> 8) & 255, self.colours & 255], -1)
        image.putpalette(rgb.astype(np.uint8).tobytes())
        return image


def write_gif(path: str | Path, frames: Iterable[np.ndarray], fps: int, num_frames: int) -> Path:
    """Write ``num_frames`` frames (``uint8 [H, W, 3]`` each, taken one at a time from ``frames``)
    as a looping GIF at ``fps`` frames per second (GIF times are hundredths of a second); the last
    frame stays ``LAST_FRAME_MS`` at least. A frame equal to the one before is merged into it,
    their times added (Pillow does it)."""
    check_int("num_frames", num_frames, 1)
    ms = 1000 / fps
    durations = [ms] * (num_frames - 1) + [max(ms, LAST_FRAME_MS)]
    palette = _Palette()
    images = (palette.image(frame) for frame, _ in zip(frames, durations, strict=True))
    next(images).save(Path(path), format="GIF", save_all=True, append_images=images, duration=durations, loop=0)
    return Path(path)


def record_run_video(run: Any, state: Any, path: str | Path, num_episodes: int) -> tuple[Episode, int]:
    """Record the greedy policy of the run's first seed (``state``: every seed's, as
    ``Run.load_checkpoint`` returns it) in episode 0 of the ``num_episodes`` that ``jrl eval``
    scores, and write its first ``MAX_FRAMES`` frames to ``path`` (``check_video_path``'s checks
    first). Returns the episode and the number of frames written."""
    from jrl.experiment.spec import evaluation_key

    path = check_video_path(path)
    check_renders(run.env)
    spec = run.spec
    result = run.algorithm.result(run.seed_state(state, 0), {})
    policy, policy_params = spec.algorithm.greedy_policy(run.config, run.env, run.env_params, result)
    episode = record_episode(
        evaluation_key(spec.seeds[0]), policy, policy_params, run.env, run.env_params, num_episodes
    )
    count = min(len(episode.states), MAX_FRAMES)
    write_gif(path, itertools.islice(episode.frames(run.env, run.env_params), count), run.env.render_fps, count)
    return episode, count

"""``jrl eval RUN_DIR --video PATH`` (``jrl.experiment.video``): the recorded episode is the first
one ``jrl eval`` scores, its GIF holds the environment's pictures; bad paths and environments that
do not render are refused before any training state is loaded. And ``jrl envs``'s listing of
other libraries' ids (``gymnax/<id>``)."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.envs import registry
from jrl.experiment import RunSettings, RunSpec, evaluation_key, load_run, train, video


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``jrl ARGV`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def lake_run(tmp_path_factory) -> Path:
    """A small Q-learning run on slippery FrozenLake, seed 7 (not 0: the video must use the run's seed)."""
    out = tmp_path_factory.mktemp("runs") / "lake"
    spec = RunSpec.resolve("q_learning", "FrozenLake-v1", [7], {"num_steps": 200, "num_envs": 16})
    train(spec, out, RunSettings(chunk_logs=50, eval_episodes=5), progress=False)
    return out


def random_policy(params, obs, key):
    return jax.random.randint(key, (), 0, 2)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CartPole-v1"])
def test_the_recorded_episode_is_episode_0_of_evaluate_episodes(env_id):
    """A random policy (its keys matter) on slippery FrozenLake (the environment's step keys matter)
    and on CartPole (its reset key matters): for three keys, the recorded episode has the length,
    return and ending of episode 0 of ``jrl.evaluate_episodes`` with the same key and number of
    episodes, and every state."""
    env, params = jrl.make(env_id)
    lengths = set()
    for seed in range(3):
        key = jax.random.key(seed)
        episode = video.record_episode(key, random_policy, None, env, params, num_episodes=3)
        stats = jax.device_get(jrl.evaluate_episodes(key, random_policy, None, env, params, 3))
        assert (episode.length, episode.total_return) == (int(stats.lengths[0]), float(stats.returns[0]))
        assert (episode.terminated, episode.truncated) == (bool(stats.terminated[0]), bool(stats.truncated[0]))
        assert len(episode.states) == episode.length + 1
        lengths.add(episode.length)
    assert len(lengths) > 1  # the episodes differ, so matching them all means something


def test_a_gif_holds_its_frames_exactly(tmp_path):
    """Frames whose colours change (a new colour, then fewer), a repeated frame (merged, its time
    added) and one of more than 256 colours (Pillow quantizes it): every frame of at most 256
    colours comes back exactly, at 1/fps seconds, the last held a second."""
    from PIL import Image, ImageSequence

    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    two, three, one = (palette[rng.integers(0, k, (6, 5))] for k in (2, 3, 1))
    two[0, :2], three[0, :3] = palette[:2], palette[:3]  # every colour present
    frames = [two, three, one, one, three[::-1].copy()]
    video.write_gif(tmp_path / "x.gif", iter(frames), 10, len(frames))
    with Image.open(tmp_path / "x.gif") as image:
        got = [(np.asarray(f.convert("RGB")), f.info["duration"]) for f in ImageSequence.Iterator(image)]
    assert [d for _, d in got] == [100, 100, 200, 1000]
    for (frame, _), expected in zip(got, [two, three, one, frames[-1]], strict=True):
        np.testing.assert_array_equal(frame, expected)
    noise = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)  # about 400 colours each
    video.write_gif(tmp_path / "noise.gif", noise, 10, 2)  # quantized by Pillow, not refused
    with Image.open(tmp_path / "noise.gif") as image:
        assert image.n_frames == 2 and image.size == (20, 20)


def test_eval_video_writes_the_first_evaluated_episode_as_a_gif(lake_run, tmp_path, monkeypatch):
    from PIL import Image, ImageSequence

    gif = tmp_path / "episode.gif"
    code, out, err = run_cli(["eval", str(lake_run), "--episodes", "4", "--video", str(gif)])
    assert code == 0, err
    line = re.search(r"video: \S+ \(seed 7, episode 1 of 4: return (\S+), (\d+) steps, (\d+) frames at 4 fps\)", out)
    assert line, out
    # The episode is that of the greedy policy of seed 7 on evaluation_key(7) (the key rule is the
    # previous test's): episode 0 of the four that jrl eval scored.
    run = load_run(lake_run)
    state, _ = run.load_checkpoint()
    result = run.algorithm.result(run.seed_state(state, 0), {})
    policy, params = run.spec.algorithm.greedy_policy(run.config, run.env, run.env_params, result)
    episode = video.record_episode(evaluation_key(7), policy, params, run.env, run.env_params, 4)
    assert (int(line[2]), float(line[1]), int(line[3])) == (episode.length, episode.total_return, episode.length + 1)
    # The GIF holds its pictures exactly, 250 ms each (4 fps), the last held 1 s. (GIF merges a
    # picture equal to the one before into it, adding up their times: a slip into a wall.)
    expected = []
    for i, picture in enumerate(episode.frames(run.env, run.env_params)):
        duration = 1000 if i == episode.length else 250
        if expected and np.array_equal(expected[-1][0], picture):
            expected[-1][1] += duration
        else:
            expected.append([picture, duration])
    with Image.open(gif) as image:
        frames = [(np.asarray(frame.convert("RGB")), frame.info["duration"]) for frame in ImageSequence.Iterator(image)]
    assert [d for _, d in frames] == [d for _, d in expected]
    for (frame, _), (picture, _) in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame, picture)
    # A long episode's GIF holds its first MAX_FRAMES frames (here 3 of at least 3: FrozenLake's
    # start is two steps from any end), the last of them held a second.
    monkeypatch.setattr(video, "MAX_FRAMES", 3)
    _, count = video.record_run_video(run, state, tmp_path / "short.gif", 4)
    with Image.open(tmp_path / "short.gif") as image:
        shown = sum(frame.info["duration"] for frame in ImageSequence.Iterator(image))
    assert count == 3 and shown == 250 + 250 + 1000


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("episode.mp4", "jrl writes GIFs only (.mp4 needs a video encoder such as ffmpeg"),
        ("episode.png", "the file must end in .gif (an animated GIF), got '.png'"),
        ("missing/episode.gif", "missing does not exist"),
    ],
)
def test_a_bad_video_path_is_refused_before_the_run_is_opened(tmp_path, path, fragment):
    # The run directory does not exist: the error names the path, so it was checked first.
    code, _, err = run_cli(["eval", str(tmp_path / "no_run"), "--video", str(tmp_path / path)])
    assert code == 2 and fragment in err and "not a jrl run directory" not in err, err


def test_without_pillow_the_video_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    code, _, err = run_cli(["eval", str(tmp_path), "--video", str(tmp_path / "x.gif")])
    assert code == 2 and "Pillow" in err and "pip install 'jrl-jax[plot]'" in err, err


def test_an_environment_that_does_not_render_is_refused_before_the_state_is_loaded(lake_run, tmp_path):
    """The run's environment is RandomMDP-v0 (a copy of the lake run with its id changed, whose
    checkpoint would not even load): refused by what it draws, not by its checkpoint."""
    copy = tmp_path / "mdp"
    shutil.copytree(lake_run, copy)
    config = copy / "config.toml"
    config.write_text(config.read_text().replace('env = "FrozenLake-v1"', 'env = "RandomMDP-v0"'))
    code, _, err = run_cli(["eval", str(copy), "--video", str(tmp_path / "x.gif")])
    assert code == 2 and "RandomMDP-v0 does not render (its render_modes are ())" in err, err
    assert not (tmp_path / "x.gif").exists()


def test_envs_lists_gymnax_ids_apart_without_building_them(monkeypatch):
    """Every id of gymnax's own registry as gymnax/<id>, in a section of its own (not built: the
    table's columns need a built environment); without gymnax, one line with the extra."""
    import gymnax

    before = registry.registered_envs()
    built = []
    # The table's own rows are tested elsewhere; a gymnax id registered by an earlier make stays out of it.
    monkeypatch.setattr(jrl, "registered_envs", lambda: ["CartPole-v1", "gymnax/Catch-bsuite"])
    make = registry.make
    monkeypatch.setattr(jrl, "make", lambda env_id, **kw: built.append(env_id) or make(env_id, **kw))
    code, out, err = run_cli(["envs"])
    assert code == 0, err
    table, section = out.split("\n\ngymnax/<id>: ")
    assert section.startswith(f"the {len(gymnax.registered_envs)} environments of gymnax (not built here")
    assert sorted(section.split()[section.split().index("one)") + 1 :]) == sorted(
        f"gymnax/{i}" for i in gymnax.registered_envs
    )
    assert "gymnax/" not in table and built == ["CartPole-v1"]
    assert registry.namespace_envs("gymnax") == sorted(f"gymnax/{i}" for i in gymnax.registered_envs)
    assert registry.registered_envs() == before  # listed, not registered: a later jrl.make registers on first use
    with pytest.raises(ValueError, match=r"namespace must be one of \['gymnax'\], got 'gym'"):
        registry.namespace_envs("gym")
    monkeypatch.setitem(sys.modules, "gymnax", None)  # as if gymnax were not installed
    code, out, err = run_cli(["envs"])
    assert code == 0, err
    assert out.splitlines()[-1].startswith("gymnax/<id>: not listed: listing the gymnax/ ids needs gymnax")
    assert "pip install 'jrl-jax[interop]'" in out.splitlines()[-1]

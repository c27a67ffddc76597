"""Learning curves (``jrl.experiment.curves``) and every figure ``jrl plot`` writes
(``jrl.experiment.plots``): after an early stop a run's curve holds the evaluation that stopped
it, so the mean is over every seed; no figure has text cut off at its edge, drawn over a colour
bar, or over other text."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from jrl.experiment import RunSettings, RunSpec, curves, plots, records, sweep_members, train

# DQN on CartPole stopping at a low return, which 60 of 64 seeds reach before their last evaluation
# (here and under XLA_FLAGS=--xla_cpu_max_isa=AVX: trained networks differ between processors), so
# that some of the 4 seeds stop whatever the processor (none does with probability about 1e-5).
STOPPING_DQN = {
    "num_envs": 4,
    "num_steps": 600,
    "buffer_size": 600,
    "learning_starts": 100,
    "batch_size": 32,
    "eval_episodes": 2,
    "log_interval": 50,
    "hidden_sizes": [32],
    "learning_rate": 1e-2,
    "stop_return": 40.0,
}


@pytest.fixture(scope="module")
def stopping_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dqn_stopping"
    train(RunSpec.resolve("dqn", "CartPole-v1", 4, STOPPING_DQN), out, RunSettings(eval_episodes=2), progress=False)
    return out


def text_problems(fig: Figure) -> list[str]:
    """What is wrong with the text of ``fig`` once drawn (an empty list if nothing): a text not
    wholly inside the figure (cut off in the PNG), a text over a colour bar (its bar, ticks and
    label) that is not the colour bar's own, two texts over each other.

    Only text actually drawn counts: the tick labels of ticks outside the view limits exist as
    ``Text`` artists but are not drawn, so ``Text.draw`` is wrapped to record what is."""
    drawn: list[Text] = []
    real_draw = Text.draw

    def recording_draw(self: Text, renderer) -> None:
        real_draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)

    canvas = FigureCanvasAgg(fig)  # the renderer savefig uses for PNG; runs the layout engine
    Text.draw = recording_draw
    try:
        canvas.draw()
    finally:
        Text.draw = real_draw
    renderer = canvas.get_renderer()
    page = fig.bbox

    def where(box) -> str:
        return f"x {box.x0:.0f}..{box.x1:.0f}, y {box.y0:.0f}..{box.y1:.0f} px"

    boxes = [(text, text.get_window_extent(renderer)) for text in drawn]
    problems = []
    for text, box in boxes:
        if box.x0 < page.x0 - 0.5 or box.y0 < page.y0 - 0.5 or box.x1 > page.x1 + 0.5 or box.y1 > page.y1 + 0.5:
            problems.append(f"{text.get_text()!r} at {where(box)} is cut off by the figure's edge: {where(page)}")
    for bar in (ax for ax in fig.axes if ax.get_label() == "<colorbar>"):
        bar_box, own = bar.get_tightbbox(renderer), set(bar.findobj(Text))  # own: its ticks' labels, its label
        for text, box in boxes:
            if text not in own and box.overlaps(bar_box):
                problems.append(f"{text.get_text()!r} at {where(box)} is over the colour bar at {where(bar_box)}")
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        if box_a.overlaps(box_b):
            problems.append(f"{a.get_text()!r} at {where(box_a)} and {b.get_text()!r} at {where(box_b)} overlap")
    return problems


def assert_text_fits(fig: Figure, what: str) -> None:
    problems = text_problems(fig)
    assert not problems, f"{what}:\n" + "\n".join(problems)


# -- the check itself -----------------------------------------------------------------------------


def test_the_text_check_finds_text_cut_off_or_over_a_colour_bar():
    def figure(ylabel: str, title: str) -> Figure:
        fig = Figure(figsize=(4.0, 3.0))
        ax = fig.subplots()
        image = ax.imshow(np.arange(12.0).reshape(3, 4))
        fig.colorbar(image, ax=ax, label="value")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
        return fig

    assert text_problems(figure("y", "short")) == []
    cut = text_problems(figure("a y label far too long to stand beside an axes three inches tall", "short"))
    assert len(cut) == 1 and "cut off by the figure's edge" in cut[0]
    over = text_problems(figure("y", "a title running to the right over the bar"))
    assert (
        over
        and over[0].startswith("'a title running to the right over the bar' at")
        and "is over the colour bar" in over[0]
    )
    fig = Figure(figsize=(3.0, 2.0))
    fig.text(0.1, 0.5, "one text")
    fig.text(0.15, 0.5, "and another")
    fig.text(0.8, 0.2, "past the right edge")
    fig.text(0.1, 0.97, "above the top")
    problems = text_problems(fig)
    assert len(problems) == 3 and all("cut off" in p for p in problems[:2])
    assert problems[0].startswith("'past the right edge' at") and problems[1].startswith("'above the top' at")
    assert problems[2].startswith("'one text' at") and problems[2].endswith("overlap")


# -- learning curves ------------------------------------------------------------------------------


def test_held_after_stopping_holds_the_last_value_before_the_stop():
    nan = math.nan
    curve = np.array(
        [
            [1.0, 2.0, 3.0, nan, nan],  # stops after its third interval: holds 3
            [1.0, nan, nan, nan, nan],  # no value in the interval before the stop: holds the last one, 1
            [nan, nan, nan, nan, nan],  # stopped with no value at all: stays NaN
            [4.0, nan, 6.0, 7.0, nan],  # never stops: raw, gaps included
        ]
    )
    stopped = np.zeros(curve.shape, bool)
    stopped[0, 3:] = stopped[1, 2:] = stopped[2, 1:] = True
    held = curves.held_after_stopping(curve, stopped)
    expected = np.array(
        [[1, 2, 3, 3, 3], [1, nan, 1, 1, 1], [nan] * 5, [4, nan, 6, 7, nan]],
    )
    assert np.array_equal(held, expected, equal_nan=True)
    assert np.isnan(curve[0, 3])  # the input is left raw
    with pytest.raises(ValueError, match=r"\[members, intervals\]"):
        curves.held_after_stopping(curve, stopped[:, :3])


def test_the_progress_value_counts_every_seed_once_all_have_stopped():
    """``latest``, the progress line's number: after every seed stopped, the mean of their
    stopping evaluations (the raw last records have none); a metric of work done stays raw."""
    rows = []
    for seed, stop_after in ((0, 1), (1, 2)):
        for log in range(4):
            stopped = log > stop_after
            rows.append(
                {
                    "seed": seed,
                    "log": log,
                    "env_steps": 10 * (log + 1),
                    "eval_return": None if stopped else 100.0 * seed + log,
                    "loss": None if stopped else 0.5 + seed,
                    "stopped": stopped,
                }
            )
    assert curves.latest(rows, "eval_return") == pytest.approx(np.mean([1.0, 102.0]))
    steps, loss = curves.from_records(rows, "loss")
    assert steps.tolist() == [10, 20, 30, 40] and np.isnan(loss[:, 3]).all()
    assert curves.latest(rows, "loss") == 1.5  # interval 2, where only seed 1 still trained
    assert math.isnan(curves.latest([], "eval_return"))


def test_the_incremental_latest_equals_latest_of_every_record_so_far(stopping_run):
    """``curves.Latest`` (what the progress line keeps, chunk by chunk) is ``curves.latest`` of the
    records so far, after every interval of the real DQN run whose seeds stop early, and of
    records with gaps (a seed without an episode end in an interval, a non-finite value)."""
    rows = records.read_metrics(stopping_run / records.METRICS)
    made = [
        {"seed": s, "log": log, "env_steps": 1.0 + log, "episode_return": v, "stopped": log >= 3 and s == 1}
        for log, values in enumerate([[None, 2.0], [3.0, None], [None, 5.0], [7.0, None], [None, None]])
        for s, v in enumerate(values)
    ]
    made[4]["episode_return"] = math.inf  # seed 0, interval 2: not finite, as no value
    for stream in (rows, made):
        logs = sorted({r["log"] for r in stream})
        for metric in ("eval_return", "episode_return", "loss"):
            if metric not in stream[0]:
                continue
            tracker = curves.Latest(metric)
            for log in logs:
                tracker.add([r for r in stream if r["log"] == log])
                expected = curves.latest([r for r in stream if r["log"] <= log], metric)
                assert tracker.value == pytest.approx(expected, nan_ok=True), (metric, log)
    assert curves.Latest("eval_return", rows).stopped == {r["seed"] for r in rows if r["stopped"]}


def test_a_run_curve_after_an_early_stop_holds_the_stopping_evaluation(stopping_run):
    """The curve ``jrl plot`` draws for a DQN run some of whose seeds stopped at ``stop_return``:
    each seed's ``eval_return`` after its stop is the evaluation that stopped it (compared with
    ``metrics.jsonl`` read here, which stays raw), the line is the mean over all four seeds in
    every interval and the band spans the lowest to the highest seed."""
    rows = records.read_metrics(stopping_run / records.METRICS)
    seeds = sorted({r["seed"] for r in rows})
    by_seed = [sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["log"]) for seed in seeds]
    expected = []
    for mine in by_seed:
        held, value = [], None
        for r in mine:
            if not r["stopped"]:
                value = r["eval_return"]
            else:
                assert r["eval_return"] is None  # the record stays raw: nothing ran
            held.append(value)
        expected.append(held)
        if any(r["stopped"] for r in mine):
            assert value >= STOPPING_DQN["stop_return"]  # held: the evaluation that stopped it
    expected = np.array(expected, np.float64)
    assert np.isfinite(expected).all()  # every seed has a value in every interval: the mean is over all
    stopped = {r["seed"] for r in rows if r["stopped"]}
    assert stopped  # seeds stopped early (which, and how many, depends on the processor)

    steps, values = curves.curves(stopping_run, "eval_return")
    assert np.array_equal(values, expected)
    assert np.array_equal(steps, [(log + 1) * 50 * 4 for log in range(12)])
    assert plots.curves is curves.curves  # still importable where it was
    # A sweep holds the same rule: one definition (test_sweep checks a sweep's curve against a run).
    raw = np.array([[math.nan if r["eval_return"] is None else r["eval_return"] for r in mine] for mine in by_seed])
    flags = np.array([[r["stopped"] for r in mine] for mine in by_seed])
    assert sweep_members.held_after_stopping is curves.held_after_stopping
    assert np.array_equal(sweep_members.held_after_stopping(raw, flags), expected)

    fig = plots.learning_curve_figure([stopping_run])
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    assert np.array_equal(line.get_xdata(), steps)
    assert np.allclose(line.get_ydata(), expected.mean(axis=0), rtol=1e-12, atol=0)
    band = ax.collections[0].get_paths()[0].vertices
    lowest, highest = expected.min(axis=0), expected.max(axis=0)
    edges = {(x, y) for x, low, high in zip(steps, lowest, highest, strict=True) for y in (low, high)}
    assert set(map(tuple, band)) == edges  # fill_between's outline: the lowest seed, then the highest
    assert "holds the evaluation that stopped it" in ax.get_title()
    assert f"{len(stopped)} stopped early" in ax.get_legend().get_texts()[0].get_text()
    assert_text_fits(fig, "learning_curves.png of a DQN run that stopped early")
    written = plots.plot_runs([stopping_run])
    assert written == [stopping_run / "learning_curves.png"] and written[0].read_bytes()[:4] == b"\x89PNG"


# -- every figure: nothing cut off ----------------------------------------------------------------


def test_learning_curves_of_several_runs_fit(stopping_run, tmp_path):
    other = tmp_path / "dqn_stopping_at_sixty_on_cart_pole_second_copy"
    shutil.copytree(stopping_run, other, ignore=shutil.ignore_patterns("checkpoints"))
    assert_text_fits(plots.learning_curve_figure([stopping_run, other]), "two runs")
    fig = plots.learning_curve_figure([stopping_run], metric="episode_return")
    assert "its last value from before the stop" in fig.axes[0].get_title()
    assert_text_fits(fig, "episode_return")
    assert_text_fits(plots.learning_curve_figure([stopping_run], metric="loss"), "loss")


@pytest.mark.parametrize(
    "env_id, env_kwargs, states, actions",
    [
        ("FrozenLake-v1", {}, 16, 4),
        ("FrozenLake8x8-v1", {}, 64, 4),
        ("FrozenLake-v1", {"desc": ["SF", "HG"]}, 4, 4),
        ("CliffWalking-v1", {}, 48, 4),
        ("CliffWalkingSlippery-v1", {}, 48, 4),
    ],
)
def test_policy_figures_fit(env_id, env_kwargs, states, actions):
    q = np.random.default_rng(0).normal(size=(states, actions))
    q[0] = 0.0  # a state never updated: every action ties
    title = f"expected_sarsa on {env_id}, seed 123456"  # the longest title a run gives
    fig = plots.policy_figure(env_id, q, env_kwargs=env_kwargs, title=title)
    assert_text_fits(fig, f"policy.png of {env_id} {env_kwargs}")
    assert title in fig.get_suptitle().replace("\n", " ")


@pytest.mark.parametrize(
    "env_id, env_kwargs",
    [
        ("FrozenLake-v1", {"is_slippery": False}),
        ("FrozenLake-v1", {"desc": ["SFH", "FFG"], "is_slippery": False}),
        ("CliffWalking-v1", {}),
    ],
)
def test_grid_layouts_are_the_maps_the_models_move_on(env_id, env_kwargs):
    """The map policy_figure draws is the environment's own: each action's arrow points where the
    (non-slippery) model moves, or the move hits the edge; cells without actions are the ones
    the model ends episodes in (holes, goal) or never enters (the cliff)."""
    import jrl

    env, params = jrl.make(env_id, **env_kwargs)
    layout = env.grid_layout(params)
    nrow, ncol = len(layout.rows), len(layout.rows[0])
    mdp = env.mdp(params)
    next_states, terminals = np.asarray(mdp.next_states[..., 0]), np.asarray(mdp.terminals[..., 0])
    assert (nrow * ncol, len(layout.arrows)) == next_states.shape
    entered = set()
    for s in range(nrow * ncol):
        r, c = divmod(s, ncol)
        if layout.rows[r][c] in layout.stops:
            continue
        for a, (dx, dy) in enumerate(layout.arrows):
            moved = (min(max(r + dy, 0), nrow - 1), min(max(c + dx, 0), ncol - 1))
            letter = layout.rows[moved[0]][moved[1]]
            if letter != "C":  # the cliff sends the agent back to the start
                assert divmod(int(next_states[s, a]), ncol) == moved, (s, a)
                assert bool(terminals[s, a]) == (letter in "HG"), (s, a)
            entered.add(int(next_states[s, a]))
    assert {s for s in range(nrow * ncol) if layout.rows[s // ncol][s % ncol] == "C"}.isdisjoint(entered)
    for other in ("Taxi-v4", "CartPole-v1", "WordGen-v0", "RandomMDP-v0"):
        assert jrl.make(other)[0].grid_layout(jrl.make(other)[1]) is None


def test_policy_figure_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match=r"q_table of FrozenLake-v1 must be \[16, 4\]; got shape \(16, 3\)"):
        plots.policy_figure("FrozenLake-v1", np.zeros((16, 3)))
    with pytest.raises(ValueError, match=r"draws the maps of gridworlds .*; got env 'Taxi-v4'"):
        plots.policy_figure("Taxi-v4", np.zeros((500, 6)))
    with pytest.raises(ValueError, match="unknown environment id 'Taxi-v3'"):
        plots.policy_figure("Taxi-v3", np.zeros((500, 6)))


def fake_sweep(directory: Path, grid: dict, sample: dict, num_samples: int, seeds: int, dead: dict) -> Path:
    """A sweep directory whose ``results.json`` has what ``plot_sweep`` reads (the layout of
    ``sweeps``' own: test_sweep_cli plots a real one) with made-up returns: the first
    configuration failed with one seed diverged, every one whose axis ``name`` is ``value`` for
    ``dead = {name: value}`` failed with every seed diverged. Only the figures' text is checked
    here, and it depends on the axes, not on the numbers."""
    rng = np.random.default_rng(1)
    draws = {name: np.exp(rng.uniform(np.log(1e-4), np.log(1e-2), num_samples)) for name in sample}
    rows, members = [], []
    for index, (values, s) in enumerate(itertools.product(itertools.product(*grid.values()), range(num_samples))):
        row = dict(zip(grid, values, strict=True)) | {name: float(draws[name][s]) for name in sample}
        finals = rng.uniform(0.0, 500.0, seeds).tolist()
        all_diverged = any(row[name] == value for name, value in dead.items())
        if all_diverged:
            finals = [None] * seeds
        mean = None if all_diverged else float(np.mean(finals))
        rows.append(row | {"index": index, "failed": all_diverged or index == 0, "final_return_mean": mean})
        members.append({"index": index, "final_returns": finals})
    spec = {"algo": "dqn", "env": "CartPole-v1", "grid": grid, "sample": sample, "seeds": list(range(seeds))}
    directory.mkdir()
    (directory / "sweep.toml").write_text("")
    (directory / "results.json").write_text(json.dumps({"spec": spec, "rows": rows, "members": members}))
    return directory


def test_sweep_figures_fit(tmp_path):
    """Heatmaps of two grid axes (categorical: network sizes, booleans; numeric), dots where an
    axis is sampled (log scale), the return against each axis: categorical error bars, numeric
    lines; failed configurations marked (cells with a count, grey cells, red crosses)."""
    grid = {"hidden_sizes": [[64, 64], [256, 256], [32]], "double_dqn": [True, False], "gamma": [0.9, 0.99, 0.999]}
    sample = {"learning_rate": "log:1e-4:1e-2"}
    directory = fake_sweep(tmp_path / "sweep", grid, sample, num_samples=3, seeds=3, dead={"gamma": 0.999})
    names = []
    for name, fig in plots.sweep_figures(directory):
        assert_text_fits(fig, name)
        names.append(name)
    pairs = itertools.combinations(["hidden_sizes", "double_dqn", "gamma", "learning_rate"], 2)
    assert names == [f"heatmap_{a}_{b}.png" for a, b in pairs] + [
        f"return_vs_{a}.png" for a in ["hidden_sizes", "double_dqn", "gamma", "learning_rate"]
    ]


def test_without_matplotlib_every_figure_names_the_extra(stopping_run, tmp_path, monkeypatch):
    sweep = fake_sweep(tmp_path / "sweep", {"gamma": [0.9, 0.99]}, {}, num_samples=1, seeds=2, dead={})
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    hint = r"plots need matplotlib, jrl's 'plot' extra: pip install 'jrl-jax\[plot\]'"
    for build in (
        lambda: plots.learning_curve_figure([stopping_run]),
        lambda: plots.policy_figure("FrozenLake-v1", np.zeros((16, 4))),
        lambda: plots.sweep_figures(sweep),
        lambda: plots.plot_runs([stopping_run]),
    ):
        with pytest.raises(ImportError, match=hint):
            build()

"""The docs cannot drift from the code: every Python block of README.md and docs/ runs and prints
what its comments say it prints, the run-file example does what its page says, every list of
environments or tuned defaults the docs give equals what the registry and the defaults hold, the
Markdown renders as written (CommonMark: fences pair up, every heading is a heading, local links
resolve), and every install command names this project's distribution."""

from __future__ import annotations

import builtins
import collections
import contextlib
import decimal
import fnmatch
import functools
import io
import json
import os
import re
import shlex
import sys
import tokenize
import tomllib
import types
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

import jrl
from jrl import algorithms, cli
from jrl.algorithms import dqn, q_learning
from jrl.envs import TabularEnv, registry

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Every Markdown file a user reads: the manual, the experiments' reports, the package's data notes.
MARKDOWN_FILES = [
    *DOC_FILES,
    *sorted((ROOT / "experiments").glob("**/README.md")),
    *sorted((ROOT / "jrl").glob("**/*.md")),
]
ID = r"`([A-Za-z0-9*/_.:-]+-v\d+)`"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def read(name: str) -> str:
    return (ROOT / name).read_text()


def tabular_ids() -> set[str]:
    return {env_id for env_id in jrl.registered_envs() if isinstance(jrl.make(env_id)[0], TabularEnv)}


class PrintRecorder:
    """The ``print`` of a doc's blocks: prints as usual, and records what every line of a block
    printed, keyed by ``(block's compile name, 1-based line)`` (a line in a loop prints several)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # every block's compile name starts with it
        self.printed: dict[tuple[str, int], list[str]] = collections.defaultdict(list)

    def __call__(self, *args: object, sep: str | None = " ", end: str | None = "\n", file=None, flush=False) -> None:
        text = io.StringIO()
        builtins.print(*args, sep=sep, end=end, file=text)
        builtins.print(text.getvalue(), end="", file=file, flush=flush)
        frame = sys._getframe(1)
        while frame is not None and not frame.f_code.co_filename.startswith(self.prefix):
            frame = frame.f_back
        if frame is not None and file in (None, sys.stdout):
            self.printed[(frame.f_code.co_filename, frame.f_lineno)].append(text.getvalue())


# A comment that starts like printed output is a claim about it: a number, a bracket, a quote, a
# bool, a repr such as `Discrete(4)`, "about" and a number, or the first word the line printed.
CLAIM_START = re.compile(r"(-?\d|[\[('\"]|True\b|False\b|None\b|about -?\d|[A-Z]\w*\()")
OUTPUT_TOKEN = re.compile(r"\.\.\.|-?\d+(?:\.\d*)?(?:e[-+]?\d+)?|\w+|\S")


def claimed_output(block: str, line: int) -> str | None:
    """What the comments of a block say its line ``line`` (1-based) prints: the line's own comment,
    else the full-line comments right below it (``print(x)`` then ``# [1, 2, 3]``)."""
    lines = block.splitlines()
    comments = {
        token.start[0]: token.string[1:].strip()
        for token in tokenize.generate_tokens(io.StringIO(block).readline)
        if token.type == tokenize.COMMENT
    }
    if line in comments and not lines[line - 1].lstrip().startswith("#"):
        return comments[line]
    below = []
    while line + len(below) + 1 in comments and lines[line + len(below)].lstrip().startswith("#"):
        below.append(comments[line + len(below) + 1])
    return " ".join(below) or None


def output_matches(printed: str, claim: str) -> bool:
    """Whether ``claim`` starts with what was printed, token by token, whitespace aside, then goes
    on as prose. A number may be shown rounded (``0.542`` for 0.54202574), ``about X`` holds within
    one unit of ``X``'s last digit, and ``...`` stands for any run of tokens (the claim's next
    token must then be output again, not prose)."""
    out, said = OUTPUT_TOKEN.findall(printed), OUTPUT_TOKEN.findall(claim)

    def places(token: str) -> int:  # the exponent of the token's last digit: 0.542 -> -3
        return int(decimal.Decimal(token).as_tuple().exponent)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(out):
            return True
        if j == len(said):
            return False
        if said[j] == "...":  # the tokens after it pick up the output again (or it ends the claim)
            return j + 1 == len(said) or any(match(k, j + 1) for k in range(i, len(out)))
        if said[j] == "about" and j + 1 < len(said) and is_number(said[j + 1]) and is_number(out[i]):
            return abs(float(out[i]) - float(said[j + 1])) <= 10.0 ** places(said[j + 1]) and match(i + 1, j + 2)
        if out[i] == said[j]:
            return match(i + 1, j + 1)
        rounded = is_number(out[i]) and is_number(said[j]) and re.search(r"\.\d|e", said[j])
        shown = rounded and places(out[i]) < places(said[j])  # the output has more digits than the claim
        return (
            bool(shown) and abs(float(out[i]) - float(said[j])) <= 0.5 * 10.0 ** places(said[j]) and match(i + 1, j + 1)
        )

    return match(0, 0)


def is_number(token: str) -> bool:
    return re.fullmatch(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", token) is not None


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=lambda p: p.name)
def test_every_python_block_runs_and_prints_what_it_says(path, monkeypatch, tmp_path):
    """The blocks of one file run in order in one module (later blocks may use earlier names; a
    real module, so dataclasses defined in a block work), from a scratch directory, with the
    environment registry restored afterwards. A comment on (or right below) a line that prints,
    which starts like output (``# (16, 4) float32``, ``# 0.542: Q*'s value``, ``# about 0.74``), is
    what that line printed (``output_matches``); a comment in words (``# one value per seed``) is not
    checked."""
    monkeypatch.chdir(tmp_path)
    # A block may set environment variables (dqn.md sets XLA_FLAGS, as a user's script does before
    # JAX starts): they are put back, so that no later test's subprocess inherits them.
    environment = dict(os.environ)
    module = types.ModuleType(f"docs_{path.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    recorder = module.print = PrintRecorder(f"{path.name}, python block ")
    blocks = python_blocks(path)
    try:
        with registry.temporary_registry():
            for index, block in enumerate(blocks):
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(block, f"{recorder.prefix}{index}", "exec"), module.__dict__)
    finally:
        if dict(os.environ) != environment:
            os.environ.clear()
            os.environ.update(environment)
    wrong = []
    for (name, line), texts in recorder.printed.items():
        printed = "".join(texts)
        claim = claimed_output(blocks[int(name.removeprefix(recorder.prefix))], line)
        first = OUTPUT_TOKEN.match(printed.strip())
        if claim and (CLAIM_START.match(claim) or (first and claim.startswith(first.group(0)))):
            if not output_matches(printed, claim):
                wrong.append(f"{name}, line {line} printed {printed.strip()!r}; its comment says {claim!r}")
    assert not wrong, "\n".join(wrong)


def test_run_file_example_does_what_its_page_says(tmp_path):
    """docs/experiments.md's run file, trained by ``jrl train --config``: every seed's greedy policy
    reaches the goal in every evaluation episode, in the number of steps (and with the return) the
    page gives."""
    text = read("docs/experiments.md")
    run_file = re.search(r"A run file holds the same in TOML.*?^```toml\n(.*?)^```", text, re.S | re.M).group(1)
    said = re.search(r"greedy policy reaches the goal in (\d+) steps, return (-?\d+), in each of\s+the (\d+)", text)
    steps, claimed_return, episodes = (int(x) for x in said.groups())
    (tmp_path / "cliff.toml").write_text(run_file)
    assert cli.main(["train", "--config", str(tmp_path / "cliff.toml"), "--out", str(tmp_path / "cliff")]) == 0
    summary = json.loads((tmp_path / "cliff" / "summary.json").read_text())
    assert len(summary["per_seed"]) == tomllib.loads(run_file)["seeds"]
    for seed, record in summary["per_seed"].items():
        evaluation = record["evaluation"]
        assert evaluation["episodes"] == episodes, seed
        assert (evaluation["terminated"], evaluation["mean_length"]) == (1.0, steps), (seed, evaluation)
        assert (evaluation["mean_return"], evaluation["std_return"]) == (claimed_return, 0.0), (seed, evaluation)


def test_algorithm_lists_name_every_algorithm():
    """Where a page lists the algorithms the command line takes, it lists all of them."""
    experiments = re.search(r"`--algo` is (.*?)\(`jrl.algorithms.names\(\)`", read("docs/experiments.md"), re.S)
    api = re.search(r"`jrl.algorithms.names\(\)` lists them: (.*?)\.\n", read("docs/api.md"), re.S)
    for listed in (experiments.group(1), api.group(1)):
        assert re.findall(r"`(\w+)`", listed) == algorithms.names()


def test_readme_lists_every_registered_environment():
    row = next(line for line in read("README.md").splitlines() if line.startswith("| `jrl.make`"))
    documented = re.findall(ID, row)
    covered = {env_id for pattern in documented for env_id in jrl.registered_envs() if fnmatch.fnmatch(env_id, pattern)}
    assert covered == set(jrl.registered_envs())
    assert all(any(fnmatch.fnmatch(e, p) for e in jrl.registered_envs()) for p in documented), documented


def test_environments_page_prints_the_registry():
    text = read("docs/environments.md")
    printed = re.search(r"print\(jrl.registered_envs\(\)\)\n((?:# .*\n)+)", text).group(1)
    assert re.findall(r"'([^']+)'", printed) == jrl.registered_envs()


def test_tabular_lists_are_the_tabular_environments():
    table = read("docs/tabular.md").split("## The environments")[1].split("\n\n")[1]
    assert set(re.findall(r"^\| " + ID, table, flags=re.M)) == tabular_ids()
    needs = read("docs/q_learning.md").split("It needs a tabular environment")[1].split(")")[0]
    assert set(re.findall(ID, needs)) == tabular_ids()
    assert set(q_learning.tuned_env_ids()) == tabular_ids()


def test_q_learning_defaults_table_is_default_config():
    text = read("docs/q_learning.md").split("## Tuned defaults")[1]
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) x (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text, flags=re.M)
    assert {row[0] for row in rows} == set(q_learning.tuned_env_ids())
    for env_id, num_envs, num_steps, gamma, alpha, epsilon_end in rows:
        config = q_learning.default_config(env_id)
        assert (config.num_envs, config.num_steps) == (int(num_envs), int(num_steps)), env_id
        assert (config.gamma, config.alpha, config.epsilon_end) == (float(gamma), float(alpha), float(epsilon_end))


def test_dqn_pages_name_every_tuned_default():
    text = read("docs/dqn.md")
    intro = text.split("has tuned\nsettings for")[1].split("environments")[0]
    named = set(re.findall(ID, intro))
    probes = {env_id for env_id in dqn.tuned_env_ids() if env_id.startswith("Probe-")}
    assert "the probe" in intro and named | probes == set(dqn.tuned_env_ids())
    table = text.split("| environment | default = candidate |")[1].split("\n\n")[0]
    assert set(re.findall(r"^\| " + ID, table, flags=re.M)) == named


def test_classic_control_time_limits_in_the_docs_are_the_registry_s():
    text = read("docs/environments.md")
    sentence = re.search(
        r"`CartPole-v1`, `Acrobot-v1` \(RK4 integrator\) and `MountainCar-v0`.*?\((\d+), (\d+), (\d+)\)", text, re.S
    )
    limits = [
        int(jrl.make(env_id)[1].max_steps_in_episode) for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
    ]
    assert [int(x) for x in sentence.groups()] == limits


# --- The Markdown, as a CommonMark renderer (GitHub's, PyPI's) reads it -------------------------

# A fence line: up to 3 spaces, then 3 or more backticks or tildes, then the info string (language).
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_MARKDOWN = MarkdownIt("commonmark").enable("table")


def written_headings(lines: list[str]) -> list[tuple[int, str]]:
    """The ATX headings (``## ...`` lines) as the author paired the fences: a fence with a language
    opens a code block and a bare fence closes it (a bare fence outside a block is a stray, which
    a renderer would take for an opening one). ``(0-based line, heading text)`` pairs."""
    headings, fence = [], None
    for number, line in enumerate(lines):
        match = FENCE.match(line)
        if fence is None and match and match.group(2).strip():
            fence = match.group(1)
        elif fence is not None and match and match.group(1).startswith(fence) and not match.group(2).strip():
            fence = None
        elif fence is None and (heading := HEADING.match(line)):
            headings.append((number, re.sub(r"[ \t]+#+$", "", heading.group(2) or "")))
    return headings


def rendered_headings(tokens: list) -> list[tuple[int, str]]:
    """The headings CommonMark makes of the file: ``(0-based line, heading text)``."""
    return [(tokens[i].map[0], tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"]


def heading_slug(inline) -> str:
    """GitHub's anchor for a heading: its rendered text, lower case, without punctuation other than
    ``-`` and ``_``, spaces as ``-``."""
    text = "".join(child.content for child in inline.children if child.type in ("text", "code_inline"))
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@functools.cache
def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (a repeated heading's anchor gets ``-1``, ``-2``...)."""
    tokens, seen = _MARKDOWN.parse(path.read_text()), {}
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            slug = heading_slug(tokens[i + 1])
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_fences_pair_up_as_written(path):
    """Every code block opens with a language and closes with a bare fence before the file ends,
    and holds no fence line: otherwise fences pair up differently than the author paired them (a
    stray fence turns the following prose and headings into code)."""
    lines = path.read_text().splitlines()
    for token in _MARKDOWN.parse(path.read_text()):
        if token.type != "fence":
            continue
        start, end = token.map
        where = f"{path.name}:{start + 1}"
        assert token.info.strip(), f"{where}: a fence without a language opens a code block (a stray fence?)"
        closing = FENCE.match(lines[end - 1]) if end - 1 > start else None
        assert closing and closing.group(1).startswith(token.markup) and not closing.group(2).strip(), (
            f"{where}: the code block never closes; it runs to the end of the file"
        )
        inner = [line for line in token.content.splitlines() if FENCE.match(line)]
        assert not inner, f"{where}: the code block holds fence lines {inner}: the fences pair up wrongly"


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_written_heading_renders_as_a_heading(path):
    lines = path.read_text().splitlines()
    assert rendered_headings(_MARKDOWN.parse(path.read_text())) == written_headings(lines)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(path):
    """Every relative link or image names a file that exists, and its ``#anchor`` a heading there."""
    tokens = _MARKDOWN.parse(path.read_text())
    targets = [
        child.attrs.get("href") or child.attrs.get("src")
        for token in tokens
        if token.type == "inline"
        for child in token.children
        if child.type in ("link_open", "image")
    ]
    broken = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not this repository's
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.name}: {broken}"


# --- Install commands ----------------------------------------------------------------------------


def project_name() -> str:
    return tomllib.loads(read("pyproject.toml"))["project"]["name"]


def requirement_name(requirement: str) -> str:
    """The distribution a pip requirement names, normalized as PyPI does (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else ""


def code_texts(path: Path) -> list[str]:
    """The code of a Markdown file as a renderer shows it: every inline code span (a line break
    in one is a space) and every line of every code block."""
    texts = []
    for token in _MARKDOWN.parse(path.read_text()):
        if token.type in ("fence", "code_block"):
            texts.extend(token.content.splitlines())
        elif token.type == "inline":
            texts.extend(child.content for child in token.children if child.type == "code_inline")
    return texts


def pip_install_requirements(texts: list[str]) -> list[str]:
    """The requirements of every ``pip install`` command in ``texts`` (code spans and code lines):
    its arguments up to the end of the text or a shell operator, options skipped."""
    found = []
    for command in (m.group(1) for text in texts for m in re.finditer(r"pip install (.*)", text)):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:  # an unbalanced quote in prose: take the words as they are
            words = command.split()
        for word in words:
            if word in ("&&", "||", "|", ";"):
                break
            if not word.startswith("-"):
                found.append(word)
    return found


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_install_commands_name_this_distribution(path):
    """PyPI's ``jrl`` is someone else's (a robotics library): a command that installs jrl names
    pyproject.toml's distribution (``pip install 'jrl-jax[gymnasium]'``) or a checkout (``-e .``)."""
    wrong = [word for word in pip_install_requirements(code_texts(path)) if names_another_jrl(word)]
    assert not wrong, f"{path.name}: pip install {wrong}: PyPI's jrl is another project; install {project_name()}"


def names_another_jrl(requirement: str) -> bool:
    """Whether a requirement names ``jrl`` (PyPI's is a robotics library) or a ``jrl-...``
    distribution other than pyproject.toml's."""
    name = requirement_name(requirement)
    return name == "jrl" or (name.startswith("jrl-") and name != requirement_name(project_name()))


def test_extras_that_include_jrl_name_this_distribution():
    """An extra that pulls in other extras (``dev``) names the project itself: under another name
    pip would fetch that name from PyPI."""
    assert project_name() != "jrl"
    extras = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]
    wrong = [req for extra in extras.values() for req in extra if names_another_jrl(req)]
    assert not wrong

"""
The documentation's code runs, and the documentation builds without warnings.

- Every ```python block of ``docs/**/*.md`` and ``README.md`` runs as a script of its own: a fresh namespace with
  ``__name__ == "__main__"``, in an empty temporary directory.
- A block whose first line starts with ``# docs: skip`` is not run (long trainings, windows); the rest of that line
  says why.
- While a block runs, every ``learn()`` of an SB3 algorithm trains for at most ``SB3_PPG_DOCS_MAX_TIMESTEPS`` steps
  (default 2048), so examples can show real budgets. ``learn()`` always completes its rollout, so examples keep
  ``n_steps * n_envs`` small.
- The Sphinx build runs with ``-W`` when Sphinx is installed (the ``docs`` extra).

``docs/misc/writing_docs.md`` gives the same rules to the people who write the examples.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
SKIP_MARKER = "# docs: skip"
MAX_TIMESTEPS = int(os.environ.get("SB3_PPG_DOCS_MAX_TIMESTEPS", "2048"))
PYTHON_LANGUAGES = {"python", "py", "python3"}
# A fence opens with 3+ backticks or tildes, optionally indented (in a list item), then an info string
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class CodeBlock(NamedTuple):
    path: Path
    line: int  # line number of the block's first code line in its file
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT).as_posix()}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        first_line = self.code.lstrip("\n").split("\n", 1)[0].strip()
        if not first_line.startswith(SKIP_MARKER):
            return None
        return first_line[len(SKIP_MARKER) :].strip(" :()-") or ""


def extract_python_blocks(text: str) -> list[tuple[int, str]]:
    """
    The fenced code blocks of a Markdown text whose language is Python.

    :param text: Markdown
    :return: (line number of the first code line, code) of each block, code dedented by the fence's indent
    """
    blocks: list[tuple[int, str]] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        # A backtick fence's info string cannot contain backticks: then it is inline code, not a fence
        if fence[0] == "`" and "`" in opening["info"]:
            continue
        info = opening["info"].strip()
        language = info.split()[0] if info else ""
        first_line, body = index + 1, []
        while index < len(lines):
            closing = FENCE.match(lines[index])
            index += 1
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[index - 1]
            # Remove up to the fence's indentation, as CommonMark does
            strip = len(line) - len(line.lstrip(" \t"))
            body.append(line[min(indent, strip) :])
        if language in PYTHON_LANGUAGES:
            blocks.append((first_line, "\n".join(body) + "\n"))
    return blocks


def documentation_files() -> list[Path]:
    files = sorted(path for path in DOCS_DIR.rglob("*.md") if "_build" not in path.relative_to(DOCS_DIR).parts)
    if README.exists():
        files.append(README)
    return files


def collect_blocks() -> list[CodeBlock]:
    return [
        CodeBlock(path, line, code)
        for path in documentation_files()
        for line, code in extract_python_blocks(path.read_text(encoding="utf-8"))
    ]


ALL_BLOCKS = collect_blocks()
RUNNABLE_BLOCKS = [block for block in ALL_BLOCKS if block.skip_reason is None]


@pytest.fixture
def capped_learn(monkeypatch):
    """Cap every learn() at MAX_TIMESTEPS steps: all SB3 algorithms pass their budget through _setup_learn()."""
    original_setup_learn = BaseAlgorithm._setup_learn

    def _setup_learn(self, total_timesteps, *args, **kwargs):
        return original_setup_learn(self, min(int(total_timesteps), MAX_TIMESTEPS), *args, **kwargs)

    monkeypatch.setattr(BaseAlgorithm, "_setup_learn", _setup_learn)


def run_block(block: CodeBlock) -> dict:
    # Pad with blank lines so tracebacks point at the line in the Markdown file
    source = "\n" * (block.line - 1) + block.code
    namespace = {"__name__": "__main__", "__file__": str(block.path)}
    exec(compile(source, str(block.path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[block.name for block in RUNNABLE_BLOCKS])
def test_doc_example_runs(block, capped_learn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_block(block)


def test_examples_are_collected():
    # If the extraction broke, the parametrized test above would pass by running nothing
    runnable_pages = {block.path.relative_to(REPO_ROOT).as_posix() for block in RUNNABLE_BLOCKS}
    expected = {
        "docs/index.md",
        "docs/modules/ppg.md",
        "docs/guide/install.md",
        "docs/guide/quickstart.md",
        "docs/guide/hyperparameters.md",
        "docs/guide/memory.md",
    }
    if README.exists():
        expected.add("README.md")
    assert expected <= runnable_pages, f"no runnable python block found in {sorted(expected - runnable_pages)}"


def test_skipped_examples_say_why():
    skipped = [block for block in ALL_BLOCKS if block.skip_reason is not None]
    unexplained = [block.name for block in skipped if not block.skip_reason]
    assert not unexplained, f"write the reason after '{SKIP_MARKER}' in {unexplained}"
    # Skipping is the exception: most examples must run
    assert len(skipped) * 4 <= len(ALL_BLOCKS), f"too many skipped examples: {[block.name for block in skipped]}"


def test_extract_python_blocks():
    text = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "a = 1",  # 3
            "```",  # 4
            "```bash",  # 5
            "echo no",  # 6
            "```",  # 7
            "- item",  # 8
            "  ```py",  # 9
            "  b = 2",  # 10
            "  if b:",  # 11
            "      c = 3",  # 12
            "  ```",  # 13
            "~~~~python",  # 14
            "```",  # 15: too short and of the wrong kind to close
            "~~~~",  # 16
            "```{eval-rst}",  # 17
            ".. autoclass:: X",  # 18
            "```",  # 19
            "```inline``` code, no fence",  # 20
            "```python",  # 21
            "# docs: skip (slow)",  # 22
            "```",  # 23
        ]
    )
    assert extract_python_blocks(text) == [
        (3, "a = 1\n"),
        (10, "b = 2\nif b:\n    c = 3\n"),
        (15, "```\n"),
        (22, "# docs: skip (slow)\n"),
    ]
    skip_block = CodeBlock(README, 22, "# docs: skip (slow)\n")
    assert skip_block.skip_reason == "slow"
    assert CodeBlock(README, 3, "a = 1\n").skip_reason is None


def test_learn_is_capped(capped_learn):
    from sb3_ppg import PPG

    n_steps = 64

    class StopIfOverBudget(BaseCallback):
        def _on_step(self) -> bool:
            # The cap lets learn() finish its rollout, no more
            assert self.num_timesteps <= max(MAX_TIMESTEPS, n_steps) + n_steps, "learn() was not capped"
            return True

    model = PPG("MlpPolicy", "CartPole-v1", n_steps=n_steps, batch_size=32, n_policy_iterations=2, aux_batch_size=64)
    model.learn(total_timesteps=10**9, callback=StopIfOverBudget())
    assert n_steps <= model.num_timesteps <= max(MAX_TIMESTEPS, n_steps) + n_steps
    # A budget below the cap is left alone
    model.learn(total_timesteps=n_steps)
    assert model.num_timesteps == n_steps


def test_sphinx_build_has_no_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS_DIR),
            str(tmp_path / "html"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.stdout[-5000:]}\n{build.stderr[-10000:]}"
    assert (tmp_path / "html" / "modules" / "ppg.html").exists()

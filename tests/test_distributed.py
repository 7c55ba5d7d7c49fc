"""
Distributed hyperparameter search: several ``python -m sb3_ppg.zoo train -optimize`` workers at once on one Optuna
study, in a real PostgreSQL server, in an SQLite file and in the zoo's journal file, and a worker killed mid-trial.

The PostgreSQL tests start their own server with ``initdb`` and ``pg_ctl`` (on Debian: ``apt-get install postgresql``)
and need the ``distributed`` extra (psycopg 3). Without them they skip, except under CI (``CI=true``), where a missing
install is an error.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
optuna = pytest.importorskip("optuna", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
pytest.importorskip("pandas", reason="the zoo writes the -optimize report with pandas (zoo extra)")

from optuna.trial import TrialState  # noqa: E402

from sb3_ppg.zoo import HEARTBEAT_OPTION, main, optuna_heartbeat, split_heartbeat_interval  # noqa: E402
from tests.conftest import REPO_ROOT, zoo_command, zoo_env  # noqa: E402
from tests.test_docs import extract_python_blocks  # noqa: E402

RL_ZOO_DOC = REPO_ROOT / "docs" / "guide" / "rl_zoo.md"
# Where Debian's postgresql package puts the server's programs, one folder per major version
DEBIAN_POSTGRESQL = Path("/usr/lib/postgresql")
POSTGRES_USER = "postgres"
# Tiny trials: a few hundred steps (one rollout), one evaluation of two episodes
WORKER_ARGS = (
    "train", "--algo", "ppg", "--env", "CartPole-v1", "-optimize", "-n", "256", "--n-evaluations", "1",
    "--eval-episodes", "2", "--sampler", "random", "--pruner", "none", "--no-optim-plots", "-f", "logs",
)  # fmt: skip
# A trial that runs far longer than the test, to be killed in the middle
LONG_TRIAL_STEPS = "1000000"
WORKER_TIMEOUT = 120
HEARTBEAT_INTERVAL = 1
# Optuna's default grace period: a running trial is stale when its last heartbeat is older than this
GRACE_PERIOD = 2 * HEARTBEAT_INTERVAL
# The study name of the documentation's commands, which the test of its repair snippet uses
DOCS_STUDY_NAME = "ppg-lunarlander"


# ---------------------------------------------------------------------------------------------------------------------
# A PostgreSQL server of our own
# ---------------------------------------------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI, where the server must be there (``make test`` installs it)."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI is set: the distributed search must be tested here, not skipped)")
    pytest.skip(reason)


def postgres_bin_dir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: the newest Debian version, else the ``PATH``'s; None when absent."""
    versions = [path for path in DEBIAN_POSTGRESQL.glob("*/bin") if path.parent.name.isdigit()]
    for bin_dir in sorted(versions, key=lambda path: int(path.parent.name), reverse=True):
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL server: no password (``-A trust``), on 127.0.0.1 and a unix socket in its folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not pytest's tmp_path: its parents are private to the current user, and as root the server runs as another
        self.folder = Path(tempfile.mkdtemp(prefix="sb3_ppg_postgres_"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        # The server refuses to run as root
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam(POSTGRES_USER)
            except KeyError:
                shutil.rmtree(self.folder)
                _unavailable(f"running as root, and there is no '{POSTGRES_USER}' user to run the PostgreSQL server")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", POSTGRES_USER, "--"] if shutil.which("runuser") else []

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0 and not self.as_user:
            # No runuser (not util-linux): su takes one shell command line
            command = ["su", POSTGRES_USER, "-s", "/bin/sh", "-c", subprocess.list2cmdline(command)]
        return subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        result = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", POSTGRES_USER, "-E", "UTF8", "--no-sync")
        assert result.returncode == 0, f"initdb failed:\n{result.stdout}\n{result.stderr}"
        # A port found free can be taken before the server binds it: try a few
        for _ in range(3):
            self.port = free_port()
            # -F: no fsync, the data is thrown away
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -F"
            result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
            if result.returncode == 0:
                return
        log = self.log.read_text() if self.log.exists() else ""
        raise AssertionError(f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def url(self) -> str:
        # The documented form: plain postgresql:// is psycopg 3 for SQLAlchemy 2.1
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server started for this module; each test uses its own study name in it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the PostgreSQL tests need the distributed extra (psycopg 3): pip install -e '.[distributed]'")
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _unavailable(
            f"the PostgreSQL tests need initdb and pg_ctl (under {DEBIAN_POSTGRESQL}/<major>/bin or on PATH): "
            "apt-get install postgresql"
        )
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    try:
        server.start()
        # Optuna's tables, as `optuna create-study` makes them in the documentation: workers that start at the same
        # moment on an empty database race to create them (the loser fails on a duplicate key)
        optuna.storages.RDBStorage(server.url).remove_session()
        yield server.url
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------------------------------


class Worker:
    """A ``train -optimize`` worker running in the background, with its output in files (a pipe could fill up)."""

    def __init__(self, folder: Path, *args: str) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self.stdout = open(folder / "stdout.txt", "w")
        self.stderr = open(folder / "stderr.txt", "w")
        self.process = subprocess.Popen(zoo_command(*args), cwd=folder, env=zoo_env(), stdout=self.stdout, stderr=self.stderr)

    def output(self) -> str:
        for file in (self.stdout, self.stderr):
            if not file.closed:
                file.flush()
        return (self.folder / "stdout.txt").read_text() + (self.folder / "stderr.txt").read_text()

    def wait(self, expect_success: bool = True) -> int:
        try:
            returncode = self.process.wait(timeout=WORKER_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.stdout.close()
            self.stderr.close()
        if expect_success:
            assert returncode == 0, f"exit code {returncode}\n{self.output()[-4000:]}"
        return returncode

    def finished_trials(self) -> set[int]:
        """Numbers of the trials this worker finished, from Optuna's log lines."""
        return {int(number) for number in re.findall(r"Trial (\d+) finished", self.output())}


def start_worker(folder: Path, storage: str, study_name: str, n_envs: int, seed: int, *args: str) -> Worker:
    """
    Start a worker. Its ``n_envs`` tags its trials: the PPG sampler records it as a one-value parameter.
    """
    return Worker(
        folder, *WORKER_ARGS, "--storage", storage, "--study-name", study_name, "--seed", str(seed),
        "--hyperparams", f"n_envs:{n_envs}", *args,
    )  # fmt: skip


def load_study(storage: str, study_name: str) -> "optuna.Study":
    if storage.endswith(".log"):
        # What the zoo does with a .log path
        journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
        return optuna.load_study(storage=journal, study_name=study_name)
    return optuna.load_study(storage=storage, study_name=study_name)


def wait_for_running_trial(storage: str, study_name: str, n_envs: int, worker: Worker) -> int:
    """Wait until the worker tagged ``n_envs`` is in a trial (its parameters sampled): return the trial's number."""
    deadline = time.monotonic() + WORKER_TIMEOUT
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, f"the worker ended before its trial:\n{worker.output()[-4000:]}"
        try:
            trials = load_study(storage, study_name).get_trials(states=[TrialState.RUNNING])
        except KeyError:
            # The worker has not created the study yet
            trials = []
        for trial in trials:
            if trial.params.get("n_envs") == n_envs:
                return trial.number
        time.sleep(0.2)
    raise AssertionError(f"no running trial of the worker with n_envs={n_envs}:\n{worker.output()[-4000:]}")


def check_clean_study(trials: list["optuna.trial.FrozenTrial"]) -> None:
    numbers = [trial.number for trial in trials]
    assert sorted(numbers) == list(range(len(trials))), f"trial numbers not unique and contiguous: {numbers}"
    assert not [trial.number for trial in trials if trial.state == TrialState.RUNNING]


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "sqlite", "journal"])
def test_two_workers_share_one_study(backend, request, tmp_path):
    if backend == "postgresql":
        storage = request.getfixturevalue("postgres_url")
    elif backend == "sqlite":
        storage = f"sqlite:///{tmp_path / 'ppg_optuna.db'}"
        # Optuna's tables first, as for the server: two workers creating them at once race ("table already exists")
        optuna.storages.RDBStorage(storage).remove_session()
    else:
        # The zoo reads a --storage path ending in .log as a journal file
        storage = str(tmp_path / "ppg_optuna.log")
    study_name = f"two-workers-{backend}"
    # Both start at once and both create-or-load the study, as two terminals would
    workers = {
        n_envs: start_worker(tmp_path / f"worker{n_envs}", storage, study_name, n_envs, n_envs, "--n-trials", "2")
        for n_envs in (1, 2)
    }
    for worker in workers.values():
        worker.wait()

    trials = load_study(storage, study_name).trials
    check_clean_study(trials)
    assert len(trials) == 4
    assert all(trial.state == TrialState.COMPLETE for trial in trials)
    for n_envs, worker in workers.items():
        # --n-trials counts the trials of each worker; each worker's log names the trials the study holds for it
        own_trials = {trial.number for trial in trials if trial.params["n_envs"] == n_envs}
        assert len(own_trials) == 2
        assert worker.finished_trials() == own_trials


def test_max_total_trials_bounds_the_whole_study(postgres_url, tmp_path):
    study_name = "max-total-trials"
    max_total_trials = 3
    # Without the bound, each worker would run the zoo's default of 500 trials
    workers = [
        start_worker(tmp_path / f"worker{n_envs}", postgres_url, study_name, n_envs, 10 + n_envs,
                     "--max-total-trials", str(max_total_trials))
        for n_envs in (1, 2)
    ]  # fmt: skip
    for worker in workers:
        worker.wait()

    trials = load_study(postgres_url, study_name).trials
    check_clean_study(trials)
    assert all(trial.state == TrialState.COMPLETE for trial in trials)
    # Each worker checks the count after each of its trials: two that finish at the same instant can both start one
    # more, so the bound holds up to the number of workers less one
    assert max_total_trials <= len(trials) <= max_total_trials + len(workers) - 1
    assert sum(len(worker.finished_trials()) for worker in workers) == len(trials)


def test_killed_worker_leaves_its_trial_running_and_the_others_finish(postgres_url, tmp_path):
    study_name = DOCS_STUDY_NAME
    docs_env = dict(os.environ, OPTUNA_STORAGE=postgres_url)
    # The documentation's command that creates the study, run as written
    (create_study,) = [line for line in RL_ZOO_DOC.read_text().splitlines() if line.startswith("optuna create-study")]
    result = subprocess.run(create_study, shell=True, env=docs_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    doomed = start_worker(tmp_path / "doomed", postgres_url, study_name, 1, 1, "--n-trials", "1", "-n", LONG_TRIAL_STEPS)
    survivor = start_worker(tmp_path / "survivor", postgres_url, study_name, 2, 2, "--n-trials", "2")
    killed_trial = wait_for_running_trial(postgres_url, study_name, 1, doomed)
    doomed.process.send_signal(signal.SIGKILL)
    assert doomed.wait(expect_success=False) == -signal.SIGKILL
    survivor.wait()

    trials = {trial.number: trial for trial in load_study(postgres_url, study_name).trials}
    assert trials[killed_trial].state == TrialState.RUNNING
    others = [trial for number, trial in trials.items() if number != killed_trial]
    assert [trial.state for trial in others] == [TrialState.COMPLETE] * 2
    assert survivor.finished_trials() == {trial.number for trial in others}

    # The documentation's repair, run as written once no worker is left
    (code,) = [code for _, code in extract_python_blocks(RL_ZOO_DOC.read_text()) if "study.tell(" in code]
    result = subprocess.run([sys.executable, "-c", code], env=docs_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    trials = {trial.number: trial for trial in load_study(postgres_url, study_name).trials}
    assert trials[killed_trial].state == TrialState.FAIL
    check_clean_study(list(trials.values()))
    assert [trial.state for number, trial in trials.items() if number != killed_trial] == [TrialState.COMPLETE] * 2


def test_heartbeat_fails_the_trial_of_a_killed_worker(postgres_url, tmp_path):
    study_name = "heartbeat"
    heartbeat = (HEARTBEAT_OPTION, str(HEARTBEAT_INTERVAL))
    doomed = start_worker(tmp_path / "doomed", postgres_url, study_name, 1, 1, "-n", LONG_TRIAL_STEPS, *heartbeat)
    killed_trial = wait_for_running_trial(postgres_url, study_name, 1, doomed)
    doomed.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(expect_success=False)
    # Before the next worker's first trial, the killed trial's last heartbeat is older than the grace period
    time.sleep(max(0.0, killed_at + GRACE_PERIOD + 1 - time.monotonic()))

    survivor = start_worker(tmp_path / "survivor", postgres_url, study_name, 2, 2, "--n-trials", "1", *heartbeat)
    survivor.wait()

    trials = load_study(postgres_url, study_name).trials
    check_clean_study(trials)
    assert trials[killed_trial].state == TrialState.FAIL
    assert [trial.state for trial in trials if trial.number != killed_trial] == [TrialState.COMPLETE]
    assert survivor.finished_trials() == {trial.number for trial in trials if trial.number != killed_trial}


def test_optuna_heartbeat_opens_database_urls_with_a_heartbeat(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with optuna_heartbeat(7):
        study = optuna.create_study(storage=storage, study_name="heartbeat")
        assert study._storage.get_heartbeat_interval() == 7
        # Storage objects, like the zoo's journal file, are left as they are
        in_memory = optuna.storages.InMemoryStorage()
        assert optuna.create_study(storage=in_memory)._storage is in_memory
    # Restored on the way out
    assert optuna.load_study(storage=storage, study_name="heartbeat")._storage.get_heartbeat_interval() is None
    with pytest.raises(ValueError, match="heartbeat_interval must be a whole number of seconds >= 1, got 0"):
        with optuna_heartbeat(0):
            pass


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--storage", "s.db", "--heartbeat-interval", "60", "-n", "1"], (60, ["--storage", "s.db", "-n", "1"])),
        (["--heartbeat-interval=5", "--storage=postgresql://db/optuna"], (5, ["--storage=postgresql://db/optuna"])),
        (["--storage", "x.db", "-n", "1"], (None, ["--storage", "x.db", "-n", "1"])),
        # After "--" nothing is an option
        (["--storage", "s", "--", "--heartbeat-interval", "5"], (None, ["--storage", "s", "--", "--heartbeat-interval", "5"])),
    ],
)
def test_split_heartbeat_interval(args, expected):
    assert split_heartbeat_interval(args) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["--storage", "s.db", "--heartbeat-interval"], "--heartbeat-interval expects a number of seconds"),
        (["--storage", "s.db", "--heartbeat-interval", "0"], "whole number of seconds >= 1, got '0'"),
        (["--storage", "s.db", "--heartbeat-interval", "1.5"], "whole number of seconds >= 1, got '1.5'"),
        (["--heartbeat-interval", "5"], "needs a database --storage .*none was given"),
        (["--heartbeat-interval", "5", "--storage", "logs/optuna.log"], "journal file storage .* has no heartbeat"),
    ],
)
def test_split_heartbeat_interval_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        split_heartbeat_interval(args)


def test_bad_heartbeat_interval_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", "ppg", "--env", "CartPole-v1", "--heartbeat-interval", "-3", "--storage", "s.db"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "sb3-ppg-zoo train: error: --heartbeat-interval must be a whole number of seconds >= 1, got '-3'" in error

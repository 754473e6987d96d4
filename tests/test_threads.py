"""The CPU thread rule (project/core/threads.py): what it chooses, that the user's own settings
win, and that every entry point applies it before torch loads.

What the OpenMP runtime itself saw is read from its own report: libgomp prints the settings it
runs with when ``OMP_DISPLAY_ENV=VERBOSE`` (``GOMP_SPINCOUNT = '10000'``, ``OMP_NUM_THREADS``),
at the moment torch loads it. torch's thread count is printed by the process.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from project.core import threads

from .helpers import REPO


def clean_environment(**extra) -> dict[str, str]:
    """This process's environment without the rule's choices (pytest's process applied it)."""
    env = threads.environment(rule=True)
    env.pop("OMP_NUM_THREADS", None)
    return {**env, **extra}


@pytest.fixture
def idle(monkeypatch):
    """The machine as the rule sees it: nothing else running (the suite's other worker is)."""
    monkeypatch.setattr(threads, "busy_cpus", lambda: 0)


def test_the_rule_sets_a_short_spin_and_leaves_the_thread_count_to_torch_when_equal(idle):
    env = {}
    chosen = threads.apply(environ=env)
    assert env["GOMP_SPINCOUNT"] == str(threads.SPIN_COUNT) and env["KMP_BLOCKTIME"] == "0"
    assert "OMP_NUM_THREADS" not in env or threads.usable_cpus() != threads.torch_default_threads()
    assert chosen and threads.describe(env).startswith("CPU threads: idle OpenMP threads sleep")


@pytest.mark.parametrize("name", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"])
def test_a_wait_setting_of_the_users_own_wins(name):
    env = {name: "ACTIVE" if name == "OMP_WAIT_POLICY" else "5"}
    threads.apply(environ=env)
    assert env[name] == ("ACTIVE" if name == "OMP_WAIT_POLICY" else "5")
    assert "GOMP_SPINCOUNT" not in env or name == "GOMP_SPINCOUNT"


def test_the_users_thread_count_wins_and_processes_share_the_cpus(idle, monkeypatch):
    env = {"OMP_NUM_THREADS": "7", "LOCAL_WORLD_SIZE": "2"}
    threads.apply(environ=env)
    assert env["OMP_NUM_THREADS"] == "7"
    monkeypatch.setattr(threads, "usable_cpus", lambda: 8)
    monkeypatch.setattr(threads, "torch_default_threads", lambda: 8)
    env = {"LOCAL_WORLD_SIZE": "2"}
    assert "4 CPU thread(s) (torch would take 8)" in threads.apply(environ=env)
    assert env["OMP_NUM_THREADS"] == "4"
    env = {}
    threads.apply(processes=16, environ=env)
    assert env["OMP_NUM_THREADS"] == "1"  # never 0


def test_cpus_busy_with_other_work_are_left_to_it(tmp_path, monkeypatch):
    """Runnable tasks in /proc/loadavg's 4th field, this process's own one not counted: a
    program that keeps one of 8 CPUs busy leaves the run 7 threads, four such leave 4."""
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(threads, "torch_default_threads", lambda: 8)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.00 0.50 0.20 2/300 4242\n")  # this process and one other
    assert threads.busy_cpus(samples=3, interval=0, loadavg=loadavg) == 1
    monkeypatch.setattr(threads, "usable_cpus", lambda: 8)
    monkeypatch.setattr(threads, "busy_cpus", lambda: 4)
    env = {}
    assert "4 CPU thread(s) (torch would take 8; 4 of 8 CPUs busy" in threads.apply(environ=env)
    assert env["OMP_NUM_THREADS"] == "4"
    monkeypatch.setattr(threads, "busy_cpus", lambda: 12)  # more work than CPUs: one thread
    env = {}
    threads.apply(environ=env)
    assert env["OMP_NUM_THREADS"] == "1"


def test_the_busy_count_is_scaled_to_the_affinity_mask_and_off_under_a_quota(tmp_path, monkeypatch):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("9.00 9.00 9.00 9/300 4242\n")  # 8 others on a 16-CPU machine
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(threads, "torch_default_threads", lambda: 4)  # this process: 4 of them
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 16)
    assert threads.busy_cpus(samples=1, interval=0, loadavg=loadavg) == 2  # 8 x 4/16
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.0)  # a container's own share
    assert threads.busy_cpus(samples=1, interval=0, loadavg=loadavg) == 0
    assert threads.busy_cpus(samples=1, interval=0, loadavg=tmp_path / "absent") == 0


def test_the_off_switch_and_a_parents_choice():
    env = {threads.OFF_SWITCH: "off"}
    assert threads.apply(environ=env) == "" and "GOMP_SPINCOUNT" not in env
    assert threads.describe(env) == ""
    child = {threads.MARK: "chosen by the parent", "GOMP_SPINCOUNT": "10000"}
    assert threads.apply(environ=child) == "chosen by the parent"


def test_a_cgroup_quota_caps_the_cpus(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.cgroup_cpu_limit(tmp_path) == 2.0
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.usable_cpus() <= 2


# Each entry point, started as a user starts it, with OpenMP's report of what it runs with. The
# commands stop early (--help, --print_config) but only after torch has loaded.
PRINT_THREADS = (
    "import atexit, torch; atexit.register(lambda: print('torch threads', torch.get_num_threads()))"
)
ENTRY_POINTS = {
    "python -m project": ["-m", "project", "fit", "--config", "configs/cnn.yaml", "--print_config"],
    "python -m project.manual": ["-m", "project.manual", "fit", "--help"],
    "python -m project serve": ["-m", "project", "serve", "--help"],
    # a sweep file with an unknown key: refused after the config is parsed (torch loaded)
    "python -m project sweep": [
        "-m",
        "project",
        "sweep",
        "--config",
        "configs/cnn.yaml",
        "--sweep",
        "tests/data/no_such_sweep.yaml",
    ],
    "python -m benchmarks": ["-m", "benchmarks.busy_machine", "--help"],
    "python -m exercises.check": ["-m", "exercises.check", "--help"],
}


def openmp_report(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env={**env, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    assert spin, f"{args}: torch never loaded OpenMP\n{result.stderr[-2000:]}"
    count = re.search(r"OMP_NUM_THREADS = '(\d+)'", result.stderr)
    return spin.group(1), count.group(1) if count else ""


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_applies_the_rule_before_torch_loads(entry):
    spin, _ = openmp_report(ENTRY_POINTS[entry], clean_environment())
    assert spin == str(threads.SPIN_COUNT), f"{entry}: OpenMP spins {spin} times"


def test_the_users_own_settings_reach_the_runtime_and_torch():
    env = clean_environment(OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1")
    spin, count = openmp_report(["-c", "import project; " + PRINT_THREADS], env)
    assert spin != str(threads.SPIN_COUNT) and count == "1"
    result = subprocess.run(
        [sys.executable, "-c", "import project; " + PRINT_THREADS], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "torch threads 1" in result.stdout
    env = clean_environment(IMAGE_CLASSIFIER_THREADS="off")
    spin, _ = openmp_report(["-c", "import project; import torch"], env)
    assert spin == "300000"  # libgomp's own default: the rule switched off


def test_a_child_process_inherits_the_rule():
    code = (
        "import project, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'import torch'], check=True)\n"
    )
    spin, _ = openmp_report(["-c", code], clean_environment())
    assert spin == str(threads.SPIN_COUNT)


def test_a_child_environment_either_way():
    parent = {"GOMP_SPINCOUNT": "10000", threads.MARK: "chosen", "PATH": "/bin"}
    assert threads.environment(rule=True, environ=parent) == {"PATH": "/bin"}
    assert threads.environment(rule=False, environ=parent) == {
        "PATH": "/bin",
        threads.OFF_SWITCH: "off",
    }


def test_a_sweeps_workers_share_the_users_or_the_rules_thread_count(monkeypatch):
    """A sweep shares threads.thread_count() among its workers (project/sweep/cli.py); before, it
    gave each os.cpu_count() // workers threads whatever the user set."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.thread_count() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "usable_cpus", lambda: 5)
    assert threads.thread_count() == 5


def test_a_childs_environment_drops_the_rules_thread_count_not_the_users(idle, monkeypatch):
    """A benchmark starts each command as a user would: the rule chosen afresh there (the
    machine may be busier or idler than when this process started), the user's count kept."""
    monkeypatch.setattr(threads, "busy_cpus", lambda: 1)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads, "torch_default_threads", lambda: 2)
    parent = {}
    threads.apply(environ=parent)
    assert parent["OMP_NUM_THREADS"] == "1" and "OMP_NUM_THREADS" not in threads.environment(
        rule=True, environ=parent
    )
    users = {"OMP_NUM_THREADS": "1"}
    threads.apply(environ=users)
    assert threads.environment(rule=True, environ=users)["OMP_NUM_THREADS"] == "1"
    assert threads.thread_count(users) == 1

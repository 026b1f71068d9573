"""Entry points: `nox -s tests` (fast tier), `nox -s tests_slow`, `nox -s lint`, `nox -s reproduce -- ARGS`,
`nox -s regress`, `nox -s bench`."""

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
ROOT = Path(__file__).parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def _data_env() -> dict:
    """SHARENS_DATA as set, else ../shared/data when it exists (CI and developers), else datasets/."""
    root = os.environ.get("SHARENS_DATA") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else "datasets")
    return {"SHARENS_DATA": root}


# one worker per core, each test file on one worker: a module's smoke-run fixture is built once
PARALLEL = ("-n", "auto", "--dist", "loadfile")


@nox.session
def tests(session):
    """The fast tier: unit tests on synthetic or sliced data (about a minute on 2 cores)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *PARALLEL, "-m", "not slow", *session.posargs, env=_data_env())


@nox.session
def tests_slow(session):
    """The slow tier: end-to-end runs on the real data (`@pytest.mark.slow`); CI runs both. The tests that read
    whole tables' smoke runs copy the run `nox -s regress -- --out DIR` kept when SHARENS_SMOKE_RUN=DIR."""
    session.install("-e", ".[test]")
    selected = dict(env=_data_env(), success_codes=[0, 5])  # 5: posargs left none of this part's tests
    session.run("pytest", "-q", *PARALLEL, "-m", "slow and not timing", "--durations=15", *session.posargs, **selected)
    session.run("pytest", "-q", "-m", "slow and timing", *session.posargs, **selected)  # alone: a quiet machine


@nox.session
def lint(session):
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")


@nox.session
def reproduce(session):
    """Run tables and write results/<table>.{md,json}; default: every implemented table at the largest profile
    this machine can finish (full on a GPU)."""
    session.install("-e", ".")
    session.run("python", "-m", "sharens", "reproduce", *session.posargs, env=_data_env())


@nox.session
def regress(session):
    """Smoke-profile run compared with the committed reference in results/smoke/."""
    session.install("-e", ".")
    session.run("python", "-m", "sharens.regress", *(session.posargs or ["--jobs", "2"]), env=_data_env())


@nox.session
def bench(session):
    """Training throughput (SE / baseline, harness overhead, batched members) -> results/bench/<device>.{md,json};
    the cold-cache dry run of every table -> results/bench/dry_run.{md,json}."""
    session.install("-e", ".[bench]")
    raw = ".bench.json"
    session.run("pytest", "bench", "-q", "-p", "no:cacheprovider", f"--benchmark-json={raw}", *session.posargs,
                env=_data_env())
    session.run("python", "bench/summarize.py", raw)
    session.run("python", "bench/dry_run.py", env=_data_env())  # a fresh clone's dry run, and the estimates' error

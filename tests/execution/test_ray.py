"""The Ray executor on a real local cluster (a head and a worker node on 127.0.0.1): one task per cell,
records written by the driver, the same numbers as a local run, and a worker killed mid-cell loses nothing."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sharens.cli import main
from sharens.execution.executors import SMALL_CELL_GPU, ray_resources
from sharens.suite.plan import plan

pytestmark = pytest.mark.slow  # a real two-node cluster: a minute or more
ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
ROWS = ["--rows", "DNN", "--rows", "DNN+SE", "--rows", "Deep LSTM", "--rows", "Random Forest"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A head node and a second (worker) node, each with 1 CPU, on this machine; stopped afterwards."""
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "SHARENS_CACHE": str(tmp_path / "cache")}
    common = ["--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--include-dashboard", "false", *common], check=True, env=env, capture_output=True)
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", *common], check=True, env=env,
                       capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


def test_cells_declare_cpus_and_a_share_of_a_gpu_for_small_networks():
    from benchmarks import get_table

    table = get_table("table5_semg")
    specs = {s.row.label: s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["semg"])}
    cuda = torch.device("cuda")
    assert ray_resources(specs["DNN"], cuda) == {"num_cpus": 1, "num_gpus": SMALL_CELL_GPU}
    assert ray_resources(specs["Deep LSTM"], cuda) == {"num_cpus": 1, "num_gpus": 1.0}
    assert ray_resources(specs["Random Forest"], cuda)["num_gpus"] == 0
    assert ray_resources(specs["DNN"], torch.device("cpu"))["num_gpus"] == 0


def test_a_ray_cluster_gives_the_local_numbers_and_a_killed_worker_loses_nothing(cluster, data_root, tmp_path):
    common = ["reproduce", "--table", "table5_semg", "--profile", "smoke", "--seeds", "2", *ROWS,
              "--data-root", str(data_root), "--no-throughput"]
    run = subprocess.Popen([sys.executable, "-m", "sharens", *common, "--executor", "ray", "--address", cluster,
                            "--out", str(tmp_path / "ray")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env={**os.environ, "SHARENS_CACHE": str(tmp_path / "cache")}, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while run.poll() is None and killed is None and time.monotonic() < deadline:  # a worker busy with a cell
        found = subprocess.run(["pgrep", "-f", "ray::_run_in_worker"], capture_output=True, text=True).stdout.split()
        if found:
            killed = int(found[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    output, _ = run.communicate(timeout=300)
    assert killed is not None, "no worker was seen running a cell"
    assert run.returncode == 0, output
    by_ray = json.loads((tmp_path / "ray" / "table5_semg.json").read_text())["cells"]
    assert len(by_ray) == 14 and all(c["status"] == "ok" for c in by_ray)  # (3 nets x 2 presets + RF) x 2 seeds
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    here = json.loads((tmp_path / "local" / "table5_semg.json").read_text())["cells"]
    assert {c["key"]: c["accuracy"] for c in by_ray} == {c["key"]: c["accuracy"] for c in here}
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)

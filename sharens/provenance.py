"""Where and with what a number was produced: recorded with every result."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "librosa", "tabulate", "sharens")
PACKAGE_FOLDER = Path(__file__).resolve().parent  # git runs here: the checkout this code comes from


def _git(*args: str, where: Path = PACKAGE_FOLDER) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=where)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def git_revision(where: Path = PACKAGE_FOLDER) -> str | None:
    """HEAD's hash, suffixed `-dirty` when tracked files other than the results tree differ from it: results
    are what runs write (a report rebuilt beside others, a cell landing), not what computes them."""
    head = _git("rev-parse", "HEAD", where=where)
    if head and _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results",
                     where=where):
        head += "-dirty"
    return head


def device_name(device: torch.device, threads: int | None = None) -> str:
    """The GPU's name, or the CPU's model and the torch threads a cell ran on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = threads or torch.get_num_threads()
    return f"{cpu} ({threads} thread{'s' if threads != 1 else ''})"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@cache
def environment() -> dict:
    """Library versions and git revision: the same for every cell of one process. `cpu_capability` is the
    instruction set torch's CPU kernels were chosen for (AVX2, AVX512, ...): two CPUs of one model name may
    differ in it, and then in the last bits of every sum."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "versions": {p: _version(p) for p in PACKAGES},
        "git_revision": git_revision(),
    }

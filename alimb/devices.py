"""The one place that turns a `device` setting into a torch device, and that sizes torch's CPU threads to a job."""

from __future__ import annotations

import os
import platform

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when present, else cpu; anything else as torch names it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def threads_for_this_job() -> int | None:
    """Use the CPUs a Slurm job was given (`--cpus-per-task`, in SLURM_CPUS_PER_TASK) when torch would start more
    threads: on a cluster that does not bind tasks to CPUs, torch starts one per core of the node, and jobs sharing
    the node then fight over them (two digits jobs on 2 cores, 2 threads each: ~7x slower iterations). Returns the
    thread count set, or None when nothing changed."""
    allotted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allotted.isdigit() and 0 < int(allotted) < torch.get_num_threads():
        torch.set_num_threads(int(allotted))
        return int(allotted)
    return None


def describe_machine() -> dict:
    """CPU model and cores, GPU name, torch and CUDA versions: what every benchmark reports it ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(), cuda=torch.version.cuda)
    return info


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory_growth(fn) -> int:
    """Bytes the process's peak RSS rose above its RSS at the call (Linux: clear_refs resets the peak); for the
    benchmarks' memory targets."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


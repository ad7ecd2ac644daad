"""Where a run ran: processor, SIMD level, GPU, torch build, threads -- and a one-line label.

Floating-point results are bit-reproducible only on the same floating-point path: the same
processor family and SIMD level (torch and oneDNN/MKL pick kernels by CPU features), the same
torch build, the same thread count (parallel reductions split differently) and, on a GPU, the same
GPU and CUDA. :func:`hardware_info` records all of it (into a run's ``meta.yaml`` and W&B config),
:func:`same_hardware` compares what matters, and ``label`` names the path in one short string such
as ``"AMD EPYC (avx2) · torch 2.13.0+cpu"``.

The module imports nothing heavy at import time; torch is imported inside :func:`hardware_info`.
The CPU parsers (:func:`parse_cpuinfo`, :func:`parse_sysctl`) are pure functions of the text.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

#: SIMD features that change which float kernels run (x86 names as in /proc/cpuinfo, ARM ones too).
SIMD_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")
#: features that make bf16 arithmetic native (without them torch emulates bf16 on the CPU, slowly).
BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16")
#: highest first: the SIMD level shown in the label.
_LEVELS = (("amx_bf16", "amx"), ("avx512_bf16", "avx512-bf16"), ("avx512f", "avx512"), ("avx2", "avx2"),
           ("sve", "sve"), ("bf16", "neon-bf16"), ("asimd", "neon"))
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "0x41": "ARM", "0x61": "Apple", "0x48": "HiSilicon",
            "0xc0": "Ampere", "0x51": "Qualcomm", "0x4e": "NVIDIA"}
_NOISE = re.compile(r"\((?:R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|\b\d+-Core\b|@.*$")


def clean_model_name(name: str) -> str:
    """``"Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"`` -> ``"Intel Xeon Platinum 8480+"``."""
    return " ".join(_NOISE.sub(" ", name).split())


def _cpu(model: str, vendor: str, flags: set[str]) -> dict[str, Any]:
    simd = [f for f in SIMD_FEATURES if f in flags]
    return {"model": clean_model_name(model) or "unknown", "vendor": vendor or "unknown", "simd": simd,
            "native_bf16": any(f in flags for f in BF16_FEATURES)}


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Model, vendor, SIMD features and native bf16 from a Linux ``/proc/cpuinfo`` text (x86 or ARM;
    the first processor block is read)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").lower().split())
    raw_vendor = fields.get("vendor_id") or fields.get("cpu implementer", "")
    vendor = _VENDORS.get(raw_vendor, raw_vendor)
    model = fields.get("model name") or fields.get("hardware") or ""
    if not model and vendor:
        model = f"{vendor} {fields.get('cpu part', '')}".strip()
    return _cpu(model, vendor, flags)


def parse_sysctl(text: str) -> dict[str, Any]:
    """The same from macOS ``sysctl machdep.cpu hw.optional`` output (Intel and Apple silicon)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    flags = {f.lower().replace(".", "_") for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features")
             for f in values.get(key, "").split()}
    for key, flag in (("hw.optional.avx2_0", "avx2"), ("hw.optional.avx512f", "avx512f"),
                      ("hw.optional.arm.FEAT_BF16", "bf16"), ("hw.optional.AdvSIMD", "asimd"),
                      ("hw.optional.neon", "asimd")):
        if values.get(key) == "1":
            flags.add(flag)
    model = values.get("machdep.cpu.brand_string", "")
    vendor = values.get("machdep.cpu.vendor", "")
    vendor = _VENDORS.get(vendor, vendor) or ("Apple" if model.startswith("Apple") else "")
    return _cpu(model, vendor, flags)


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """This machine's CPU (cached: it cannot change while the process runs)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        info = None
    if info is None and sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "machdep.cpu", "hw.optional"], capture_output=True, text=True,
                                 timeout=5).stdout
            info = parse_sysctl(out)
        except (OSError, subprocess.SubprocessError):
            info = None
    if info is None or info["model"] == "unknown":
        fallback = _cpu(platform.processor() or platform.machine(), "", set())
        info = {**fallback, **{k: v for k, v in (info or {}).items() if v not in ("unknown", [], False)}}
    info["cores"] = os.cpu_count()
    return info


def simd_level(simd: list[str] | tuple[str, ...], torch_capability: str | None = None) -> str:
    """The highest SIMD level among ``simd`` (``"amx"``, ``"avx512"``, ``"avx2"``, ``"neon"``, ...),
    or torch's own dispatch level when no feature is known."""
    for feature, name in _LEVELS:
        if feature in simd:
            return name
    return (torch_capability or "scalar").lower()


def _torch_build(torch) -> dict[str, Any]:
    """BLAS, MKL and oneDNN versions from ``torch.__config__.show()`` (a cheap string)."""
    try:
        text = torch.__config__.show()
    except Exception:
        return {}
    build: dict[str, Any] = {}
    for key, pattern in (("blas", r"BLAS_INFO=(\w+)"), ("mkl", r"Math Kernel Library Version ([\w.]+)"),
                         ("onednn", r"MKL-DNN (v[\w.]+)"), ("openmp", r"OpenMP (\d+)")):
        m = re.search(pattern, text)
        build[key] = m.group(1) if m else None
    return build


def _gpu(torch) -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        return None
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"names": [p.name for p in props], "capability": [f"{p.major}.{p.minor}" for p in props],
            "memory_gb": [round(p.total_memory / 2**30, 1) for p in props], "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None), "cudnn": cudnn}


def _lengen_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lengen")
    except PackageNotFoundError:
        return None


def make_label(info: Mapping[str, Any]) -> str:
    """``"AMD EPYC (avx2) · torch 2.13.0+cpu"``; with a GPU ``"... · NVIDIA H100 80GB HBM3 · cuda 12.4 ·
    torch ..."``; ``, torch avx2`` is added when torch dispatches below the CPU's SIMD level."""
    cpu, tch, gpu = info["cpu"], info["torch"], info.get("gpu")
    level = simd_level(cpu["simd"], tch.get("cpu_capability"))
    cap = (tch.get("cpu_capability") or "").lower()
    isa = {"amx": "avx512", "avx512-bf16": "avx512"}.get(level, level)
    if cap and cap not in ("default", "") and not cap.startswith(isa) and isa.startswith("avx"):
        level += f", torch {cap}"
    parts = [f"{cpu['model']} ({level})"]
    if gpu:
        names = sorted(set(gpu["names"]))
        parts.append(" + ".join(names) + (f" x{len(gpu['names'])}" if len(gpu["names"]) > 1 else ""))
        parts.append(f"cuda {gpu['cuda']}" if gpu.get("cuda") else f"hip {gpu.get('hip')}")
    parts.append(f"torch {tch['version']}")
    return " · ".join(parts)


def hardware_info() -> dict[str, Any]:
    """Everything that decides a run's floating-point path, as plain YAML/JSON values.

    Keys: ``label`` (one line), ``cpu`` (model, vendor, simd, native_bf16, cores), ``gpu`` (None
    without CUDA; names, capability, memory_gb, cuda, cudnn), ``torch`` (version, cuda,
    cpu_capability, mkldnn, mps, threads; blas, mkl, onednn, openmp versions), ``lengen``, ``python``,
    ``platform``.
    """
    import torch

    tch = {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "threads": torch.get_num_threads(),
        **_torch_build(torch),
    }
    info: dict[str, Any] = {
        "cpu": dict(cpu_info()),
        "gpu": _gpu(torch),
        "torch": tch,
        "lengen": _lengen_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    info["cpu"]["simd"] = list(info["cpu"]["simd"])
    return {"label": make_label(info), **info}


def _key(info: Mapping[str, Any]) -> tuple:
    cpu, tch, gpu = info.get("cpu") or {}, info.get("torch") or {}, info.get("gpu") or {}
    return (
        cpu.get("vendor"), cpu.get("model"), tuple(sorted(cpu.get("simd") or ())),
        tch.get("version"), tch.get("cpu_capability"), tch.get("threads"), tch.get("cuda"),
        tuple(gpu.get("names") or ()), tuple(gpu.get("capability") or ()), gpu.get("cudnn"),
    )


def same_hardware(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two :func:`hardware_info` records (possibly read back from YAML) share the same
    floating-point path: CPU vendor, model and SIMD features, torch version and CPU dispatch level,
    thread count, CUDA version, GPU models and cuDNN. Python, lengen version and platform string do
    not decide float results and are ignored. A missing record is never the same hardware."""
    if not a or not b:
        return False
    return _key(a) == _key(b)

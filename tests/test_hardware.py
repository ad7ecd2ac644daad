"""``lengen.hardware``: the record of where a run ran, its label, and the CPU parsers on fixed texts."""

from __future__ import annotations

import copy

import yaml

from lengen.hardware import (
    clean_model_name,
    hardware_info,
    make_label,
    parse_cpuinfo,
    parse_sysctl,
    same_hardware,
)

INTEL_AMX = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8480+
stepping	: 8
flags		: fpu vme de pse tsc msr sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd \
avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni
bogomips	: 4000.00

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse avx avx2
"""

AMD_AVX2 = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC 7763 64-Core Processor
flags		: fpu vme de pse tsc msr pae mce sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 sha_ni vaes
"""

ARM_GRAVITON3 = """\
processor	: 0
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm
CPU implementer	: 0x41
CPU architecture: 8
CPU part	: 0xd40
"""

MAC_M2 = """\
machdep.cpu.brand_string: Apple M2
hw.optional.AdvSIMD: 1
hw.optional.arm.FEAT_BF16: 1
"""


def test_intel_amx_cpuinfo():
    cpu = parse_cpuinfo(INTEL_AMX)
    assert cpu == {"model": "Intel Xeon Platinum 8480+", "vendor": "Intel",
                   "simd": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], "native_bf16": True}


def test_amd_avx2_cpuinfo():
    cpu = parse_cpuinfo(AMD_AVX2)
    assert cpu == {"model": "AMD EPYC 7763", "vendor": "AMD", "simd": ["avx2"], "native_bf16": False}


def test_arm_cpuinfo_and_macos_sysctl():
    arm = parse_cpuinfo(ARM_GRAVITON3)
    assert arm["vendor"] == "ARM" and arm["model"] == "ARM 0xd40"
    assert arm["simd"] == ["asimd", "sve", "bf16"] and arm["native_bf16"]
    mac = parse_sysctl(MAC_M2)
    assert mac == {"model": "Apple M2", "vendor": "Apple", "simd": ["asimd", "bf16"], "native_bf16": True}
    assert parse_cpuinfo("")["model"] == "unknown"


def test_clean_model_name():
    assert clean_model_name("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz") == "Intel Core i7-8700"
    assert clean_model_name("AMD EPYC") == "AMD EPYC"


def fake_info(cpu_text: str, capability: str, gpu: dict | None = None) -> dict:
    info = {"cpu": parse_cpuinfo(cpu_text), "gpu": gpu,
            "torch": {"version": "2.13.0+cpu", "cpu_capability": capability, "threads": 2, "cuda": None}}
    return {"label": make_label(info), **info}


def test_labels_name_the_floating_point_path():
    assert fake_info(AMD_AVX2, "AVX2")["label"] == "AMD EPYC 7763 (avx2) · torch 2.13.0+cpu"
    assert fake_info(INTEL_AMX, "AVX512")["label"] == "Intel Xeon Platinum 8480+ (amx) · torch 2.13.0+cpu"
    # torch dispatching below the CPU's level (ATEN_CPU_CAPABILITY=avx2) is a different path
    assert fake_info(INTEL_AMX, "AVX2")["label"] == "Intel Xeon Platinum 8480+ (amx, torch avx2) · torch 2.13.0+cpu"
    gpu = {"names": ["NVIDIA H100 80GB HBM3"], "capability": ["9.0"], "cuda": "12.4", "cudnn": 90100}
    assert fake_info(AMD_AVX2, "AVX2", gpu)["label"] == (
        "AMD EPYC 7763 (avx2) · NVIDIA H100 80GB HBM3 · cuda 12.4 · torch 2.13.0+cpu")


def test_same_hardware_compares_what_decides_float_results():
    amd, intel = fake_info(AMD_AVX2, "AVX2"), fake_info(INTEL_AMX, "AVX512")
    assert same_hardware(amd, copy.deepcopy(amd)) and not same_hardware(amd, intel)
    assert not same_hardware(amd, None) and not same_hardware({}, {})
    other = copy.deepcopy(amd)
    other["torch"]["threads"] = 1  # parallel reductions split differently
    assert not same_hardware(amd, other)
    other = copy.deepcopy(amd)
    other.update(python="3.12.1", platform="elsewhere", lengen="9.9")
    assert same_hardware(amd, other)


def test_hardware_info_of_this_machine():
    info = hardware_info()
    assert isinstance(info["label"], str) and " · torch " in info["label"] and "\n" not in info["label"]
    assert isinstance(info["cpu"]["model"], str) and info["cpu"]["model"]
    assert isinstance(info["cpu"]["vendor"], str) and isinstance(info["cpu"]["native_bf16"], bool)
    assert isinstance(info["cpu"]["simd"], list) and isinstance(info["cpu"]["cores"], int)
    assert isinstance(info["torch"]["threads"], int) and info["torch"]["threads"] >= 1
    assert isinstance(info["torch"]["cpu_capability"], str) and isinstance(info["torch"]["mkldnn"], bool)
    assert info["gpu"] is None or info["gpu"]["names"]
    assert info["lengen"] and info["python"].count(".") == 2 and info["platform"]
    again = yaml.safe_load(yaml.safe_dump(info, allow_unicode=True))  # plain values: meta.yaml, W&B config
    assert again == info and same_hardware(info, again)
    assert hardware_info()["label"] == info["label"]

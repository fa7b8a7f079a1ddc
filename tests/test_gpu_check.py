"""benchmarks/gpu_check.sh, as far as a CPU runs it: the GPU sections named as skipped
(need CUDA), the CPU-safe parts run, one JSON written; and the MFU arithmetic it reports
on a GPU (train_throughput.mfu and its table of peaks), with known numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
GPU_SECTIONS = {"time_to_bot", "mfu", "generate", "serve", "qlora"}


def _train_throughput():
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tt = _train_throughput()


# -- MFU ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.5),  # the SXM5 part, as torch names it
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.5),
        ("NVIDIA H200 NVL", 835.5),
        ("NVIDIA GH200 480GB", 989.5),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 366.5),
    ],
)
def test_peak_of_known_gpus(name: str, tflops: float) -> None:
    assert tt.peak_bf16_tflops(name)[0] == tflops


@pytest.mark.parametrize(
    "name", ["NVIDIA A10G", "NVIDIA L40", "Tesla V100-SXM2-16GB", "Tesla T4", "AMD EPYC"]
)
def test_unknown_gpu_has_no_peak(name: str) -> None:
    """Near names are not taken for a known part (A10G is not the A10, L40 not the L40S);
    V100 and T4 have no bf16 tensor cores at all."""
    peak, why = tt.peak_bf16_tflops(name)
    assert peak is None
    assert name in why


def test_mfu_known_numbers() -> None:
    # 1B parameters at 50,000 tokens/s: 6 × 1e9 × 5e4 = 3e14 FLOP/s = 300 TFLOP/s.
    m = tt.mfu(50_000, 1_000_000_000, "NVIDIA A100-SXM4-40GB")
    assert m["achieved_tflops"] == pytest.approx(300.0)
    assert m["peak_bf16_tflops"] == 312.0
    assert m["mfu"] == pytest.approx(300 / 312)
    assert m["formula"] == "6·N·tokens/s"
    assert m["reason"] is None
    assert "mfu_with_attention" not in m  # asked for with the shape only


def test_mfu_with_attention_and_lora() -> None:
    # GPT-2 small on an H100 SXM: 124,439,808 parameters, 100,000 tokens/s, 256-token
    # blocks: 6N = 746,638,848 FLOPs a token, attention 12 × 12 × 768 × 256 = 28,311,552.
    m = tt.mfu(100_000, 124_439_808, "NVIDIA H100 80GB HBM3", layers=12, hidden=768, sequence=256)
    assert m["flops_per_token"] == 746_638_848
    assert m["achieved_tflops"] == pytest.approx(74.6638848)
    assert m["mfu"] == pytest.approx(74.6638848 / 989.5)
    assert m["achieved_tflops_with_attention"] == pytest.approx(77.49504)
    assert m["mfu_with_attention"] == pytest.approx(77.49504 / 989.5)
    lora = tt.mfu(100_000, 124_439_808, "NVIDIA H100 80GB HBM3", flops_per_parameter=4)
    assert lora["mfu"] == pytest.approx(m["mfu"] * 4 / 6)
    assert lora["formula"] == "4·N·tokens/s"


def test_mfu_of_an_unknown_gpu_is_null_with_the_reason() -> None:
    m = tt.mfu(1000, 124_439_808, "NVIDIA Future GPU", layers=12, hidden=768, sequence=256)
    assert m["mfu"] is None
    assert m["mfu_with_attention"] is None
    assert m["peak_bf16_tflops"] is None
    assert "NVIDIA Future GPU" in m["reason"]
    assert m["achieved_tflops"] == pytest.approx(6 * 124_439_808 * 1000 / 1e12)


# -- the script on a CPU ------------------------------------------------------------------


@pytest.mark.slow
def test_gpu_check_on_a_cpu(tmp_path: Path) -> None:
    """~45 s on 2 cores: the refusal and a tiny random model's generation, the rest
    skipped; the JSON at its default path in the working folder."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: gpu_check.sh would run its GPU sections (minutes)")
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_JSON"}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPU: none" in done.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["gpu"] is None
    assert report["cuda"] is None or isinstance(report["cuda"], str)
    assert report["torch"]
    assert report["failed"] == []

    skipped = {s["section"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == GPU_SECTIONS
    for name, reason in skipped.items():
        assert "CUDA" in reason, name
        assert report["sections"][name]["status"] == "skipped"
        assert f"skipped: {name}: " in done.stdout

    refusal = report["sections"]["qlora_refusal"]
    assert refusal["status"] == "ok"
    assert refusal["figures"]["ok"] is True
    assert "NVIDIA GPU" in refusal["figures"]["message"]

    generate = report["sections"]["generate_tiny"]
    assert generate["status"] == "ok"
    assert generate["seconds"] <= generate["cap_s"]
    tiny = generate["figures"]["models"]["tiny-random"]
    for method in ("pipeline", "ours", "as-pipeline"):
        assert tiny["methods"][method]["samples_per_second"]["median"] > 0
    assert report["headline"]["generate_tiny_speedup"]["tiny-random"] > 0

"""The device setup: CUDA-only switches are off on CPU, and each switch does what it says."""
import pytest
import torch

from utils.device import DeviceSetup, resolve_device
from utils.errors import UserError


def test_on_cpu_every_cuda_switch_is_off():
    setup = DeviceSetup.create(torch.device("cpu"), "bf16", channels_last=True, compile=True, cudnn_benchmark=True)
    assert (setup.amp_dtype, setup.channels_last, setup.compile) == (None, False, False)
    with setup.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    assert not setup.grad_scaler().is_enabled()


def test_mixed_precision_autocasts_matmuls_and_only_fp16_scales_the_loss():
    bf16 = DeviceSetup(torch.device("cpu"), torch.bfloat16, channels_last=False, compile=False)
    with bf16.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
    assert not bf16.grad_scaler().is_enabled()
    assert DeviceSetup(torch.device("cpu"), torch.float16, False, False).grad_scaler().is_enabled()


def test_channels_last_converts_conv_weights():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    DeviceSetup(torch.device("cpu"), None, channels_last=True, compile=False).place(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="DEVICE is cuda:1 but CUDA is not available here; use --device cpu"):
            resolve_device("cuda:1")


def test_a_cuda_device_beyond_the_gpu_count_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match=r"DEVICE is cuda:3 but this machine has 2 GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:3")


def test_a_cuda_device_becomes_the_current_one(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 1)]


def test_bf16_falls_back_to_fp16_on_a_gpu_without_native_bf16(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    caplog.set_level("INFO")
    setup = DeviceSetup.create(torch.device("cuda", 0), "bf16", channels_last=False, compile=False,
                               cudnn_benchmark=False)
    assert setup.amp_dtype == torch.float16
    assert "Tesla T4 has no native bf16: TRAIN.MIXED_PRECISION bf16 runs as fp16" in caplog.text
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert DeviceSetup.create(torch.device("cuda", 0), "bf16", False, False, False).amp_dtype == torch.bfloat16

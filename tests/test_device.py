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

import pytest
import torch

from agcc.devices import resolve_device


def test_auto_is_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_an_error_naming_the_key(device: str) -> None:
    with pytest.raises(ValueError, match=r"train\.device=.*no CUDA"):
        resolve_device(device, "train.device")


def test_device_params_take_one_gpu_by_index() -> None:
    from pydantic import ValidationError

    from agcc.params import ClusterParams, FeatureParams, TrainParams

    for section in (TrainParams, ClusterParams, FeatureParams):
        assert section(device="cuda:1").device == "cuda:1"
        with pytest.raises(ValidationError, match="device"):
            section(device="gpu")

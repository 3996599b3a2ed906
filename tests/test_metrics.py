"""Metrics equal scikit-image's on the SPEC protocol (8-bit grid, data range 255)."""
import numpy as np
import pytest
import torch

from ric_ext import metrics

skm = pytest.importorskip("skimage.metrics")


def _pair(shape, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    return x, (x + noise * torch.randn(shape, generator=g)).clamp(0, 1)


def _u8(t):
    return metrics.to_uint8_grid(t).numpy().astype(np.uint8)


@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 1, 17, 23), (1, 3, 160, 160)])
@pytest.mark.parametrize("noise", [0.01, 0.2])
def test_psnr_ssim_mae_match_skimage(shape, noise):
    x, y = _pair(shape, noise)
    a, b = _u8(x), _u8(y)
    for i in range(shape[0]):
        ai, bi = a[i].transpose(1, 2, 0), b[i].transpose(1, 2, 0)
        # float64 on both sides; differences are summation order only.
        assert metrics.psnr(x, y)[i].item() == pytest.approx(skm.peak_signal_noise_ratio(ai, bi, data_range=255),
                                                              rel=1e-12)
        ref = skm.structural_similarity(ai, bi, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
        assert metrics.ssim(x, y)[i].item() == pytest.approx(ref, abs=1e-9)
        assert metrics.mae(x, y)[i].item() == pytest.approx(np.abs(ai.astype(float) - bi).mean(), rel=1e-12)


def test_identical_images():
    x, _ = _pair((2, 3, 16, 16), 0.0)
    assert torch.isinf(metrics.psnr(x, x)).all()
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert (metrics.mae(x, x) == 0).all()


def test_agreement_and_errors():
    assert metrics.agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))

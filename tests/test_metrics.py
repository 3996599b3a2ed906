"""Metrics equal scikit-image's on the protocol of docs/scheme.md (8-bit grid, data range 255)."""

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
        assert metrics.psnr(x, y)[i].item() == pytest.approx(
            skm.peak_signal_noise_ratio(ai, bi, data_range=255), rel=1e-12
        )
        ref = skm.structural_similarity(
            ai, bi, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
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


# -- the authors' metrics (evaluate --metric-mode paper) -----------------------------------
@pytest.mark.parametrize("win", [7, 11])
def test_uniform_ssim_and_float_psnr_match_skimage_as_the_authors_called_it(win):
    x, y = _pair((3, 3, 32, 32), 0.05, seed=2)
    for i in range(3):
        a = x[i].permute(1, 2, 0).double().numpy() * 255
        b = y[i].permute(1, 2, 0).double().numpy() * 255
        # their call: structural_similarity(a, b, win_size=11, data_range=255, multichannel=True);
        # everything else at scikit-image's defaults (uniform window, sample covariance).
        ref = skm.structural_similarity(a, b, win_size=win, data_range=255.0, channel_axis=-1)
        assert metrics.ssim_uniform(x, y, win)[i].item() == pytest.approx(ref, abs=1e-9)  # float64, sum order only
        assert metrics.psnr_float(x, y)[i].item() == pytest.approx(
            skm.peak_signal_noise_ratio(a, b, data_range=255), rel=1e-12
        )
    with pytest.raises(ValueError, match="win_size"):
        metrics.ssim_uniform(x, y, 8)
    with pytest.raises(ValueError, match="at least"):
        metrics.ssim_uniform(x[..., :9, :9], y[..., :9, :9], 11)


def test_mean_psnr_guards_exact_recoveries():
    p = torch.tensor([30.0, float("inf"), 50.0])
    assert metrics.mean_psnr(p) == pytest.approx((30 + metrics.PSNR_CAP + 50) / 3)
    assert np.isnan(metrics.mean_psnr(torch.tensor([])))


def test_evaluate_paper_mode_and_exact_count(svhn_classifier, svhn_images):
    from ric_ext.evaluate import evaluate, format_table
    from ric_ext.models import RIC

    x = svhn_images[0][:3]
    res = evaluate(RIC(3, 4, 2), svhn_classifier, x, metric_mode="paper", wrong_key=False)
    for k in ("psnr_paper", "ssim_paper", "ssim_skimage_default"):
        assert np.isfinite(res[k])
    assert res["psnr_exact"] == 0 and "authors' SSIM (uniform 11x11, their call)" in format_table(res)
    with pytest.raises(ValueError, match="metric_mode"):
        evaluate(RIC(3, 4, 2), svhn_classifier, x, metric_mode="theirs")

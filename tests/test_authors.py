"""Loading weights in the authors' layout (csjunjun/RIC: Net.m1/m2/m3 = Prep/Hiding/Reveal).

The synthetic state dict below is built from their module names and shapes
(written out here independently of ric_ext.models.authors), and their forward
pass is re-stated functionally, so the test checks the key mapping *and* the
decoder reparametrisation against what their code would compute.
"""

import os

import pytest
import torch
import torch.nn.functional as F

from ric_ext.errors import CheckpointError
from ric_ext.models.authors import convert_state_dict, load_authors_checkpoint

PADS = {3: [1, 1, 1, 1], 4: [1, 2, 1, 2], 5: [2, 2, 2, 2]}


def _conv(sd, name, cout, cin, k, g):
    sd[name + ".weight"] = torch.randn(cout, cin, k, k, generator=g) * (1.0 / (cin * k * k)) ** 0.5
    sd[name + ".bias"] = torch.randn(cout, generator=g) * 0.05


def their_state_dict(w=6, decoder_in=3, g=None, prefix="module."):
    g = g or torch.Generator().manual_seed(0)
    sd = {}
    for m, letter, cin in (("m1", "P", 3), ("m2", "H", 3 * w + 3), ("m3", "R", decoder_in)):
        for k in (3, 4, 5):
            for i in range(4):
                _conv(sd, f"{m}.initial{letter}{k}.{2 * i}", w, cin if i == 0 else w, k, g)
        _conv(sd, f"{m}.final{letter}3.0", w, 3 * w, 3, g)
        _conv(sd, f"{m}.final{letter}4.0", w, 3 * w, 4, g)
        _conv(sd, f"{m}.final{letter}4.2", w, w, 4, g)
        _conv(sd, f"{m}.final{letter}5.0", w, 3 * w, 5, g)
    for j in (1, 2, 3):
        _conv(sd, f"m1.se{j}.fc1", w // 2, w, 1, g)
        _conv(sd, f"m1.se{j}.fc2", w, w // 2, 1, g)
    _conv(sd, "m2.finalH.0", 3, 3 * w, 1, g)
    _conv(sd, "m3.finalR.0", 3, 3 * w, 1, g)
    return {prefix + k: v for k, v in sd.items()}


def _c(sd, name, x, pad):
    return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], padding=pad)


def _trunk(sd, m, letter, x, se):
    outs = []
    for k in (3, 4, 5):
        h = x
        for i in range(4):
            h = F.relu(_c(sd, f"{m}.initial{letter}{k}.{2 * i}", h, PADS[k][i]))
        outs.append(h)
    mid = torch.cat(outs, 1)
    heads = [
        F.relu(_c(sd, f"{m}.final{letter}3.0", mid, 1)),
        F.relu(_c(sd, f"{m}.final{letter}4.2", F.relu(_c(sd, f"{m}.final{letter}4.0", mid, 1)), 2)),
        F.relu(_c(sd, f"{m}.final{letter}5.0", mid, 2)),
    ]
    if se:
        heads = [
            t
            * torch.sigmoid(
                _c(sd, f"m1.se{j + 1}.fc2", F.relu(_c(sd, f"m1.se{j + 1}.fc1", t.mean((2, 3), keepdim=True), 0)), 0)
            )
            for j, t in enumerate(heads)
        ]
    return torch.cat(heads, 1)


def their_forward(sd, x, z, lam=0.8, residual_decoder=True):
    """Their Net.forward without quantisation: secret = (x - 0.5) / 0.5, cover = z."""
    sd = {k.removeprefix("module."): v.double() for k, v in sd.items()}
    x, z = x.double(), z.double()
    feats = _trunk(sd, "m1", "P", (x - 0.5) / 0.5, se=True)
    e = _c(sd, "m2.finalH.0", _trunk(sd, "m2", "H", torch.cat([feats, z], 1), se=False), 0)
    c = (1 - lam) * e + lam * z
    dec_in = (c - lam * z) / (1 - lam) if residual_decoder else torch.cat([c, z], 1)
    return c, _c(sd, "m3.finalR.0", _trunk(sd, "m3", "R", dec_in, se=False), 0)


@pytest.mark.parametrize("decoder_in", [3, 6])
def test_converted_weights_compute_what_their_code_computes(decoder_in, tmp_path):
    sd = their_state_dict(decoder_in=decoder_in)
    path = tmp_path / "Svhn.pth.tar"
    torch.save({"epoch": 200, "state_dict": sd, "optimizer": {}}, path)
    model = load_authors_checkpoint(path).double()
    assert model.decoder_z == (decoder_in == 6)
    g = torch.Generator().manual_seed(1)
    x, z = torch.rand(2, 3, 12, 12, generator=g).double(), torch.rand(2, 3, 12, 12, generator=g).double()
    c_ref, x_ref = their_forward(sd, x, z, residual_decoder=decoder_in == 3)
    with torch.no_grad():
        e = model.encoder(model.feature((x - 0.5) / 0.5), z)
        c = 0.2 * e + 0.8 * z
        x_hat = model.decoder((c - 0.8 * z) / 0.2, z if model.decoder_z else None)
    # float64 forward passes; the weights were converted in float32 (the model's dtype), so a
    # plain key mapping agrees to float64 rounding, and the reparametrised decoder's first-layer
    # weights, (1 - lam) Wc and Wz + lam Wc, carry float32 rounding (~6e-8 relative): 1e-6 here.
    torch.testing.assert_close(c, c_ref, rtol=1e-10, atol=1e-10)
    tol = 1e-9 if decoder_in == 3 else 1e-6
    torch.testing.assert_close(x_hat, x_ref, rtol=tol, atol=tol)


def test_bare_state_dict_without_module_prefix(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(their_state_dict(prefix=""), path)
    assert load_authors_checkpoint(path).config()["width"] == 6


def test_bad_authors_files_raise(tmp_path):
    sd = their_state_dict()
    del sd["module.m2.finalH.0.bias"]
    with pytest.raises(CheckpointError, match="finalH.0.bias"):
        convert_state_dict(sd)
    sd = their_state_dict()
    sd["module.m9.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected"):
        convert_state_dict(sd)
    with pytest.raises(CheckpointError, match="layout"):
        convert_state_dict({"conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not found"):
        load_authors_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_authors_checkpoint(tmp_path / "junk.pth")


def test_import_authors_cli(tmp_path):
    import subprocess
    import sys

    from ric_ext.models import load_ric

    torch.save({"epoch": 1, "state_dict": their_state_dict()}, tmp_path / "theirs.pth.tar")
    cmd = [
        sys.executable,
        "-m",
        "ric_ext",
        "import-authors",
        "--input",
        str(tmp_path / "theirs.pth.tar"),
        "--out",
        str(tmp_path / "ours.pt"),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert load_ric(tmp_path / "ours.pt").config()["width"] == 6
    p = subprocess.run(cmd, capture_output=True, text=True)  # never overwrites
    assert p.returncode != 0 and os.path.getsize(tmp_path / "ours.pt") > 0

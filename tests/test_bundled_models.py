"""Models by name: bundled RIC weights ('svhn', 'faces') and the LFW identity classifier."""

import os

import pytest
import torch
from conftest import DATA, needs_shared

from ric_ext.errors import CheckpointError
from ric_ext.models import load_classifier, load_ric
from ric_ext.models.registry import ASSETS, CLASSIFIERS, bundled_model_path


def test_load_ric_by_name():
    m = load_ric("svhn")
    ref = load_ric(bundled_model_path("svhn"))
    assert m.config() == ref.config()
    for k, v in m.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k])
    with pytest.raises(ValueError, match="bundled models"):
        bundled_model_path("cats")
    for old in ("svhn-v1", "svhn-v2", "svhn-v3"):  # archived models, kept for their old ciphertexts
        assert load_ric(old).config() == m.config()
    with pytest.raises(
        CheckpointError,
        match="bundled models: faces, svhn; archived: faces-v1, faces-v2, faces-v3, faces-v4, faces-v5, "
        "svhn-v1, svhn-v2, svhn-v3",
    ):
        load_ric("no-such-model.pt")


def test_archived_models_are_checked_and_their_absence_explained(monkeypatch, tmp_path):
    from ric_ext.models.classifiers import fingerprint
    from ric_ext.models.registry import ARCHIVED_RIC, model_for_fingerprint

    for name, a in ARCHIVED_RIC.items():  # the registry's fingerprints are those of the archived files
        assert model_for_fingerprint(fingerprint(load_ric(name))) == name == model_for_fingerprint(a.fingerprint)
    assert model_for_fingerprint(fingerprint(load_ric("svhn"))) == "svhn"
    monkeypatch.setenv("RIC_ARCHIVE", str(tmp_path))
    with pytest.raises(CheckpointError, match="models/archive/ric_svhn_w32_v2.pt in the ric_ext repository"):
        load_ric("svhn-v2")
    (tmp_path / "ric_svhn_w32_v2.pt").write_bytes(b"not the weights")
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_ric("svhn-v2")


def test_the_installed_package_ships_only_the_current_models():
    # The wheel carries the current RIC models (and their settings), the three bundled classifiers and their
    # NAE banks, and the demo's samples:
    # at most 20 MB of weights (issue 19); superseded weights are in models/archive/.
    files = sorted(os.listdir(ASSETS))
    assert sorted(os.listdir(os.path.join(ASSETS, "banks"))) == [
        "20cd9b35655b9d6f_b64_3x64x64.npz",  # lfw
        "5488361499244a0c_b64_3x32x32.npz",  # svhn
        "58ee62ccdc319350_b64_3x160x160.npz",  # lfw160
        "e5b5f30982015874_paa0cc4d2_b64_3x32x32.npz",  # cifar10-resnet20's portable bank (issue 36)
    ]
    assert files == [
        "PROVENANCE.md",
        "banks",
        "lfw160_samples.npz",
        "lfw_identity.pt",
        "lfw_identity160.pt",
        "model_settings.json",
        "ric_faces64_v6.pt",
        "ric_svhn_w32_v4.pt",
        "svhn_ccexam.pth",
        "svhn_samples.npz",
    ]
    weights = sum(os.path.getsize(os.path.join(ASSETS, f)) for f in files if f.endswith((".pt", ".pth")))
    assert weights <= 20 * 2**20
    # the wheel stays <= 25 MB (issue 38): the assets as the wheel's zip deflates them (22.78 MB on
    # 2026-12-07), leaving 2 MB for the code and the native module (together ~1 MB deflated)
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for d, _, fs in os.walk(ASSETS):
            for f in fs:
                z.write(os.path.join(d, f), os.path.relpath(os.path.join(d, f), ASSETS))
    assert len(buf.getvalue()) <= 23_000_000


def test_faces_model_by_name():
    m = load_ric("faces")
    assert m.config() == dict(channels=3, width=32, depth=4, lam=0.8)
    for old in (
        "faces-v1",
        "faces-v2",
        "faces-v3",
        "faces-v4",
        "faces-v5",
    ):  # archived faces models, kept for their old ciphertexts
        assert load_ric(old).config() == m.config()


def test_lfw_classifier_falls_back_to_the_bundled_copy(tmp_path):
    clf = load_classifier("lfw", tmp_path)  # an empty models folder
    with torch.no_grad():
        out = clf(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 62) and not clf.training


@needs_shared
@pytest.mark.parametrize("name", ["lfw", "lfw160"])
def test_lfw_classifier_reported_test_accuracy_reproduces(name):
    from ric_ext import data as data_mod

    blob = torch.load(os.path.join(ASSETS, CLASSIFIERS[name]), weights_only=True)
    x, y = data_mod.lfw("test", DATA, size=blob["size"]).tensors()
    clf = load_classifier(name, os.path.join(DATA, "..", "models"))
    assert clf.input_size == blob["size"] == {"lfw": 64, "lfw160": 160}[name]
    with torch.no_grad():
        pred = torch.cat([clf(x[i : i + 128]).argmax(1) for i in range(0, len(x), 128)])
    acc = float((pred == y).float().mean())
    # eval-mode inference on the same images; only float summation order may differ, at most one image
    assert abs(acc - blob["test_accuracy"]) <= 1.0 / len(y) + 1e-9
    assert acc > 0.5  # 62 identities: chance is 1.6%


def test_bad_lfw_classifier_file(tmp_path):
    from ric_ext.models import load_lfw_classifier

    torch.save({"format": "something else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an LFW classifier"):
        load_lfw_classifier(tmp_path / "x.pt")


def test_classifier_rejects_images_of_another_size():
    # LFWNet pools globally, so 32x32 or 160x160 input would run and label badly: the NAE would
    # then target a wrong label silently. The trained size travels in the file and is enforced.
    clf = load_classifier("lfw", ASSETS)
    assert clf.input_size == 64
    with pytest.raises(ValueError, match="takes 64x64 images, got 160x160"):
        clf(torch.rand(1, 3, 160, 160))
    with pytest.raises(ValueError, match="takes 32x32 images, got 64x64"):
        load_classifier("svhn", ASSETS)(torch.rand(1, 3, 64, 64))


def test_lfw160_classifier_by_name(tmp_path):
    from ric_ext.models.classifiers import LFWNet

    bundled = load_classifier("lfw160", tmp_path)  # nothing in the models folder: the bundled one
    assert bundled.input_size == 160 and bundled.net.stem is not None and not bundled.training
    # a file in the models folder comes first, in the layout python/recipes/train_lfw_classifier.py writes
    blob = torch.load(os.path.join(ASSETS, CLASSIFIERS["lfw"]), weights_only=True)
    torch.save(dict(blob, size=160, state_dict=LFWNet(62).state_dict()), tmp_path / CLASSIFIERS["lfw160"])
    clf = load_classifier("lfw160", tmp_path)
    assert clf.input_size == 160 and not clf.training and clf.net.stem is None
    with torch.no_grad():
        assert clf(torch.rand(2, 3, 160, 160)).shape == (2, 62)
    with pytest.raises(ValueError, match="takes 160x160 images"):
        clf(torch.rand(1, 3, 64, 64))


def test_provenance_lists_every_shipped_file_with_its_sha256():
    import hashlib
    import re

    with open(os.path.join(ASSETS, "PROVENANCE.md")) as f:
        rows = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", f.read(), re.M))
    shipped = sorted(
        os.path.relpath(os.path.join(d, f), ASSETS).replace(os.sep, "/")
        for d, _, files in os.walk(ASSETS)
        for f in files
        if f != "PROVENANCE.md"
    )
    assert sorted(rows) == shipped
    for name, sha in rows.items():
        with open(os.path.join(ASSETS, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha, name

"""Issue 19, items 1, 2 and 4: models that carry their settings, the user's model store, and
classifiers brought as a torch.export / TorchScript file or an import path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import MODELS, tiny_train_config
from PIL import Image
from torch import nn

from ric_ext import Cipher, Key
from ric_ext.cipher import DIGITS_NAE
from ric_ext.errors import CheckpointError
from ric_ext.fileformat import peek_header
from ric_ext.models import (
    fingerprint,
    load_classifier,
    load_classifier_file,
    load_ric,
    save_classifier,
    save_ric,
    store,
    store_add,
)
from ric_ext.models import settings as model_settings
from ric_ext.models.classifiers import SVHN_MEAN, SVHN_STD
from ric_ext.models.registry import BUNDLED_FINGERPRINTS, find_classifier, model_for_fingerprint
from ric_ext.nae import NAEConfig


def _run(*args, ok=True, cwd=None):
    p = subprocess.run(
        [sys.executable, "-m", "ric_ext", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, RIC_MODELS=MODELS),
        cwd=cwd or os.path.dirname(__file__),
    )
    if ok and p.returncode != 0:
        raise AssertionError(f"ric_ext {args[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def _tiny_net(channels=3, classes=5):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes)
    )


@pytest.fixture(scope="module")
def svhn_pt2(tmp_path_factory, svhn_classifier):
    """The SVHN classifier's network exported as a .pt2 program, its normalisation in the file."""
    path = tmp_path_factory.mktemp("byo") / "svhn_export.pt2"
    save_classifier(path, svhn_classifier.net, input_size=32, mean=SVHN_MEAN, std=SVHN_STD, classes=list("0123456789"))
    return path


# ---- classifier files ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pt2", ".ts"])
def test_classifier_file_matches_the_network(tmp_path, suffix):
    net = _tiny_net(channels=1).eval()
    path = tmp_path / ("c" + suffix)
    save_classifier(path, net, input_size=12, channels=1, mean=[0.5], std=[0.25], classes=list("abcde"))
    clf = load_classifier(str(path))
    x = torch.rand(3, 1, 12, 12)
    # the same float32 graph on the same CPU: only op-ordering differences are allowed
    torch.testing.assert_close(clf(x), net((x - 0.5) / 0.25), rtol=1e-5, atol=1e-6)
    assert (clf.input_size, clf.channels, clf.classes) == (12, 1, list("abcde"))
    with pytest.raises(ValueError, match="takes 12x12"):
        clf(torch.rand(1, 1, 16, 16))
    with pytest.raises(FileExistsError):  # nothing saved is overwritten
        save_classifier(path, net, input_size=12, channels=1)


def test_pad_round_trip_with_a_one_channel_file_classifier(tmp_path):
    path = tmp_path / "grey.pt2"
    save_classifier(path, _tiny_net(channels=1), input_size=12, channels=1)
    cipher = Cipher(load_classifier(str(path)), Key.generate())
    assert cipher.channels == 1
    x = torch.rand(3, 1, 12, 12)
    ct = cipher.encrypt(x)
    assert ct.pixels.shape == (3, 1, 12, 12)
    assert torch.equal(cipher.classify(ct), ct.labels)
    # the 8-bit rounding of the padded share, scaled back (as in test_pad_scheme)
    assert float((cipher.decrypt(ct) - x).abs().max()) <= 0.5 / 255 / (0.2 * 0.98) + 1e-6


def test_fingerprint_covers_graph_and_metadata(tmp_path):
    net = _tiny_net()
    save_classifier(tmp_path / "a.pt2", net, input_size=8)
    save_classifier(tmp_path / "b.pt2", net, input_size=8, mean=[0.5] * 3)
    fa, fb = (fingerprint(load_classifier_file(tmp_path / n)) for n in ("a.pt2", "b.pt2"))
    assert fa != fb  # same weights, other normalisation: another classifier
    assert fa == fingerprint(load_classifier_file(tmp_path / "a.pt2"))  # stable across loads


def test_sidecar_for_a_file_made_elsewhere(tmp_path):
    net = _tiny_net().eval()
    path = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 8, 8)), str(path))  # no metadata inside
    with pytest.raises(ValueError, match="states no input size"):
        load_classifier_file(path)
    (tmp_path / "plain.ts.json").write_text(json.dumps({"input_size": 8, "std": [0.0, 1, 1]}))
    with pytest.raises(ValueError, match="'std' must be positive"):
        load_classifier_file(path)
    (tmp_path / "plain.ts.json").write_text(json.dumps({"input_size": 8, "classes": ["x"] * 5}))
    clf = load_classifier_file(path)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(clf(x), net(x), rtol=1e-5, atol=1e-6)
    (tmp_path / "garbage.pt2").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read it as a torch.export program"):
        load_classifier_file(tmp_path / "garbage.pt2")


def test_import_path_classifier(tmp_path, monkeypatch):
    (tmp_path / "my_clf.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))\n"
        "def not_a_module():\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clf = load_classifier("my_clf:make")
    assert clf(torch.rand(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="returned int"):
        load_classifier("my_clf:not_a_module")
    with pytest.raises(ValueError, match="cannot import"):
        load_classifier("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="classifier must be one of"):
        load_classifier("imagenet")


# ---- models carry their settings --------------------------------------------------------------
def test_bundled_models_carry_their_settings():
    faces, svhn = load_ric("faces"), load_ric("svhn")
    # folded in beside the files: the weights (and the fingerprints old ciphertexts pin) are unchanged
    assert BUNDLED_FINGERPRINTS[fingerprint(faces)] == "faces" and BUNDLED_FINGERPRINTS[fingerprint(svhn)] == "svhn"
    fs = model_settings.of(faces)
    assert fs["classifier"] == {"name": "lfw", "fingerprint": fingerprint(load_classifier("lfw"))}
    assert (fs["input_size"], fs["channels"], fs["scheme"], fs["nae"]["lr"]) == (64, 3, "paper", 0.05)
    assert fs["nae"]["check_margin"] == 2.0
    ss = model_settings.of(svhn)
    assert ss["classifier"]["fingerprint"] == fingerprint(load_classifier("svhn"))
    assert (ss["input_size"], ss["nae"]) == (32, NAEConfig(check_margin=2.0).to_dict())
    assert all(e["from"] for e in model_settings._bundled()["ric"].values())  # each says where it came from


def test_cipher_uses_the_carried_nae_settings_unless_given():
    faces, lfw = load_ric("faces"), load_classifier("lfw")
    assert Cipher.paper(faces, lfw, Key.generate()).nae_config.lr == 0.05
    assert Cipher.paper(faces, lfw, Key.generate(), nae=NAEConfig(lr=0.02)).nae_config.lr == 0.02
    pad = Cipher.pad(lfw, Key.generate()).nae_config  # the lfw classifier's own (docs/security.md)
    assert (pad.lr, pad.check_margin, pad.decorrelate) == (0.05, 2.0, 0.5)
    svhn = Cipher.pad(load_classifier("svhn"), Key.generate()).nae_config
    assert svhn == NAEConfig(check_margin=2.0)
    mine = load_classifier("svhn")
    del mine.ric_settings  # a classifier that carries nothing gets NAEConfig's defaults
    assert Cipher.pad(mine, Key.generate()).nae_config == NAEConfig()
    # the digits scheme has its own attack settings (the carried ones were measured for the pad)
    assert Cipher(lfw, Key.generate()).nae_config == DIGITS_NAE
    assert Cipher(lfw, Key.generate(), nae=NAEConfig(lr=0.3)).nae_config.lr == 0.3


def test_save_ric_keeps_settings(tmp_path, tiny_trained):
    carried = {"classifier": {"name": "svhn", "fingerprint": "ab" * 32}, "input_size": 32, "channels": 3}
    save_ric(tmp_path / "m.pt", tiny_trained, settings={**carried, "nae": NAEConfig(lr=0.03).to_dict()})
    m = load_ric(tmp_path / "m.pt")
    assert model_settings.of(m)["nae"]["lr"] == 0.03 and model_settings.of(m)["input_size"] == 32
    assert fingerprint(m) == fingerprint(tiny_trained)
    with pytest.raises(ValueError, match="malformed NAE"):
        save_ric(tmp_path / "bad.pt", tiny_trained, settings={"nae": {"lr": 0.1}})


def test_encrypt_model_faces_needs_no_other_flag(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(photo).save(tmp_path / "in" / "p.jpg")
    _run("keygen", "--out", tmp_path / "k.json")
    _run("encrypt", "--model", "faces", "--key", tmp_path / "k.json", "--input", tmp_path / "in",
         "--output", tmp_path / "ct", "--no-progress")  # fmt: skip
    h = peek_header(tmp_path / "ct" / "p.png")
    assert h["nae"]["lr"] == 0.05 and h["classifier"] == fingerprint(load_classifier("lfw"))
    assert Image.open(tmp_path / "ct" / "p.png").size == (64, 64)
    _run("encrypt", "--model", "faces", "--nae-lr", "0.02", "--key", tmp_path / "k.json", "--input",
         tmp_path / "in", "--output", tmp_path / "ct2", "--no-progress")  # fmt: skip
    assert peek_header(tmp_path / "ct2" / "p.png")["nae"]["lr"] == 0.02
    _run("decrypt", "--key", tmp_path / "k.json", "--input", tmp_path / "ct", "--output", tmp_path / "pt",
         "--no-progress")  # fmt: skip
    assert Image.open(tmp_path / "pt" / "p.png").size == (64, 64)


# ---- a classifier file end to end: train a tiny RIC for it, store, decrypt with the key alone --
def test_exported_classifier_train_encrypt_decrypt(tmp_path, monkeypatch, svhn_pt2, svhn_ds, svhn_images):
    from ric_ext.training import Trainer

    monkeypatch.setenv("RIC_HOME", str(tmp_path / "home"))  # subprocesses inherit it
    cfg = tiny_train_config(tmp_path / "run", 2, classifier=str(svhn_pt2), val_every=2, val_n=4)
    trainer = Trainer(cfg, dataset=svhn_ds, val_dataset=svhn_ds, progress=False)
    trainer.train()
    model = load_ric(tmp_path / "run" / "best.pt")
    clf = load_classifier(str(svhn_pt2))
    carried = model_settings.of(model)
    assert carried["classifier"] == {"name": str(svhn_pt2), "fingerprint": fingerprint(clf)}
    assert (carried["input_size"], carried["channels"]) == (32, 3)

    x, _ = svhn_images
    assert Cipher.paper(model, clf, Key.generate()).nae_config.steps == 2  # the run's own (tiny) NAE settings
    cipher = Cipher.paper(model, clf, Key.generate(), nae=NAEConfig())  # enough steps to pass the ciphertext check
    ct = cipher.encrypt(x[:4])
    assert torch.equal(cipher.classify(ct), ct.labels)
    assert ct.header["classifier"] == fingerprint(clf)
    # a tiny, barely trained model: the round trip's mechanics, not its quality
    assert cipher.decrypt(ct).shape == (4, 3, 32, 32)

    # the CLI with the file: encrypt needs only --model (its classifier comes from the model),
    # classify with the file agrees, decrypt finds everything by fingerprint once stored
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            tmp_path / "in" / f"{i}.png"
        )
    key = tmp_path / "k.json"
    _run("keygen", "--out", key)
    ric_file = tmp_path / "run" / "best.pt"
    _run("encrypt", "--model", ric_file, "--nae-steps", 100, "--key", key, "--input", tmp_path / "in",
         "--output", tmp_path / "ct", "--no-progress")  # fmt: skip
    assert peek_header(tmp_path / "ct" / "0.png")["classifier"] == fingerprint(clf)
    plain = _run("classify", "--classifier", svhn_pt2, "--input", tmp_path / "in").stdout.split()[1::2]
    remote = _run("classify", "--classifier", svhn_pt2, "--input", tmp_path / "ct").stdout.split()[1::2]
    assert plain == remote and len(plain) == 3
    p = _run("decrypt", "--key", key, "--input", tmp_path / "ct", "--output", tmp_path / "pt0", ok=False)
    assert p.returncode == 2 and "unknown RIC weights (fingerprint" in p.stderr and "model store" in p.stderr
    _run("models", "add", ric_file, "--name", "my-ric")
    p = _run("decrypt", "--key", key, "--input", tmp_path / "ct", "--output", tmp_path / "pt0", ok=False)
    assert p.returncode == 2 and "no classifier with fingerprint" in p.stderr and "model store" in p.stderr
    _run("models", "add", svhn_pt2, "--name", "my-svhn")
    listed = _run("models", "list").stdout
    assert "my-svhn\tclassifier" in listed and "my-ric\tric" in listed
    _run("decrypt", "--key", key, "--input", tmp_path / "ct", "--output", tmp_path / "pt", "--no-progress")
    assert sorted(os.listdir(tmp_path / "pt")) == ["0.png", "1.png", "2.png"]
    # encrypt and evaluate take the file directly too (the pad scheme: no RIC model at all)
    _run("encrypt", "--classifier", svhn_pt2, "--key", key, "--input", tmp_path / "in", "--output",
         tmp_path / "pad", "--no-progress")  # fmt: skip
    assert peek_header(tmp_path / "pad" / "0.png")["classifier"] == fingerprint(clf)
    out = _run("evaluate", "--classifier", svhn_pt2, "--dataset", "svhn", "--n", 4, "--out", tmp_path / "ev").stdout
    assert "agreement" in out.lower() and (tmp_path / "ev" / "report.md").exists()

    # and from Python: the cipher a ciphertext needs, from its header alone
    c2 = Cipher.from_ciphertext(ct, cipher.key)
    assert torch.equal(c2.decrypt(ct), cipher.decrypt(ct))
    assert find_classifier(fingerprint(clf)) == "my-svhn" and model_for_fingerprint(fingerprint(model)) == "my-ric"


# ---- the store -------------------------------------------------------------------------------
def test_store_add_is_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("RIC_HOME", str(tmp_path / "home"))
    net = _tiny_net()
    save_classifier(tmp_path / "a.pt2", net, input_size=8)
    save_classifier(tmp_path / "b.pt2", net, input_size=8, mean=[0.1] * 3)
    e = store_add.add(tmp_path / "a.pt2", "mine")
    assert e["kind"] == "classifier" and store_add.add(tmp_path / "a.pt2", "mine") == e  # the same file again: a no-op
    with pytest.raises(FileExistsError, match="already has a model named 'mine'"):
        store_add.add(tmp_path / "b.pt2", "mine")
    with pytest.raises(ValueError, match="built-in"):
        store_add.add(tmp_path / "b.pt2", "svhn")
    with pytest.raises(ValueError, match="name must be"):
        store_add.add(tmp_path / "b.pt2", "../escape")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither RIC weights"):
        store_add.add(tmp_path / "notes.txt")
    assert [x["name"] for x in store.entries()] == ["mine"]
    assert fingerprint(load_classifier("mine")) == e["fingerprint"]


def test_from_ciphertext_names_what_is_missing(tmp_path, tiny_trained, svhn_classifier, svhn_images):
    key = Key.generate()
    ct = Cipher.paper(tiny_trained, svhn_classifier, key).encrypt(svhn_images[0][:2])
    with pytest.raises(CheckpointError, match="no RIC weights with fingerprint .* model store"):
        Cipher.from_ciphertext(ct, key)
    pad = Cipher(svhn_classifier, key).encrypt(svhn_images[0][:2])
    assert torch.equal(Cipher.from_ciphertext(pad, key).decrypt(pad), Cipher(svhn_classifier, key).decrypt(pad))


@pytest.mark.parametrize("version", [1, 2])
def test_old_ciphertexts_decrypt_with_the_key_alone(tmp_path, monkeypatch, version):
    # Formats 1 and 2 name their classifier and RIC weights by fingerprint only: decrypt finds the
    # bundled ones by themselves, and the format-1 fixture's own tiny model once it is in the store.
    import shutil

    folder = os.path.join(os.path.dirname(__file__), "data", f"format_v{version}")
    monkeypatch.setenv("RIC_HOME", str(tmp_path / "home"))
    key = tmp_path / "key.json"
    shutil.copy(os.path.join(folder, "key.json"), key)
    os.chmod(key, 0o600)
    if version == 1:
        p = _run("decrypt", "--key", key, "--input", folder, "--output", tmp_path / "none", ok=False)
        assert p.returncode == 2 and "models add" in p.stderr
        _run("models", "add", os.path.join(folder, "tiny_ric.pt"))
    _run("decrypt", "--key", key, "--input", folder, "--output", tmp_path / "out", "--no-progress")
    expected = np.load(os.path.join(folder, "expected.npz"))["decrypted"]
    got = np.stack(
        [np.asarray(Image.open(tmp_path / "out" / f"c{i}.png")).transpose(2, 0, 1) for i in range(len(expected))]
    )
    assert np.array_equal(got, expected)

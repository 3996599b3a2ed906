"""The command line end to end on a temporary folder (tiny model, real images)."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, needs_shared
from PIL import Image

from ric_ext.models import save_ric


def _run(*args, ok=True):
    env = dict(os.environ, RIC_MODELS=MODELS)
    p = subprocess.run(
        [sys.executable, "-m", "ric_ext", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(__file__),
    )
    if ok and p.returncode != 0:
        raise AssertionError(f"ric_ext {args[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_trained, svhn_images):
    d = tmp_path_factory.mktemp("cli")
    save_ric(d / "model.pt", tiny_trained)
    (d / "plain").mkdir()
    x, _ = svhn_images
    for i in range(3):
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(d / "plain" / f"img{i}.png")
    return d


def test_keygen_encrypt_classify_decrypt(workspace):
    d = workspace
    out = _run("keygen", "--out", d / "key.json").stdout
    assert "Key(id=" in out and stat.S_IMODE(os.stat(d / "key.json").st_mode) == 0o600
    common = ["--key", d / "key.json", "--model", d / "model.pt", "--nae-steps", "3", "--no-progress"]
    p = _run("encrypt", "--input", d / "plain", "--output", d / "enc", *common)
    # --model without --scheme means the paper's scheme, which leaks: the user is told so
    assert "warning: a RIC model without scheme= selects the paper's scheme" in p.stderr
    files = sorted(os.listdir(d / "enc"))
    assert files == ["img0.png", "img1.png", "img2.png"]
    labels = _run("classify", "--input", d / "enc").stdout.strip().splitlines()
    assert len(labels) == 3 and all(l.split("\t")[1].isdigit() for l in labels)
    _run("decrypt", "--input", d / "enc", "--output", d / "dec", *common)
    with Image.open(d / "dec" / "img1.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    # Never overwrites: a second run into the same folder fails and leaves files alone.
    before = (d / "dec" / "img1.png").read_bytes()
    p = _run("decrypt", "--input", d / "enc", "--output", d / "dec", *common, ok=False)
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr
    assert (d / "dec" / "img1.png").read_bytes() == before
    # A wrong key is a clear error, not a wrong image.
    _run("keygen", "--out", d / "other.json")
    p = _run(
        "decrypt",
        "--input",
        d / "enc",
        "--output",
        d / "dec2",
        "--key",
        d / "other.json",
        "--model",
        d / "model.pt",
        "--nae-steps",
        "3",
        "--no-progress",
        ok=False,
    )
    assert p.returncode == 2 and "another key" in p.stderr
    assert not os.path.exists(d / "dec2" / "img0.png")
    assert "ric-ext-key" not in p.stderr and json.load(open(d / "other.json"))["key"] not in p.stderr


@needs_shared
def test_evaluate_writes_report(workspace):
    d = workspace
    out = _run(
        "evaluate",
        "--model",
        d / "model.pt",
        "--n",
        "4",
        "--nae-steps",
        "3",
        "--out",
        d / "report",
        "--data",
        os.path.join(MODELS, "..", "data"),
    ).stdout
    assert "recovery PSNR" in out and "wrong-key decryption PSNR" in out
    rep = json.load(open(d / "report" / "report.json"))
    assert rep["n"] == 4 and 0 <= rep["agreement"] <= 1
    assert os.path.isfile(d / "report" / "grid.png")


@needs_shared
def test_evaluate_takes_the_bank_it_is_given(tmp_path):
    """--bank and --portable reach the cipher evaluate measures (they were once parsed and ignored): a bank
    made for another classifier is refused, and --portable takes the shipped portable bank."""
    from ric_ext.bank import BankSettings, train_bank
    from ric_ext.models import load_classifier

    other = train_bank(load_classifier("svhn"), (3, 32, 32), 64, BankSettings(entries=1, steps=1), progress=False)
    other.save(tmp_path / "svhn_bank.npz")
    data = os.path.join(MODELS, "..", "data")
    common = ["evaluate", "--dataset", "cifar10", "--classifier", "cifar10-resnet20", "--n", "2", "--data", data]
    p = _run(*common, "--bank", tmp_path / "svhn_bank.npz", "--out", tmp_path / "r1", ok=False)
    assert p.returncode != 0 and "the NAE bank is for classifier" in p.stderr
    out = _run(*common, "--portable", "--out", tmp_path / "r2").stdout  # the shipped portable bank
    assert "recovery PSNR" in out


@needs_shared
def test_train_cli(workspace, tmp_path):
    out = tmp_path / "run"
    _run(
        "train",
        "--width",
        "4",
        "--depth",
        "2",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--nae-steps",
        "2",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
        "--data",
        os.path.join(MODELS, "..", "data"),
    )
    assert os.path.isfile(out / "checkpoint.pt") and os.path.isfile(out / "metrics.jsonl")


def test_errors_are_clean(workspace, tmp_path):
    p = _run(
        "decrypt",
        "--input",
        tmp_path / "missing",
        "--output",
        tmp_path / "o",
        "--key",
        workspace / "key.json",
        "--model",
        workspace / "model.pt",
        ok=False,
    )
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr
    p = _run(
        "encrypt",
        "--input",
        workspace / "plain",
        "--output",
        tmp_path / "o",
        "--key",
        tmp_path / "nokey",
        "--model",
        workspace / "model.pt",
        ok=False,
    )
    assert p.returncode == 2 and "key file not found" in p.stderr
    # 32x32 SVHN images given to the 64x64 faces classifier are resized to its size (issue 19); the
    # library itself still refuses a wrong size with a clear error (tests/test_classifiers.py)
    p = _run("classify", "--input", workspace / "plain", "--classifier", "lfw")
    assert len(p.stdout.strip().splitlines()) == 3
    p = _run("classify", "--input", workspace / "plain", "--size", "0", ok=False)
    assert p.returncode == 2 and "size must be an int >= 1" in p.stderr


@pytest.mark.parametrize("stop", ["fixed", "ciphertext"])
def test_stop_rules_on_the_command_line(workspace, stop):
    # The rule and its step counts travel in each file: decryption needs no NAE options.
    d = workspace
    if not (d / "key.json").exists():
        _run("keygen", "--out", d / "key.json")
    enc, dec = d / f"enc_{stop}", d / f"dec_{stop}"
    _run(
        "encrypt",
        "--input",
        d / "plain",
        "--output",
        enc,
        "--key",
        d / "key.json",
        "--model",
        d / "model.pt",
        "--nae-stop",
        stop,
        "--nae-steps",
        "6",
        "--nae-check-every",
        "3",
        "--no-progress",
    )
    with Image.open(enc / "img0.png") as im:
        header = json.loads(im.text["ric-ext"])
    assert (
        (header["version"], header["scheme"]) == (3, "paper")
        and header["nae"]["stop"] == stop
        and 0 <= header["steps"] <= 6
    )
    if stop == "ciphertext":
        assert header["steps"] % 3 == 0 or header["steps"] == 6
    _run(
        "decrypt", "--input", enc, "--output", dec, "--key", d / "key.json", "--model", d / "model.pt", "--no-progress"
    )
    assert sorted(os.listdir(dec)) == ["img0.png", "img1.png", "img2.png"]


@needs_shared
def test_evaluate_attacks_cli(workspace):
    d = workspace
    out = d / "security"
    p = _run(
        "evaluate",
        "--attacks",
        "keys,ciphertext_only",
        "--model",
        d / "model.pt",
        "--nae-steps",
        "3",
        "--attack-pairs",
        "6",
        "--attack-val",
        "2",
        "--attack-test",
        "4",
        "--reencrypt-images",
        "1",
        "--reference-images",
        "40",
        "--out",
        out,
        "--data",
        os.path.join(MODELS, "..", "data"),
    )
    md = (out / "report.md").read_text()
    assert "SVHN test indices 1000-1007 (attacker pairs), 1500-1503 (scored)" in md
    assert "decrypt with another key" in md and "NPCR" in md and "inversion" not in md.split("## Attacks")[1][:400]
    p = _run(
        "evaluate",
        "--attacks",
        "everything",
        "--model",
        d / "model.pt",
        "--out",
        out / "x",
        "--data",
        os.path.join(MODELS, "..", "data"),
        ok=False,
    )
    assert p.returncode == 2 and "unknown attack" in p.stderr and "Traceback" not in p.stderr


def test_attack_reference_images_never_include_scored_ones(workspace):
    # The report's reference guesses (mean images) must come from images the attacker is not
    # scored on: an image folder's own pairs here (its scored images follow them) ...
    _run(
        "evaluate",
        "--attacks",
        "keys",
        "--dataset",
        workspace / "plain",
        "--model",
        workspace / "model.pt",
        "--nae-steps",
        "3",
        "--attack-pairs",
        "1",
        "--attack-val",
        "1",
        "--attack-test",
        "1",
        "--reencrypt-images",
        "1",
        "--out",
        workspace / "security_folder",
    )
    md = (workspace / "security_folder" / "report.md").read_text()
    assert "indices 0-1 (attacker pairs), 2-2 (scored)" in md and "2 images: the attacker's pairs" in md


@needs_shared
def test_attack_reference_images_for_lfw_come_from_its_training_split():
    # ... and LFW scored on its test split uses its training split (disjoint by the split rule).
    import torch

    from ric_ext import data as data_mod
    from ric_ext.security.protocol import reference_images

    data = os.path.join(MODELS, "..", "data")
    tx, ty, desc = reference_images("lfw", "test", data, 32, None, range(0, 3), 5)
    x, y = data_mod.stack(data_mod.lfw("train", data, size=32), range(5))
    assert torch.equal(tx, x) and torch.equal(ty, y) and desc == "5 images of the lfw training split"


@needs_shared
def test_evaluate_paper_metric_mode_cli(workspace):
    d = workspace
    out = _run(
        "evaluate",
        "--model",
        d / "model.pt",
        "--n",
        "3",
        "--start",
        "5",
        "--nae-steps",
        "3",
        "--out",
        d / "report_paper",
        "--metric-mode",
        "paper",
        "--nae-margin",
        "authors",
        "--data",
        os.path.join(MODELS, "..", "data"),
    ).stdout
    assert "authors' PSNR (unrounded float x_hat)" in out and "scikit-image default (uniform 7x7)" in out
    rep = json.load(open(d / "report_paper" / "report.json"))
    assert rep["metric_mode"] == "paper" and rep["nae"]["margin"] == "authors"


def test_train_help_explains_every_option():
    out = _run("train", "--help").stdout
    for flag in (
        "--schedule",
        "--ema",
        "--budget-min",
        "--decoder-z",
        "--round-frac",
        "--val-every",
        "--init",
        "--grad-clip",
        "--margin",
        "--stop-after-min",
        "--ckpt-compact",
    ):
        assert flag in out
    assert "warm-up + cosine" in out and "EMA decay" in out
    p = _run("train", "--decoder-z", "maybe", ok=False)
    assert p.returncode == 2 and "expected true/false" in p.stderr


def test_pad_scheme_on_the_command_line(workspace):
    # encrypt with --scheme pad (no --model needed), classify like any ciphertext, and decrypt with
    # no --scheme: decrypt takes the scheme the files name.
    d = workspace
    _run("keygen", "--out", d / "pad_key.json")
    key = ["--key", d / "pad_key.json", "--no-progress"]
    _run("encrypt", "--input", d / "plain", "--output", d / "pad_enc", "--scheme", "pad", *key)
    with Image.open(d / "pad_enc" / "img0.png") as im:
        header = json.loads(im.text["ric-ext"])
    assert (header["version"], header["scheme"], header["model"]) == (3, "pad", None)
    plain = dict(line.split("\t") for line in _run("classify", "--input", d / "plain").stdout.split("\n") if line)
    ciph = dict(line.split("\t") for line in _run("classify", "--input", d / "pad_enc").stdout.split("\n") if line)
    assert [plain[k.replace("pad_enc", "plain")] for k in sorted(ciph)] == [ciph[k] for k in sorted(ciph)]
    _run("decrypt", "--input", d / "pad_enc", "--output", d / "pad_dec", *key)
    for i in range(3):
        a = np.asarray(Image.open(d / "plain" / f"img{i}.png")).astype(int)
        b = np.asarray(Image.open(d / "pad_dec" / f"img{i}.png")).astype(int)
        assert np.abs(a - b).max() <= 3  # the pad's error bound: 2.55 grey levels, rounded
    # decrypting pad files as the paper's scheme names the mismatch
    p = _run(
        "decrypt",
        "--input",
        d / "pad_enc",
        "--output",
        d / "pad_dec2",
        "--scheme",
        "paper",
        "--model",
        d / "model.pt",
        *key,
        ok=False,
    )
    assert p.returncode == 2 and "'pad' scheme" in p.stderr


def test_decrypt_finds_the_classifier_by_fingerprint(workspace):
    # Faces-sized images under the pad scheme with the LFW classifier: decrypt needs only the key
    # and the files, and a classifier nobody has gives an error that names the fingerprint.
    d = workspace
    (d / "faces").mkdir()
    g = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(g.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "faces" / f"f{i}.png")
    _run("keygen", "--out", d / "faces_key.json")
    key = ["--key", d / "faces_key.json", "--no-progress"]
    _run(
        "encrypt",
        "--input",
        d / "faces",
        "--output",
        d / "faces_enc",
        "--classifier",
        "lfw",
        "--scheme",
        "pad",
        "--nae-lr",
        "0.05",
        "--nae-steps",
        "20",
        *key,
    )
    _run("decrypt", "--input", d / "faces_enc", "--output", d / "faces_dec", *key)
    a = np.asarray(Image.open(d / "faces" / "f1.png")).astype(int)
    b = np.asarray(Image.open(d / "faces_dec" / "f1.png")).astype(int)
    assert np.abs(a - b).max() <= 3
    # the same files with another classifier named on the command line: a mismatch, not a wrong image
    p = _run(
        "decrypt", "--input", d / "faces_enc", "--output", d / "faces_dec2", "--classifier", "svhn", *key, ok=False
    )
    assert p.returncode == 2 and "classifier differs" in p.stderr


def test_encrypt_any_image_size_and_mode(workspace):
    # Odd-sized JPEG and PNG, grey and RGBA: encrypt crops and resizes them to the classifier's 32x32,
    # decrypt writes 32x32 images that match the cropped, resized originals.
    from ric_ext.data import load_image

    d = workspace
    src = d / "odd"
    src.mkdir()
    g = np.random.default_rng(1)
    Image.fromarray(g.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(src / "a.jpg", quality=95)
    Image.fromarray(g.integers(0, 256, (41, 33), dtype=np.uint8), mode="L").save(src / "b.png")
    Image.fromarray(g.integers(0, 256, (45, 45, 4), dtype=np.uint8), mode="RGBA").save(src / "c.png")
    _run("keygen", "--out", d / "odd_key.json")
    key = ["--key", d / "odd_key.json", "--no-progress"]
    _run("encrypt", "--input", src, "--output", d / "odd_enc", *key)
    _run("decrypt", "--input", d / "odd_enc", "--output", d / "odd_dec", *key)
    for name in ("a", "b", "c"):
        with Image.open(d / "odd_dec" / f"{name}.png") as im:
            assert im.size == (32, 32) and im.mode == "RGB"
        want = (load_image(next(src.glob(name + ".*")), 3, 32) * 255).round().numpy().transpose(1, 2, 0)
        got = np.asarray(Image.open(d / "odd_dec" / f"{name}.png")).astype(float)
        assert np.abs(got - want).max() <= 3  # the pad's error bound (2.55 grey levels), rounded
    # --size overrides the classifier's size where the classifier takes any (the CIFAR ResNets do)
    _run(
        "encrypt",
        "--input",
        src / "a.jpg",
        "--output",
        d / "odd_enc24",
        "--size",
        "24",
        "--classifier",
        "cifar10-resnet20",
        *key,
    )
    with Image.open(d / "odd_enc24" / "a.png") as im:
        assert im.size == (24, 24)


def test_every_option_of_every_command_has_help():
    import argparse

    from ric_ext.__main__ import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif not isinstance(action, argparse._HelpAction):
                yield path, action

    seen = 0
    for path, action in walk(build_parser(), []):
        what = " ".join(path) + " " + (action.option_strings or [action.dest])[0]
        assert action.help and action.help is not argparse.SUPPRESS and len(action.help) > 8, what
        seen += 1
    assert seen > 100  # every command's options, not just a few


def test_digits_scheme_on_the_command_line(workspace, tmp_path):
    # The default scheme: encrypt says per file how the image travels, decrypt gives it back bit for
    # bit with the key alone (no --classifier, no --model), and a re-encoded ciphertext says so.
    d = workspace
    _run("keygen", "--out", tmp_path / "k.json")
    key = ["--key", tmp_path / "k.json", "--no-progress"]
    p = _run("encrypt", "--input", d / "plain", "--output", tmp_path / "ct", *key)
    assert sorted(line.split("\t")[1] for line in p.stdout.splitlines() if "\t" in line) == ["lossless"] * 3
    with Image.open(tmp_path / "ct" / "img0.png") as im:
        header = json.loads(im.text["ric-ext"])
    assert (header["version"], header["scheme"], header["classifier_name"]) == (4, "digits", "svhn")
    p = _run("decrypt", "--input", tmp_path / "ct", "--output", tmp_path / "back", *key)
    assert "img1.png\tlossless" in p.stdout
    for i in range(3):
        with Image.open(d / "plain" / f"img{i}.png") as a, Image.open(tmp_path / "back" / f"img{i}.png") as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))
    (tmp_path / "jpg").mkdir()
    with Image.open(tmp_path / "ct" / "img0.png") as im:
        im.save(tmp_path / "jpg" / "img0.jpg", quality=95)
    p = _run("decrypt", "--input", tmp_path / "jpg", "--output", tmp_path / "jpg_back", *key, ok=False)
    assert p.returncode == 2 and "re-encoded" in p.stderr and "Traceback" not in p.stderr
    p = _run("encrypt", "--input", d / "plain", "--output", tmp_path / "ct2", *key, "--no-report")
    assert "lossless" not in p.stdout


def test_classify_defaults_to_the_classifier_the_header_names(tmp_path):
    # Faces ciphertexts made for the lfw classifier: `classify` with no --classifier uses lfw, not svhn.
    (tmp_path / "faces").mkdir()
    ramp = (np.arange(64)[:, None] + np.arange(64)[None, :]).astype(np.uint8)
    for i in range(2):
        Image.fromarray(np.stack([ramp + 20 * i, ramp, 255 - ramp], -1)).save(tmp_path / "faces" / f"f{i}.png")
    _run("keygen", "--out", tmp_path / "k.json")
    key = ["--key", tmp_path / "k.json", "--no-progress"]
    _run("encrypt", "--input", tmp_path / "faces", "--output", tmp_path / "ct", "--classifier", "lfw", *key)
    default = _run("classify", "--input", tmp_path / "ct").stdout
    assert default == _run("classify", "--input", tmp_path / "ct", "--classifier", "lfw").stdout
    assert default != _run("classify", "--input", tmp_path / "ct", "--classifier", "svhn").stdout


def test_missing_extras_are_named_not_tracebacks(tmp_path):
    for blocked, argv, what in (
        ("kserve", ["serve"], "ric-ext serve needs kserve"),
        ("tritonclient", ["classify", "--input", str(tmp_path), "--url", "http://127.0.0.1:9"], "classify --url"),
    ):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "x.png")
        code = (
            f"import sys; sys.modules[{blocked!r}] = None; from ric_ext.__main__ import main; sys.exit(main({argv!r}))"
        )
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert p.returncode == 2 and what in p.stderr and 'pip install "ric_ext[serve]"' in p.stderr, p.stderr
        assert "Traceback" not in p.stderr


def test_portable_encryption_on_the_command_line(workspace, tmp_path, monkeypatch):
    # --ensemble names classifiers that must also label every ciphertext as intended; --portable
    # starts from a portable bank (trained over them on first use, in RIC_HOME). A member of another
    # input size is refused by name before anything is written.
    monkeypatch.setenv("RIC_HOME", str(tmp_path / "home"))
    d = workspace
    _run("keygen", "--out", tmp_path / "k.json")
    key = ["--key", tmp_path / "k.json", "--no-progress"]
    p = _run("encrypt", "--input", d / "plain", "--output", tmp_path / "bad", *key, "--ensemble", "lfw", ok=False)
    assert p.returncode == 2 and "'lfw'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "bad").exists()
    # a portable bank "over svhn" in the cache: a copy of the bundled one, so that nothing is trained here
    # (tests/test_portable_bank.py trains them)
    import shutil

    from ric_ext import bank
    from ric_ext.models import fingerprint, load_classifier

    fp = fingerprint(load_classifier("svhn", MODELS))
    (tmp_path / "home" / "banks").mkdir(parents=True)
    shutil.copy(bank.find(fp, 64, (3, 32, 32)), tmp_path / "home" / "banks" / bank.file_name(fp, 64, (3, 32, 32), [fp]))
    _run("encrypt", "--input", d / "plain", "--output", tmp_path / "ct", *key, "--portable", "--ensemble", "svhn")
    with Image.open(tmp_path / "ct" / "img0.png") as im:
        header = json.loads(im.text["ric-ext"])
    assert len(header["ensemble"]) == 1 and header["ensemble"][0] == header["classifier"]
    assert len(os.listdir(tmp_path / "home" / "banks")) == 1  # found, not trained
    _run("decrypt", "--input", tmp_path / "ct", "--output", tmp_path / "back", *key)
    for i in range(3):
        with Image.open(d / "plain" / f"img{i}.png") as a, Image.open(tmp_path / "back" / f"img{i}.png") as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))

"""Issue 37, item 4: a folder of ciphertexts as a torch Dataset (decrypted on the fly, with the key
alone, in DataLoader workers) and encryption as a torchvision-style transform."""

import os
import pickle

import pytest
import torch
from conftest import tamper_png
from PIL import Image
from torch.utils.data import DataLoader

from ric_ext import Cipher, Key, TamperedError
from ric_ext.data import EncryptedImageFolder
from ric_ext.fileformat import write_png
from ric_ext.transforms import Encrypt


def _u8(x):
    return (x * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, svhn_classifier, svhn_images):
    """12 SVHN samples encrypted with the Encrypt transform: 8 in class folders 'cats' and 'dogs'
    (labels from the folder), 4 at the top (labels from the header)."""
    d = tmp_path_factory.mktemp("encfolder")
    x, _ = svhn_images
    key = Key.generate()
    key.save(d / "key.json")
    enc = Encrypt(Cipher(svhn_classifier, key))
    where = {}
    for i in range(12):
        rel = os.path.join(("cats", "dogs")[i % 2], f"{i:02d}.png") if i < 8 else f"{i:02d}.png"
        ct = enc(x[i])
        write_png(d / "ct" / rel, ct, key)
        where[rel] = (i, int(ct.labels[0]))
    return d, key, where


def test_it_yields_every_plaintext_bit_for_bit_with_its_label(folder, svhn_images):
    d, key, where = folder
    x, _ = svhn_images
    ds = EncryptedImageFolder(d / "ct", d / "key.json")
    assert ds.classes == ["cats", "dogs"] and len(ds) == 12
    for k, f in enumerate(ds.files):
        rel = os.path.relpath(f, d / "ct")
        i, header_label = where[rel]
        image, label = ds[k]
        assert image.dtype == torch.float32 and torch.equal(_u8(image), _u8(x[i]))
        assert label == ({"cats": 0, "dogs": 1}[rel.split(os.sep)[0]] if os.sep in rel else header_label)
    # a Key object works too, and a transform and target transform apply
    ds2 = EncryptedImageFolder(d / "ct", key, transform=lambda t: t * 2, target_transform=lambda y: y + 100)
    image, label = ds2[0]
    assert torch.allclose(image, ds[0][0] * 2) and label == ds[0][1] + 100


def test_dataloader_workers_decrypt_with_the_key_file_alone(folder, svhn_images):
    d, _, _ = folder
    ds = EncryptedImageFolder(d / "ct", str(d / "key.json"))
    whole = [ds[i] for i in range(len(ds))]
    # spawn pickles the dataset: it carries the key file's path, never the key
    blob = pickle.dumps(ds)
    assert bytes.fromhex(Key.load(d / "key.json")._secret.hex()) not in blob
    ctx = torch.multiprocessing.get_context("spawn")
    loader = DataLoader(ds, batch_size=5, num_workers=2, multiprocessing_context=ctx)
    got = [(x, y) for xb, yb in loader for x, y in zip(xb, yb.tolist())]
    assert len(got) == len(whole)
    for (a, la), (b, lb) in zip(got, whole):
        assert torch.equal(a, b) and la == lb
    with pytest.raises(TypeError, match="key file's path"):  # a Key object refuses to travel
        pickle.dumps(EncryptedImageFolder(d / "ct", Key.load(d / "key.json")))


def test_a_changed_file_raises_never_another_image(folder, tmp_path):
    d, key, _ = folder
    (tmp_path / "cats").mkdir()
    tamper_png(d / "ct" / "cats" / "00.png", at=(3, 3, 1), write_to=tmp_path / "cats" / "00.png")
    with pytest.raises(TamperedError):
        EncryptedImageFolder(tmp_path, key)[0]


def test_bad_arguments_name_themselves(folder, tmp_path):
    d, key, _ = folder
    with pytest.raises(FileNotFoundError, match="ciphertext folder"):
        EncryptedImageFolder(tmp_path / "missing", key)
    with pytest.raises(FileNotFoundError, match="no ciphertext PNGs"):
        EncryptedImageFolder(tmp_path, key)
    with pytest.raises(TypeError, match="key must be"):
        EncryptedImageFolder(d / "ct", b"\0" * 32)


def test_encrypt_transform_outputs(svhn_classifier, svhn_images):
    x, _ = svhn_images
    key = Key.generate()
    cipher = Cipher(svhn_classifier, key)
    ct = Encrypt(cipher)(x[0])
    assert len(ct) == 1 and torch.equal(Cipher(None, key).decrypt_uint8(ct)[0][0], _u8(x[0]))
    again = Encrypt(cipher)(x[0])
    assert not torch.equal(again.pixels, ct.pixels)  # a fresh nonce every call (every epoch)
    pix = Encrypt(cipher, output="pixels")(_u8(x[1]))
    assert pix.dtype == torch.float32 and pix.shape == (3, 32, 32) and 0 <= float(pix.min()) <= float(pix.max()) <= 1
    assert int(svhn_classifier(pix[None]).argmax()) == int(cipher.predict(x[1:2])[0])  # the cloud's label
    pil = Image.fromarray(_u8(x[2]).permute(1, 2, 0).numpy())
    u8 = Encrypt(cipher, output="uint8")(pil)
    assert u8.dtype == torch.uint8 and u8.shape == (3, 32, 32)
    assert str(key._secret.hex()) not in repr(Encrypt(cipher))
    with pytest.raises(ValueError, match="output must be"):
        Encrypt(cipher, output="png")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Encrypt(cipher)(x[:2])

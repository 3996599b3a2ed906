"""Issue 38: the digits scheme at the paper's face size, 160x160, with a tiny stand-in classifier
(the real `lfw160` costs minutes per bank on this CPU; docs/benchmarks.md#faces160 has its numbers)."""

import torch
from conftest import DATA, needs_shared

from ric_ext import Cipher, Key, data
from ric_ext.bank import BankSettings, train_bank
from ric_ext.cipher import Ciphertext
from ric_ext.fileformat import decode_png, encode_png
from ric_ext.models.classifiers import Normalized


class TinyFaces(torch.nn.Module):
    """A 4-identity stand-in at 160x160: a strided conv, global pooling, a linear layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4, padding=2)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1).flatten(1))


@needs_shared
def test_a_160_px_face_comes_back_bit_for_bit():
    faces = data.lfw("test", DATA, size=160).images[:3]  # (3, 3, 160, 160) uint8, real LFW faces
    assert tuple(faces.shape) == (3, 3, 160, 160)
    clf = Normalized(TinyFaces(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), input_size=160).eval()
    bank = train_bank(clf, (3, 160, 160), 64, BankSettings(entries=2, steps=3, shares=1, validate_shares=2),
                      progress=False)  # fmt: skip
    assert bank.shape == (3, 160, 160) and bank.num_labels == 4
    key = Key.generate()
    cipher = Cipher(clf, key, bank=bank)
    ct = cipher.encrypt(faces)
    assert bool(ct.lossless.all())  # a face's WebP fits the 160x160 share (about 32 of 57.6 KB)
    assert torch.equal(cipher.classify(ct), ct.labels)  # labelled as the plaintext, by construction
    # through the file's bytes, with the key alone
    back = [decode_png(encode_png(ct[i], key), key) for i in range(len(ct))]
    files = Ciphertext.cat(back)
    got, lossless = Cipher.from_ciphertext(files, key).decrypt_uint8(files)
    assert torch.equal(got, faces) and bool(lossless.all())
    assert not torch.equal(ct.pixels, faces)  # and the ciphertext is not the face

"""Keys: generation, passphrases, subkeys, key files, secrecy."""

import os
import pickle
import stat

import pytest

from ric_ext.errors import KeyFileError
from ric_ext.keys import Key, hkdf_sha256


def test_hkdf_rfc5869_test_case_1():
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, info, 42, salt)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_generate_is_random_and_subkeys_are_distinct():
    a, b = Key.generate(), Key.generate()
    assert a != b and a.key_id != b.key_id
    assert len({a.noise_key, a.mac_key, b.noise_key, b.mac_key}) == 4
    assert len(a.noise_key) == 32 and len(a.mac_key) == 32


def test_passphrase_is_deterministic_and_salted():
    k1 = Key.from_passphrase("correct horse", b"salt-1234", n=2**10)
    k2 = Key.from_passphrase("correct horse", b"salt-1234", n=2**10)
    k3 = Key.from_passphrase("correct horse", b"salt-9999", n=2**10)
    assert k1 == k2 and k1 != k3
    with pytest.raises(ValueError, match="salt"):
        Key.from_passphrase("pw", b"short")
    with pytest.raises(ValueError, match="passphrase"):
        Key.from_passphrase("", b"salt-1234")


def test_save_load_mode_0600_and_no_overwrite(tmp_path):
    k = Key.generate()
    p = tmp_path / "k.json"
    k.save(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert Key.load(p) == k
    with pytest.raises(FileExistsError):
        Key.generate().save(p)
    assert Key.load(p) == k  # the existing key survived


def test_load_refuses_bad_files(tmp_path):
    p = tmp_path / "k.json"
    Key.generate().save(p)
    os.chmod(p, 0o644)
    with pytest.raises(KeyFileError, match="group/others"):
        Key.load(p)
    bad = tmp_path / "bad.json"
    bad.write_text("not a key")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="not a ric_ext key file"):
        Key.load(bad)
    with pytest.raises(KeyFileError, match="not found"):
        Key.load(tmp_path / "missing.json")


def test_key_never_shown():
    k = Key(bytes(range(32)))
    secret_hex = bytes(range(32)).hex()
    for text in (repr(k), str(k), f"{k}", repr([k])):
        assert secret_hex not in text and "\\x00\\x01" not in text
    with pytest.raises(TypeError):
        pickle.dumps(k)
    with pytest.raises(ValueError) as exc:
        Key(bytes(range(31)))
    assert bytes(range(31)).hex() not in str(exc.value)

"""Folder-level encryption and decryption with a progress bar.

Outputs mirror the input tree as ``<output>/<relative path>.png``. Every file
is written atomically, and nothing that exists is ever overwritten: all output
paths are checked before any work starts (and again at each write).
"""
from __future__ import annotations

import os
from typing import Iterable, List, Tuple, Union

from .cipher import Cipher
from .data import IMAGE_EXTENSIONS, load_image, save_image
from .fileformat import read_png, write_png

PathLike = Union[str, "os.PathLike[str]"]


def image_files(path: PathLike) -> List[str]:
    """``path`` itself if it is a file, else every image file below it (sorted)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"input not found: {path}")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
    return files


def plan_outputs(inp: PathLike, out: PathLike) -> List[Tuple[str, str]]:
    """(input, output) pairs; raises FileExistsError if any output exists already."""
    inp, out = os.fspath(inp), os.fspath(out)
    files = image_files(inp)
    base = inp if os.path.isdir(inp) else os.path.dirname(inp)
    outs = [os.path.join(out, os.path.splitext(os.path.relpath(f, base))[0] + ".png") for f in files]
    clash = [o for o in outs if os.path.exists(o)]
    if clash:
        raise FileExistsError(f"refusing to overwrite {len(clash)} existing file(s), e.g. {clash[0]}; "
                              "choose an empty output folder")
    if len(set(outs)) != len(outs):
        raise ValueError("two inputs map to the same output name (e.g. a.png and a.jpg); rename one")
    return list(zip(files, outs))


def _progress(items: list, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img")


def encrypt_folder(cipher: Cipher, inp: PathLike, out: PathLike, *, progress: bool = True) -> int:
    """Encrypt an image file or folder into ciphertext PNGs; returns the number of files."""
    pairs = plan_outputs(inp, out)
    for f, o in _progress(pairs, "encrypt", progress):
        x = load_image(f, cipher.model.channels).unsqueeze(0)
        write_png(o, cipher.encrypt(x), cipher.key)
    return len(pairs)


def decrypt_folder(cipher: Cipher, inp: PathLike, out: PathLike, *, progress: bool = True) -> int:
    """Decrypt a ciphertext PNG or folder of them into 8-bit PNG images; returns the number of files."""
    pairs = plan_outputs(inp, out)
    for f, o in _progress(pairs, "decrypt", progress):
        save_image(o, cipher.decrypt(read_png(f, cipher.key))[0])
    return len(pairs)

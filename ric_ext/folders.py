"""Folder-level encryption and decryption with a progress bar.

Outputs mirror the input tree as ``<output>/<relative path>.png``. Every file
is written atomically, and nothing that exists is ever overwritten: all output
paths are checked before any work starts (and again at each write).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch

from .batching import batch_slices
from .cipher import Cipher, Ciphertext
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


def plan_outputs(inp: PathLike, out: PathLike, *, resume: bool = False) -> List[Tuple[str, str]]:
    """(input, output) pairs; raises FileExistsError if any output exists already (unless ``resume``)."""
    inp, out = os.fspath(inp), os.fspath(out)
    files = image_files(inp)
    base = inp if os.path.isdir(inp) else os.path.dirname(inp)
    outs = [os.path.join(out, os.path.splitext(os.path.relpath(f, base))[0] + ".png") for f in files]
    clash = [o for o in outs if os.path.exists(o)]
    if clash and not resume:
        raise FileExistsError(
            f"refusing to overwrite {len(clash)} existing file(s), e.g. {clash[0]}; choose an empty output folder, "
            "or pass --resume to finish an interrupted job (what is there is verified, never overwritten)"
        )
    if len(set(outs)) != len(outs):
        raise ValueError("two inputs map to the same output name (e.g. a.png and a.jpg); rename one")
    return list(zip(files, outs))


def derived_nonces(key, seed: bytes, names: List[str], images: torch.Tensor) -> Callable:
    """A ``Cipher.encrypt`` nonce source: nonce = HMAC-SHA256(key.nonce_key, seed | name | image | attempt)[:12].

    With a fresh 32-byte ``seed`` per run these are as unpredictable and unique as random
    nonces, and every process of a split job computes the same ones. The image's bytes enter
    too, so a seed given twice (``--nonce-seed``) repeats a nonce only for the same image
    at the same name, where the ciphertext reveals nothing new.
    """
    digests = [hashlib.sha256(images[i].contiguous().numpy().tobytes()).digest() for i in range(len(names))]
    tags = [hashlib.sha256(n.encode()).digest() for n in names]
    nonce_key = key.nonce_key  # an HKDF derivation: once per batch, not per nonce

    def source(rows: torch.Tensor, attempt: int) -> torch.Tensor:
        out = [
            hmac.new(nonce_key, seed + tags[r] + digests[r] + attempt.to_bytes(4, "big"), "sha256").digest()[:12]
            for r in rows.tolist()
        ]
        return torch.tensor([list(b) for b in out], dtype=torch.uint8).reshape(len(out), 12)

    return source


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled)


def _groups(pairs: List[Tuple[str, str]], load: Callable, batch_size: int) -> Iterator[list]:
    """Chunks of up to ``batch_size`` files, loaded and grouped by image shape (so each group is one batch)."""
    for sl in batch_slices(len(pairs), batch_size):
        by_shape: Dict[tuple, list] = {}
        for f, o in pairs[sl]:
            item = load(f)
            by_shape.setdefault(tuple(_shape(item)), []).append((item, f, o))
        yield from by_shape.values()


def _shape(item) -> tuple:
    return tuple(item.shape) if isinstance(item, torch.Tensor) else (tuple(item.pixels.shape), repr(item.header))


def _my_share(pairs: List[Tuple[str, str]], resume: bool, verify: Callable) -> List[Tuple[str, str]]:
    """This rank's pairs still to do; its outputs that exist already are verified (``resume``)."""
    from .distributed import rank_and_world

    rank, world = rank_and_world()
    mine = pairs[rank::world]  # round robin over the sorted files: the same split on every run
    todo = []
    for f, o in mine:
        if resume:
            _remove_stale_temporaries(o)
        if os.path.exists(o):
            verify(f, o)
        else:
            todo.append((f, o))
    return todo


def _remove_stale_temporaries(out: str) -> None:
    """atomic_write's temporary files for ``out`` left by a killed job (never the user's files)."""
    folder, name = os.path.split(out)
    if os.path.isdir(folder):
        for t in os.listdir(folder):
            if t.startswith("." + name + ".") and t.endswith(".tmp"):
                os.unlink(os.path.join(folder, t))


def encrypt_folder(
    cipher: Cipher,
    inp: PathLike,
    out: PathLike,
    *,
    progress: bool = True,
    size: Optional[int] = None,
    resume: bool = False,
    nonce_seed: Optional[bytes] = None,
    on_file: Optional[Callable[[str, Optional[bool]], None]] = None,
) -> int:
    """Encrypt an image file or folder into ciphertext PNGs (batched by image size); returns the number of files
    this process wrote. ``on_file(output path, lossless)`` is called for each file written (``lossless``:
    the digits scheme stored the image losslessly, else its lossy digits; None for the other schemes).

    ``size`` centre-crops and resizes every image to size x size first (see :func:`ric_ext.data.load_image`).
    Under ``torchrun`` each rank encrypts every WORLD_SIZE-th file: the files are the same bytes as one
    process makes with the same ``nonce_seed`` (default: 32 fresh random bytes, agreed by the ranks).
    ``resume`` skips outputs that exist after checking each is a ciphertext of this cipher (same key
    and settings) and of its input's shape; it never overwrites one.
    """
    from .distributed import agree, process_group, total

    pairs = plan_outputs(inp, out, resume=resume)
    header = cipher.header()

    def verify(f: str, o: str) -> None:
        ct = read_png(o, cipher.key)  # authenticates it under this key
        if ct.header != header:
            raise FileExistsError(f"{o} exists but was made with other settings; not resuming over it")
        if tuple(ct.pixels.shape[1:]) != tuple(load_image(f, cipher.channels, size).shape):
            raise FileExistsError(f"{o} exists but does not have the shape of {f}; not resuming over it")

    with process_group() as (rank, _):
        seed = agree(nonce_seed if nonce_seed is not None else os.urandom(32))
        todo = _my_share(pairs, resume, verify)
        with _progress(len(todo), "encrypt", progress and rank == 0) as bar:
            for group in _groups(todo, lambda f: load_image(f, cipher.channels, size), cipher.batch_size):
                x = torch.stack([g[0] for g in group])
                names = [os.path.relpath(o, os.fspath(out)) for _, _, o in group]
                ct = cipher.encrypt(x, nonce_source=derived_nonces(cipher.key, seed, names, x))
                for i, (_, _, o) in enumerate(group):
                    write_png(o, ct[i], cipher.key)
                    if on_file is not None:
                        on_file(o, None if ct.lossless is None else bool(ct.lossless[i]))
                bar.update(len(group))
        return total(len(todo))


def decrypt_folder(
    cipher: Cipher,
    inp: PathLike,
    out: PathLike,
    *,
    progress: bool = True,
    resume: bool = False,
    on_file: Optional[Callable[[str, Optional[bool]], None]] = None,
) -> int:
    """Decrypt a ciphertext PNG or folder of them into 8-bit PNG images; returns the number of files written.

    Every file is authenticated before anything is decrypted from its batch, and format-4 images
    are checked against their keyed digests (IntegrityError, never a different image). Under
    ``torchrun`` each rank decrypts every WORLD_SIZE-th file. ``resume`` skips outputs that exist
    after checking each is an image of its ciphertext's shape; it never overwrites one.
    ``on_file(output path, lossless)`` is called for each file written (as :func:`encrypt_folder`).
    """
    from PIL import Image

    from .distributed import process_group, total

    pairs = plan_outputs(inp, out, resume=resume)

    def verify(f: str, o: str) -> None:
        want = tuple(read_png(f, cipher.key).pixels.shape[1:])
        try:
            with Image.open(o) as img:
                img.load()
                got = (len(img.getbands()), img.height, img.width)
        except Exception as exc:
            raise FileExistsError(f"{o} exists but is not a readable image ({exc}); not resuming over it") from None
        if got != want:
            raise FileExistsError(f"{o} exists but is {got}, not {want} like {f}; not resuming over it")

    with process_group() as (rank, _):
        todo = _my_share(pairs, resume, verify)
        with _progress(len(todo), "decrypt", progress and rank == 0) as bar:
            for group in _groups(todo, lambda f: read_png(f, cipher.key), cipher.batch_size):
                x_hat, lossless = cipher.decrypt_uint8(Ciphertext.cat([g[0] for g in group]))
                for i, (_, _, o) in enumerate(group):
                    save_image(o, x_hat[i])
                    if on_file is not None:
                        on_file(o, None if lossless is None else bool(lossless[i]))
                bar.update(len(group))
        return total(len(todo))


def reencrypt_folder(
    cipher: Cipher,
    old_key,
    inp: PathLike,
    out: PathLike,
    *,
    models: Optional[str] = None,
    progress: bool = True,
    resume: bool = False,
    nonce_seed: Optional[bytes] = None,
    on_file: Optional[Callable[[str, bool, Optional[int]], None]] = None,
) -> int:
    """Re-encrypt a ciphertext PNG or folder of them (made under ``old_key``, any format) with
    ``cipher`` (the digits scheme: its key, classifier, base and bank) into ``out``, keeping
    subfolders; returns the number of files written (every rank's, under ``torchrun``).

    The plaintext exists only in memory, one batch at a time (:mod:`ric_ext.reencrypt`). Every
    input file is authenticated under ``old_key`` before anything is written (a tampered or
    foreign-key file stops the job with its name). Every new file is decrypted again in memory
    with the new key alone and must give exactly the bytes the old file decrypted to before it is
    written (atomically, never over anything); ReencryptionError names a file that would not.
    ``on_file(output path, lossless, old format if it was a replayed one (1-3) else None)`` is
    called for each file written. ``resume``, ``nonce_seed`` and the sharding are as in
    :func:`encrypt_folder`; ``models`` is where formats 1-3 find their classifier.
    """
    from .distributed import agree, process_group, total
    from .fileformat import decode_png, encode_png
    from .io_utils import atomic_write_bytes
    from .reencrypt import OldCiphers, check_target, group_by_header, verify

    check_target(cipher)
    inp_abs, out_abs = os.path.abspath(os.fspath(inp)), os.path.abspath(os.fspath(out))
    if os.path.isdir(inp_abs) and os.path.commonpath([inp_abs, out_abs]) == inp_abs:
        raise ValueError(f"--output {out} is inside --input {inp}: choose a folder outside it")
    pairs = plan_outputs(inp, out, resume=resume)
    header = cipher.header()
    size = getattr(cipher.classifier, "input_size", None)
    old = OldCiphers(old_key, models=models, device=cipher.device, batch_size=cipher.batch_size)

    def verify_existing(f: str, o: str) -> None:
        ct = read_png(o, cipher.key)
        if ct.header != header:
            raise FileExistsError(f"{o} exists but was made with other settings or another key; not resuming over it")
        if tuple(ct.pixels.shape) != tuple(read_png(f, old_key).pixels.shape):
            raise FileExistsError(f"{o} exists but does not have the shape of {f}; not resuming over it")

    def check_input(f: str) -> Optional[Exception]:
        """Why ``f`` cannot be re-encrypted (it does not authenticate, or does not fit), else None."""
        from .errors import RicError

        try:
            ct = read_png(f, old_key)
        except RicError as exc:  # WrongKeyError, TamperedError, CiphertextFormatError: each names the file
            return exc
        h, w = ct.pixels.shape[2:]
        if size is not None and (h, w) != (size, size):
            return ValueError(
                f"{f} is {w}x{h}, but the classifier takes {size}x{size} (re-encryption keeps images as they are)"
            )
        return None

    with process_group() as (rank, _):
        seed = agree(nonce_seed if nonce_seed is not None else os.urandom(32))
        todo = _my_share(pairs, resume, verify_existing)
        # every input is authenticated before anything is written, on every rank
        problems = [p for p in (check_input(f) for f, _ in todo) if p is not None]
        if total(len(problems)):
            if problems:
                raise problems[0]
            raise ValueError("another rank found an input it cannot re-encrypt (its message names the file)")
        with _progress(len(todo), "reencrypt", progress and rank == 0) as bar:
            for sl in batch_slices(len(todo), cipher.batch_size):
                items = [(read_png(f, old_key), (f, o)) for f, o in todo[sl]]
                for group in group_by_header(items):
                    ct = Ciphertext.cat([g[0] for g in group])
                    files = [g[1] for g in group]
                    x8 = old.plaintext(ct, [f for f, _ in files])
                    names = [os.path.relpath(o, os.fspath(out)) for _, o in files]
                    new = cipher.encrypt(x8, nonce_source=derived_nonces(cipher.key, seed, names, x8))
                    data = [encode_png(new[i], cipher.key) for i in range(len(new))]
                    # the files' own bytes, read back and decrypted with the new key alone
                    back = [decode_png(d, cipher.key, name=o) for d, (_, o) in zip(data, files)]
                    lossless = verify(back, x8, cipher.key, [f for f, _ in files])
                    was = ct.header.get("version") if ct.header.get("version") != 4 else None
                    for i, (_, o) in enumerate(files):
                        atomic_write_bytes(o, data[i], overwrite=False)
                        if on_file is not None:
                            on_file(o, lossless[i], was)
                    bar.update(len(group))
        return total(len(todo))

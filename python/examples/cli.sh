#!/usr/bin/env bash
# The command line from end to end on a folder of images (default: the 16 bundled SVHN samples,
# written out as PNGs): a key, encryption, the cloud's labels, decryption with the key alone,
# and a byte comparison of the decrypted images with the originals.
#
#     bash python/examples/cli.sh [WORK_FOLDER]
set -euo pipefail
work="${1:-$(mktemp -d -t ric_cli_example.XXXXXX)}"
python="${PYTHON:-python}"

"$python" -c "
from ric_ext.demo import load_samples
from ric_ext.data import save_image
images, _ = load_samples()
for i, im in enumerate(images):
    save_image(f'$work/images/{i:02d}.png', im)
"
"$python" -m ric_ext keygen --out "$work/key.json"
"$python" -m ric_ext encrypt --key "$work/key.json" --input "$work/images" --output "$work/ct" --no-progress
"$python" -m ric_ext classify --input "$work/ct"
"$python" -m ric_ext decrypt --key "$work/key.json" --input "$work/ct" --output "$work/back" --no-progress
"$python" -c "
import sys
import numpy as np
from PIL import Image
for i in range(16):
    a = np.asarray(Image.open(f'$work/images/{i:02d}.png'))
    b = np.asarray(Image.open(f'$work/back/{i:02d}.png'))
    if not np.array_equal(a, b):
        sys.exit(f'{i:02d}.png came back different')
print('all 16 images came back bit for bit')
"

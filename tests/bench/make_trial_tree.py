"""A photo folder like a person's, for trying the indexer by hand: 2,400 photos in six formats
over ten years of month folders, 120 broken files, a hidden folder and a symlink loop.

    .venv/bin/python tests/bench/make_trial_tree.py /tmp/trial/photos
    /usr/bin/time -f "%e s" .venv/bin/lookalike index --library /tmp/trial/lib /tmp/trial/photos
"""

import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import photos  # noqa: E402


def main(root: Path) -> None:
    rng = random.Random(0)
    suffixes = [".jpg"] * 12 + [".png", ".webp", ".heic", ".tif", ".gif", ".bmp"]
    n = 0
    for year in range(2015, 2025):
        for month in range(1, 13, 2):
            for _ in range(40):
                suffix = rng.choice(suffixes)
                image = photos.scene(n, (rng.choice([640, 800, 1024]), rng.choice([480, 600, 768])))
                if suffix == ".gif":
                    image = image.convert("P")
                photos.save(image, root / str(year) / f"{month:02d}" / f"IMG_{n:05d}{suffix}")
                n += 1
    for i in range(30):
        photos.broken_files(root / "broken" / f"set{i}")
    os.symlink(root, root / "2015" / "loop")
    photos.save(photos.scene(1), root / ".thumbnails" / "x.jpg")
    print(f"{n} photos and {30 * 4} broken files under {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

#!/usr/bin/env python
"""Peak memory of one process while it takes N concurrent 10 MiB photo uploads (the issue's target: a worker stays
under 250 MB during 20 concurrent 10 MiB uploads).

Runs the upload path's heavy part, in one process, from N threads at once (as a gthread worker would): each thread
has a ~10 MiB JPEG on disk (as Django's multipart parser leaves a large upload: a temporary file), sniffs, decodes,
re-encodes and stores it on the file-system backend (``jobs.attachments.content.prepare`` + ``storage.put``). Prints
the process's peak RSS before and after. Usage: ``.venv/bin/python bench/attachments_rss.py [--uploads 20]``.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _photo(target: int) -> bytes:
    """A noisy JPEG (incompressible, like a real photo's detail) of about ``target`` bytes."""
    from PIL import Image

    side = 1200
    while True:
        buffer = io.BytesIO()
        Image.effect_noise((side, side), 80).convert("RGB").save(buffer, format="JPEG", quality=97)
        if buffer.tell() >= target * 0.9 or side > 6000:
            return buffer.getvalue()
        side = int(side * (target / buffer.tell()) ** 0.5) + 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--megabytes", type=float, default=10)
    args = parser.parse_args()
    media = tempfile.mkdtemp(prefix="jobops-rss-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.test")
    os.environ["MEDIA_ROOT"] = media
    import django

    django.setup()
    from jobs.attachments import content, storage

    data = _photo(int(args.megabytes * 1024 * 1024 * 0.93))
    from PIL import Image

    width, height = Image.open(io.BytesIO(data)).size
    files = []
    for _ in range(args.uploads):
        handle = tempfile.TemporaryFile()
        handle.write(data)
        files.append(handle)
    del data
    baseline = _peak_mb()
    errors: list[BaseException] = []
    start = threading.Barrier(args.uploads)

    def upload(handle) -> None:
        try:
            start.wait()
            prepared = content.prepare(handle, size=os.fstat(handle.fileno()).st_size)
            storage.put(storage.new_key(prepared.extension), prepared.file)
            prepared.file.close()
        except BaseException as error:  # reported below
            errors.append(error)

    began = time.perf_counter()
    threads = [threading.Thread(target=upload, args=(handle,)) for handle in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    size = os.fstat(files[0].fileno()).st_size
    print(f"{args.uploads} concurrent uploads of a {size / 1048576:.1f} MiB JPEG ({width}x{height}) in {took:.1f} s")
    print(f"peak RSS before the uploads: {baseline:.0f} MB; after: {_peak_mb():.0f} MB (target: < 250 MB)")
    print(f"decode slots: {content._DECODE_SLOTS._initial_value}; errors: {len(errors)} {errors[:1]}")


if __name__ == "__main__":
    main()

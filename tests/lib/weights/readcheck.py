#!/usr/bin/env python3
"""readcheck.py MOUNTED SOURCE N SEED MODE — reads N random ranges of MOUNTED
(MODE mmap: through a memory map; pread: with os.pread) and compares each with
the same bytes of SOURCE. Exits 1 on the first difference."""
import mmap, os, random, sys
mounted, source, n, seed, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rnd = random.Random(seed)
size = os.path.getsize(source)
fs = os.open(source, os.O_RDONLY)
fm = os.open(mounted, os.O_RDONLY)
mm = mmap.mmap(fm, 0, prot=mmap.PROT_READ) if mode == 'mmap' else None
for i in range(n):
    off = rnd.randrange(size)
    ln = min(rnd.choice([1, 100, 4096, 65536, 1 << 20]), size - off)
    want = os.pread(fs, ln, off)
    got = mm[off:off + ln] if mm is not None else os.pread(fm, ln, off)
    if got != want:
        print('%s: %s differs at offset %d length %d' % (mode, mounted, off, ln))
        sys.exit(1)
print('%s: %d random ranges identical' % (mode, n))

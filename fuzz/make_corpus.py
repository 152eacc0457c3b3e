#!/usr/bin/env python3
"""make_corpus.py - write the seed corpus of the fuzz targets.

The seeds are small hand-written programs in the byte formats decoded by
fuzz_alloc.c and fuzz_chunk.c (each seed reaches a distinct state: the
address-space limit, atomic exhaustion, the reserved area, injected faults,
fragmentation, multi-block areas...).  The files are committed; rerun this
after changing a format:  python3 fuzz/make_corpus.py [fuzz/corpus]
"""
import os
import struct
import sys

# ---- fuzz_alloc.c ---------------------------------------------------------

NOWARN, ATOMIC, RESERVED_F, ALL_F, WARN, UNKNOWN = 0x00, 0x01, 0x06, 0x07, 0xC0, 0x38
A = {1 << v: v for v in range(13)}          # alignment -> selector
A_ZERO, A_12, A_2PAGE, A_HUGE = 13, 14, 15, 16
SPECIAL = {"zero": 0, "unit": 1, "unit+1": 2, "unit-4": 3, "page": 4, "page+4": 5,
           "2page": 6, "unit/2": 7, "max": 8, "four": 9}


def size_small(n):      # 1..64
    return 0x0000 | (n - 1)


def size_medium(n):     # 1..1024
    return 0x4000 | (n - 1)


def size_large(x):      # 1 + 4x
    return 0x8000 | x


def size_special(name):
    return 0xC000 | SPECIAL[name]


def alloc(v, align=4, flags=NOWARN):
    sel = A.get(align, align) if align in A else align
    return bytes([0]) + struct.pack("<H", v) + bytes([sel, flags])


def alloc_sel(v, sel, flags=NOWARN):
    return bytes([0]) + struct.pack("<H", v) + bytes([sel, flags])


def burst(count, size, align=4, flags=NOWARN):
    return bytes([3, count - 1, size - 1, A[align], flags])


def free(i):
    return bytes([4]) + struct.pack("<H", i)


def free_some(stride, phase=0):
    return bytes([7, stride - 1, phase])


def rewrite(i):
    return bytes([8]) + struct.pack("<H", i)


CHECK, BALANCE, CLEAR, FREE_NULL = bytes([9]), bytes([10]), bytes([12]), bytes([14])


def fault_nth(depop, skip, count):
    return bytes([11, 1 if depop else 0, skip, count - 1])


def fault_random(depop, p128, seed):
    return bytes([11, 0x80 | (1 if depop else 0), p128, seed])


def report(stats):
    return bytes([13, 1 if stats else 0])


def whole(atomic=False):
    return bytes([15, 1 if atomic else 0])


def alloc_seeds():
    s = {}
    s["basic"] = (alloc(size_small(4)) + alloc(size_small(8), 8) + alloc(size_medium(100), 16) +
                  alloc(size_medium(1000), 64) + CHECK + free(1) + rewrite(0) + free(0) + CHECK +
                  FREE_NULL)
    s["fill-first-chunk"] = (burst(32, 200) * 8 + free_some(2) + burst(32, 64, 64) + CHECK +
                             BALANCE + burst(32, 256, 256) * 4 + free_some(3, 1) + BALANCE + CHECK)
    s["address-space-limit"] = (whole() * 17 + alloc(size_small(4)) + free(3) + free(5) +
                                whole() + alloc(size_special("unit/2")) + BALANCE + CHECK)
    s["atomic-exhaustion"] = (burst(32, 256, 4, ATOMIC) * 6 + whole(True) + BALANCE +
                              burst(32, 256, 4, ATOMIC) * 2 + alloc(size_special("page"), 4096, ATOMIC) +
                              CHECK)
    s["reserved"] = (burst(32, 256, 4, RESERVED_F) * 2 + alloc(size_medium(16), 16, ALL_F) +
                     free_some(2) + alloc(size_large(1000), 4, RESERVED_F) +
                     burst(8, 16, 16, RESERVED_F) + CHECK)
    s["invalid"] = (alloc(size_special("zero")) + alloc(size_special("unit+1")) +
                    alloc(size_special("max")) + alloc_sel(size_small(16), A_12) +
                    alloc_sel(size_small(16), A_2PAGE) + alloc_sel(size_small(16), A_HUGE) +
                    alloc(size_small(16), 4, UNKNOWN) + alloc(size_small(16), 4, WARN) +
                    alloc_sel(size_small(16), A_ZERO) + alloc(size_special("unit")) +
                    alloc(size_special("unit-4"), 4096) + CHECK)
    s["populate-faults"] = (burst(20, 200) + fault_nth(False, 0, 1) + whole() + CLEAR + whole() +
                            fault_nth(False, 1, 2) + alloc(size_special("2page")) * 3 + CLEAR +
                            alloc(size_special("2page")) + CHECK)
    s["depopulate-faults"] = (whole() * 3 + burst(32, 256) * 8 + free_some(1) + free(0) +
                              fault_nth(True, 0, 3) + BALANCE + CLEAR + whole() * 2 + BALANCE + CHECK)
    s["random-faults"] = (fault_random(False, 32, 7) + fault_random(True, 40, 9) +
                          (burst(16, 100) + alloc(size_large(5000)) + whole() + free_some(2) +
                           BALANCE) * 4 + CLEAR + CHECK)
    s["fragmentation"] = (burst(32, 4) * 16 + free_some(2) + burst(32, 8, 8) * 4 + free_some(3, 2) +
                          burst(16, 12, 16) * 4 + alloc(size_medium(1024), 1024) + CHECK + BALANCE)
    s["alignments"] = b"".join(alloc(size_small(1 + (a % 60)), a) for a in A) + \
        b"".join(alloc(size_medium(a // 2 + 3), a) for a in A if a >= 8) + CHECK
    s["multi-page"] = (alloc(size_special("2page")) + alloc(size_special("unit/2"), 4096) +
                       alloc(size_large(3000), 256) + alloc(size_large(9000), 4) + free(1) +
                       alloc(size_large(4000), 2048) + report(True) + report(False) + BALANCE +
                       free(0) + BALANCE + CHECK)
    return s

# ---- fuzz_chunk.c ---------------------------------------------------------


def header(page_sel, pages, head=0, tail=0, populate=True, verify_all=True):
    h0 = page_sel | (4 if head else 0) | (8 if tail else 0) | (16 if populate else 0) | \
        (0x60 if verify_all else 0)
    return bytes([h0, pages - 1, head, tail])


def c_alloc(bits, align_shift=0, pop_only=False, big=False, bytes_api=False):
    v = (0x8000 | (bits - 1)) if big else (bits - 1) & 31
    return bytes([2 if bytes_api else 0]) + struct.pack("<H", v) + \
        bytes([align_shift | (0x80 if pop_only else 0)])


def c_free(i):
    return bytes([3]) + struct.pack("<H", i)


def c_free_at(off):
    return bytes([5]) + struct.pack("<H", off)


def c_pop(p0, n, on):
    return bytes([6, p0, ((n - 1) << 1) | (1 if on else 0)])


C_VERIFY = bytes([7])


def chunk_seeds():
    s = {}
    s["small-blocks"] = header(0, 4) + b"".join(c_alloc(1 + i % 32, i % 7) for i in range(40)) + \
        b"".join(c_free(i * 3) for i in range(10)) + C_VERIFY
    s["cross-block"] = header(0, 8, populate=False) + c_pop(0, 3, True) + \
        c_alloc(100, 0, big=True) + c_alloc(200, 2, True, big=True) + c_alloc(60, 0, True, big=True) + \
        c_free(0) + c_alloc(64, 6, big=True) + c_pop(2, 4, False) + c_free(1) + C_VERIFY
    s["head-tail"] = header(3, 6, head=100, tail=60) + c_alloc(1000, 0, big=True) + \
        c_alloc(5, 3) + c_free_at(400) + c_free_at(0) + c_free_at(4096) + \
        c_alloc(4000, 8, big=True, bytes_api=True) + c_free(0) + C_VERIFY
    s["fill-and-drain"] = header(1, 2) + c_alloc(32, 0) * 8 + c_alloc(4, 2) * 20 + \
        b"".join(c_free(0) for _ in range(10)) + c_alloc(20, 0) * 4
    s["pop-only"] = header(2, 16, populate=False, verify_all=False) + c_pop(3, 2, True) + \
        c_pop(10, 5, True) + b"".join(c_alloc(1 + i * 7 % 32, i % 5, True) for i in range(30)) + \
        c_alloc(600, 0, True, big=True) + c_pop(10, 2, False) + c_alloc(256, 8, True, big=True) + \
        C_VERIFY
    s["whole-chunk"] = header(0, 1) + c_alloc(64, 0, big=True) + c_alloc(1) + c_free(0) + \
        c_alloc(63, 0, big=True) + c_alloc(1) + c_free_at(0) + c_free_at(252) + C_VERIFY
    return s


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    for sub, seeds in (("alloc", alloc_seeds()), ("chunk", chunk_seeds())):
        d = os.path.join(root, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{d}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The store rules as batches, for a backend that lists and reads its objects in Python (RADOS).

One call per page or window of names: the loop over names runs here, each name decided by
the same _rules.h/_native.h rule the filed passes use (formats.py holds the Python twins).
Its own module because it holds no state and reads nothing: the join keys
(verify/native/refjoin.py) and the RADOS check's pages both come here. The single-rule hooks at
the end are for the twin tests (tests/native/test_rules_twin.py).
"""

from libc.stdint cimport uint64_t
from libc.string cimport memcmp

from ._rules cimport *  # the C twin of formats.py: _rules.h, declared in _rules.pxd
from ._native cimport *  # the fingerprint, sample window, content hash, placement: _native.h

cdef enum:
    PATHMAX = 1200


_HEADER_CLASSES = ("not_map", "v0", "v1", "v2", "corrupt_short", "corrupt_version", "corrupt_blocksize",
                   "corrupt_v1_short")  # formats.HeaderClass values, in av_header_class order


def fingerprints(names):
    """The 16-byte fingerprints of ``names`` (formats.fingerprint), concatenated in order."""
    cdef list ns = list(names)
    cdef Py_ssize_t i, n = len(ns)
    cdef int j
    cdef av_fp_t fp
    cdef bytes nm
    out = bytearray(16 * n)
    cdef unsigned char[::1] o = out
    for i in range(n):
        nm = ns[i]
        av_fingerprint(nm, len(nm), &fp)
        for j in range(8):
            o[16 * i + j] = (fp.hi >> (56 - 8 * j)) & 0xFF
            o[16 * i + 8 + j] = (fp.lo >> (56 - 8 * j)) & 0xFF
    return bytes(out)


def map_candidates(names):
    """The header candidates of a maps page (av_name_class plain, no av_name_fault), in order."""
    cdef bytes nm
    return [nm for nm in names if av_name_class(nm, len(nm)) == AV_NAME_PLAIN
            and av_name_fault(nm, len(nm), 0) == AV_NAME_FINE]  # a stray entry: the scan reports it


def stored_split(names):
    """A blocks page by av_stored_class: (objects maps may name, [(NAME_hash, NAME)]); locks, temps and
    stray names (av_name_fault) dropped."""
    cdef bytes nm
    cdef int sc
    objs, hashes = [], []
    for nm in names:
        if av_name_fault(nm, len(nm), 0) != AV_NAME_FINE:
            continue  # a stray entry: the scan reports it
        sc = av_stored_class(nm, len(nm))
        if sc == AV_STORED_OBJECT:
            objs.append(nm)
        elif sc == AV_STORED_HASH:
            hashes.append((nm, nm[:av_hash_target_len(len(nm))]))
    return objs, hashes


def data_sample(names, uint64_t start=0, uint64_t width=0, bint everything=True):
    """The Pithos blocks (64-hex names) of a page in the sample window (av_in_window of their
    fingerprint), and how many 64-hex names fell outside it: (names, unsampled)."""
    cdef bytes nm
    cdef av_fp_t fp
    cdef Py_ssize_t unsampled = 0
    todo = []
    for nm in names:
        if not av_is_hex64(nm, len(nm)):
            continue
        av_fingerprint(nm, len(nm), &fp)
        if av_in_window(fp.hi, start, width, everything):
            todo.append(nm)
        else:
            unsampled += 1
    return todo, unsampled


def content_mismatches(names, datas):
    """The av_content_* hash of each read object against its 64-hex name, without the GIL:
    [(position, hex digest)] of those whose content does not hash to their name (None datas skipped)."""
    cdef list ns = list(names), ds = list(datas)
    cdef Py_ssize_t i, n = len(ns)
    cdef av_content_t h
    cdef char hexmd[65]
    cdef const unsigned char *p
    cdef size_t ln
    cdef const char *nm
    out = []
    if len(ds) != n:
        raise ValueError("names and datas differ in length")
    for i in range(n):
        if ds[i] is None:
            continue
        p = <const unsigned char *>(<bytes>ds[i])
        ln = len(<bytes>ds[i])
        nm = <bytes>ns[i]
        with nogil:
            av_content_init(&h)
            av_content_update(&h, p, ln)
            av_content_final(&h, hexmd)
        if len(<bytes>ns[i]) != 64 or memcmp(hexmd, nm, 64) != 0:
            out.append((i, (<bytes>hexmd[:64]).decode("ascii")))
    return out


def classify_heads(names, datas):
    """av_classify of each object read (its first bytes, its length): per object None (not read)
    or (formats.HeaderClass value, size, blocksize, flags)."""
    cdef av_header_t h
    cdef bytes nm, d
    cdef size_t ln
    out = []
    for nm, d in zip(names, datas):
        if d is None:
            out.append(None)
            continue
        ln = len(d)
        av_classify(<const unsigned char *>d, ln if ln < <size_t>AV_HEADER_READ else <size_t>AV_HEADER_READ, ln,
                    nm, len(nm), &h)
        out.append((_HEADER_CLASSES[h.cls], h.size, h.blocksize, h.flags))
    return out


# single rules, for the twin tests (tests/native/test_rules_twin.py)

def _placement_for_tests(bytes d1, bytes d2, bytes d3, bytes name):
    cdef unsigned char md[32]
    return av_placement(d1, d2, d3, name, len(name), md)


def _probe_paths_for_tests(bytes name):
    cdef char rel[PATHMAX]
    cdef int step
    out = []
    for step in range(3):
        if av_probe_rel(step, name, len(name), rel, PATHMAX):
            out.append(<bytes>rel)
    return out


def _in_window_for_tests(uint64_t fp_hi, uint64_t start, uint64_t width, bint everything):
    return bool(av_in_window(fp_hi, start, width, everything))


def _is_v1_header_for_tests(bytes head):
    return bool(av_is_v1_header(<const unsigned char *>head, len(head)))


def _content_hash_for_tests(pieces):
    """av_content_* fed ``pieces`` one after another (as a read loop feeds its chunks)."""
    cdef av_content_t h
    cdef char hexmd[65]
    cdef bytes p
    av_content_init(&h)
    for p in pieces:
        av_content_update(&h, <const unsigned char *>p, len(p))
    av_content_final(&h, hexmd)
    return (<bytes>hexmd[:64]).decode("ascii"), h.total

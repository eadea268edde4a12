"""Hostile descriptors (diskimage.swarm.descriptor, .skeleton, .bencode):
not bencode, truncated, too deep, a changed skeleton byte, a forged index,
bad lengths and pieces, skeletons of images swarm does not take, senseless
entries, thousands of mutations: each one error with the documented exit
code, never a crash."""

import pytest

from diskimage.errors import CorruptImageError, InputError, UnsupportedError
from diskimage.image import format as fmt
from diskimage.swarm import bencode
from diskimage.swarm.descriptor import parse_info, parse_torrent
from tests.rdeploy_helpers import rdeploy


def info_of(desc):
    return bencode.decode(desc.info_bytes, "x")


def reencoded(info):
    return bencode.encode(info)


def test_not_bencode_truncated_and_too_deep(prepared):
    _, summary, _ = prepared["gpt"]
    data = open(summary["torrent"], "rb").read()
    cases = {b"hello": "unexpected byte", data[:len(data) // 2]: "runs past",
             data[:-1]: "truncated", data + b"x": "after the end",
             b"l" * 100000: "nested deeper", b"d4:infoi1ee": "not a dict",
             b"de": "no info", b"i01e": "malformed integer",
             b"99999999999999999999:": "runs past",
             b"d4:infod4:name1:xee": "not a torrent of rdeploy"}
    for raw, words in cases.items():
        with pytest.raises(InputError) as e:
            parse_torrent(raw, "bad.torrent")
        assert e.value.exit_code == 3
        message = str(e.value)
        assert message.startswith("bad.torrent: ") and "\n" not in message
        assert words in message or "not a torrent" in message, message


def test_changed_skeleton_byte_is_exit_4(prepared):
    _, _, desc = prepared["gpt"]
    skel = desc.skeleton
    meta_len = 68 + fmt.RECORD_HEADER.unpack(skel, 64)["stored_size"]
    index_at = 64 + meta_len
    spots = {"META payload": 64 + 68 + 10, "META header": 64 + 20,
             "INDX payload": index_at + 68 + 40,
             "trailer digest": len(skel) - 64 + 30,
             "file header": 24, "magic": 0, "version": 8, "flags": 16}
    for where, at in spots.items():
        info = info_of(desc)
        bad = bytearray(skel)
        bad[at] ^= 0x01
        info[b"rdeploy"][b"skeleton"] = bytes(bad)
        with pytest.raises(CorruptImageError) as e:
            parse_info(reencoded(info), "t.torrent")
        assert e.value.exit_code == 4, where
        assert str(e.value).startswith("t.torrent: damaged or altered "
                                       "skeleton: "), str(e.value)
        assert "\n" not in str(e.value)


def test_a_forged_index_with_every_check_redone_fails_the_root(prepared):
    """An entry's digest changed and the INDX record's own digest and CRC
    recomputed: only the root (bound into the infohash) catches it."""
    _, _, desc = prepared["gpt"]
    skel = desc.skeleton
    meta_len = 68 + fmt.RECORD_HEADER.unpack(skel, 64)["stored_size"]
    index_at = 64 + meta_len
    payload = bytearray(skel[index_at + 68:len(skel) - 64])
    payload[40] ^= 0xFF             # the first entry's BLAKE3 digest
    forged = skel[:index_at] + fmt.pack_payload_record(
        fmt.TAG_INDEX, bytes(payload)) + skel[-64:]
    info = info_of(desc)
    info[b"rdeploy"][b"skeleton"] = forged
    with pytest.raises(CorruptImageError, match="t.torrent: damaged or "
                       "altered skeleton: its root digest differs") as e:
        parse_info(reencoded(info), "t.torrent")
    assert e.value.exit_code == 4


def test_bad_lengths_and_pieces(prepared):
    _, _, desc = prepared["gpt"]
    cases = [
        ({b"pieces": info_of(desc)[b"pieces"][:-20]}, "pieces: "),
        ({b"pieces": info_of(desc)[b"pieces"] + bytes(20)}, "pieces: "),
        ({b"length": 1 << 63}, "length"),
        ({b"length": 1 << 70}, "too long integer"),
        ({b"length": -5}, "length"),
        ({b"length": desc.length + 1}, None),         # pieces no longer fit
        ({b"piece length": 3 << 20}, "piece length"),
        ({b"piece length": 16 << 10}, "piece length"),
        ({b"piece length": 1 << 40}, "piece length"),
        ({b"name": b"../../etc/x"}, "plain name"),
        ({b"files": []}, "multi-file"),
    ]
    for change, words in cases:
        info = dict(info_of(desc), **{k.decode(): v for k, v in
                                       change.items()})
        info = {k if isinstance(k, bytes) else k.encode(): v
                for k, v in info.items()}
        with pytest.raises(InputError) as e:
            parse_info(reencoded(info), "t.torrent")
        assert e.value.exit_code == 3 and "\n" not in str(e.value)
        if words:
            assert words in str(e.value), str(e.value)
    info = info_of(desc)            # the disk size said twice, differently
    size = desc.length * 2
    info[b"length"] = size
    info[b"pieces"] = bytes(20 * (size // desc.piece_size))
    with pytest.raises(CorruptImageError, match="disk size"):
        parse_info(reencoded(info), "t.torrent")
    info = info_of(desc)
    info[b"rdeploy"][b"skeleton"] = bytes(65 << 20)
    with pytest.raises(InputError, match="skeleton"):
        parse_info(reencoded(info), "t.torrent")
    info[b"rdeploy"] = {b"version": 2, b"skeleton": desc.skeleton}
    with pytest.raises(UnsupportedError, match="version 2"):
        parse_info(reencoded(info), "t.torrent")


def test_a_skeleton_of_an_encrypted_or_1_0_image_is_refused(prepared):
    _, _, desc = prepared["gpt"]
    for change, error, code in (({"flags": 1}, InputError, 3),
                                ({"version_minor": 0,
                                  "checksum_algorithm": 1},
                                 UnsupportedError, 7)):
        header = fmt.FILE_HEADER.unpack(desc.skeleton[:64])
        header.update(change)
        info = info_of(desc)
        info[b"rdeploy"][b"skeleton"] = fmt._sealed(
            fmt.FILE_HEADER, "header_crc32", **header) + desc.skeleton[64:]
        with pytest.raises(error) as e:
            parse_info(reencoded(info), "t.torrent")
        assert e.value.exit_code == code, str(e.value)


def resealed(desc, change_entries):
    """A skeleton whose index entries are changed and whose INDX record,
    root and trailer are all made anew: consistent, as a hostile writer
    would make it; only the entries' sense can be refused."""
    skel = desc.skeleton
    meta_len = 68 + fmt.RECORD_HEADER.unpack(skel, 64)["stored_size"]
    index_at = 64 + meta_len
    entries = fmt.unpack_index(skel[index_at + 68:len(skel) - 64], 0)
    change_entries(entries)
    payload = b"".join(e.pack(fmt.CURRENT) for e in entries)
    index_raw = fmt.pack_payload_record(fmt.TAG_INDEX, payload)
    root = fmt.image_digest(skel[:64], skel[64:index_at], index_raw)
    trailer = fmt.unpack_trailer(skel[-64:], 0)
    info = info_of(desc)
    info[b"rdeploy"][b"skeleton"] = skel[:index_at] + index_raw + \
        fmt.pack_trailer(trailer["index_offset"], trailer["stream_length"],
                         root)
    return reencoded(info)


def test_a_consistent_skeleton_with_senseless_entries_is_refused(prepared):
    _, _, desc = prepared["gpt"]

    def swap(entries):
        entries[1], entries[2] = entries[2], entries[1]

    def past_the_disk(entries):
        entries[-1].disk_offset = desc.length

    def huge(entries):
        entries[0].length = 1 << 62

    for change, words in ((swap, "out of disk order"),
                          (past_the_disk, "outside its area"),
                          (huge, "outside its area")):
        with pytest.raises(CorruptImageError, match=words) as e:
            parse_info(resealed(desc, change), "t.torrent")
        assert e.value.exit_code == 4
    assert parse_info(resealed(desc, lambda entries: None), "t.torrent") \
        .root == desc.root          # the resealing itself changes nothing


def test_mutated_torrents_give_only_the_projects_errors(prepared):
    """3,000 torrents with bytes flipped, cut, repeated or inserted (a
    fixed seed): each parses or gives a DiskImageError, never another
    exception.  (tests/fuzz/targets/swarm.py is the coverage-guided run.)"""
    import random

    from diskimage.errors import DiskImageError
    _, summary, _ = prepared["gpt"]
    data = open(summary["torrent"], "rb").read()
    rng = random.Random(18)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(3000):
        raw = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(raw))
            how = rng.randrange(4)
            if how == 0:
                raw[at] ^= 1 << rng.randrange(8)
            elif how == 1:
                del raw[at:]
            elif how == 2:
                raw[at:at] = raw[at:at + rng.randrange(1, 64)]
            else:
                raw[at:at] = str(rng.choice((0, 9, 10 ** 30, -1))).encode()
            if not raw:
                raw = bytearray(b"d")
        try:
            parse_torrent(bytes(raw), "m.torrent").wanted_pieces()
            outcomes["parsed"] += 1
        except DiskImageError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 2000, outcomes

"""Images made hostile or odd with the field's own tools, for the imgx get,
cat and ls tests: FAT long names and ext directory entries edited in their
raw bytes, entries planted with `debugfs -w`."""

import os
import subprocess

from tests.imgx_helpers import capture_disk, tool


def _lfn_chars(entry):
    raw = entry[1:11] + entry[14:26] + entry[28:32]
    return raw.decode("utf-16-le")


def _lfn_field(text):
    """13 UTF-16 characters of a long-name entry: the name, a NUL, then
    0xFFFF padding, as Windows and mtools write them."""
    if len(text) < 13:
        text = text + "\0" + "\uffff" * (12 - len(text))
    raw = text.encode("utf-16-le")
    return raw[:10], raw[10:22], raw[22:26]


def fat_rename_long(image, old, new):
    """Rewrite the long-name (LFN) entries that spell `old` to spell `new`
    (of the same length) in the FAT image file, as a hostile editor would;
    the short name and its checksum are left as mcopy wrote them."""
    assert len(old) == len(new)
    data = bytearray(image.read_bytes())
    hits = 0
    for at in range(0, len(data), 32):
        entry = data[at:at + 32]
        if entry[11] != 0x0F or entry[0] in (0, 0xE5):
            continue
        seq = entry[0] & 0x1F
        piece = old[(seq - 1) * 13:seq * 13]
        if piece and _lfn_chars(entry).split("\0")[0] == piece:
            a, b, c = _lfn_field(new[(seq - 1) * 13:seq * 13])
            data[at + 1:at + 11], data[at + 14:at + 26] = a, b
            data[at + 28:at + 32] = c
            hits += 1
    assert hits == -(-len(old) // 13), hits
    image.write_bytes(bytes(data))


def raw_rename(image, old, new):
    """Replace the one occurrence of the name `old` in an ext image (its
    directory entry) by `new`, of the same length."""
    data = image.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    image.write_bytes(data.replace(old, new))


def debugfs_w(image, *requests):
    for request in requests:
        out = subprocess.run(["debugfs", "-w", "-R", request, image],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "debugfs:" not in out.stderr.replace(
            "debugfs 1.", ""), (request, out.stderr)


def outside(tmp_path, inside):
    """Every path below tmp_path that is not below `inside` or an input."""
    found = set()
    for root, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not path.startswith(str(inside) + "/") and path != str(inside):
                found.add(os.path.relpath(path, tmp_path))
    return found


def ext_with(tmp_path, renames, *requests):
    """A 4 MiB ext4 (no metadata checksums, so raw edits read back) filled
    by `debugfs -w` requests, with the names in `renames` then edited in
    its raw bytes; captured.  Returns (image, dest, names outside before)."""
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", "-O", "^metadata_csum", disk, "4M")
    (tmp_path / "payload").write_bytes(b"planted\n")
    debugfs_w(disk, *requests)
    for placeholder, evil in renames:
        raw_rename(disk, placeholder, evil)
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    dest = tmp_path / "a" / "b" / "out"
    dest.parent.mkdir(parents=True)
    return image, dest, outside(tmp_path, tmp_path / "a") | {"a", "a/b"}

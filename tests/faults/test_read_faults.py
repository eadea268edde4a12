"""A read error of the image file under imgx's filesystem readers (nbdkit's
ddrescue filter, tests/faultlayers.py): an I/O error of the image, exit 1,
one line naming the image file and the offset, never "damaged filesystem"
(exit 4), which would send the user looking for damage that is not
there."""

import hashlib
import random

from tests import faultlayers
from tests.faults.conftest import nbd
from tests.imgx_helpers import imgx
from tests.smalldisk import SECTOR


def _bad_sector_in(image, needle):
    """A sector-aligned offset inside the stored payload of the chunk
    holding `needle` (bytes of one of the disk's files)."""
    from diskimage.image.reader import ImageReader
    with ImageReader(str(image)) as reader:
        record = reader.layout.record.size
        for number, entry in enumerate(reader.entries):
            if not entry.is_zero and needle in reader.read_entry(number):
                middle = entry.record_offset + record + entry.stored_size // 2
                assert entry.stored_size > 2 * SECTOR
                return middle - middle % SECTOR
    raise AssertionError("no chunk holds the file's bytes")


@nbd
def test_an_image_read_error_under_a_filesystem_is_not_damage(fault_disk,
                                                              tmp_path):
    from tests.faults import faultdisk
    # f0.bin's bytes: the first that faultdisk.build draws from its seed
    f0 = random.Random(16).randbytes(faultdisk.FILES["f0.bin"])
    assert hashlib.sha256(f0).hexdigest() == fault_disk["digests"]["f0.bin"]
    needle = f0[200 << 10:(200 << 10) + 64]
    bad = _bad_sector_in(fault_disk["image"], needle)
    with faultlayers.bad_sectors(fault_disk["image"], tmp_path / "nbd",
                                 [(bad, SECTOR)]) as layer:
        result = imgx("cat", f"{layer.path}:1/f0.bin")
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1, err
    assert err.startswith("imgx: error: "), err
    assert f"{layer.path}: read failed at offset" in err, err
    assert "input/output error" in err.lower(), err
    assert "damaged" not in err, err

"""The on-disk structures of FAT12, FAT16 and FAT32, declared once, with
Microsoft's field names ("FAT: General Overview of On-Disk Format",
fatgen103): the boot sector of each type, FSInfo and a directory entry, and
the constants that go with them."""

from ...structs import Struct

BPB_COMMON = [
    ("3s", "BS_jmpBoot"),
    ("8s", "BS_OEMName"),
    ("H", "BPB_BytsPerSec"),
    ("B", "BPB_SecPerClus"),
    ("H", "BPB_RsvdSecCnt"),
    ("B", "BPB_NumFATs"),
    ("H", "BPB_RootEntCnt"),
    ("H", "BPB_TotSec16"),
    ("B", "BPB_Media"),
    ("H", "BPB_FATSz16"),
    ("H", "BPB_SecPerTrk"),
    ("H", "BPB_NumHeads"),
    ("I", "BPB_HiddSec"),
    ("I", "BPB_TotSec32"),
]
BPB16 = Struct("FAT12 and FAT16 boot sector", BPB_COMMON + [
    ("B", "BS_DrvNum"),
    ("B", "BS_Reserved1"),
    ("B", "BS_BootSig"),
    ("I", "BS_VolID"),
    ("11s", "BS_VolLab"),
    ("8s", "BS_FilSysType"),
], size=62)
BPB32 = Struct("FAT32 boot sector", BPB_COMMON + [
    ("I", "BPB_FATSz32"),
    ("H", "BPB_ExtFlags"),
    ("H", "BPB_FSVer"),
    ("I", "BPB_RootClus"),
    ("H", "BPB_FSInfo"),
    ("H", "BPB_BkBootSec"),
    ("12s", "BPB_Reserved"),
    ("B", "BS_DrvNum"),
    ("B", "BS_Reserved1"),
    ("B", "BS_BootSig"),
    ("I", "BS_VolID"),
    ("11s", "BS_VolLab"),
    ("8s", "BS_FilSysType"),
], size=90)
FSINFO = Struct("FAT32 FSInfo sector", [
    ("I", "FSI_LeadSig"),
    ("480s", "FSI_Reserved1"),
    ("I", "FSI_StrucSig"),
    ("I", "FSI_Free_Count"),
    ("I", "FSI_Nxt_Free"),
    ("12s", "FSI_Reserved2"),
    ("I", "FSI_TrailSig"),
], size=512)
DIR_ENTRY = Struct("FAT directory entry", [
    ("11s", "DIR_Name"),
    ("B", "DIR_Attr"),
    ("B", "DIR_NTRes"),
    ("B", "DIR_CrtTimeTenth"),
    ("H", "DIR_CrtTime"),
    ("H", "DIR_CrtDate"),
    ("H", "DIR_LstAccDate"),
    ("H", "DIR_FstClusHI"),
    ("H", "DIR_WrtTime"),
    ("H", "DIR_WrtDate"),
    ("H", "DIR_FstClusLO"),
    ("I", "DIR_FileSize"),
], size=32)

FSI_LEAD_SIG, FSI_STRUC_SIG, FSI_TRAIL_SIG = 0x41615252, 0x61417272, 0xAA550000
ATTR_VOLUME_ID, ATTR_DIRECTORY, ATTR_LONG_NAME = 0x08, 0x10, 0x0F
MAX_FAT12, MAX_FAT16 = 4084, 65524       # most clusters of each type
NO_NAME = b"NO NAME    "
CHUNK_ENTRIES = 1 << 22                  # entries decoded at a time (even)
ROOT_SCAN_LIMIT = 1 << 20                # bytes of root directory read for
#                                          the label

"""Partitions on a target that a restore keeps unless told otherwise:
hidden service partitions (the kind bwpart creates), OEM recovery and
vendor diagnostic partitions.

A partition is protected by its type (GPT type GUID or MBR type byte) or,
on GPT, by the attribute bits "required by the platform" (bit 0) and
"hidden" (bit 62, as Windows marks OEM and recovery partitions).
"""

#: The GPT partition type of the toolkit's own service partition (bwpart).
SERVICE_GPT_TYPE = "4d0f62b1-3c5e-4bd8-9f2c-7a3e0c6b5d21"
#: The MBR type byte of the toolkit's own service partition (bwpart): 0x7f,
#: set aside for individual use by the alt-OS partition type proposal.
SERVICE_MBR_TYPE = "0x7f"

GPT_TYPES = {
    SERVICE_GPT_TYPE: "rdeploy service partition",
    "de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery (WinRE/OEM)",
    "d3bfe2de-3daf-11df-ba40-e3a556d89593": "Intel Rapid Start hibernation",
    "9e1a2d38-c612-4316-aa26-8b49521e5a8b": "PReP boot (firmware)",
}
MBR_TYPES = {
    SERVICE_MBR_TYPE: "rdeploy service partition",
    "0x12": "OEM service/diagnostics (Compaq, EISA configuration)",
    "0x27": "hidden recovery (WinRE, OEM rescue)",
    "0x84": "hibernation (Intel Rapid Start, OS/2 hidden C:)",
    "0xa0": "laptop hibernation (Phoenix)",
    "0xde": "Dell utility (diagnostics)",
    "0xfe": "IBM/Lenovo service (PS/2 IML)",
}
GPT_REQUIRED = 1 << 0
GPT_HIDDEN = 1 << 62


def why_protected(kind, partition):
    """Why *partition* (a partitions.Partition or its dict) is protected on
    a table of *kind*, or None."""
    get = partition.get if isinstance(partition, dict) else \
        lambda name: getattr(partition, name)
    ptype = (get("type") or "").lower()
    if kind == "gpt":
        if ptype in GPT_TYPES:
            return GPT_TYPES[ptype]
        attrs = get("attrs") or 0
        if attrs & GPT_REQUIRED:
            return "marked required by the platform"
        if attrs & GPT_HIDDEN:
            return "marked hidden (OEM)"
        return None
    return MBR_TYPES.get(ptype)


def protected_partitions(table):
    """[(partition, reason)] of a partitions.PartitionTable."""
    out = []
    for part in table.partitions:
        reason = why_protected(table.kind, part)
        if reason:
            out.append((part, reason))
    return out

"""bwpart update: a new environment written beside the old one, switched
to only when whole, the old one removed after; the store is not touched.

Order (each step leaves a bootable environment, see envslots):
  1. the bundle checked (bundle.load), the service partition found
  2. with `size`: the partition grown first (partition.grow: the tail
     moved to the new end, then the FAT grown over the old tail), and the
     record resealed (record.reseal: the grown table is the install's)
  3. slots no loader config names removed (a half-written slot of an
     interrupted update)
  4. the new slot written beside the active one, every file read back
  5. the loader configs switched to it (envslots.switch)
  6. the old slot removed (envslots.cleanup)
A failure or a kill before 5 leaves the configs on the old slot, whole; a
kill inside 5 leaves each loader on the old or the new slot, both whole.
"""

from ..errors import InputError, TargetChangedError, TargetError
from . import bundle as bundles
from . import envslots, fatfs, loaders, store


def efi_loader_of(fat):
    """The UEFI loader kind installed: "shim", "grub", or None."""
    if fat.exists(loaders.SHIM_PATH):
        return "shim"
    if fat.exists(loaders.GRUB_PATH):
        return "grub"
    return None


def _find(disk):
    from . import partition     # part A
    service = partition.find_service(disk)
    if service is None:
        raise TargetError(f"{disk}: no service partition (bwpart install "
                          f"makes one)")
    return service


def update(disk, bundle_dir, size=None, progress=None, service=None):
    """Carry out an update; a summary dict.  `service`: the Service when
    the caller found it already (else partition.find_service)."""
    bundle = bundles.load(bundle_dir)
    if service is None:
        service = _find(disk)
    grown = None
    if size is not None and size != service.size:
        if size < service.size:
            raise TargetError(f"{disk}: --size {size >> 20} MiB is below "
                              f"the service partition's {service.size >> 20}"
                              f" MiB; it only grows")
        from . import partition     # part A
        if progress:
            progress(f"growing the service partition to {size >> 20} MiB")
        partition.grow(service, size, progress=progress)
        grown = {"old_size": service.size, "new_size": size}
        service = _find(disk)
        from . import record        # part B: the grown table is ours
        try:
            record.reseal(service)
        except Exception as exc:
            raise TargetChangedError(
                f"{disk}: the service partition was grown to {size >> 20} "
                f"MiB but its record could not be rewritten ({exc}); run "
                f"bwpart update --size again") from exc
    with fatfs.open_fat(service) as fat:
        try:
            old, old_info = envslots.active(fat)
        except InputError:
            old, old_info = None, None
        stale = envslots.cleanup(fat)
        kind = efi_loader_of(fat)
        if progress:
            progress(f"writing environment {bundle.version} beside "
                     f"{old or 'none'}")
        new = envslots.write_slot(fat, bundle, progress)
        try:
            if progress:
                progress(f"switching the loaders to {new}")
            envslots.switch(fat, new, service, kind)
        except Exception as exc:
            raise TargetChangedError(
                f"{disk}: switching to slot {new} failed ({exc}); each "
                f"loader boots {old} or {new}, both whole; run bwpart update "
                f"again") from exc
        removed = envslots.cleanup(fat)
        images = store.ls(service, fat)
    return {"disk": str(disk), "old_slot": old,
            "old_version": old_info and old_info.get("version"),
            "new_slot": new, "version": bundle.version, "id": bundle.id,
            "removed": sorted(set(stale) | set(removed)),
            "efi_loader": kind, "grown": grown,
            "store": [i["name"] for i in images]}

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
  5. a bundle with the signed chain: its shim, GRUB and MokManager that
     differ from the FAT's written as X.new and read back; GRUB and
     MokManager renamed over theirs (loaders.stage_efi, commit_efi)
  6. the loader configs switched to it (envslots.switch)
  7. the new shim renamed over the old one, last (loaders' text: never a
     newer shim in front of an older GRUB or kernel)
  8. the old slot removed (envslots.cleanup)
A failure or a kill before 5 leaves the configs on the old slot, whole; a
kill inside 6 leaves each loader on the old or the new slot, both whole;
from 5 to 7 the old shim starts the old or the new GRUB, both signed as it
trusts.  The UEFI loader kind is the install record's "efi_loader", else
the one found on the FAT.
"""

from ..errors import InputError, TargetChangedError, TargetError
from . import bundle as bundles
from . import envslots, fatfs, loaders, lock, store


def efi_loader_of(fat):
    """The UEFI loader kind installed: "shim", "grub", or None."""
    if fat.exists(loaders.SHIM_PATH):
        return "shim"
    if fat.exists(loaders.GRUB_PATH):
        return "grub"
    return None


def _kind(service, fat):
    """The UEFI loader kind: the install record's "efi_loader" when it
    names one, else what the FAT holds."""
    from . import tail      # part B
    kind = (tail.read_record(service) or {}).get("efi_loader")
    return kind if kind in loaders.KINDS else efi_loader_of(fat)


def _find(disk):
    from . import partition     # part A
    service = partition.find_service(disk)
    if service is None:
        raise TargetError(f"{disk}: no service partition (bwpart install "
                          f"first)")
    return service


def update(disk, bundle_dir, size=None, progress=None, service=None):
    """Carry out an update; a summary dict.  `service`: the Service when
    the caller found it already (else partition.find_service).  Holds
    the disk's lock (lock.held) throughout."""
    bundle = bundles.load(bundle_dir)
    with lock.held(disk):
        return _update(disk, bundle, size, progress, service)


def _update(disk, bundle, size, progress, service):
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
            return _on_fat(disk, bundle, progress, service, fat, grown)
        except KeyboardInterrupt as exc:    # a signal (cliutil.sighold)
            exc.done = cut_short(disk, fat)
            raise


def cut_short(disk, fat):
    """What an update interrupted on `fat` left, in one line (the
    interrupted message): the slot each loader boots, and what the next
    update cleans up."""
    try:
        boots = envslots.loader_slots(fat)
        left = envslots.left_text(fat)
    except Exception as exc:    # a second signal, a torn FAT: say that
        return (f"{disk}: update cut short; what it left could not be "
                f"read ({exc}); run bwpart update again")
    if boots["uefi"] and boots["uefi"] != boots["bios"]:
        return f"{disk}: update cut short: {left}"      # left names both
    return (f"{disk}: update cut short: the loaders boot slot "
            f"{boots['bios'] or 'none'}; {left or 'nothing was left over'}")


def _on_fat(disk, bundle, progress, service, fat, grown):
    try:
        old, old_info = envslots.active(fat)
    except InputError:
        old, old_info = None, None
    stale = envslots.cleanup(fat)
    kind = _kind(service, fat)
    if progress:
        progress(f"writing environment {bundle.version} beside {old}"
                 if old else f"writing environment {bundle.version}")
    new = envslots.write_slot(fat, bundle, progress)
    staged = loaders.stage_efi(fat, bundle, kind, progress)
    try:
        replaced = loaders.commit_efi(fat, staged, loaders.BEFORE_SWITCH,
                                      progress)
    except Exception as exc:
        raise TargetChangedError(
            f"{disk}: replacing the UEFI loaders failed ({exc}); the "
            f"old shim starts the old or the new GRUB, both whole; run "
            f"bwpart update again") from exc
    try:
        if progress:
            progress(f"switching the loaders to {new}")
        envslots.switch(fat, new, service, kind)
        replaced += loaders.commit_efi(fat, staged, loaders.AFTER_SWITCH,
                                       progress)
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
            "efi_loader": kind, "loaders": replaced, "grown": grown,
            "store": [i["name"] for i in images]}

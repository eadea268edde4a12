"""Environment slots and the loader configs that choose one.

A slot is a directory /bwpart/env/eN (N = 1, 2, ...) holding vmlinuz,
initrd.img and bundle.json (the bundle's own, copied last: a slot without
it is not whole).  Every file is read back and its sha256 compared with
the bundle's before the slot is named anywhere.

Which slot boots is said by two loader configs, each with a fallback the
loader reads when the first is absent:

    BIOS  /syslinux/syslinux.cfg   primary: ldlinux searches its install
          /syslinux.cfg            directory (/syslinux) first, then
                                   /boot/syslinux, /syslinux, / (for
                                   extlinux.conf, then syslinux.cfg)
    UEFI  /EFI/debian/grub.cfg     Debian's signed GRUB: $prefix/grub.cfg
                                   (prefix /EFI/debian on its own device),
          /EFI/rdeploy/grub.cfg    else $cmdpath/grub.cfg; the standalone
                                   GRUB's embedded config does the same
                                   (loaders.standalone_config)

:func:`switch` moves both configs of a loader to a new slot in this order
(X.new written and read back, then renamed over X with mtools' mmove -D o,
which frees the old entry and writes the new one in one run):

    1. fallback.new written   cut here: primary old (fallback old): old boots
    2. fallback.new -> fallback  cut: primary old, fallback old, new or
                              absent: old boots (the primary is read first)
    3. primary.new written    cut: primary old: old boots
    4. primary.new -> primary cut: primary old, new, or absent with the
                              fallback new: old or new boots, both whole

(A config not there yet, at install, is written in place.)  syslinux's
pair first, then GRUB's; a cut between them leaves BIOS on the
new slot and UEFI on the old one, both whole.  The old slot is removed only
afterwards (:func:`cleanup`: slots no config names).  Our own reader,
:func:`active`, reads the configs in the loaders' order, and a leftover
X.new after them.
"""

import json
import os
import re

from ..errors import InputError, NoSpaceError, TargetChangedError
from . import bundle as bundles
from . import fields
from . import layout

ENV_DIR = layout.ENV_DIR
SYSLINUX_CFG = layout.SYSLINUX_CFG
SYSLINUX_FALLBACK = "/syslinux.cfg"
GRUB_CFG = layout.GRUB_CFG
GRUB_FALLBACK = f"{layout.EFI_DIR}/grub.cfg"
#: (primary, fallback) of each loader, in the order switch() moves them.
PAIRS = {"bios": (SYSLINUX_CFG, SYSLINUX_FALLBACK),
         "uefi": (GRUB_CFG, GRUB_FALLBACK)}
#: Every config, in the order the loaders read them (active()).
CONFIGS = (SYSLINUX_CFG, SYSLINUX_FALLBACK, GRUB_CFG, GRUB_FALLBACK)
RUN_ARGS = "rd.on_success=reboot rd.on_failure=reboot"
#: Room a slot needs besides its kernel and initramfs: bundle.json, the
#: directory, each file's last cluster (64 KiB at most).
SLOT_SLACK = 1 << 20
_SLOT = re.compile(r"^e([1-9]\d*)$")
_NAMED = re.compile(r"/bwpart/env/(e[1-9]\d*)/vmlinuz")


def slot_dir(slot):
    return f"{ENV_DIR}/{slot}"


def slots(fat):
    """The slot names on the FAT, in number order."""
    if not fat.exists(ENV_DIR):
        return []
    found = [name for name, _, is_dir in fat.ls(ENV_DIR)
             if is_dir and _SLOT.match(name.lower())]
    return sorted((n.lower() for n in found), key=lambda n: int(n[1:]))


def write_slot(fat, bundle, progress=None):
    """A new slot e(N+1) beside the others, with the bundle's kernel,
    initramfs and bundle.json, each read back against its sha256: the
    slot's name.  NoSpaceError before any write when the FAT lacks room;
    TargetChangedError when a file reads back wrong."""
    taken = slots(fat)
    slot = f"e{int(taken[-1][1:]) + 1 if taken else 1}"
    where = slot_dir(slot)
    need = sum(os.path.getsize(bundle.files[n])
               for n in (bundles.KERNEL, bundles.INITRD)) + SLOT_SLACK
    free = fat.free()
    if need > free:
        raise NoSpaceError(
            f"{fat.where}: the environment needs {-(-need >> 20)} MiB beside "
            f"the current one, {free >> 20} MiB are free; remove a store "
            f"image or grow the partition (bwpart update --size)")
    fat.makedirs(where)
    sums = bundle.info["files"]
    for name in (bundles.KERNEL, bundles.INITRD):
        if progress:
            progress(f"writing {where}/{name}")
        fat.put_checked(bundle.files[name], f"{where}/{name}", sums[name])
    fat.put_checked(bundle.info_bytes(), f"{where}/{bundles.INFO}")
    return slot


def check_slot(fat, slot):
    """The slot's bundle.json dict when every file it lists that the slot
    holds has its sha256; InputError otherwise."""
    where = slot_dir(slot)
    try:
        info = json.loads(fat.get(f"{where}/{bundles.INFO}").decode())
        bundles.check_info(info, where)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: bundle.json unreadable ({exc})") \
            from None
    for name in (bundles.KERNEL, bundles.INITRD):
        if fat.sha256(f"{where}/{name}") != info["files"][name]:
            raise InputError(f"{where}/{name}: sha256 differs from its "
                             f"bundle.json: the slot is not whole")
    return info


def cmdline(bundle_cmdline, service):
    """The kernel command line of a service boot (the part id checked
    against its pattern: it comes from the disk's table)."""
    fields.part_id(service.part_id, f"{service.disk}: the service "
                   f"partition's part id")
    return f"{bundle_cmdline} rd.bwpart={service.part_id} {RUN_ARGS}".strip()


def syslinux_cfg(slot, line):
    d = slot_dir(slot)
    return (f"# bwpart: the service environment, slot {slot}\n"
            "SERIAL 0 115200\nDEFAULT service\nPROMPT 0\nTIMEOUT 0\n"
            f"LABEL service\n  LINUX {d}/{bundles.KERNEL}\n"
            f"  INITRD {d}/{bundles.INITRD}\n  APPEND {line}\n").encode()


def grub_cfg(slot, line):
    d = slot_dir(slot)
    return (f"# bwpart: the service environment, slot {slot}\n"
            "serial --unit=0 --speed=115200\n"
            "terminal_input serial console\n"
            "terminal_output serial console\n"
            "set timeout=0\nset default=0\n"
            f'menuentry "bwpart service environment ({slot})" {{\n'
            f"  linux {d}/{bundles.KERNEL} {line}\n"
            f"  initrd {d}/{bundles.INITRD}\n}}\n").encode()


def switch(fat, slot, service, efi_loader="shim"):
    """Point the loader configs at `slot` (whole: check_slot), in the
    order of the module's docstring.  `efi_loader` None: no UEFI loader
    was installed, only syslinux's configs are written."""
    info = check_slot(fat, slot)
    line = cmdline(info["cmdline"], service)
    texts = {"bios": syslinux_cfg(slot, line), "uefi": grub_cfg(slot, line)}
    for loader in ("bios", "uefi"):
        if loader == "uefi" and efi_loader is None:
            continue
        for path in reversed(PAIRS[loader]):       # fallback, then primary
            fat.makedirs(path.rsplit("/", 1)[0] or "/")
            if not fat.exists(path):
                # Nothing to keep bootable (the first switch, at install);
                # written in place, mcopy keeps the name's case (mmove
                # would make a new 8.3 name upper case).
                fat.put_checked(texts[loader], path)
                continue
            fat.put_checked(texts[loader], path + layout.NEW_SUFFIX)
            fat.rename(path + layout.NEW_SUFFIX, path)
            if fat.get(path) != texts[loader]:
                raise TargetChangedError(f"{fat.where}: {path} does not "
                                         f"read back as written")


def named_slot(text):
    """The slot a config text boots, or None."""
    found = _NAMED.search(text.decode("utf-8", "replace"))
    return found[1] if found else None


def active(fat):
    """(slot, bundle.json dict) the loaders boot, read as they read the
    configs (a primary absent in the middle of a switch: its fallback; a
    leftover .new last); InputError when no config names a slot."""
    for path in CONFIGS + tuple(p + ".new" for p in CONFIGS):
        if fat.exists(path):
            slot = named_slot(fat.get(path))
            if slot is not None:
                return slot, check_slot(fat, slot)
    raise InputError(f"{fat.where}: no loader config names an environment "
                     f"slot")


def named_slots(fat):
    """Every slot some config (or a leftover .new) names."""
    named = set()
    for path in CONFIGS + tuple(p + ".new" for p in CONFIGS):
        if fat.exists(path):
            slot = named_slot(fat.get(path))
            if slot:
                named.add(slot)
    return named


def cleanup(fat):
    """Remove the slots no config names (an old one after a switch, a
    half-written one after an interrupted update): their names."""
    named = named_slots(fat)
    gone = [s for s in slots(fat) if s not in named]
    for slot in gone:
        fat.rm(slot_dir(slot), recursive=True)
    return gone


def loader_slots(fat):
    """{"bios": slot or None, "uefi": slot or None}: the slot each loader
    boots, read as it reads its pair (the primary, else the fallback)."""
    found = {}
    for loader, pair in PAIRS.items():
        found[loader] = None
        for path in pair:
            if fat.exists(path):
                found[loader] = named_slot(fat.get(path))
                break
    return found


def leftovers(fat):
    """What an interrupted update left that the next one cleans up:
    {"slots": slots no config names (cleanup removes them), "new":
    config .new files still there}."""
    named = named_slots(fat)
    return {"slots": [s for s in slots(fat) if s not in named],
            "new": [p + layout.NEW_SUFFIX for p in CONFIGS
                    if fat.exists(p + layout.NEW_SUFFIX)]}


def left_text(fat):
    """One line on where each loader stands and what is left over, for an
    interrupted update's message and status's note; None when both
    loaders boot the same slot and nothing is left over."""
    boots = loader_slots(fat)
    left = leftovers(fat)
    said = []
    if boots["uefi"] and boots["bios"] != boots["uefi"]:
        said.append(f"BIOS boots slot {boots['bios'] or 'none'}, UEFI slot "
                    f"{boots['uefi']} (an update was cut between the "
                    f"loaders)")
    extra = [f"slot {s} (no config names it)" for s in left["slots"]]
    extra += left["new"]
    if extra:
        said.append("left over: " + ", ".join(extra))
    if not said:
        return None
    return "; ".join(said) + "; the next bwpart update cleans them up"

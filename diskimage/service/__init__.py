"""The service partition (bwpart): a hidden FAT32 partition on a PC's own
disk that holds the imaging environment, a local image store and the
record of every byte its installation changed, and that the machine boots
into until a job is done.

The rooms (docs/bwpart.md describes the whole; each module its part):

    room.py        where the partition can go: free space at the end, or
                   a partition whose filesystem shrinks first
    partition.py   the table entry added (GPT type and attributes, MBR
                   hidden type) and taken away; the shrink and the grow back
    plan.py        the install plan, checked before any write, and its lines
    install.py     the install, step by step
    tail.py        the raw tail of the partition: the record's second copy
                   and the two state slots (byte layout in docs/bwpart.md)
    record.py      the install record: every byte changed and what it was
    state.py       the pending job, its tries, what arming changed, the last
                   result
    fatfs.py       files on the service FAT: through mtools, or a mount
    bundle.py      a bootdisk bundle (vmlinuz, initrd.img, bundle.json)
    envslots.py    environment slots and the loader configs that choose one
    loaders.py     the loader files: signed shim + GRUB, or a standalone
                   GRUB; syslinux's boot sector for BIOS
    biosboot.py    the MBR boot codes bwpart knows, and why others are
                   refused
    loadoption.py  EFI_LOAD_OPTION and device paths, built and parsed
    efivars.py     UEFI variables through efivarfs
    efiboot.py     the Boot#### entry, BootOrder and BootNext
    arming.py      boot into the service environment next (BIOS or UEFI),
                   and back
    bootnext.py    boot-next: the job and its tries, then arming
    serviceboot.py what the environment runs at a service boot
    fallback.py    the switch thrown back from the install record when
                   both state slots are damaged
    lock.py        one bwpart changing a disk at a time (flock)
    update.py      a new environment beside the old one, switched when whole
    remove.py      everything put back as the record says
    status.py      what is installed, pending and stored
    store.py       the local image store
"""

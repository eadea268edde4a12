"""bootdisk: boot media that carry the frozen toolkit and run a job.

initramfs.py builds the environment (newc cpio of cpio.py, kernel modules of
kernel.py, libraries of closure.py, /init of initscript.py); iso.py, usb.py
and pxe.py wrap kernel and initramfs into boot media; info.py tells what an
artifact holds.  The library raises, never prints; cli.py is the command.
"""

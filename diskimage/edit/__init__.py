"""Editing a filesystem inside an image (imgx put, rm, mkdir, mv) as one
transaction that leaves the image as it was unless the whole edit
succeeds: transaction.py (the steps, and ``edit()``, the one entry),
editfs.py (mounting a partition of the scratch disk, or reaching it through
mtools, and checking it afterwards), inroot.py (paths of a mounted
filesystem that never leave it), editspace.py (what an edit needs, and the
message when it does not fit).  Reading the image is diskimage.image.browse
and diskimage.fs.read."""

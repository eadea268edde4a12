"""The commented site file that `pxeconf init` writes (site.new_site_text).
Its keys are the defaults; the commented sections are examples to copy."""

TEMPLATE = """\
# pxeconf site file: the boot menu, the jobs and the machines of this site.
# Edit it by hand or with `pxeconf menu|job|host ...`: both keep comments.
# A comment starts with '#' at the start of a line, or after a value
# following a space.  A comment right above a [section] (no blank line
# between) belongs to it: `pxeconf ... rm` removes it with the section.
# Sections and keys are lower case.
# The reference: docs/pxeconf.md, "The site file".

[site]
root = boot              # the served root, relative to this file; no /etc, /usr
timeout = 5              # seconds the menu waits before the default entry
default = local          # the entry a machine without a job boots
retries = 2              # boots after "started" with no ending that rerun a job
fallback = local         # the entry a machine boots once its job has failed
# address = 10.0.0.2     # where clients reach this server (default: --listen)
# http-port = 80
# swarm-seed = images/lab.torrent   # seed these (rdeploy swarm prepare)

[menu local]
label = Boot from the local disk
local = yes

# More menu entries: each boots one of kernel + initrd, a bundle (a
# `bootdisk pxe` directory inside the root), local = yes, or job = NAME.
#
#   [menu rescue]
#   label = Imaging environment, shell
#   bundle = env
#   cmdline = rd.on_success=shell
#
# A job: a shell script inside the root that the imaging environment
# (a bundle) runs, reporting started, progress and done or failed.
#
#   [job restore]
#   label = Restore the lab image
#   bundle = env
#   script = jobs/restore.sh
#   retries = 3
#
# A machine, by MAC (any spelling): a name, and a job (once = yes, the
# default: run once, then boot locally; no: at every boot) or a menu entry
# of its own.  `pxeconf host add MAC --job=NAME` (--always: once = no)
# writes assigned = (UTC now): a new value is a new lease, run again.
#
#   [host 52:54:00:12:34:56]
#   name = pc01
#   job = restore
#   once = yes
#
# Per-server overrides of [site] keys (a menu of its own for a room):
#
#   [server lab2]
#   address = 10.0.1.2
#   default = rescue
#   entries = local, rescue
"""

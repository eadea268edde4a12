"""bwpart: the hidden service partition that boots a PC into the imaging
environment until its job is done (see docs/bwpart.md)."""

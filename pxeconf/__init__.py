"""pxeconf: network boot configuration and server (usage in pxeconf.cli)."""

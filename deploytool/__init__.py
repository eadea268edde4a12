"""deploytool: the frozen multi-call binary's own package.

The boot media carry one frozen binary, ``deploytool``, that holds every
command and picks one by the name it is called by (multicall.py); a
binary with an image appended (``imgx sfx``) restores that image
(selfrestore.py).  docgen.py makes the man pages, completions and exit-code
tables from the commands' usage texts.  This is the one package that
imports the commands; no command, nor cliutil or the library, imports it.
"""

"""Fleet deployment: one image laid onto every machine of a network
segment at once, over udpcast (Debian's ``udpcast``: udp-sender and
udp-receiver).

  udpcast.py   the two programs: their command lines, started in a
               process group of their own that dies with us, their
               stderr read into events, stopped (TERM, then KILL)
  notice.py    the one datagram of our own: "a session is under way",
               broadcast while a transfer runs, so a late receiver is
               told why it waits (udpcast itself says nothing)
  sender.py    sessions: the image fed to udp-sender, who joined,
               finished and was dropped; --repeat
  receiver.py  joining a session: udp-receiver's stdout as the source of
               a normal restore (every chunk and the root checked)

The stream of a session is the image itself, byte for byte, so every
receiver runs the same RecordStream -> plan_restore -> run_restore path as
``rdeploy restore - TARGET``.
"""

"""rdeploy - capture disks into .rdi images and restore them onto disks.

Usage:
  rdeploy capture SOURCE IMAGE [--partitions=LIST] [--raw] [--compress=CODEC]
                  [--level=N] [--split=SIZE] [--threads=N] [--force]
                  [--sector-size=N] [--yes] [--description=TEXT]
                  [--progress=MODE] [--quiet]
                  [--encrypt] [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy restore IMAGE TARGET [--partitions=LIST] [--into=N] [--yes]
                  [--dry-run] [--grow | --resize=HOW] [--size=N=SIZE...]
                  [--new-ids] [--overwrite-protected] [--tmpdir=DIR]
                  [--verify] [--threads=N] [--progress=MODE] [--quiet]
                  [--resume] [--require-signature=PUBKEY] [--signature=FILE]
                  [--delta] [--ca-file=FILE]
                  [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy multicast send IMAGE [--min-receivers=N] [--max-wait=S]
                  [--rate=MBPS] [--interface=IF] [--fec=SPEC] [--port=N]
                  [--repeat] [--ca-file=FILE] [--progress=MODE] [--quiet]
  rdeploy multicast receive TARGET [--interface=IF] [--port=N] [--wait=S]
                  [--yes] [--partitions=LIST] [--grow | --resize=HOW]
                  [--size=N=SIZE...] [--new-ids] [--overwrite-protected]
                  [--tmpdir=DIR] [--verify] [--delta] [--threads=N]
                  [--progress=MODE] [--quiet]
                  [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy swarm prepare IMAGE -o TORRENT [--web-seed=URL...]
                  [--tracker=URL...] [--peer=HOST:PORT...] [--piece-size=SIZE]
                  [--force] [--ca-file=FILE] [--progress=MODE] [--quiet]
  rdeploy swarm seed TORRENT... [--listen=ADDR] [--upload-rate=MBPS]
                  [--run-tracker=PORT] [--serve-all] [--progress=MODE]
                  [--quiet]
  rdeploy swarm receive SOURCE TARGET [--yes] [--peer=HOST:PORT...]
                  [--listen=ADDR] [--upload-rate=MBPS] [--download-rate=MBPS]
                  [--seed-time=S] [--seed-until=K] [--new-ids] [--wait=S]
                  [--ca-file=FILE] [--progress=MODE] [--quiet]
  rdeploy verify-target TARGET [IMAGE] [--json] [--progress=MODE] [--quiet]
                  [--ca-file=FILE]
                  [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy verify IMAGE [--threads=N] [--progress=MODE] [--quiet]
                  [--pubkey=FILE...] [--signature=FILE] [--ca-file=FILE]
                  [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy keygen KEYFILE [--comment=TEXT] [--force] [--quiet]
  rdeploy sign IMAGE --key=FILE [--signature=FILE] [--quiet]
  rdeploy info IMAGE [--json] [--ca-file=FILE]
                  [--passphrase-file=F | --passphrase-env=VAR]
  rdeploy list [--json]
  rdeploy demo [--dir=DIR] [--keep]
  rdeploy help [COMMAND]
  rdeploy (-h | --help)
  rdeploy --version

Commands:
  capture   Copy SOURCE (a disk such as /dev/sda, or a disk image file) into
            IMAGE. Partition tables are kept whole; all-zero chunks are stored
            as holes. IMAGE "-" writes the stream to stdout (not a terminal).
  restore   Lay IMAGE onto TARGET (a disk, or a disk file created sparse when
            missing). IMAGE "-" reads the stream from stdin; for a split image
            give its first volume. The plan is checked before anything is
            written: too small, mounted or same-as-source targets are refused.
            On a disk of another size the partitions are laid out to fit
            (see --grow, --resize, --size); --dry-run prints that plan.
            Asks for confirmation on a terminal; otherwise needs --yes.
            IMAGE may be an http:// or https:// URL (an S3 presigned URL,
            pxeconf serve, nginx): streamed, a dropped connection resumed
            with a Range request; a split image by its first volume's URL.
  multicast  With udpcast, lay one image onto every machine of a network
            segment at once. `send` sends IMAGE (a file or URL) as one
            session for the whole image, started at --min-receivers or
            --max-wait; a receiver too slow or dead is dropped, one that
            comes late waits for the next session (--repeat runs them back
            to back); udp-sender never outlives the command. `receive`
            joins the next session and restores its image onto TARGET,
            every chunk and the whole-image digest checked; a receiver
            dropped from the session exits 15, TARGET marked incomplete.
  swarm     With BitTorrent (libtorrent), lay one image onto many machines
            across subnets, each machine also serving what it has written.
            `prepare` writes TORRENT and, beside it, the disk's bytes as a
            sparse file NAME.raw (what seeds and web seeds serve); `seed`
            serves TORRENTs from their .raw files (--run-tracker also runs
            opentracker); `receive` writes every piece onto TARGET (a disk
            at least the image's size) as it arrives, serves it to the
            others, then checks every chunk and the root digest. SOURCE:
            a .torrent file, its URL, or a magnet link. docs/swarm.md
            has the details and the --progress=json events.
  verify    Check every chunk, the index and the whole-image digest; write
            nothing. A damaged image exits 4 and names the chunk and offset.
            With --pubkey (or bootdisk --trust's keys) also the signature:
            "signature: good (key ID comment)", else exit 11.
  verify-target  Say whether TARGET holds an interrupted restore (exit 13,
            naming the image and how far it got) or not (0); with IMAGE,
            also compare what TARGET holds with the image's digests: exit 14
            names the first differing disk offset. Reads TARGET only.
  keygen    Make an Ed25519 key pair: KEYFILE (secret, mode 0600) and
            KEYFILE.pub; prints the key id.  Never overwrites without --force.
  sign      Sign IMAGE's root digest (format 1.1: it names every byte of
            content) into IMAGE.sig beside it (or --signature).
  info      Show the source disk, partitions, filesystems, sizes and codec.
  list      Show local disks: size, model, sector sizes, partitions, mounts.
  demo      Build a demo disk (GPT; ext4, FAT32, NTFS with real files),
            capture, restore, verify and check it, printing sizes and speed.
  help      Show this text, or only the part about COMMAND (as
            `rdeploy COMMAND --help` does).

Options:
  --partitions=LIST    Only these partition numbers, e.g. 1,3 (capture keeps
                       the table too; restore writes each into the target's
                       partition of the same number).
  --into=N             Restore the one image partition (or the one chosen
                       with --partitions) into partition N of the target's
                       own table; a larger partition N grows the filesystem.
  --dry-run            Print the plan (old and new place of each partition,
                       grow/shrink, what is kept) and write nothing.
  --grow               Extend the last partition to the end of the target
                       and grow its filesystem (ext2/3/4, NTFS, FAT, swap,
                       XFS, btrfs; FAT12/16 up to their cluster limits).
                       An LVM2 PV grows, and its last LV and that LV's
                       filesystem when the LV is one linear segment.
  --resize=HOW         proportional: every resizable partition keeps its
                       share of the disk.
  --size=N=SIZE        Make partition N SIZE (e.g. 2=20G); repeatable.
  --new-ids            New GPT disk and partition GUIDs (or MBR disk
                       signature) and new filesystem UUIDs/serials, so that
                       restored disks can sit side by side.
  --overwrite-protected  Also overwrite service, OEM recovery and vendor
                       diagnostic partitions (kept by default).
  --tmpdir=DIR         Where a shrinking partition is worked on (its used
                       data must fit); $TMPDIR or /tmp when not given.
  --raw                Copy every sector, zero chunks still stored as holes
                       (with --partitions: the table and those partitions).
  --compress=CODEC     lz4, zstd or none [default: lz4].
  --level=N            Compression level (lz4 1-12, zstd 1-19).
  --split=SIZE         Cut the image into volumes of at most SIZE (650M, 2G;
                       4K at least): IMAGE, then IMAGE with .r01, .r02 ...
  --threads=N          Worker threads [default: all cores].
  --description=TEXT   A note stored in the image [default: ].
  --encrypt            Encrypt the image (AES-256-GCM, a key from the
                       passphrase through scrypt): its metadata, index and
                       chunks cannot be read or changed without it.
  --passphrase-file=F  The passphrase of an encrypted image: the first line
                       of file F (without its line end).
  --passphrase-env=VAR  The passphrase: the value of environment variable
                       VAR. Without either, it is asked on the terminal
                       (twice for --encrypt); only an encrypted image asks.
  --force              Replace an existing IMAGE (once the new one is whole);
                       keygen: replace existing key files.
  --sector-size=N      Logical sector size of a SOURCE disk file: 512 (when
                       not given), 1024, 2048 or 4096. A GPT's own is found
                       from its header; a block device reports its own.
  --yes                restore: overwrite TARGET without asking; capture:
                       go on although a filesystem of SOURCE is mounted
                       read-write (the image may be inconsistent).
  --verify             After restore, read back what was written and compare
                       it with the image's checksums.
  --resume             Finish an interrupted restore of IMAGE on TARGET
                       (same options): chunks before its last checkpoint
                       are read and checked, not written again.
  --require-signature=PUBKEY  Restore only an IMAGE file signed by this
                       key, signature and chunks checked before any write
                       (always on, for their keys, on bootdisk --trust media).
  --signature=FILE     The signature file (default: IMAGE.sig beside IMAGE).
  --pubkey=FILE        verify: check IMAGE's signature by this public key
                       (repeatable: by any of them).
  --key=FILE           sign: the secret key (made by rdeploy keygen).
  --comment=TEXT       keygen: a note kept in both key files (an owner, a
                       purpose) [default: ].
  --delta              Read TARGET where the image has data and write only
                       the chunks whose digest differs (format 1.1; the
                       target's layout must be the image's, else exit 16);
                       every chunk of the image is still read and checked.
  --ca-file=FILE       Trust the TLS certificates of an https:// IMAGE that
                       this CA file signs (PEM), instead of the system's.
  --min-receivers=N    multicast send: start once N receivers have joined
                       [default: 1].
  --max-wait=S         multicast send: start S seconds after the first
                       receiver joined, even with fewer than N.
  --rate=MBPS          multicast send: at most MBPS megabits per second.
  --interface=IF       The network interface to send or receive on (default:
                       the one of the default route); one this host does
                       not have is a usage error (exit 2), on either side.
  --fec=SPEC           multicast send: forward error correction,
                       STRIPESxREDUNDANCY/STRIPESIZE (udp-sender's), e.g.
                       8x8/128, for lossy links.
  --port=N             The UDP port base of the session (udp-sender's
                       --portbase); sender and receivers must agree
                       [default: 9000].
  --repeat             multicast send: after a session, wait for the next
                       receivers and send again, until interrupted.
  --wait=S             multicast receive: give up (exit 15) when no session
                       has started within S seconds; swarm receive: when no
                       byte has arrived for S seconds [default: forever].
  -o TORRENT --output=TORRENT  swarm prepare: the torrent to write; the
                       disk's bytes go to NAME.raw beside it.
  --web-seed=URL       swarm prepare: an HTTP(S) URL serving NAME.raw (BEP 19;
                       a URL ending in / gets NAME.raw appended); repeatable.
  --tracker=URL        swarm prepare: a tracker's announce URL; repeatable.
  --peer=HOST:PORT     A peer to start from (a seeder), also the DHT's first
                       node; repeatable (prepare: written into TORRENT).
  --piece-size=SIZE    swarm prepare: the piece size, a power of two from 64K
                       to 64M (default: 1M, halved while the disk has under
                       1024 pieces, doubled while over 65536).
  --listen=ADDR        swarm: where to accept peers, HOST:PORT or PORT
                       (with a HOST, peers are also dialled from it)
                       [default: 6881].
  --upload-rate=MBPS   swarm: upload at most MBPS megabits per second.
  --download-rate=MBPS  swarm receive: download at most MBPS megabits/s.
  --run-tracker=PORT   swarm seed: also run opentracker on this port (TCP
                       and UDP, 1024 up) for the TORRENTs' infohashes.
  --serve-all          swarm seed: unchoke every peer and never step back
                       (by default 3 peers at a time are served, and only a
                       trickle once the peers hold every piece).
  --seed-time=S        swarm receive: after TARGET is checked, go on
                       serving for S seconds [default: 0]; the most it
                       waits when --seed-until is given (0: no limit).
  --seed-until=K       swarm receive: after TARGET is checked, go on serving
                       until K machines (this one included) hold the whole
                       disk, as far as its peers tell.
  --json               Print JSON instead of a table.
  --progress=MODE      auto (a bar when stderr is a terminal), bar, json
                       (stderr is JSON lines only: progress, then one end
                       or error event; see docs/rdeploy.md), none
                       [default: auto].
  -q --quiet           Print nothing but errors; with --progress=json the
                       JSON stream is still complete.
  --dir=DIR            Where the demo puts its disks: a new or empty
                       directory [default: demo-run].
  --keep               Keep the demo's files.
  -h --help            Show this text.
  --version            Show the version.

Exit codes:
  0 success; 1 other failure (I/O error, a tool that failed); 2 usage error;
  3 bad input (missing or unusable source, a source mounted read-write, an
  existing IMAGE without --force, not an image, a missing volume,
  a terminal); 4 damaged image (checksum, truncated, bad record); 5 target
  refused (too small, mounted, the source, other sector size, MBR logical
  partitions that cannot move, not confirmed); 6 no space left;
  7 unsupported image version or codec; 8 failed after the first write
  (the target was changed and has no valid table); 9 busy (another process
  is writing the same image); 10 a needed tool is not installed (named with
  its Debian package); 11 signature refused (unsigned, bad, another key,
  format 1.0, a pipe where a signature is required); 12 encrypted image
  without its passphrase, or a wrong one (nothing written); 13 TARGET holds
  an interrupted restore (verify-target; finish it with restore --resume);
  14 TARGET differs from IMAGE (verify-target); 15 a network source or
  session failed (a URL unreadable after retries, TLS not verified, dropped
  from a multicast session); 16 delta restore refused (the target's layout
  is not the image's); 70 internal error;
  129 SIGHUP; 130 interrupted
  (Ctrl-C); 141 broken pipe; 143 SIGTERM (129 and 143 clean up as Ctrl-C
  does).  `rdeploy help COMMAND` shows one command's part; man rdeploy.

Examples:
  rdeploy capture /dev/sda /srv/images/lab.rdi --description="lab 2026-11"
  rdeploy capture /dev/sda - | ssh host 'cat > lab.rdi'
  rdeploy capture /dev/sda lab.rdi --encrypt --passphrase-file=/root/pw
  rdeploy restore lab.rdi /dev/sdb --verify
  rdeploy verify-target /dev/sdb
  rdeploy restore lab.rdi /dev/sdb --resume --yes
  rdeploy restore lab.rdi /dev/nvme0n1 --grow --dry-run
  rdeploy restore lab.rdi /dev/sdb --resize=proportional --new-ids --yes
  rdeploy restore data.rdi /dev/sdb --partitions=3 --into=2 --yes
  rdeploy keygen release.key --comment="lab releases"
  rdeploy sign lab.rdi --key=release.key
  rdeploy restore lab.rdi /dev/sdb --require-signature=release.key.pub
  rdeploy restore http://server:8080/images/lab.rdi /dev/sda --yes
  rdeploy restore --delta lab.rdi /dev/sda --yes
  rdeploy multicast send lab.rdi --min-receivers=20 --max-wait=300
  rdeploy multicast receive /dev/sda --yes
  rdeploy swarm prepare lab.rdi -o /srv/tftp/lab.torrent --peer=10.0.0.1:6881
  rdeploy swarm seed /srv/tftp/lab.torrent --run-tracker=6969
  rdeploy swarm receive http://10.0.0.1:8080/lab.torrent /dev/sda --yes
  curl -s http://server/lab.rdi | rdeploy restore - /dev/sda --yes
"""

import json
import sys

from cliutil.runner import dispatch, run
from diskimage import __version__

from . import imagecmds, render, targetcmds, trustcmds


def cmd_list(args):
    from diskimage.host.sysfs import list_disks

    disks = list_disks()
    print(json.dumps(disks, indent=2) if args["--json"]
          else render.disks_table(disks))
    return 0


def cmd_demo(args):
    from . import demo
    return demo.run(args["--dir"], keep=args["--keep"])


COMMANDS = {"capture": imagecmds.cmd_capture,
            "restore": imagecmds.cmd_restore,
            "verify": imagecmds.cmd_verify, "verify-target": lambda args:
            targetcmds.cmd_verify_target(
                args, imagecmds.progress_for(args, "verify-target")),
            "info": imagecmds.cmd_info, "list": cmd_list, "demo": cmd_demo,
            "keygen": trustcmds.cmd_keygen, "sign": trustcmds.cmd_sign,
            "multicast": lambda args: _multicast(args),
            "swarm": lambda args: _swarm(args)}


def _swarm(args):
    from . import swarmcmds
    return swarmcmds.cmd_prepare(args) if args["prepare"] else \
        swarmcmds.cmd_seed(args) if args["seed"] else \
        swarmcmds.cmd_receive(args)


def _multicast(args):
    from . import multicastcmds
    return multicastcmds.cmd_send(args) if args["send"] \
        else multicastcmds.cmd_receive(args)


def _main(argv):
    return dispatch(__doc__, argv, f"rdeploy {__version__}", COMMANDS)


def main(argv=None, exiting=None):
    """`exiting` (default: when argv is None): the process exits when this
    returns (cliutil.runner.run)."""
    return run("rdeploy", _main, sys.argv[1:] if argv is None else argv,
               exiting=argv is None if exiting is None else exiting)


if __name__ == "__main__":
    sys.exit(main())

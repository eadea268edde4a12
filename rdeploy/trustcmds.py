"""rdeploy keygen, sign, and the signature checks of verify and restore
(diskimage.trust does the work; this module converts options and renders).
"""

import sys

from cliutil.text import safe
from diskimage.errors import UsageError
from diskimage.trust import keys as keyfiles, policy
from diskimage.trust import signature as signatures

from .remotecmds import refuse_signature


def cmd_keygen(args):
    public = keyfiles.write_keypair(args["KEYFILE"],
                                    comment=args["--comment"] or "",
                                    force=args["--force"])
    if not args["--quiet"]:
        print(f"rdeploy: wrote secret key {safe(args['KEYFILE'])} (mode "
              f"0600) and public key {safe(public.path)}: key "
              f"{safe(public.describe())}", file=sys.stderr)
    print(public.key_id)
    return 0


def cmd_sign(args):
    image = args["IMAGE"]
    if image == "-":
        raise UsageError("sign needs an image file, not a pipe")
    secret = keyfiles.load_secret(args["--key"])
    path = signatures.signature_path(image, args["--signature"])
    sig = signatures.sign_file(image, secret, path)
    if not args["--quiet"]:
        print(f"rdeploy: signed {safe(image)} (root {sig['root']}) with key "
              f"{safe(secret.public.describe())}: {safe(path)}",
              file=sys.stderr)
    return 0


def _given(args, option):
    value = args.get(option)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def restore_keys(args):
    """The keys restore requires a signature by ([] when none is
    required): --require-signature and the installed ones.  A pipe is
    refused when one is required."""
    keys = policy.trusted_keys(_given(args, "--require-signature"))
    if args.get("--signature") and not keys:
        raise UsageError("--signature goes with --require-signature")
    if keys:
        policy.refuse_pipe(args["IMAGE"])
        refuse_signature(args, "--require-signature")
    return keys


def check_before_restore(args, keys, threads, progress, passphrase=None):
    """The signature and every chunk checked before the restore's first
    write; the result for :func:`checked_stream`."""
    return policy.check_image(
        args["IMAGE"], keys, args["--signature"], threads=threads,
        progress=progress.stage("signature check"),
        chunks=not args["--dry-run"], passphrase=passphrase)


def checked_stream(source, checked, image, passphrase=None):
    """The restore's RecordStream: every record must equal the signed
    index entry before it is written."""
    from diskimage.image.reader import RecordStream
    stream = RecordStream(source, passphrase=passphrase,
                          expected=checked["entries"])
    policy.check_stream(stream, checked, image)
    return stream


def signed_result(result, checked):
    """restore's JSON result, with the signature checked (if one was)."""
    if checked:
        key = checked["key"]
        result["signature"] = {"key_id": key.key_id, "comment": key.comment,
                               "root": checked["root"].hex()}
    return result


def signed_lines(checked):
    """restore's extra line naming the key that signed the image."""
    if not checked:
        return []
    return [f"rdeploy: signature: good (key {checked['key'].describe()})"]


def verify_keys(args):
    keys = policy.trusted_keys(_given(args, "--pubkey"))
    if args.get("--signature") and not keys:
        raise UsageError("--signature goes with --pubkey")
    if keys:
        policy.refuse_pipe(args["IMAGE"])
        refuse_signature(args, "--pubkey")
    return keys


def verify_signature(args, keys, summary, passphrase=None):
    """After a good verify: the signature line ("signature: good (key ID
    comment)"), or None when no key is given or installed (then a
    signature beside the image is only mentioned)."""
    import os

    from diskimage.errors import SignatureError
    from diskimage.image.reader import ImageReader

    image = args["IMAGE"]
    path = signatures.signature_path(image, args["--signature"])
    if not keys:
        if image != "-" and os.path.exists(path):
            return f"signature: {path} not checked (give --pubkey)", None
        return None, None
    with ImageReader(image, passphrase=passphrase) as reader:
        key, sig, root = signatures.verify(reader, image, keys, path)
    if summary.get("digest") not in (None, root.hex()):
        raise SignatureError(f"{image}: changed while it was verified")
    return (f"signature: good (key {key.describe()})",
            {"key_id": key.key_id, "comment": key.comment,
             "root": root.hex(), "signed_at": sig.get("signed_at")})

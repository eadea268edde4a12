"""Trust: who made an image, and whether this machine accepts it.

    keys        Ed25519 key pairs as one-line text files: the secret
                (``rdeploy-ed25519-secret``, mode 0600) and the public key
                (``rdeploy-ed25519``), their key ids, `rdeploy keygen`
    signature   the signature beside an image (``IMAGE.sig``, JSON): what
                is signed (the image's root digest), writing it
                (`rdeploy sign`) and checking it against a set of keys
    policy      which keys this machine trusts (``/etc/rdeploy/trusted``
                on boot media made with ``bootdisk --trust``, or the keys
                given), and the check a restore makes before its first
                write: the signature, then every chunk against the signed
                index

Ed25519 comes from the ``cryptography`` package.  Like the rest of the
library this room raises (SignatureError, exit 11, and the errors of
reading an image) and never prints.
"""

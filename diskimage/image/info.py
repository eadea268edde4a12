"""What an image holds, as a JSON-able dict (rdeploy info, imgx info)."""

from .format import CODEC_NAMES
from .reader import ImageReader
from .sealed import is_encrypted, sealed_info
from .volumes import shown_name


def image_info(path, *, passphrase=None):
    """`passphrase` (a callable, see ImageReader): without it an encrypted
    image gives only what is plain (diskimage.image.sealed).  `path` may
    be a seekable source already open (an HttpInput): the caller closes
    it."""
    if passphrase is None and is_encrypted(path):
        return sealed_info(path)
    with ImageReader(path, passphrase=passphrase) as image:
        meta = image.metadata
        areas = [dict(area, data_bytes=0, zero_bytes=0, stored_bytes=0,
                      chunks=0) for area in meta["areas"]]
        codecs = {}
        for entry in image.entries:
            area = areas[entry.area]
            area["chunks"] += 1
            if entry.is_zero:
                area["zero_bytes"] += entry.length
            else:
                area["data_bytes"] += entry.length
                area["stored_bytes"] += entry.stored_size
                name = CODEC_NAMES.get(entry.codec, str(entry.codec))
                codecs[name] = codecs.get(name, 0) + 1
        data = sum(a["data_bytes"] for a in areas)
        stored = sum(a["stored_bytes"] for a in areas)
        return {
            "image": shown_name(path),
            "volumes": image.source.paths,
            "image_bytes": image.image_bytes,
            "format_version": image.version,
            # the root digest (1.1; a signature signs it), or 1.0's digest
            "root": image.root.hex(),
            "root_strong": image.layout.strong,
            "chunk_size": image.chunk_size,
            "encrypted": image.sealer is not None,
            "tool": meta.get("tool"),
            "created": meta.get("created"),
            "description": meta.get("description", ""),
            "history": meta.get("history", []),
            "mode": meta.get("mode"),
            "compression": meta.get("compression"),
            "chunk_codecs": codecs,
            "source": meta["source"],
            "table": meta["table"],
            "areas": areas,
            "data_bytes": data,
            "zero_bytes": sum(a["zero_bytes"] for a in areas),
            "stored_bytes": stored,
            "ratio": round(stored / data, 4) if data else None,
        }

"""Bounds put on dissect's readers where a hostile filesystem would make
them run without end (found by the imgx fuzz target, tests/fuzz).

dissect.fat follows a FAT cluster chain until it ends: a chain that loops
(an entry pointing back into its own chain) is followed forever, by a
directory listing and by a file's reads.  :func:`fat_chains` makes every
chain of a dissect FATFS stop with :class:`ChainLoop` at the first cluster
it meets twice, or when it grows longer than the volume has clusters.
The error reaches imgx through diskimage.fs.damage as "damaged filesystem:
the FAT chain from cluster N loops back to cluster M".
"""


class ChainLoop(ValueError):
    """A FAT cluster chain that loops, or is longer than the volume."""


def fat_chains(fs, size=None):
    """Bound every cluster chain the dissect.fat FATFS `fs` follows (its
    FAT's chain(), which runlist() and the directory readers use); `size`:
    the volume's bytes, when known (no chain is longer than the clusters
    it holds, whatever the BPB claims)."""
    fat = fs.fat
    follow = fat.chain
    limit = fat.entry_count
    if size is not None:
        limit = min(limit, size // fs.cluster_size + 2)

    def chain(first):
        seen = set()
        for cluster in follow(first):
            if cluster in seen:
                raise ChainLoop(f"the FAT chain from cluster {first} loops "
                                f"back to cluster {cluster}")
            if len(seen) >= limit:
                raise ChainLoop(f"the FAT chain from cluster {first} is "
                                f"longer than the volume's {limit} clusters")
            seen.add(cluster)
            yield cluster
    fat.chain = chain
    return fs

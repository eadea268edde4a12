#!/bin/sh
# Rebuild tests/image/data/v10-ext4.rdi.gz: a format 1.0 image made by the
# last rdeploy that wrote 1.0 (commit 706dad1, before issue 16), of a 4 MiB
# GPT disk with ext4 (files from mkfs.ext4 -d) and random bytes.  Run from
# the repository root; needs git, sfdisk, mkfs.ext4 and the venv.
set -eu
out=$(pwd)/tests/image/data
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" 2>/dev/null; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/src" 706dad1
mkdir "$tmp/files"
printf 'format 1.0 still restores\n' > "$tmp/files/hello.txt"
python3 -c "import random; open('$tmp/files/blob.bin','wb').write(random.Random(10).randbytes(12000))"
truncate -s 4M "$tmp/disk.img"
printf 'label: gpt\nlabel-id: 5A1F6B2C-0D3E-4F50-8A61-72B3C4D5E6F7\nstart=2048, size=5120, name=sys, uuid=0B1C2D3E-4F50-4A61-8B72-93A4B5C6D7E8\nstart=7168, size=512, name=raw, uuid=1C2D3E4F-5061-4B72-9C83-A4B5C6D7E8F9\n' \
    | sfdisk -q "$tmp/disk.img"
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -d "$tmp/files" -U 2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901 \
    -E offset=1048576,root_owner=0:0 -T small "$tmp/disk.img" 2560k
python3 -c "
f = open('$tmp/disk.img', 'r+b'); f.seek(7168 * 512)
import random; f.write(random.Random(11).randbytes(8 * 1024))"
(cd "$tmp/src" && PYTHONPATH="$tmp/src" "$OLDPWD/.venv/bin/python" -m rdeploy \
    capture "$tmp/disk.img" "$tmp/v10.rdi" -q --description="format 1.0 fixture")
gzip -9n < "$tmp/v10.rdi" > "$out/v10-ext4.rdi.gz"
sha256sum "$tmp/disk.img" | cut -d' ' -f1 > "$out/v10-ext4.disk.sha256"
ls -l "$out"

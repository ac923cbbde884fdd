"""Delete packed blobs: a pack left with only dead blobs goes, one with some is rewritten.

Crash safety comes from the order: the live blobs are copied into new packs, which are
published (and, with `fsync`, made durable) before any old pack is unlinked. A `kill -9` in
between leaves every live blob readable, some twice; the next collection sees the dead blobs
still listed and deletes the old pack, whose live blobs are now found elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from modelyard.store._pack_writer import PackWriter
from modelyard.store._packs import Pack, PackIndex, fsync_dir


def delete_packed(
    index: PackIndex,
    doomed: set[str],
    *,
    new_writer: Callable[[], PackWriter],
    loose: Callable[[str], bool],
    fsync: bool,
) -> set[str]:
    """Remove the `doomed` digests from every pack that holds them; return those removed.

    Each pack holding a doomed blob is rewritten once, whatever the number of its dead blobs.
    """
    packs = index.packs()
    hit = [pack for pack in packs if not doomed.isdisjoint(pack.entries)]
    if not hit:
        return set()
    names = {pack.name for pack in hit}
    # A live blob also stored in an untouched pack or loose is not copied again, so an
    # interrupted repack's duplicates disappear on the next run.
    elsewhere = {digest for pack in packs if pack.name not in names for digest in pack.entries}
    writer = new_writer()
    removed: set[str] = set()
    for pack in hit:
        removed.update(doomed.intersection(pack.entries))
        _copy_live(
            index,
            pack,
            writer,
            skip=lambda digest: digest in doomed or digest in elsewhere or loose(digest),
        )
    writer.close()
    writer.flush()
    for pack in hit:
        try:
            os.unlink(pack.path)
        except FileNotFoundError:
            pass
    if fsync:
        fsync_dir(index.folder)
    index.forget(names)
    return removed


def _copy_live(
    index: PackIndex, pack: Pack, writer: PackWriter, *, skip: Callable[[str], bool]
) -> None:
    for digest, location in pack.entries.items():
        if not skip(digest):
            # Copied as stored: a blob that was corrupt stays detectably corrupt on read.
            writer.add(digest, index.read(location))

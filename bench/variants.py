"""The ten-variant workload of `bench/store.py`: fine-tunes of one model, stored by each tool.

Each variant folder is written once, then stored by ours (`store_directory` into one
`LocalStore`, in-process) and by every available peer (`peers.py`) in turn, then deleted, so
all tools read the same bytes from the same filesystem, fresh in the page cache.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from peers import (
    CliRepository,
    DvcRepository,
    Peer,
    PeerUnavailable,
    Repository,
    ResticRepository,
    folder_size,
)
from safetensors.torch import save_file

from modelyard.store import LocalStore, Manifest, store_directory


def variant_models(
    base: dict[str, torch.Tensor], variants: int, share: float, seed: int
) -> list[dict[str, torch.Tensor]]:
    """`variants` fine-tunes of `base`, each with a distinct random subset of `share` of its
    tensors changed (same shapes and dtypes, so a safetensors header stays byte-identical)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    names = sorted(base)
    count = max(1, round(share * len(names)))
    seen: set[frozenset[str]] = set()
    models: list[dict[str, torch.Tensor]] = []
    while len(models) < variants:
        subset = frozenset(str(name) for name in rng.choice(names, size=count, replace=False))
        if subset in seen:
            continue
        seen.add(subset)
        model = dict(base)
        for name in subset:
            tuned = base[name].clone()
            tuned.add_(torch.randn(tuned.shape, generator=generator), alpha=1e-3)
            model[name] = tuned
        models.append(model)
    return models


def write_variant(folder: Path, model: dict[str, torch.Tensor], fmt: str, index: int) -> None:
    """Write one variant's folder: its weights in `fmt` and a small config.json."""
    folder.mkdir()
    if fmt == "safetensors":
        save_file(model, folder / "model.safetensors")
    else:  # a pickle-in-zip checkpoint, which only content-defined chunking can deduplicate
        torch.save(model, folder / "model.pt")
    config = {"architectures": ["BenchModel"], "name": f"variant-{index}", "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))


class OurStore:
    """Ours as a `Repository`: `store_directory` into one `LocalStore`, in this process."""

    name = "modelyard"

    def __init__(self, root: Path) -> None:
        self.store = LocalStore(root)
        self.manifests: list[Manifest] = []

    def add(self, folder: Path) -> None:
        """Store the folder and keep its manifest."""
        self.manifests.append(store_directory(self.store, folder))

    def stored_bytes(self) -> int:
        """Bytes of every file under the store's root (blobs, packs, indexes, manifests)."""
        return folder_size(self.store.root)


@dataclass(slots=True)
class Tally:
    """What one tool did with the variants: seconds per variant, then bytes stored in all."""

    seconds: list[float] = field(default_factory=list)
    stored: int = 0


def open_peers(
    work: Path, data: Path, fmt: str, peers: dict[str, Peer | str]
) -> tuple[list[Repository], dict[str, str]]:
    """A fresh repository per available peer, and why each other peer is left out."""
    repos: list[Repository] = []
    missing: dict[str, str] = {}
    for name, peer in peers.items():
        if isinstance(peer, str):
            missing[name] = peer
            continue
        repo: DvcRepository | ResticRepository | CliRepository
        if name == "DVC":  # `dvc add` takes only folders inside its repository: `data` is one
            repo = DvcRepository(peer, data, work / f"dvc-site-{fmt}")
        elif name == "restic":
            repo = ResticRepository(peer, work / f"restic-{fmt}")
        else:
            repo = CliRepository(peer, work / f"cli-store-{fmt}", work / f"cli-home-{fmt}")
        try:
            repo.open()
        except PeerUnavailable as error:
            missing[name] = str(error)
            continue
        repos.append(repo)
    return repos, missing


def store_variants(
    work: Path,
    models: list[dict[str, torch.Tensor]],
    fmt: str,
    peers: dict[str, Peer | str],
    *,
    timer: Callable[[Callable[[], object]], float],
) -> tuple[OurStore, dict[str, Tally | str]]:
    """Write each variant's folder once, store it with every tool in turn, then delete it.

    `timer(action)` runs one tool's call and returns its wall time in seconds.

    Returns our store and, by tool name, its tally or why it did not run (or stopped).
    """
    data = work / f"variants-{fmt}"
    data.mkdir()
    ours = OurStore(work / f"store-{fmt}")
    peer_repos, missing = open_peers(work, data, fmt, peers)
    repos: list[Repository] = [ours, *peer_repos]
    results: dict[str, Tally | str] = dict(missing)
    tallies = {repo.name: Tally() for repo in repos}
    for index, model in enumerate(models):
        folder = data / f"variant-{index}"
        write_variant(folder, model, fmt, index)
        for repo in list(repos):
            try:
                seconds = timer(partial(repo.add, folder))
            except PeerUnavailable as error:
                results[repo.name] = f"failed on variant {index}: {error}"
                repos.remove(repo)
                continue
            tallies[repo.name].seconds.append(seconds)
        if folder_size(folder) != ours.manifests[-1].size:
            raise AssertionError(f"manifest size of {folder} differs from the folder's")
        shutil.rmtree(folder)
    for repo in repos:
        tallies[repo.name].stored = repo.stored_bytes()
        results[repo.name] = tallies[repo.name]
    return ours, results

"""Training batches: one loader per fold with persistent workers must still give every epoch its own,
reproducible order and augmentations."""

import numpy as np
import torch

from fathom.constants import N_FINE, N_SUPER
from fathom.data.cache import ImageCache
from fathom.data.loaders import EpochSampler, FrameDataset, make_loader
from fathom.data.transforms import train_transform


def test_epoch_sampler_order_depends_only_on_seed_and_epoch():
    walked = EpochSampler(50, seed=7)
    orders = []
    for epoch in range(4):
        walked.set_epoch(epoch)
        orders.append([key for key in walked])
    assert all(sorted(i for _, i in order) == list(range(50)) for order in orders)
    assert all({e for e, _ in order} == {epoch} for epoch, order in enumerate(orders))
    assert orders[0] != orders[1]
    fresh = EpochSampler(50, seed=7)
    fresh.set_epoch(3)  # a run resumed at epoch 3 shuffles as the uninterrupted one did
    assert list(fresh) == orders[3]
    other_seed = EpochSampler(50, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != orders[3]


def test_ranks_split_each_epoch_between_them():
    ranks = [EpochSampler(50, seed=1, world=2, rank=r) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(2)
    shares = [{i for _, i in sampler} for sampler in ranks]
    assert len(shares[0]) == len(shares[1]) == 25 and not shares[0] & shares[1]


def test_persistent_workers_see_each_epoch(demo_dir, tmp_path):
    """Two epochs through one loader with a persistent worker give the batches that a fresh in-process
    loader gives for each epoch: the epoch travels with the sampler's keys, not with a dataset copy."""
    paths = sorted(str(p) for p in (demo_dir / "images").glob("*.png"))[:24]
    files = ImageCache(tmp_path, 32).build(paths)
    n = len(files)

    def loader(workers):
        dataset = FrameDataset(files, np.zeros((n, N_FINE), np.float32), np.zeros((n, N_SUPER), np.float32),
                               train_transform(32, (0.5,) * 3, (0.25,) * 3), seed=5)
        return make_loader(dataset, 8, True, workers, torch.device("cpu"), sampler=EpochSampler(n, seed=5))

    persistent = loader(workers=1)
    assert persistent.persistent_workers
    seen = []
    for epoch in range(2):
        persistent.sampler.set_epoch(epoch)
        seen.append(torch.cat([images for images, _, _ in persistent]))
        single = loader(workers=0)
        single.sampler.set_epoch(epoch)
        assert torch.equal(seen[-1], torch.cat([images for images, _, _ in single]))
    assert not torch.equal(seen[0], seen[1])

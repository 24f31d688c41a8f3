import torch

from backdoorlab.data import Augment, BatchIterator, Dataset


def data(n=10, size=6):
    images = torch.arange(n * size * size, dtype=torch.int64).remainder(256).to(torch.uint8)
    return Dataset(
        "t", images.view(n, 1, size, size), torch.arange(n) % 2, ["a", "b"], (0.5,), (0.2,)
    )


def test_covers_every_sample_once_per_epoch():
    d = data(10)
    it = BatchIterator(d, 3, shuffle=True, seed=0)
    assert len(it) == 4
    seen = torch.cat([idx for _, _, idx in it])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(BatchIterator(d, 3, drop_last=True)) == 3


def test_batches_match_their_indices():
    d = data()
    for x, y, idx in BatchIterator(d, 4, shuffle=True, seed=1):
        assert torch.equal(x, d.images[idx].float() / 255) and torch.equal(y, d.labels[idx])
        assert x.dtype == torch.float32


def test_same_seed_same_batches_different_seed_different():
    d = data()
    a = [idx for _, _, idx in BatchIterator(d, 4, shuffle=True, seed=7)]
    b = [idx for _, _, idx in BatchIterator(d, 4, shuffle=True, seed=7)]
    c = [idx for _, _, idx in BatchIterator(d, 4, shuffle=True, seed=8)]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def test_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.rand(64, 2, 6, 6)
    out = Augment(crop_padding=2)(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(64):
        match = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert match, "every crop must be a window of its own padded image"
        shifts.add(match[0])
    assert len(shifts) > 5


def test_flip_flips_about_half_and_nothing_else():
    x = torch.rand(200, 1, 4, 4)
    out = Augment(flip=True)(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert torch.all(flipped | same)
    assert 60 < int(flipped.sum()) < 140


def test_augmenting_uint8_gives_the_float_result_exactly():
    """BatchIterator augments the stored uint8 images before converting them."""
    u8 = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    aug = Augment(crop_padding=2, flip=True)
    a = aug(u8, torch.Generator().manual_seed(3)).float().div_(255)
    b = aug(u8.float().div_(255), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_augmented_batches_are_the_batch_augmentation_of_their_images():
    """The iterator reads crops from a padded, mirrored copy; it must give what `Augment`
    gives the gathered batch with the same random choices, over several epochs."""
    images = torch.randint(0, 256, (50, 3, 7, 7), dtype=torch.uint8)
    d = Dataset("t", images, torch.arange(50) % 2, ["a", "b"], (0.5,) * 3, (0.2,) * 3)
    for aug in (Augment(crop_padding=2, flip=True), Augment(flip=True), Augment(crop_padding=1)):
        it = BatchIterator(d, 16, shuffle=True, augment=aug, seed=4)
        gen = torch.Generator().manual_seed(4)
        for _epoch in range(2):
            order = torch.randperm(50, generator=gen)
            batches = list(it)
            for i, (x, y, idx) in enumerate(batches):
                want = order[16 * i : 16 * (i + 1)]
                expected = aug(images[want], gen).float() / 255
                assert torch.equal(idx, want) and torch.equal(x, expected)
                assert torch.equal(y, d.labels[want])

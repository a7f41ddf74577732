"""Every scheme of conf/scheme keeps the protocol of alimb.schemes.Scheme, composed as the command line does."""

from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from alimb.config import build
from alimb.data.digits import load_digits
from alimb.run import CONFIG_DIR
from alimb.records import FIELDS
from alimb.schemes import Inputs, Scheme
from alimb.schemes.finetune import threshold

SCHEMES = sorted(p.stem for p in (Path(CONFIG_DIR) / "scheme").glob("*.yaml"))
TINY = ("backbone.weights=null", "backbone.resolution=16", "dataset.image_size=16", "backbone.num_workers=0",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false")
EPOCHS = {"ft": ("scheme.epochs=1",), "ft_th": ("scheme.epochs=1",), "ft_vit": ("scheme.epochs=1",),
          "switch": ("scheme.schemes.ft_th.epochs=1",)}


@pytest.fixture(scope="module")
def digits():
    return load_digits(), np.r_[0:120]


@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_keeps_the_protocol(make_cfg, name, digits):
    data, rows = digits
    cfg = make_cfg(f"scheme={name}", *TINY, *EPOCHS.get(name, ()))
    scheme = build(cfg.scheme)
    assert isinstance(scheme, Scheme) and isinstance(scheme.needs_images, bool)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(data.train_y), 8)).astype(np.float32) + np.eye(10, 8, dtype=np.float32)[data.train_y] * 3
    inputs = Inputs(x, data.train_images if scheme.needs_images else None)
    train, test = inputs.subset(rows), inputs.subset(np.r_[120:180])
    report = scheme.fit(train, data.train_y[rows], 10, np.random.default_rng(1))
    assert isinstance(report, dict) and set(report) <= set(FIELDS)
    scores, features = scheme.score(test)
    assert scores.shape == (60, 10) and features.shape[0] == 60 and np.isfinite(scores).all()
    np.testing.assert_array_equal(scheme.predict(test), scores.argmax(axis=1))
    w, b = scheme.head()
    assert w.shape == (features.shape[1], 10) and b.shape == (10,)
    logits = features.astype(np.float64) @ w + b  # the head is the last layer over the features it returned
    if hasattr(scheme, "thresholding"):  # fine tuning: probabilities, the softmax of the logits (FT-th: thresholded)
        probs = softmax(logits, axis=1)
        expected = threshold(probs, np.bincount(data.train_y[rows], minlength=10)) if scheme.thresholding else probs
        np.testing.assert_allclose(scores, expected, atol=1e-4)
    else:  # the SVMs (and the switch, on its start scheme): decision values, the logits themselves
        np.testing.assert_allclose(scores, logits, rtol=1e-4, atol=1e-4)
    again = build(cfg.scheme)
    again.load_state_dict(scheme.state_dict())  # a resumed run continues from the same model
    np.testing.assert_allclose(again.score(test)[0], scores, rtol=1e-5, atol=1e-6)

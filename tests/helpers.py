"""Calling an AF from keyword inputs, as the tests written against arrays do."""

import functools

import numpy as np

from alimb.acquisition import Context

CONTEXT_FIELDS = ("labels", "labeled_mask", "n_classes", "budget", "rng", "scores", "features", "fg", "head", "oracle",
                  "candidates", "picked", "centers")


def select(af, **inputs):
    """af(Context(...)) with the context's fields taken from `inputs` and the rest bound as the AF's options;
    labels default to -1 everywhere (nothing known), n_classes to the scores' width or the labels' range."""
    fields = {k: v for k, v in inputs.items() if k in CONTEXT_FIELDS}
    options = {k: v for k, v in inputs.items() if k not in CONTEXT_FIELDS}
    mask = np.asarray(fields["labeled_mask"], dtype=bool)
    fields.setdefault("labels", np.full(mask.size, -1))
    if "n_classes" not in fields:
        scores, labels = fields.get("scores"), np.asarray(fields["labels"])
        fields["n_classes"] = np.asarray(scores).shape[1] if scores is not None else int(labels.max()) + 1
    return functools.partial(af, **options)(Context(**fields)) if options else af(Context(**fields))

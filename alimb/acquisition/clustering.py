"""k-means for the AFs that cluster the pool (TypiClust, ProbCover's purity rule), as their authors run it.

The authors' code (avihu111/TypiClust, deep-al/pycls/al/typiclust.py and prob_cover.py) uses scikit-learn:
KMeans for up to 50 clusters, MiniBatchKMeans with batches of 5 000 beyond. alimb does the same, with the
random state drawn from the run's generator (theirs is unseeded) and scikit-learn's other defaults.
"""

from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster index of each row of x: (n,)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans  # on use: scikit-learn costs a second of start-up

    seed = int(rng.integers(2**31 - 1))
    if n_clusters <= 50:
        model = KMeans(n_clusters=n_clusters, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=n_clusters, batch_size=5000, random_state=seed)
    return model.fit_predict(np.asarray(x, dtype=np.float32)).astype(np.int64)

"""Training schemes: what is trained each iteration, and the scores and features AFs receive.

A scheme has `fit(x, y, n_classes)`, `scores(x) -> (n, n_classes)`, `predict(x) -> (n,)` and
`features(x) -> (n, d)` (the space of diversity-based AFs).
"""

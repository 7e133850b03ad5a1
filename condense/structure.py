"""Structure-only reference rows for graph tables: no model, no synthetic set, 0 stored bytes.

Errica et al. (ICLR 2020, "A Fair Comparison of Graph Neural Networks for Graph Classification", §4)
showed that baselines blind to the graph's structure match many graph classifiers. On NCI1 a graph's
node count alone reaches Mirage's published ROC-AUC. Every graph table therefore carries three
references, each fitted on the training split only and scored on the test split like every row
(accuracy, and ROC-AUC on two-class tasks):

- ``node-count``: the score is the number of nodes. On two classes its sign, and the threshold that
  turns it into a prediction, are those with the best training ROC-AUC and accuracy; on more classes
  a logistic regression on it (standardised);
- ``size``: logistic regression on the node and edge counts (standardised);
- ``bag-of-atoms``: logistic regression on the summed node features (the counts of each atom type
  for one-hot features; standardised).

Logistic regression is scikit-learn's (L2, C = 1, lbfgs), deterministic: one run per dataset. This
module imports neither torch nor scikit-learn until a baseline is fitted, so the report reads its
names without them.
"""
from __future__ import annotations

import numpy as np

STRUCTURE_BASELINES = ("node-count", "size", "bag-of-atoms")
#: bumped when a baseline's definition changes: records of another version are refitted
STRUCTURE_VERSION = 1


def features(graphs, name: str) -> np.ndarray:
    """The baseline's per-graph features (graphs × k)."""
    if name == "node-count":
        return np.array([[g.num_nodes] for g in graphs], dtype=np.float64)
    if name == "size":   # undirected edges are stored in both directions: count pairs
        return np.array([[g.num_nodes, g.edge_index.shape[1] / 2] for g in graphs], dtype=np.float64)
    if name == "bag-of-atoms":
        return np.stack([g.x.double().sum(0).numpy() for g in graphs])
    raise ValueError(f"unknown structure baseline {name!r}; expected one of {', '.join(STRUCTURE_BASELINES)}")


def _labels(graphs) -> np.ndarray:
    return np.array([int(g.y.view(-1)[0]) for g in graphs])


def _auc(score: np.ndarray, y: np.ndarray) -> float | None:
    """ROC-AUC % (ties averaged, as the evaluator's); None when a class is absent."""
    if not ((y == 1).any() and (y == 0).any()):
        return None
    # On use: scikit-learn takes half a second to import, and the report imports this module without it.
    from sklearn.metrics import roc_auc_score

    return 100.0 * float(roc_auc_score(y, score))


def _node_count(xtr, ytr) -> tuple[float, float]:
    """Two classes: the sign by training ROC-AUC, then the training-accuracy threshold (midpoints)."""
    s = xtr[:, 0]
    auc = _auc(s, ytr)
    sign = -1.0 if auc is not None and auc < 50.0 else 1.0
    cand = np.unique(sign * s)
    cuts = np.concatenate([[cand[0] - 1], (cand[1:] + cand[:-1]) / 2, [cand[-1] + 1]])
    accs = [((sign * s > t).astype(int) == ytr).mean() for t in cuts]
    return sign, float(cuts[int(np.argmax(accs))])   # the first of the best: deterministic


def fit_and_score(name: str, train, test) -> dict:
    """Fit ``name`` on ``train`` (graphs with labels) and score it on ``test``: accuracy %, ROC-AUC %
    (two classes), training accuracy, and what was fitted."""
    xtr, xte = features(train, name), features(test, name)
    ytr, yte = _labels(train), _labels(test)
    classes = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
    if name == "node-count" and classes == 2:
        sign, cut = _node_count(xtr, ytr)
        score = sign * xte[:, 0]
        pred, train_pred = (score > cut).astype(int), (sign * xtr[:, 0] > cut).astype(int)
        fitted = {"sign": sign, "threshold": sign * cut}
    else:
        # On use: as in _auc.
        from sklearn.linear_model import LogisticRegression

        mean, std = xtr.mean(0), xtr.std(0)
        std[std == 0] = 1.0
        model = LogisticRegression(C=1.0, max_iter=5000).fit((xtr - mean) / std, ytr)
        pred = model.predict((xte - mean) / std)
        train_pred = model.predict((xtr - mean) / std)
        score = model.predict_proba((xte - mean) / std)[:, -1] if len(model.classes_) == 2 else None
        fitted = {"features": int(xtr.shape[1]), "C": 1.0}
    return {"method": name, "acc": 100.0 * float((pred == yte).mean()),
            "roc_auc": _auc(np.asarray(score, dtype=np.float64), yte) if classes == 2 and score is not None else None,
            "train_acc": 100.0 * float((train_pred == ytr).mean()), "fitted": fitted,
            "train_size": len(train), "test_size": len(test), "storage_bytes": 0, "version": STRUCTURE_VERSION}


def structure_key(dataset: str, method: str, fingerprint: str) -> str:
    """One reference row per dataset copy (its training split's fingerprint) and definition version."""
    return f"structure/{dataset}/{method}/{fingerprint}/v{STRUCTURE_VERSION}"


def structure_records(train, test, have=()) -> list[dict]:
    """The structure baselines of one dataset not among the keys ``have``, as records for ``structure.jsonl``."""
    base = {"kind": "structure", "status": "ok", "dataset": train.name, "source_fingerprint": train.fingerprint,
            "source": getattr(train, "source", "")}
    return [{**base, "key": key, **fit_and_score(name, train, test)} for name in STRUCTURE_BASELINES
            if (key := structure_key(train.name, name, train.fingerprint)) not in have]

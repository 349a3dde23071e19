"""User-style models: the user's own numpy forward and hand-written backprop, with planted bugs.

Shared fixtures for the engines, the layer checks, the layouts and the diagnoses. Each
model is written the way a course's students write it, not with fastcheck's MLP:

- :mod:`.course_mlp`: deeplearning.ai layout (examples as columns, ``W1, b1, ...``, the full
  gradients dict with ``dA``/``dZ`` keys);
- :mod:`.cs231n`: CS231n layout (examples as rows, layers returning ``(out, cache)``,
  ``loss(X, y) -> (loss, grads)``), a fully connected net with batch norm, a TwoLayerNet with
  the SVM loss, a conv net; :mod:`.layer_checks`: every CS231n layer as a layer check;
- :mod:`.rnn`: the course's character-level vanilla RNN with BPTT.

``MODELS`` maps a name to a builder returning a :class:`Case` ``(cost, params, grads, meta)``:
``cost(params) -> float`` closes over seeded float64 data; ``grads`` is the gradient dict as the
user's code returns it; ``meta["grads_clean"]`` the same with parameter keys only;
``meta["bugs"]`` name -> :class:`Bug`; ``meta["size"]`` is ``"small"`` or ``"big"`` (the
issue's sizes, too slow to check in full in a test). ``LAYERS`` maps a layer's name to a
:class:`LayerCase` builder (``forward``, ``inputs``, ``backward``, ``dout``, ``bugs``); each is
also in ``MODELS`` as ``layer_<name>`` in today's ``sum(out * dout)`` form.

>>> case = build("course_mlp")
>>> cost, params, grads, meta = case
>>> sorted(meta["bugs"])[:2]
['db_without_m', 'missing_l2']
"""

from __future__ import annotations

import functools

from . import course_mlp, cs231n, layer_checks, rnn
from .base import Bug, Case, LayerCase, LayerCost, LayerGrads, first_line, param_grads

__all__ = ["MODELS", "LAYERS", "SMALL", "BIG", "build", "build_layer", "Bug", "Case", "LayerCase", "LayerCost",
           "LayerGrads", "first_line", "param_grads", "course_mlp", "cs231n", "layer_checks", "rnn"]


def _sized(size: str, builder, **spec) -> Case:
    case = builder(**spec)
    case.meta["size"] = size
    return case


_MODEL_SPECS = {
    "course_mlp": ("small", course_mlp.build, course_mlp.SMALL),
    "course_mlp_big": ("big", course_mlp.build, course_mlp.BIG),
    "cs231n_fc_bn": ("small", cs231n.build_fc, cs231n.FC_BN),
    "cs231n_two_layer_svm": ("small", cs231n.build_fc, cs231n.TWO_LAYER_SVM),
    "cs231n_cnn": ("small", cs231n.build_cnn, cs231n.CNN_SMALL),
    "cs231n_cnn_big": ("big", cs231n.build_cnn, cs231n.CNN_BIG),
    "rnn": ("small", rnn.build, rnn.SMALL),
    "rnn_big": ("big", rnn.build, rnn.BIG),
}


def build_layer(name: str, seed: int = 0) -> LayerCase:
    """The CS231n layer check ``name`` (see :func:`layer_checks.layer_cases`)."""
    return layer_checks.layer_cases(seed)[name]


LAYERS = {name: functools.partial(build_layer, name) for name in layer_checks.layer_cases()}


def _layer_model(name: str) -> Case:
    case = build_layer(name).as_cost()
    case.meta["size"] = "small"
    return case


MODELS = {name: functools.partial(_sized, size, builder, **spec)
          for name, (size, builder, spec) in _MODEL_SPECS.items()}
MODELS.update({f"layer_{name}": functools.partial(_layer_model, name) for name in LAYERS})
#: Names of the models small enough to check in full in a test, and of the issue's sizes.
SMALL = [name for name in MODELS if _MODEL_SPECS.get(name, ("small",))[0] == "small"]
BIG = [name for name in MODELS if name not in SMALL]


def build(name: str) -> Case:
    """The model ``name`` of :data:`MODELS`, freshly built (seeded: the same every time)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise KeyError(f"no user model named {name!r}; models are {', '.join(MODELS)}") from None

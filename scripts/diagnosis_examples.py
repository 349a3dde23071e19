"""Print the README's "Diagnoses" examples: each user bug, checked, and what the report says.

    python scripts/diagnosis_examples.py

The bugs are written into the users' own numpy code, the models of the tests
(``tests/user_layers.py``: the course's L-layer network, CS231n's naive layers, a batch-norm
network); each case prints its report's diagnosis, kink and note lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the user-style models

import user_layers as u  # noqa: E402

import fastcheck as fc  # noqa: E402

SECTIONS = ("diagnosis:", "notes:")


def course(bug=None, layer_dims=(5, 4, 3, 1)):
    cost, params, backward = u.course_mlp(layer_dims=layer_dims, relu_backward_layer2=bug)
    return cost, params, backward(params)


def dw2_as_dw1():
    cost, params, grads = course(layer_dims=(4, 4, 4, 1))
    grads["dW1"] = grads["dW2"]
    return fc.check(cost, params, grads)


def zeros():
    cost, params, _ = course()
    return fc.check(cost, params, {f"d{k}": np.zeros_like(v) for k, v in params.items()})


def layer(forward, inputs, backward, **bug):
    return fc.check_layer(forward, inputs, backward=lambda dout, cache: backward(dout, cache, **bug))


def cases():
    rng = np.random.default_rng(0)
    conv = {"x": rng.standard_normal((2, 3, 5, 5)), "w": rng.standard_normal((4, 3, 3, 3)), "b": rng.standard_normal(4)}
    bn = {"x": rng.standard_normal((16, 5)) * 2 + 1, "gamma": 1 + 0.1 * rng.standard_normal(5),
          "beta": rng.standard_normal(5)}
    x = rng.standard_normal((8, 8))
    pool = np.abs(np.random.default_rng(1).standard_normal((2, 2, 4, 4))) + 0.1
    pool[0, 0, :2, :2] = pool[1, 1, 2:, 2:] = pool[0, 1, 2:, :2] = 0.0
    return {
        "course network, layer 2's ReLU derivative written dZ2 = dA2 * A2":
            lambda: fc.check(*course(lambda dA, Z, A: dA * A)),
        "a batch-norm network whose layer-2 batch norm backward lacks the -mean(dxhat) term":
            lambda: fc.check(*u.fc_net_batchnorm(forget_mean_in_layer=2)),
        "CS231n conv backward reading the window backwards for dw":
            lambda: layer(u.conv_forward_naive, conv, u.conv_backward_naive, window_flipped=True),
        "CS231n conv backward accumulating dw as (F, HH, WW, C)":
            lambda: layer(u.conv_forward_naive, conv, u.conv_backward_naive, dw_layout_nhwc=True),
        "batch norm backward without the -mean(dxhat) term":
            lambda: layer(u.batchnorm_forward, bn, u.batchnorm_backward, forget_mean=True),
        "a backprop that returned zeros": zeros,
        "ReLU backward without its mask": lambda: fc.check_layer(u.relu_forward, {"x": x},
                                                                  backward=u.relu_backward_no_mask),
        "leaky ReLU backward without its slope": lambda: fc.check_layer(u.leaky_relu_forward, {"x": x},
                                                                         backward=u.leaky_relu_backward_no_slope),
        "dW2 returned as dW1": dw2_as_dw1,
        "max-pool backward on windows of ties (after a ReLU), correct":
            lambda: fc.check_layer(u.max_pool_forward_naive, {"x": pool}, backward=u.max_pool_backward_naive),
        "a batch-norm network, correct (its loss returns (loss, grads))": lambda: fc.check(*u.fc_net_batchnorm()),
    }


def said(report) -> list[str]:
    """The headline, the kink line and the diagnosis and note sections of ``str(report)``
    (less the layer checks' dout note, the same on every one)."""
    out, section = [], []
    for line in str(report).splitlines():
        if line.startswith("gradient check") or "crossed a kink (" in line:
            out.append(line)
        elif line in SECTIONS:
            section = [line]
        elif section and line.startswith("  "):
            section += [] if line.startswith("  layer check:") else [line]
        else:
            out += section if len(section) > 1 else []
            section = []
    return out + (section if len(section) > 1 else [])


def main() -> int:
    for title, run in cases().items():
        print(f"# {title}")
        print("\n".join(said(run())))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

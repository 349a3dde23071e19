"""The change of the built-in network's cost by a full forward pass: what stacked changes are held to."""


def full_change(net, params, X, Y, steps, sign):
    """``J(params + sign * steps) - J(params)``, each J a full forward pass (``steps`` for some groups)."""
    perturbed = {k: v + sign * steps[k] if k in steps else v for k, v in params.items()}
    return net.cost(perturbed, X, Y) - net.cost(params, X, Y)

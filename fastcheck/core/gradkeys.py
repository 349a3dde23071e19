"""Which key of a user's gradients dict holds which parameter's gradient, and what is refused.

The course's ``dW1`` or the parameter's own name; its intermediate gradients (``dA2``,
``dZ1``) left aside; a typo of a parameter's key, or the gradient of a parameter missing
from ``params``, refused with the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from ..errors import InputError

__all__ = ["match_grad_keys"]

#: the course's intermediate gradients (dA2, dZ1, ...): never a parameter's, never a typo of one
_INTERMEDIATE = re.compile(r"d[AZ]\d*")


def match_grad_keys(names: list[str], grads: Mapping) -> tuple[dict[str, str], list[str]]:
    """Which key of ``grads`` holds each parameter's gradient (``names``), and the keys left aside.

    A group's gradient is named as the parameter (``"W1"``) or with the course's ``"d"``
    prefix (``"dW1"``). When every group has its ``"d"`` form among the keys, those are
    used (so parameters named ``W`` and ``dW`` take ``dW`` and ``ddW``); otherwise exact
    names come first and ``"d"`` forms fill in. Keys that match no group are left
    aside when they cannot be a parameter's gradient: the course's intermediate
    gradients (``dA2``, ``dZ1``, ...) and names unlike any parameter's. A key that looks
    like a typo of a parameter's name (``dw1`` beside ``W1``) is an error, and so is the
    gradient of a parameter that ``params`` lacks (``dgamma1`` with no ``gamma1``): it would
    go unchecked.
    """
    d_forms = {"d" + n for n in names}
    for n in names:
        if n in grads and "d" + n in grads and "d" + n not in names and n not in d_forms:
            raise InputError(f"`grads` has both {n!r} and {'d' + n!r}: keep only one of them")
    if all("d" + n in grads for n in names):
        chosen = {n: "d" + n for n in names}
    else:
        chosen = {n: n for n in names if n in grads}
        taken = set(chosen.values())
        for n in names:
            if n not in chosen and "d" + n in grads and "d" + n not in taken:
                chosen[n] = "d" + n
        for n in names:
            if n not in chosen:
                raise InputError(
                    f"`grads` has no entry for params[{n!r}] (looked for {n!r} and {'d' + n!r}); "
                    f"it has {', '.join(map(repr, grads)) or 'nothing'}{_near(n, grads, names)}")
    used = set(chosen.values())
    extra = [k for k in grads if k not in used]
    typos = [k for k in extra if not isinstance(k, str) or _looks_like(k, names)]
    if typos:
        verb = "matches" if len(typos) == 1 else "match"
        raise InputError(f"`grads` has {', '.join(map(repr, typos))} which {verb} no parameter; "
                         f"parameters are {', '.join(names)}")
    missing = [k for k in extra if _names_a_parameter(k, names)]
    if missing:  # a parameter's gradient whose parameter was left out: it would go unchecked
        lacked = ", ".join(_undo_d(k) for k in missing)
        noun = "gradients" if len(missing) > 1 else "gradient"
        raise InputError(f"`grads` has {', '.join(map(repr, missing))}, the {noun} of {lacked}, but `params` has "
                         f"no {lacked} (so it would go unchecked): add {lacked} to params (and let the cost read "
                         f"it from there), or drop {', '.join(missing)} from grads")
    return chosen, extra


def _near(name: str, grads: Mapping, names) -> str:
    """``" (did you mean 'dw1'?)"``: the keys of ``grads`` that look like a typo of ``name``'s gradient, nearest
    first; a key that is another parameter's (``dW2``: the gradient of ``W2``) or an intermediate gradient is none."""
    taken = {form for n in names for form in (n, "d" + n)}
    keys = [k for k in grads if isinstance(k, str) and k not in taken and not _INTERMEDIATE.fullmatch(k)]
    target = f"d{name}".lower()
    close = set(difflib.get_close_matches(target, [k.lower() for k in keys], n=3, cutoff=0.75))
    near = [k for k in keys if _looks_like(k, [name]) or k.lower() in close]
    # the same letters in another case first, then by likeness to the d form
    near.sort(key=lambda k: (k.lower() not in (name.lower(), target),
                             -difflib.SequenceMatcher(None, k.lower(), target).ratio()))
    return f" (did you mean {' or '.join(map(repr, near[:3]))}?)" if near else ""


def _looks_like(key: str, names) -> bool:
    """Whether an unmatched gradient key looks like a typo of a parameter's name or of its d form.

    The course's intermediate gradients (dA1, dZ2, ...) never do.
    """
    if _INTERMEDIATE.fullmatch(key):
        return False
    low = key.lower()
    return any(low == form or _one_edit(low, form) for n in names for form in (n.lower(), "d" + n.lower()))


# the stems of a parameter's name (lower case): a gradient key on one of them, with no such parameter, is no
# intermediate gradient (the course's dA2, an RNN's da_next, dh0) but a parameter left out of params
PARAMETER_STEMS = frozenset({"w", "b", "gamma", "beta", "weight", "weights", "bias", "biases", "kernel", "scale",
                             "shift"})


def _stem(name: str) -> str:
    """``'gamma'`` for ``'gamma1'``, ``'W'`` for ``'l2.W'`` or ``'W_3'``: the name without its layer's mark."""
    return re.sub(r"[_.\-]?\d+$", "", name.rsplit(".", 1)[-1])


def _undo_d(key: str) -> str:
    return key[1:] if key.startswith("d") and len(key) > 1 else key


def _names_a_parameter(key, names) -> bool:
    """Whether an unmatched gradient key names a parameter (``dgamma1``, ``beta1``) absent from ``names``.

    Its stem is a parameter's usual name or the stem of one of ``names``; the course's
    intermediate gradients (dA1, dZ2, ...) never are.
    """
    if not isinstance(key, str) or _INTERMEDIATE.fullmatch(key):
        return False
    stems = PARAMETER_STEMS | {_stem(n).lower() for n in names}
    return any(_stem(form).lower() in stems for form in {key, _undo_d(key)} if form)


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))

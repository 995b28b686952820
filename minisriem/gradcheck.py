"""Numerical gradients by central differences, for checking a backward pass.

Typical use on a layer (the fake-loss trick: ``sum(out * dout)`` has gradient
``dout`` with respect to ``out``, so one scalar checks a whole backward)::

    out, cache = sigmoid_forward(x)
    dout = rng.standard_normal(out.shape)
    (dx,) = sigmoid_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda: sigmoid_forward(x)[0], x, dout)
    assert max_relative_error(dx_num, dx) < 1e-6

which :func:`check_layer` does in one call (and :func:`check_model` for a
whole model)::

    check_layer(sigmoid_forward, sigmoid_backward, [x], {0: 0}, rng)

Use float64 inputs: in float32 a central difference loses most of its digits.
"""

import numpy as np

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "max_relative_error",
    "check_layer",
    "LayerCheck",
    "checked_array",
    "check_model",
    "random_session_batch",
]


def eval_numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function by central differences.

    ``grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every entry ``i``.

    Parameters
    ----------
    f : callable taking no argument and returning a float; it must read ``x``
        (which is changed in place and restored)
    x : float array of any shape
    h : float, the step

    Returns
    -------
    grad : array of the shape of ``x``
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f())
        x[i] = old - h
        f_minus = float(f())
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def eval_numerical_gradient_array(f, x, dout, h=1e-5):
    """Gradient of ``sum(f() * dout)`` with respect to ``x``, by central differences.

    Parameters
    ----------
    f : callable taking no argument and returning an array; it must read ``x``
    x : float array of any shape (changed in place and restored)
    dout : array of the shape of ``f()``, the upstream gradient
    h : float, the step

    Returns
    -------
    grad : array of the shape of ``x``
    """
    return eval_numerical_gradient(lambda: np.sum(f() * dout), x, h)


def max_relative_error(numeric, analytic):
    """Error of a whole gradient: ``max|numeric - analytic| / max(max|numeric|, max|analytic|)``.

    Unlike an elementwise relative error, this does not blow up on entries
    that are near zero in both gradients. Returns 0.0 when both gradients
    are exactly zero.
    """
    a = np.asarray(numeric, dtype=np.float64)
    b = np.asarray(analytic, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - b).max() / scale)


class LayerCheck(tuple):
    """What :func:`check_layer` returns: the analytic gradients, a tuple in the order of
    ``backward``'s result, with ``errors``, the :func:`max_relative_error` of each
    checked argument by name (``dQ, dK = check_layer(...)`` unpacks the gradients)."""

    def __new__(cls, grads, errors):
        check = super().__new__(cls, grads)
        check.errors = errors
        return check


def checked_array(what, x, shape):
    """``x`` as an array of ``shape`` with finite entries, or an AssertionError saying why not.

    ``what`` names the value in the message (a returned gradient, say).
    """
    if x is None:
        raise AssertionError(f"{what} is None: did you forget a `return`?")
    x = np.asarray(x)
    if x.shape != tuple(shape):
        raise AssertionError(f"{what} has shape {x.shape}, expected {tuple(shape)}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise AssertionError(f"{what} holds inf or NaN")
    return x


def check_layer(
    forward, backward, args, wrt, rng, tol=1e-6, names=None, known_mistakes=None, hint=""
):
    """Gradient-check a layer's ``backward`` against central differences of its ``forward``.

    The one harness of the project: the tests, the tutorials and their exercise
    checks use it. The fake loss ``sum(forward(*args)[0] * dout)`` with a random
    ``dout`` checks the whole backward pass with one scalar. A composition of
    layers is checked the same way: write its forward (returning its layers'
    caches together) and its backward, and pass those.

    Parameters
    ----------
    forward : callable, ``forward(*args) -> (out, cache)``
    backward : callable, ``backward(dout, cache) -> grads``, a tuple (a bare
        array is taken as a tuple of one, so a student's first backward may
        return the array)
    args : list, the forward's arguments (float64 arrays for those checked)
    wrt : dict, index of each argument to check -> position of its gradient in
        ``backward``'s result
    rng : numpy.random.Generator, draws ``dout``
    tol : float, the largest :func:`max_relative_error` allowed
    names : list of str, optional, the arguments' names, for messages and
        ``errors`` (default ``"argument 0"``, ``"argument 1"``, ...)
    known_mistakes : callable, optional, ``known_mistakes(dout, grads)``; runs
        once the gradients' shapes are checked, before the comparison, and
        raises AssertionError naming a known mistake (the tutorials' checks
        say *what* is wrong where the comparison can only say *that* it is)
    hint : str, appended to the message of a gradient that fails the comparison

    Returns
    -------
    LayerCheck
        the analytic gradients (a tuple), with ``errors``, the relative error
        of each checked argument by name

    Raises
    ------
    AssertionError
        Naming the argument, its error and the index of the largest
        difference, when one is above ``tol``; or saying what is wrong with
        what ``backward`` returned.
    """
    names = list(names) if names is not None else [f"argument {i}" for i in range(len(args))]
    out, cache = forward(*args)
    dout = rng.standard_normal(np.shape(out))
    grads = backward(dout, cache)
    if grads is None:
        raise AssertionError("backward returned None: did you forget a `return`?")
    grads = grads if isinstance(grads, tuple) else (grads,)
    checked = {
        arg_i: checked_array(
            f"the gradient of {names[arg_i]}", grads[grad_i], np.shape(args[arg_i])
        )
        for arg_i, grad_i in wrt.items()
    }
    if known_mistakes is not None:
        known_mistakes(dout, grads)
    errors = {}
    for arg_i, g in checked.items():
        x = args[arg_i]
        num = eval_numerical_gradient_array(lambda: forward(*args)[0], x, dout)
        err = max_relative_error(num, g)
        if not err < tol:
            i = tuple(int(k) for k in np.unravel_index(np.argmax(np.abs(num - g)), np.shape(x)))
            raise AssertionError(
                f"the gradient of {names[arg_i]} is wrong (relative error {err:.1e}, want < "
                f"{tol:.0e}). Largest difference at index {i}: backward {g[i]:.6g}, "
                f"numerical {num[i]:.6g}.{' ' + hint if hint else ''}"
            )
        errors[names[arg_i]] = err
    return LayerCheck(grads, errors)


def check_model(
    model,
    item_seq,
    item_seq_len,
    targets,
    tol=1e-6,
    min_gradient=1e-6,
    step=None,
    loss_and_grads=None,
):
    """Gradient-check ``model.loss_and_grads`` for every parameter (float64 model).

    Parameters
    ----------
    model : SRIEM built with ``dtype=np.float64``
    item_seq, item_seq_len, targets : a batch (see :func:`random_session_batch`)
    tol : float, the largest :func:`max_relative_error` allowed per parameter
        (``np.inf`` to measure the errors without asserting)
    min_gradient : float; a parameter whose numerical gradient stays below
        this is reported, since a relative check of a near-zero gradient
        measures rounding, not the backward pass
    step : passed to ``loss_and_grads``: with a model's dropout on, every
        call then draws the same masks, so the check covers the dropout too
    loss_and_grads : callable, optional, ``loss_and_grads(item_seq,
        item_seq_len, targets) -> (loss, grads)``, the gradients to check in
        place of the model's own (a student's version); the central
        differences always use the model's loss

    Returns
    -------
    dict, parameter name -> relative error
    """
    if loss_and_grads is None:
        loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets, step=step)
    else:
        loss, grads = loss_and_grads(item_seq, item_seq_len, targets)
    grads = {k: np.array(g, dtype=np.float64) for k, g in grads.items()}  # keep a copy
    assert set(grads) == set(model.params), (
        f"one gradient per parameter: gradients for {sorted(grads)}, "
        f"parameters {sorted(model.params)}"
    )
    errors = {}
    for name, w in model.params.items():
        assert grads[name].shape == w.shape, (
            f"the gradient of {name} has shape {grads[name].shape}, expected {w.shape}"
        )
        num = eval_numerical_gradient(
            lambda: model.loss_and_grads(item_seq, item_seq_len, targets, step=step)[0], w
        )
        assert np.abs(num).max() > min_gradient, (
            f"the gradient of {name} is too small to check (below {min_gradient:g})"
        )
        errors[name] = max_relative_error(num, grads[name])
        assert errors[name] < tol, (
            f"the gradient of {name} is wrong (relative error {errors[name]:.2e}, want < {tol:g})"
        )
    return errors


def random_session_batch(rng, B, L, n_items):
    """A random batch that exercises every edge case a check should cover.

    Row 0 is a length-1 session, row 1 a full-length session, row 2 repeats
    one item; the rest have random lengths. Padded positions hold 0.

    Parameters
    ----------
    rng : numpy.random.Generator
    B : int, at least 3
    L : int, at least 2
    n_items : int

    Returns
    -------
    item_seq : int64 array of shape (B, L), left-aligned, 0-padded
    item_seq_len : int64 array of shape (B,)
    targets : int64 array of shape (B,), item ids 1..n
    """
    if B < 3 or L < 2:
        raise ValueError("random_session_batch needs B >= 3 and L >= 2")
    item_seq_len = rng.integers(1, L + 1, size=B)
    item_seq_len[:3] = [1, L, L]
    item_seq = rng.integers(1, n_items + 1, size=(B, L))
    item_seq[2, : L // 2 + 1] = item_seq[2, 0]  # a repeated item
    item_seq[np.arange(L)[None, :] >= item_seq_len[:, None]] = 0
    targets = rng.integers(1, n_items + 1, size=B)
    return item_seq, item_seq_len, targets

"""Numerical gradients by central differences, for checking a backward pass.

Typical use on a layer (the fake-loss trick: ``sum(out * dout)`` has gradient
``dout`` with respect to ``out``, so one scalar checks a whole backward)::

    out, cache = sigmoid_forward(x)
    dout = rng.standard_normal(out.shape)
    dx = sigmoid_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda: sigmoid_forward(x)[0], x, dout)
    assert max_relative_error(dx_num, dx) < 1e-6

Use float64 inputs: in float32 a central difference loses most of its digits.
"""

import numpy as np

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "max_relative_error",
    "check_layer",
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


def check_layer(forward, backward, args, wrt, rng, tol=1e-6):
    """Gradient-check a layer's ``backward`` against central differences of its ``forward``.

    The one harness of the project: the tests and the tutorial checks use it.
    The fake loss ``sum(forward(*args)[0] * dout)`` with a random ``dout``
    checks the whole backward pass with one scalar.

    Parameters
    ----------
    forward : callable, ``forward(*args) -> (out, cache)``
    backward : callable, ``backward(dout, cache) -> grads`` (a tuple, or one array)
    args : list, the forward's arguments (float64 arrays for those checked)
    wrt : dict, index of each argument to check -> position of its gradient in
        ``backward``'s result
    rng : numpy.random.Generator, draws ``dout``
    tol : float, the largest :func:`max_relative_error` allowed

    Returns
    -------
    tuple, the analytic gradients

    Raises
    ------
    AssertionError
        Naming the argument and its error, when one is above ``tol``.
    """
    out, cache = forward(*args)
    dout = rng.standard_normal(np.shape(out))
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for arg_i, grad_i in wrt.items():
        num = eval_numerical_gradient_array(lambda: forward(*args)[0], args[arg_i], dout)
        err = max_relative_error(num, grads[grad_i])
        assert err < tol, f"argument {arg_i}: relative error {err:.2e} (tolerance {tol:g})"
    return grads


def check_model(model, item_seq, item_seq_len, targets, tol=1e-6, min_gradient=1e-6, step=None):
    """Gradient-check ``model.loss_and_grads`` for every parameter (float64 model).

    Parameters
    ----------
    model : SRIEM built with ``dtype=np.float64``
    item_seq, item_seq_len, targets : a batch (see :func:`random_session_batch`)
    tol : float, the largest :func:`max_relative_error` allowed per parameter
    min_gradient : float; a parameter whose numerical gradient stays below
        this is reported, since a relative check of a near-zero gradient
        measures rounding, not the backward pass
    step : passed to ``loss_and_grads``: with a model's dropout on, every
        call then draws the same masks, so the check covers the dropout too

    Returns
    -------
    dict, parameter name -> relative error
    """
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets, step=step)
    grads = {k: np.array(g, dtype=np.float64) for k, g in grads.items()}  # keep a copy
    assert set(grads) == set(model.params), "one gradient per parameter"
    errors = {}
    for name, w in model.params.items():
        assert grads[name].shape == w.shape, f"{name}: gradient of shape {grads[name].shape}"
        num = eval_numerical_gradient(
            lambda: model.loss_and_grads(item_seq, item_seq_len, targets, step=step)[0], w
        )
        assert np.abs(num).max() > min_gradient, f"{name}: gradient too small to check"
        errors[name] = max_relative_error(num, grads[name])
        assert errors[name] < tol, f"{name}: relative error {errors[name]:.2e}"
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

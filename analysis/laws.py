"""Error laws of scale: Rosenfeld et al.'s joint width x density law for pruned nets, and the
dense law err = a·N^-b + c for nets trained at their size. Pure functions, no plotting.

Rosenfeld, Frankle, Carbin & Shavit (ICML 2021, "On the Predictability of Pruning Across
Scales") model the test error of an IMP-pruned net at density d (fraction of weights left) as

    ε(d) = ε_np · | (d − j·p·(ε↑/ε_np)^(1/γ)) / (d − j·p) |^γ      (j = √−1)

with ε_np the error of the unpruned net (the low-error plateau), ε↑ the high-error plateau
(chance level for a net with almost nothing left), p the density where the error leaves the
high plateau and γ the slope of the power-law region between the two. Taking the modulus of the
complex numbers, |d − j·c| = √(d² + c²), so with c = p·(ε↑/ε_np)^(1/γ):

    ε(d) = ε_np · ((d² + c²) / (d² + p²))^(γ/2)

which is ε_np for d ≫ c, ε↑·(p/d)^γ for p ≪ d ≪ c and ε↑ for d ≪ p. Across widths w the paper
finds one invariant m* = w^ψ·d (depth enters as l^φ; a study at one depth has no φ): the joint
law replaces d by w^ψ·d, with ε_np taken from the dense net of each width, leaving four
constants (ε↑, p, γ, ψ) per arm. They are fitted, as in the paper, by least squares on the
relative deviation δ = (ε̂ − ε)/ε, whose mean μ and standard deviation σ measure the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

ROSENFELD = ("eps_up", "p", "gamma", "psi")
"""The joint law's constants, in `rosenfeld`'s order."""
MIN_POINTS = {"rosenfeld": 6, "dense": 4}
"""Fewest (size, density) points a fit needs: its constants plus two degrees of freedom for the
joint law, plus one for the three-constant dense law."""


@dataclass(frozen=True)
class Fit:
    """Fitted constants, and the relative deviation δ = (ε̂ − ε)/ε at the fitted points."""

    law: str
    params: dict[str, float]
    deviation: np.ndarray

    @property
    def mu(self) -> float:
        return float(np.mean(self.deviation))

    @property
    def sigma(self) -> float:
        return float(np.std(self.deviation, ddof=1)) if len(self.deviation) > 1 else 0.0


def rosenfeld(eps_np, d, w, eps_up: float, p: float, gamma: float, psi: float) -> np.ndarray:
    """The joint law's error at density `d` and width `w`, given the dense error `eps_np`."""
    m = np.asarray(w, dtype=float) ** psi * np.asarray(d, dtype=float)
    c = p * (eps_up / np.asarray(eps_np, dtype=float)) ** (1.0 / gamma)
    return np.asarray(eps_np, dtype=float) * ((m**2 + c**2) / (m**2 + p**2)) ** (gamma / 2)


def dense_law(n, a: float, b: float, c: float) -> np.ndarray:
    """err = a·N^-b + c: a power law in the weight count N with an irreducible error c."""
    return a * np.asarray(n, dtype=float) ** -b + c


def fit_rosenfeld(eps_np: np.ndarray, d: np.ndarray, w: np.ndarray, err: np.ndarray,
                  start: dict[str, float] | None = None) -> Fit:
    """The four constants minimising Σδ², started from a small grid of (p, γ) so the fit does not
    stall in the flat plateau of a poor start (or from `start` alone, e.g. a bootstrap refit
    from the point estimate); ε↑ is kept between the largest dense error and 1.

    Raises ValueError with fewer than MIN_POINTS["rosenfeld"] points.
    """
    eps_np, d, w, err = (np.asarray(v, dtype=float) for v in (eps_np, d, w, err))
    if len(err) < MIN_POINTS["rosenfeld"]:
        raise ValueError(f"the joint law needs {MIN_POINTS['rosenfeld']} points, got {len(err)}")
    low_up = float(min(max(eps_np.max(), err.min()), 0.999))

    def residual(theta: np.ndarray) -> np.ndarray:
        eps_up, log_p, log_gamma, psi = theta
        return rosenfeld(eps_np, d, w, eps_up, np.exp(log_p), np.exp(log_gamma), psi) / err - 1

    lower = [low_up, np.log(1e-6), np.log(0.05), -3.0]
    upper = [1.0, np.log(10.0), np.log(20.0), 3.0]
    up0 = min(max(err.max(), low_up + 1e-6), 1.0 - 1e-6)
    starts = [[up0, np.log(p0), np.log(gamma0), 0.5] for p0 in (0.3 * d.min(), 3 * d.min(), 0.3)
              for gamma0 in (0.5, 2.0)]
    tol = 1e-8  # scipy's default
    if start is not None:
        starts = [[min(max(start["eps_up"], low_up + 1e-9), 1.0), np.log(start["p"]),
                   np.log(start["gamma"]), start["psi"]]]
        tol = 1e-6  # a refit near its start (a bootstrap draw): resampling noise is far larger
    best = None
    for theta in starts:
        theta = np.clip(theta, np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        found = optimize.least_squares(residual, theta, bounds=(lower, upper), ftol=tol,
                                       xtol=tol, gtol=tol)
        if best is None or found.cost < best.cost:
            best = found
    eps_up, log_p, log_gamma, psi = best.x
    params = {"eps_up": float(eps_up), "p": float(np.exp(log_p)),
              "gamma": float(np.exp(log_gamma)), "psi": float(psi)}
    return Fit("rosenfeld", params, residual(best.x))


def fit_dense(n: np.ndarray, err: np.ndarray) -> Fit:
    """a, b, c of err = a·N^-b + c, least squares on the relative deviation, a, c ≥ 0.

    For a fixed b the law is linear in (a, c), so those come from a linear solve and only b is
    searched (a grid over [0, 5], then a bounded scalar minimisation around the best point).
    Raises ValueError with fewer than MIN_POINTS["dense"] distinct sizes.
    """
    n, err = np.asarray(n, dtype=float), np.asarray(err, dtype=float)
    if len(np.unique(n)) < MIN_POINTS["dense"]:
        raise ValueError(f"the dense law needs {MIN_POINTS['dense']} sizes, got "
                         f"{len(np.unique(n))}")
    scale = float(np.exp(np.mean(np.log(n))))  # N / its geometric mean: well conditioned

    def linear(b: float) -> tuple[float, float, np.ndarray]:
        x = (n / scale) ** -b
        design = np.column_stack([x / err, 1 / err])
        (a, c), *_ = np.linalg.lstsq(design, np.ones_like(err), rcond=None)
        if c < 0 or a < 0:  # on the boundary: one of the two is 0, the other by least squares
            u, v = x / err, 1 / err
            options = [(u.sum() / (u @ u), 0.0), (0.0, v.sum() / (v @ v))]
            a, c = min(options, key=lambda ac: float(((ac[0] * u + ac[1] * v - 1) ** 2).sum()))
        return float(a), float(c), (a * x + c) / err - 1

    def cost(b: float) -> float:
        return float((linear(b)[2] ** 2).sum())

    grid = np.linspace(0.0, 5.0, 41)
    k = int(np.argmin([cost(b) for b in grid]))
    found = optimize.minimize_scalar(cost, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, 40)]),
                                     method="bounded", options={"xatol": 1e-10})
    b = float(found.x) if found.fun <= cost(grid[k]) else float(grid[k])
    a, c, deviation = linear(b)
    return Fit("dense", {"a": a * scale**b, "b": b, "c": c}, deviation)


def crossing(gap, low: float, high: float, points: int = 200) -> float:
    """The smallest N in [low, high] (log grid, then bisection) where `gap(N)` changes sign;
    NaN if it keeps one sign over the range."""
    grid = np.geomspace(low, high, points)
    values = gap(grid)
    change = np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)
    if not len(change):
        zero = np.flatnonzero(values == 0)
        return float(grid[zero[0]]) if len(zero) else float("nan")
    k = change[0]
    return float(optimize.brentq(lambda x: float(gap(np.array([x]))[0]), grid[k], grid[k + 1]))

#!/usr/bin/env python3
"""Golden values for the Schedules module, from the MaskDM reference formulas (numpy, float64).

Writes Tests/SchedulesTests/ScheduleFixtures.swift (a JSON string). Rerunnable:
    python scripts/make_schedule_fixtures.py
Contents:
  schedules   betas and alphas_cumprod at a few steps, linear and cosine (reference
              gaussian_ddpm.py: linear_beta_schedule, cosine_beta_schedule, cumprod)
  ddimTimes   the reference DDIM step list, reversed(torch.linspace(-1, T-1, S+1).int()), for
              several S (computed with torch when it is installed, and always with a numpy
              emulation of torch's float32 kernel: each value one fused multiply-add)
  quadTimes   the quadratic spacing of our DPM-Solver++ sampler
  ddimSteps   single DDIM moves (x_t, eps, z -> x_s, x0) as in the reference ddim_sample
  ddpmSteps   single ancestral moves as in the reference p_sample (posterior mean / variance)
  qSample     x_t = sqrt(ab) x0 + sqrt(1 - ab) eps
  oracle      samplers run with the exact noise prediction of data ~ N(mu, sigma^2) per pixel:
              eps*(x_t) = (x_t - sqrt(ab) mu) sqrt(1 - ab) / (ab sigma^2 + 1 - ab).
              Deterministic samplers: outputs for x_T = -1, 0, 1. Stochastic samplers: the exact
              mean and std of the output (linear-Gaussian recursion; the clamp is inactive here).
"""
import json
import math
import pathlib

import numpy as np

T = 1000
f32 = np.float32


# ---- schedules (reference gaussian_ddpm.py) ----
def linear_betas(timesteps):
    scale = 1000 / timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=np.float64)


def cosine_betas(timesteps, s=0.008):
    x = np.linspace(0, timesteps, timesteps + 1, dtype=np.float64)
    ac = np.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    return np.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)


SCHEDULES = {"linear": linear_betas(T), "cosine": cosine_betas(T)}
ALPHAS_CUMPROD = {k: np.cumprod(1 - b) for k, b in SCHEDULES.items()}


def ab_at(name, t):
    return 1.0 if t < 0 else float(ALPHAS_CUMPROD[name][t])


# ---- step lists ----
def torch_linspace_f32_int(start, end, steps):
    """torch.linspace(start, end, steps) (float32 CPU kernel) then .int() (truncation)."""
    start, end = f32(start), f32(end)
    if steps == 1:
        return [int(start)]
    step = f32((end - start) / f32(steps - 1))
    half = steps // 2
    out = []
    for i in range(steps):
        # one fused multiply-add: exact product and sum in float64, one rounding to float32
        v = f32(float(start) + float(step) * i) if i < half else f32(float(end) - float(step) * (steps - i - 1))
        out.append(int(v))
    return out


def ddim_times(total, steps):
    times = list(reversed(torch_linspace_f32_int(-1, total - 1, steps + 1)))
    try:
        import torch
        ref = list(reversed(torch.linspace(-1, total - 1, steps=steps + 1).int().tolist()))
        assert ref == times, (total, steps)
    except ImportError:
        pass
    return times


def quad_times(total, steps):
    if steps == 1:
        return [total - 1, -1]
    root = math.sqrt(total - 1)
    t = [int(round_half_away((root * (1 - i / (steps - 1))) ** 2)) for i in range(steps)]
    for i in range(steps - 2, -1, -1):
        t[i] = max(t[i], t[i + 1] + 1)
    return t + [-1]


def round_half_away(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


# ---- single steps (float64 on float32-representable inputs) ----
def x0_from_eps(name, x, eps, t, clip=True):
    ab = ab_at(name, t)
    x0 = math.sqrt(1 / ab) * x - math.sqrt(1 / ab - 1) * eps
    return np.clip(x0, -1, 1) if clip else x0


def ddim_step(name, x, eps, t, s, eta, z):
    x0 = x0_from_eps(name, x, eps, t)
    if s < 0:
        return x0, x0
    at, as_ = ab_at(name, t), ab_at(name, s)
    sigma = eta * math.sqrt((1 - at / as_) * (1 - as_) / (1 - at))
    c = math.sqrt(1 - as_ - sigma ** 2)
    return math.sqrt(as_) * x0 + c * eps + sigma * z, x0


def posterior(name, t):
    b = SCHEDULES[name]
    ab = ALPHAS_CUMPROD[name]
    ab_prev = 1.0 if t == 0 else ab[t - 1]
    c1 = b[t] * math.sqrt(ab_prev) / (1 - ab[t])
    c2 = (1 - ab_prev) * math.sqrt(1 - b[t]) / (1 - ab[t])
    var = b[t] * (1 - ab_prev) / (1 - ab[t])
    return c1, c2, var


def ddpm_step(name, x, eps, t, z):
    x0 = x0_from_eps(name, x, eps, t)
    c1, c2, var = posterior(name, t)
    mean = c1 * x0 + c2 * x
    if t == 0:
        return mean, x0
    return mean + math.exp(0.5 * math.log(max(var, 1e-20))) * z, x0


# ---- DPM-Solver++(2M), as documented in DPMSolverPlusPlus2M.swift ----
def lam(name, t):
    if t < 0:
        return math.inf
    ab = ab_at(name, t)
    return 0.5 * math.log(ab / (1 - ab))


def dpm_solve(name, x, times, model, lower_order_final=True):
    prev = None
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        x0 = x0_from_eps(name, x, model(x, t), t)
        if s < 0:
            return x0
        h = lam(name, s) - lam(name, t)
        ratio = math.sqrt((1 - ab_at(name, s)) / (1 - ab_at(name, t)))
        k = math.sqrt(ab_at(name, s)) * -math.expm1(-h)
        into_last = times[i + 2] < 0
        if prev is not None and not (lower_order_final and into_last):
            w = 1 / (2 * (prev[1] / h))
            x = ratio * x + k * (1 + w) * x0 - k * w * prev[0]
        else:
            x = ratio * x + k * x0
        prev = (x0, h)
    raise AssertionError("times must end with -1")


def ddim_solve(name, x, times, model):
    for t, s in zip(times[:-1], times[1:]):
        x, _ = ddim_step(name, x, model(x, t), t, s, 0.0, 0.0)
    return x


# ---- Gaussian oracle ----
MU, SIGMA = 0.1, 0.3


def oracle(name):
    def eps(x, t):
        ab = ab_at(name, t)
        return (x - math.sqrt(ab) * MU) * math.sqrt(1 - ab) / (ab * SIGMA ** 2 + 1 - ab)
    return eps


def x0_affine(name, t):
    """x0 = p x + q for the oracle (no clamp): the posterior mean E[x0 | x_t]."""
    ab = ab_at(name, t)
    k = math.sqrt(1 - ab) / (ab * SIGMA ** 2 + 1 - ab)
    p = (1 - math.sqrt(1 - ab) * k) / math.sqrt(ab)
    q = k * MU * math.sqrt(1 - ab)
    return p, q, k


def moments_ddim(name, times, eta):
    m, v = 0.0, 1.0
    for t, s in zip(times[:-1], times[1:]):
        p, q, k = x0_affine(name, t)
        if s < 0:
            return p * m + q, math.sqrt(p * p * v)
        at, as_ = ab_at(name, t), ab_at(name, s)
        sig = eta * math.sqrt((1 - at / as_) * (1 - as_) / (1 - at))
        c = math.sqrt(1 - as_ - sig ** 2)
        # x_s = sqrt(as) (p x + q) + c k (x - sqrt(at) mu) + sig z
        a = math.sqrt(as_) * p + c * k
        b = math.sqrt(as_) * q - c * k * math.sqrt(at) * MU
        m, v = a * m + b, a * a * v + sig * sig
    raise AssertionError


def moments_ddpm(name):
    m, v = 0.0, 1.0
    for t in range(T - 1, -1, -1):
        p, q, _ = x0_affine(name, t)
        c1, c2, var = posterior(name, t)
        a, b = c1 * p + c2, c1 * q
        m, v = a * m + b, a * a * v + (math.exp(math.log(max(var, 1e-20))) if t > 0 else 0.0)
    return m, math.sqrt(v)


def floats(a):
    return [float(v) for v in a]


def main():
    rng = np.random.default_rng(20231113)
    idx = [0, 1, 2, 10, 100, 250, 500, 750, 998, 999]
    schedules = {
        name: {"indices": idx, "betas": floats(SCHEDULES[name][idx]),
               "alphasCumprod": floats(ALPHAS_CUMPROD[name][idx]),
               "betaSum": float(SCHEDULES[name].sum())}
        for name in SCHEDULES
    }
    # Full lists; 26 and 38 are where a float64 linspace would truncate differently.
    ddim = [{"T": T, "S": s, "offset": 0, "times": ddim_times(T, s)} for s in (250, 100, 50, 10, 26, 38, 1)]
    # A window of a long list where only the fused multiply-add reproduces torch (index 357 in
    # reversed order is torch's 1023.99994, not 1024).
    long = ddim_times(4000, 480)
    ddim.append({"T": 4000, "S": 480, "offset": 350, "times": long[350:365]})
    quad = [{"T": T, "S": s, "offset": 0, "times": quad_times(T, s)} for s in (20, 25, 1)]

    shape = [2, 1, 2, 3]
    n = int(np.prod(shape))

    def arr():
        # multiples of 1/64: exact in float32 and short in JSON
        return np.round(rng.standard_normal(n) * 64) / 64

    ddim_steps = []
    for name, t, s, eta in (("linear", 499, 495, 1.0), ("cosine", 499, 495, 0.5),
                            ("linear", 3, -1, 1.0), ("cosine", 999, 995, 0.0)):
        x, eps, z = arr(), arr(), arr()
        xs, x0 = ddim_step(name, x, eps, t, s, eta, z)
        ddim_steps.append({"schedule": name, "t": t, "s": s, "eta": eta, "shape": shape,
                           "x": floats(x), "eps": floats(eps), "z": floats(z),
                           "next": floats(xs), "x0": floats(x0)})
    ddpm_steps = []
    for name, t in (("linear", 500), ("cosine", 10), ("linear", 0)):
        x, eps, z = arr(), arr(), arr()
        xs, x0 = ddpm_step(name, x, eps, t, z)
        ddpm_steps.append({"schedule": name, "t": t, "shape": shape, "x": floats(x), "eps": floats(eps),
                           "z": floats(z), "next": floats(xs), "x0": floats(x0)})
    x0, eps = arr()[:6], arr()[:6]
    q_sample = {"schedule": "cosine", "t": [10, 999], "shape": [2, 3], "x0": floats(x0), "eps": floats(eps),
                "xt": floats(np.concatenate([math.sqrt(ab_at("cosine", t)) * x0[i * 3:(i + 1) * 3]
                                             + math.sqrt(1 - ab_at("cosine", t)) * eps[i * 3:(i + 1) * 3]
                                             for i, t in enumerate([10, 999])]))}

    x_t = np.array([-1.0, 0.0, 1.0])
    deterministic = []
    for name in ("linear", "cosine"):
        deterministic.append({"sampler": "ddim", "schedule": name, "steps": 50, "spacing": "uniform",
                              "out": floats(ddim_solve(name, x_t.copy(), ddim_times(T, 50), oracle(name)))})
        for steps in (20, 25):
            deterministic.append({"sampler": "dpm++2m", "schedule": name, "steps": steps, "spacing": "quadratic",
                                  "out": floats(dpm_solve(name, x_t.copy(), quad_times(T, steps), oracle(name)))})
        deterministic.append({"sampler": "dpm++2m", "schedule": name, "steps": 20, "spacing": "uniform",
                              "out": floats(dpm_solve(name, x_t.copy(), ddim_times(T, 20), oracle(name)))})
    stochastic = []
    for name in ("linear", "cosine"):
        m, sd = moments_ddim(name, ddim_times(T, 250), 1.0)
        stochastic.append({"sampler": "ddim", "schedule": name, "steps": 250, "eta": 1.0, "mean": m, "std": sd})
        m, sd = moments_ddpm(name)
        stochastic.append({"sampler": "ddpm", "schedule": name, "steps": T, "eta": 1.0, "mean": m, "std": sd})

    data = {"schedules": schedules, "ddimTimes": ddim, "quadTimes": quad, "ddimSteps": ddim_steps,
            "ddpmSteps": ddpm_steps, "qSample": q_sample,
            "oracle": {"mu": MU, "sigma": SIGMA, "deterministic": deterministic, "stochastic": stochastic}}
    text = json.dumps(data, separators=(",", ":"))
    out = pathlib.Path(__file__).resolve().parent.parent / "Tests/SchedulesTests/ScheduleFixtures.swift"
    out.write_text("// Generated by scripts/make_schedule_fixtures.py (numpy float64, MaskDM reference formulas); "
                   "do not edit.\nlet scheduleFixturesJSON = #\"\"\"\n" + text + "\n\"\"\"#\n")
    for d in deterministic:
        a = (d["out"][2] - d["out"][0]) / 2
        print(f'{d["sampler"]:8} {d["schedule"]:6} S={d["steps"]:3} {d["spacing"]:9} '
              f'std/sigma={a / SIGMA:.4f} mean={d["out"][1]:.4f}')
    for d in stochastic:
        print(f'{d["sampler"]:8} {d["schedule"]:6} S={d["steps"]:4} std/sigma={d["std"] / SIGMA:.4f} mean={d["mean"]:.4f}')
    print(len(text), "bytes of JSON")


if __name__ == "__main__":
    main()

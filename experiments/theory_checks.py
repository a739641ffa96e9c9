"""Regenerate every number in docs/theory.md (MAC-SPGG backward-induction analysis).

Run:  .venv/bin/python experiments/theory_checks.py [--quick] [--json OUT.json]

Sections (printed in order, each headed "== S<k> ..."):
  S1  last agent's best response: closed form vs the solved policy at every state
  S2  continuation score monotone in one's own contribution (every decision node)
  S3  analytic sufficient conditions (A) unique, (B) all q_i > c_min, (C) S >= B vs the numerical map
  S4  Theorem 1 / Theorem 2 checks (welfare comparative statics in B, gamma, rho; ties)
  S5  who carries the load: profiles by position, FO vs PO, social optimum and W_opt / W_spne
  S6  classic PGG / SPGG: c_min is the unique equilibrium for r < n

Numbers labelled "solver" come from spgg_jax.game (float32, jitted); numbers labelled "bi64" come
from an independent float64 numpy backward induction in this file (same grid, same state space)
used as a cross-check and for the off-path diagnostics the solver does not return (full policies,
tie positions). Both use the same threshold convention as the solver: S counts as meeting B when
S >= B - THRESHOLD_TOL (spgg_jax.game.rewards.THRESHOLD_TOL = 1e-6), so that S == B on the grid is
"met" whatever the rounding. "path_unique" (solver) = the equilibrium path is the same under every
tie-break (every on-path decision strict against the best any tie-break makes of the alternatives;
sufficient, see spgg_jax.game.solver); "unique" = every decision node (on and off path) strict.

Options: --quick (coarser sweeps, a smoke test of 2.5-4 min), --json OUT (all numbers as JSON),
--only S1,S4 (a subset of sections). The full run takes 7-10 minutes on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import numpy as np

from spgg_jax.game.rewards import THRESHOLD_TOL, make_params
from spgg_jax.game.solver import solve
from spgg_jax.game.sweep import solve_points

DEF = dict(c_min=0.1, c_max=1.0, kappa=1.0, gamma=0.5, rho=1.8, P=1.5, B=0.6)
G = 101
TOL = 1e-6  # tie tolerance on payoff margins (the solver's DEFAULT_TOL)


# ------------------------------------------------------------------------------------------------
# Independent float64 backward induction (state = running-sum index, last index), full policies
# ------------------------------------------------------------------------------------------------


def bi64(n=3, obs="fo", G=G, c_min=0.1, c_max=1.0, kappa=1.0, gamma=0.5, rho=1.8, P=1.5, B=0.6, m0=None, **_):
    """SPNE of MAC-SPGG on the grid in float64; returns path and per-level policies/margins."""
    m0 = 0.5 * (c_min + c_max) if m0 is None else m0
    h = (c_max - c_min) / (G - 1)
    grid = c_min + h * np.arange(G)
    K = n * (G - 1) + 1
    L = G if obs == "po" else 1
    ks = np.arange(K)[:, None, None]
    ls = np.arange(L)[None, :, None]
    a = np.arange(G)[None, None, :]
    fin = np.broadcast_to(np.arange(K)[:, None], (K, L)).copy()  # final sum index after n agents
    levels = {}
    for i in range(n, 0, -1):
        nk = np.minimum(ks + a, K - 1)
        nl = a if obs == "po" else np.zeros_like(a)
        fk = fin[nk, nl]  # [K, L, G] final sum index if agent i plays a at state (k, l)
        q = grid[a]
        if i == 1:
            m = m0
        elif obs == "po":
            m = grid[ls]
        else:
            m = c_min + ks * h / (i - 1)
        S = (n * c_min + fk * h) / n
        pay = -0.5 * kappa * q * q + gamma * q * m + (rho / n) * S - P * (S < B - THRESHOLD_TOL)
        pay = np.broadcast_to(pay, (K, L, G))
        best = np.argmax(pay, axis=-1)
        bv = np.take_along_axis(pay, best[..., None], -1)[..., 0]
        p2 = pay.copy()
        np.put_along_axis(p2, best[..., None], -np.inf, -1)
        second = np.argmax(p2, axis=-1)
        sv = np.take_along_axis(p2, second[..., None], -1)[..., 0]
        k2 = np.arange(K)[:, None]
        l2 = np.arange(L)[None, :]
        if obs == "po":
            valid = ((k2 == 0) & (l2 == 0)) if i == 1 else ((k2 >= l2) & (k2 - l2 <= (i - 2) * (G - 1)))
        else:
            valid = np.broadcast_to(k2 <= (i - 1) * (G - 1), (K, L))
        levels[i] = dict(best=best, margin=bv - sv, second=second, valid=valid, fk=fk)
        fin = np.take_along_axis(fk, best[..., None], -1)[..., 0]
    k = l = 0
    idx = []
    for i in range(1, n + 1):
        ai = int(levels[i]["best"][k, l])
        idx.append(ai)
        k += ai
        l = ai if obs == "po" else 0
    return dict(levels=levels, idx=np.array(idx), q=grid[np.array(idx)], grid=grid, h=h, n=n, obs=obs)


def tie_stats(res):
    """Ties (margin <= TOL) over all valid nodes: adjacent (|best-second| = 1) vs distant, on path."""
    n, obs = res["n"], res["obs"]
    tot = adj = far = onpath = 0
    min_on = math.inf
    far_ex = None  # first distant tie: (agent, |best - second| in grid steps, margin)
    k = l = 0
    for i in range(1, n + 1):
        lv = res["levels"][i]
        t = lv["valid"] & (lv["margin"] <= TOL)
        d = np.abs(lv["best"] - lv["second"])
        tot += int(t.sum())
        adj += int((t & (d == 1)).sum())
        far += int((t & (d > 1)).sum())
        if far_ex is None and np.any(t & (d > 1)):
            kk, ll = np.argwhere(t & (d > 1))[0]
            far_ex = (i, int(d[kk, ll]), float(lv["margin"][kk, ll]))
        onpath += int(t[k, l])
        min_on = min(min_on, float(lv["margin"][k, l]))
        ai = lv["best"][k, l]
        k += ai
        l = ai if obs == "po" else 0
    return dict(ties=tot, adjacent=adj, distant=far, on_path=onpath, min_on_path_margin=min_on,
                first_distant=far_ex)


def monotone_violations(res):
    """Count decision nodes where the continuation final sum decreases in the mover's own action."""
    bad = nodes = 0
    for i in range(1, res["n"] + 1):
        lv = res["levels"][i]
        fk = lv["fk"]  # [K, L, G]
        dec = np.any(np.diff(fk, axis=-1) < 0, axis=-1)
        bad += int((dec & lv["valid"]).sum())
        nodes += int(lv["valid"].sum())
    return bad, nodes


# ------------------------------------------------------------------------------------------------
# Closed forms and analytic sufficient conditions
# ------------------------------------------------------------------------------------------------


def gridround(x, c_min, c_max, h):
    """Smallest grid maximiser of a concave quadratic peaked at x (nearest point, halves down)."""
    x = min(max(x, c_min), c_max)
    j = math.ceil((x - c_min) / h - 0.5 - 1e-12)
    return c_min + max(0, j) * h


def last_agent_rule(s, m, n, c_min, c_max, kappa, gamma, rho, P, B, h):
    """Closed-form best response of agent n on the grid, given running sum s and observed m."""
    qstar = (gamma * m + rho / n**2) / kappa
    qhat = gridround(qstar, c_min, c_max, h)
    need = n * B - s
    if qhat >= need - 1e-9:
        return qhat
    j = math.ceil((need - c_min) / h - 1e-9)
    need_g = c_min + max(j, 0) * h
    if need_g > c_max + 1e-9:
        return qhat
    r = lambda q: -0.5 * kappa * q * q + gamma * q * m + rho * (s + q) / n**2  # noqa: E731
    return need_g if r(need_g) > r(qhat) - P else qhat


def T1(n, gamma, kappa, obs):
    """ds_n/dq_1 in the linear (unclipped, slack-threshold) regime."""
    g = gamma / kappa if kappa > 0 else math.inf
    if obs == "po":
        return sum(g**j for j in range(n))
    return float(np.prod([1 + g / k for k in range(1, n)]))


def cond_C(p, n, h):
    """(C) S >= B at every node: the last agent meets B from the worst history s=(n-1)c_min."""
    c_min, c_max, kappa, gamma, rho, P, B = (p[k] for k in ("c_min", "c_max", "kappa", "gamma", "rho", "P", "B"))
    qstar = (gamma * c_min + rho / n**2) / kappa
    qcl = min(max(qstar, c_min), c_max)
    need = n * B - (n - 1) * c_min
    if qcl - h / 2 >= need - 1e-12:
        return True  # slack: the unconstrained best response already meets B
    if need > c_max + 1e-12:
        return False
    needg = need + h  # grid round-up bound
    loss = 0.5 * kappa * ((needg - qstar) ** 2 - (qcl - qstar) ** 2)
    return loss < P


def lower_bounds(p, n, h, obs):
    """Lower bounds l_i on every on-path q_i (Lemma 2) on the grid."""
    c_min, c_max, kappa, gamma, rho = (p[k] for k in ("c_min", "c_max", "kappa", "gamma", "rho"))
    m0 = p.get("m0", 0.5 * (c_min + c_max))
    ls = []
    for i in range(1, n + 1):
        m = m0 if i == 1 else (ls[-1] if obs == "po" else float(np.mean(ls)))
        x = (gamma * m + (rho / n**2 if i == n else 0.0)) / kappa if kappa > 0 else c_max
        ls.append(gridround(x, c_min, c_max, h))
    return ls


def cond_B(p, n, h, obs):
    """(B) every q_i > c_min: every lower bound l_i is above c_min."""
    return all(x > p["c_min"] + 1e-9 for x in lower_bounds(p, n, h, obs))


def cond_A(p, n, h, obs):
    """(A) unique (up to adjacent grid near-ties): slack threshold everywhere + no clipping."""
    c_min, c_max, kappa, gamma, rho, B = (p[k] for k in ("c_min", "c_max", "kappa", "gamma", "rho", "B"))
    qlo = (gamma * c_min + rho / n**2) / kappa
    slack = min(qlo, c_max) - h / 2 >= n * B - (n - 1) * c_min - 1e-12
    lo_ok = qlo >= c_min
    hi_ok = (gamma * c_max + rho * T1(n, gamma, kappa, obs) / n**2) / kappa <= c_max
    return bool(slack and lo_ok and hi_ok)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def fmt(x, d=3):
    return f"{x:.{d}f}"


def runs(xs, flags):
    """Collapse sorted xs where flag is true into 'a..b' intervals."""
    out, start, prev = [], None, None
    for x, f in zip(xs, flags):
        if f and start is None:
            start = x
        if not f and start is not None:
            out.append((start, prev))
            start = None
        prev = x
    if start is not None:
        out.append((start, prev))
    return ", ".join(f"{a:g}" if a == b else f"{a:g}..{b:g}" for a, b in out) or "none"


def welfare64(q, p, n, obs):
    q = np.asarray(q, np.float64)
    c_min, c_max = p["c_min"], p["c_max"]
    m0 = 0.5 * (c_min + c_max)
    if obs == "po":
        m = np.concatenate([np.full(q.shape[:-1] + (1,), m0), q[..., :-1]], -1)
    else:
        cs = np.cumsum(q, -1)[..., :-1] / np.arange(1, n)
        m = np.concatenate([np.full(q.shape[:-1] + (1,), m0), cs], -1)
    S = q.mean(-1, keepdims=True)
    R = -0.5 * p["kappa"] * q * q + p["gamma"] * q * m + p["rho"] / n * S - p["P"] * (S < p["B"] - THRESHOLD_TOL)
    return R.sum(-1)


def social_optimum(p, obs="fo", Gs=G):
    """Brute-force max of W = sum_i R_i over all n=3 grid profiles (float64)."""
    h = (p["c_max"] - p["c_min"]) / (Gs - 1)
    grid = p["c_min"] + h * np.arange(Gs)
    q = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1)
    W = welfare64(q, p, 3, obs)
    j = np.unravel_index(np.argmax(W), W.shape)
    return float(W[j]), [float(grid[x]) for x in j]


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------


def s1_last_agent(out):
    print("== S1 last agent: closed-form rule vs solved policy at every state (bi64, G=101)")
    cases = [dict(DEF), dict(DEF, P=0.05), dict(DEF, P=0.2, B=0.5), dict(DEF, gamma=1.2, rho=0.6, B=0.8),
             dict(DEF, kappa=3.0, P=0.3)]
    rows = []
    for obs in ("fo", "po"):
        for p in cases:
            n = 3
            res = bi64(n=n, obs=obs, **p)
            lv = res["levels"][n]
            h, grid = res["h"], res["grid"]
            mism = tot = 0
            for k in range(lv["best"].shape[0]):
                for l in range(lv["best"].shape[1]):
                    if not lv["valid"][k, l] or lv["margin"][k, l] <= TOL:
                        continue
                    s = (n - 1) * p["c_min"] + k * h
                    m = s / (n - 1) if obs == "fo" else grid[l]
                    rule = last_agent_rule(s, m, n, p["c_min"], p["c_max"], p["kappa"], p["gamma"], p["rho"],
                                           p["P"], p["B"], h)
                    tot += 1
                    mism += abs(rule - grid[lv["best"][k, l]]) > 1e-9
            rows.append(dict(obs=obs, params={k: p[k] for k in ("kappa", "gamma", "rho", "P", "B")},
                             states=tot, mismatches=int(mism), makeup_reach=math.sqrt(2 * p["P"] / p["kappa"])))
            print(f"  {obs} {rows[-1]['params']} states={tot} mismatches={mism} "
                  f"sqrt(2P/kappa)={rows[-1]['makeup_reach']:.3f}")
    out["S1"] = rows
    # continuation score of agent 2's node as a function of q1 at the defaults (FO): offsetting
    res = bi64(n=3, **DEF)
    h, grid = res["h"], res["grid"]
    tab = []
    for q1i in (0, 10, 19, 30, 50, 70, 100):
        q2i = int(res["levels"][2]["best"][q1i, 0])
        q3i = int(res["levels"][3]["best"][q1i + q2i, 0])
        tab.append((float(grid[q1i]), float(grid[q2i]), float(grid[q3i]),
                    float((grid[q1i] + grid[q2i] + grid[q3i]) / 3)))
    print("  defaults FO, off-path: q1 -> (q2*, q3*, S):", [tuple(round(v, 4) for v in t) for t in tab])
    out["S1_offpath"] = tab


def s2_monotone(out, quick):
    print("== S2 continuation final score monotone in own contribution at every node (bi64)")
    gam = [0.0, 0.3, 0.6, 1.0, 1.5]
    rho = [0.0, 0.9, 1.8, 3.0]
    Ps = [0.1, 1.5]
    Bs = [0.3, 0.6, 0.9]
    res_rows = {}
    for n, obs, Gm in [(3, "fo", G), (4, "fo", 31), (3, "po", 51)]:
        bad_pts = 0
        bad_nodes = nodes = 0
        pts = list(itertools.product(gam, rho, Ps, Bs))
        if quick:
            pts = pts[::4]
        for g_, r_, P_, B_ in pts:
            res = bi64(n=n, obs=obs, G=Gm, **dict(DEF, gamma=g_, rho=r_, P=P_, B=B_))
            b, nn = monotone_violations(res)
            bad_nodes += b
            nodes += nn
            bad_pts += b > 0
        res_rows[f"n{n}_{obs}_G{Gm}"] = dict(points=len(pts), points_with_violation=bad_pts,
                                             violating_nodes=bad_nodes, nodes=nodes)
        print(f"  n={n} {obs} G={Gm}: points={len(pts)} points_with_violation={bad_pts} "
              f"violating_nodes={bad_nodes}/{nodes}")
    out["S2"] = res_rows


def sweep_4d(n, obs, gam, rho, Ps, Bs, method="markov"):
    base = make_params("mac_spgg", n=n, observation=obs)
    pts = [dict(gamma=g_, rho=r_, P=P_, B=B_) for g_, r_, P_, B_ in itertools.product(gam, rho, Ps, Bs)]
    rows = solve_points("mac_spgg", base, pts, G, method, chunk=256)
    h = (DEF["c_max"] - DEF["c_min"]) / (G - 1)
    for row, pt in zip(rows, pts):
        p = dict(DEF, **pt)
        row["A"] = cond_A(p, n, h, obs)
        row["Bc"] = cond_B(p, n, h, obs)
        row["C"] = cond_C(p, n, h)
        row["pt"] = p  # exact float64 parameters (row values are float32-rounded)
    return rows


def summarize_cert(rows, label):
    N = len(rows)
    d = dict(points=N)
    d["num_unique"] = sum(r["unique"] for r in rows)
    d["num_path_unique"] = sum(r["path_unique"] for r in rows)
    d["num_above_cmin"] = sum(r["all_above_cmin"] for r in rows)
    d["num_S_ge_B"] = sum(r["threshold_met"] for r in rows)
    d["num_good"] = sum(r["good"] for r in rows)
    d["num_good_path"] = sum(r["path_unique"] and r["all_above_cmin"] and r["threshold_met"] for r in rows)
    d["num_above_and_S"] = sum(r["all_above_cmin"] and r["threshold_met"] for r in rows)
    for c, num in (("A", "unique"), ("Bc", "all_above_cmin"), ("C", "threshold_met")):
        cert = [r for r in rows if r[c]]
        d[f"cert_{c}"] = len(cert)
        d[f"cert_{c}_fail"] = sum(not r[num] for r in cert)
    allc = [r for r in rows if r["A"] and r["Bc"] and r["C"]]
    bc = [r for r in rows if r["Bc"] and r["C"]]
    d["cert_ABC"] = len(allc)
    d["cert_ABC_fail"] = sum(not r["good"] for r in allc)
    d["cert_A_path_fail"] = sum(not r["path_unique"] for r in rows if r["A"])
    d["cert_BC"] = len(bc)
    d["cert_BC_fail"] = sum(not (r["all_above_cmin"] and r["threshold_met"]) for r in bc)
    print(f"  {label}: " + " ".join(f"{k}={v}" for k, v in d.items()))
    return d


def s3_region(out, quick):
    print("== S3 sufficient conditions vs numerical map (solver, markov, G=101)")
    t0 = time.time()
    gam = np.round(np.arange(0, 1.5001, 0.1 if not quick else 0.3), 3).tolist()
    rho = np.round(np.arange(0, 3.0001, 0.2 if not quick else 0.6), 3).tolist()
    Ps = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0] if not quick else [0.5, 1.5]
    Bs = np.round(np.arange(0.1, 1.0001, 0.1), 3).tolist()
    rows3 = sweep_4d(3, "fo", gam, rho, Ps, Bs)
    out["S3_n3"] = summarize_cert(rows3, f"n=3 FO 4D grid {len(gam)}x{len(rho)}x{len(Ps)}x{len(Bs)}")
    # failures of certified points: details
    fails = [r for r in rows3 if (r["Bc"] and not r["all_above_cmin"]) or (r["C"] and not r["threshold_met"])]
    out["S3_cert_fail_examples"] = [{k: r[k] for k in ("gamma", "rho", "P", "B", "q", "final_score")} for r in fails[:5]]
    for r in fails[:5]:
        print("   certified-but-fails:", {k: r[k] for k in ("gamma", "rho", "P", "B", "q", "final_score")})
    # ties on the certified-unique points: classify with bi64
    a_fail = [r for r in rows3 if r["A"] and not r["unique"]]
    cls = dict(adjacent_only=0, distant=0, bi64_no_tie=0, on_path=0, distant_examples=[])
    for r in a_fail:
        ts = tie_stats(bi64(n=3, **r["pt"]))
        cls["on_path"] += ts["on_path"] > 0
        if ts["ties"] == 0:
            cls["bi64_no_tie"] += 1
        elif ts["distant"] == 0:
            cls["adjacent_only"] += 1
        else:
            cls["distant"] += 1
            cls["distant_examples"].append(dict(pt={k: r["pt"][k] for k in ("gamma", "rho", "P", "B")},
                                                agent_steps_margin=ts["first_distant"]))
    out["S3_A_fail_classes"] = cls
    print("  certified-(A) points flagged non-unique by the solver, classified by bi64:", cls)
    # ties overall: classification and on-path share (bi64) + agreement of paths with the solver
    agree = met_mismatch = pu_mismatch = dis_onpath = pu_offpath_changes = 0
    pu_margins = []  # bi64 smallest on-path margin where the float32 and float64 path-tie verdicts differ
    dis_by_B: dict = {}
    dis_examples = []
    tclass = dict(points_with_ties=0, adjacent_only=0, with_distant=0, tie_on_path=0)
    for r in rows3:
        res = bi64(n=3, **r["pt"])
        ts = tie_stats(res)
        ok = bool(np.allclose(res["q"], r["q"], atol=1e-5))
        agree += ok
        if not ok:
            dis_by_B[r["pt"]["B"]] = dis_by_B.get(r["pt"]["B"], 0) + 1
            dis_onpath += (ts["on_path"] > 0) or not r["path_unique"]
            if len(dis_examples) < 5:
                dis_examples.append(dict(pt={k: r["pt"][k] for k in ("gamma", "rho", "P", "B")},
                                         solver_q=[round(x, 3) for x in r["q"]],
                                         bi64_q=[round(float(x), 3) for x in res["q"]],
                                         solver_path_unique=r["path_unique"], bi64_on_path_ties=ts["on_path"]))
        if r["threshold_met"] != bool(res["q"].mean() >= r["pt"]["B"] - THRESHOLD_TOL):
            met_mismatch += 1
        if r["path_unique"] and ts["on_path"] > 0:
            pu_mismatch += 1
            pu_margins.append(ts["min_on_path_margin"])
        if not r["path_unique"] and ts["on_path"] == 0:
            pu_offpath_changes += 1
        if ts["ties"]:
            tclass["points_with_ties"] += 1
            tclass["adjacent_only"] += ts["distant"] == 0
            tclass["with_distant"] += ts["distant"] > 0
            tclass["tie_on_path"] += ts["on_path"] > 0
    tclass["solver_nonunique"] = sum(not r["unique"] for r in rows3)
    tclass["solver_path_nonunique"] = sum(not r["path_unique"] for r in rows3)
    tclass["solver_offpath_ties_only"] = sum(r["path_unique"] and not r["unique"] for r in rows3)
    # path_unique although bi64 sees an on-path tie (float32 vs float64 rounding at margin ~ tol)
    tclass["path_unique_flag_mismatch_solver_bi64"] = pu_mismatch
    # not path_unique although bi64's selected path is strict: an off-path tie could change it
    tclass["not_path_unique_without_onpath_tie_bi64"] = pu_offpath_changes
    tclass["path_unique_mismatch_bi64_margin_range"] = [min(pu_margins), max(pu_margins)] if pu_margins else None
    tclass["path_disagree_with_onpath_tie"] = dis_onpath
    tclass["path_disagree_examples"] = dis_examples
    tclass["path_agree_solver_bi64"] = agree
    tclass["path_disagree_by_B"] = {str(k): v for k, v in sorted(dis_by_B.items())}
    tclass["threshold_flag_mismatch"] = met_mismatch
    out["S3_ties"] = tclass
    print("  ties (bi64 float64) over the n=3 grid:", tclass)
    # good region excluding uniqueness
    # region by n
    byn = {}
    gam_n = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5] if not quick else [0.25, 0.75, 1.25]
    rho_n = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] if not quick else [0.5, 1.5, 2.5]
    Ps_n = [0.5, 1.5, 3.0] if not quick else [1.5]
    for n in (2, 3, 4, 8):
        rows = sweep_4d(n, "fo", gam_n, rho_n, Ps_n, Bs)
        byn[n] = summarize_cert(rows, f"n={n} FO grid {len(gam_n)}x{len(rho_n)}x{len(Ps_n)}x{len(Bs)}")
        bmax = {}
        for r in rows:
            if r["all_above_cmin"] and r["threshold_met"]:
                bmax[(r["gamma"], r["rho"], r["P"])] = max(bmax.get((r["gamma"], r["rho"], r["P"]), 0), r["B"])
        byn[n]["median_max_B_good_noU"] = float(np.median(list(bmax.values()))) if bmax else None
        byn[n]["frac_free_rider"] = sum(r["any_free_rider"] for r in rows) / len(rows)
        byn[n]["frac_S_lt_B"] = sum(not r["threshold_met"] for r in rows) / len(rows)
    out["S3_by_n"] = {str(k): v for k, v in byn.items()}
    # 2D maps at n=3: (gamma, rho) at P=1.5, B=0.6 and (P, B) at gamma=0.5, rho=1.8
    maps = {}
    gx = np.round(np.arange(0, 1.5001, 0.05 if not quick else 0.15), 3).tolist()
    ry = np.round(np.arange(0, 3.0001, 0.1 if not quick else 0.3), 3).tolist()
    Px = np.round(np.arange(0, 3.0001, 0.1 if not quick else 0.3), 3).tolist()
    By = np.round(np.arange(0.1, 1.0001, 0.03 if not quick else 0.09), 3).tolist()
    for name, (xn, xs, yn, ys) in {"gamma_rho": ("gamma", gx, "rho", ry), "P_B": ("P", Px, "B", By)}.items():
        base = make_params("mac_spgg", n=3)
        pts = [{xn: x, yn: y} for y in ys for x in xs]
        rows = solve_points("mac_spgg", base, pts, G, "markov", chunk=256)
        lines = []
        for yi, y in enumerate(ys[::-1]):
            line = ""
            for xi in range(len(xs)):
                r = rows[(len(ys) - 1 - yi) * len(xs) + xi]
                ok_ = r["all_above_cmin"] and r["threshold_met"]
                ch = "#" if r["good"] else (("o" if r["path_unique"] else "u") if ok_ else
                                            ("c" if r["threshold_met"] else ("b" if r["all_above_cmin"] else "x")))
                line += ch
            lines.append(f"{yn}={y:5.2f} {line}")
        lines.append(f"{'':10} {xn}: {xs[0]}..{xs[-1]} step {xs[1] - xs[0]:.2f}")
        n_good = sum(r["good"] for r in rows)
        n_ok = sum(r["all_above_cmin"] and r["threshold_met"] for r in rows)
        n_okp = sum(r["all_above_cmin"] and r["threshold_met"] and r["path_unique"] for r in rows)
        fails = [dict(P=round(r["P"], 3), B=round(r["B"], 3), gamma=round(r["gamma"], 3), rho=round(r["rho"], 3),
                      q=[round(x, 3) for x in r["q"]], met=r["threshold_met"], unique=r["unique"],
                      path_unique=r["path_unique"]) for r in rows if not r["good"]]
        maps[name] = dict(lines=lines, good=n_good, ok_ignoring_uniqueness=n_ok, ok_and_path_unique=n_okp,
                          points=len(rows), not_good_examples=fails[:60], n_not_good=len(fails))
        print(f"  map {name}: good={n_good} ok_and_path_unique={n_okp} ok_ignoring_uniqueness={n_ok} / {len(rows)}")
        print("\n".join("    " + ln for ln in lines))
    out["S3_maps"] = maps
    print(f"  S3 time {time.time() - t0:.0f}s")


def s4_theorems(out, quick):
    print("== S4 Theorem 2: welfare comparative statics (solver, markov, G=101)")
    base = make_params("mac_spgg", n=3)
    axes = {"B": np.round(np.arange(0.1, 1.0001, 0.01), 3).tolist(),
            "gamma": np.round(np.arange(0.0, 1.5001, 0.02), 3).tolist(),
            "rho": np.round(np.arange(0.0, 3.0001, 0.04), 3).tolist()}
    if quick:
        axes = {k: v[::3] for k, v in axes.items()}
    res = {}
    for obs in ("fo", "po"):
        b = make_params("mac_spgg", n=3, observation=obs)
        for name, vals in axes.items():
            if obs == "po" and name != "B":
                continue
            rows = solve_points("mac_spgg", b, [{name: v} for v in vals], G, "markov", chunk=256)
            W = np.array([r["welfare"] for r in rows])
            dW = np.diff(W)
            up = dW > 1e-6
            down = dW < -1e-6
            mids = [(vals[j] + vals[j + 1]) / 2 for j in range(len(dW))]
            nonu = [v for v, r in zip(vals, rows) if not r["unique"]]
            nonpu = [v for v, r in zip(vals, rows) if not r["path_unique"]]
            key = f"{name}_{obs}"
            # float64 reference (bi64, same S >= B - THRESHOLD_TOL convention) and, for B, the exact solver
            ref = [bi64(n=3, obs=obs, **dict(DEF, **{name: v})) for v in vals]
            W64 = np.array([float(welfare64(r["q"], dict(DEF, **{name: v}), 3, obs)) for r, v in zip(ref, vals)])
            knife = []
            if name == "B":
                for v, r, rr in zip(vals, rows, ref):
                    ee = solve("mac_spgg", b.updated(B=v), G, "exact")
                    qm, qe = np.array(r["q"]), np.asarray(ee.q, np.float64)
                    if not (np.allclose(qm, rr["q"], atol=1e-5) and np.allclose(qe, rr["q"], atol=1e-5)
                            and r["threshold_met"] and bool(ee.threshold_met)):
                        knife.append(dict(B=v, markov_q=[round(x, 3) for x in qm], markov_met=r["threshold_met"],
                                          markov_W=round(r["welfare"], 4), exact_q=[round(float(x), 3) for x in qe],
                                          exact_met=bool(ee.threshold_met), exact_W=round(float(ee.welfare), 4),
                                          bi64_q=[round(float(x), 3) for x in rr["q"]],
                                          bi64_S_minus_B=float(rr["q"].mean() - v)))
                for kk in knife:
                    print("     solver/bi64 disagreement:", kk)
                print(f"     B sweep: markov, exact and bi64 disagree at {len(knife)} of {len(vals)} points")
            d64 = np.diff(W64)
            falls64 = [(vals[j], vals[j + 1], round(W64[j], 4), round(W64[j + 1], 4),
                        [round(x, 3) for x in ref[j]["q"]], [round(x, 3) for x in ref[j + 1]["q"]])
                       for j in range(len(d64)) if d64[j] < -1e-6]
            for f_ in falls64:
                print("     bi64 fall:", f_)
            res[key] = dict(
                knife_edge=knife, falls_bi64=falls64, n_down_bi64=int((d64 < -1e-6).sum()),
                n_up_bi64=int((d64 > 1e-6).sum()), W64_first=float(W64[0]), W64_last=float(W64[-1]),
                down_steps_bi64=runs(mids, d64 < -1e-6), up_steps_bi64=runs(mids, d64 > 1e-6),
                table64=[(v, round(float(w), 4), [round(float(x), 3) for x in r["q"]]) for v, w, r in
                         zip(vals, W64, ref)][:: max(1, len(vals) // 12)],
                n_points=len(vals), n_up=int(up.sum()), n_down=int(down.sum()), n_flat=int((~up & ~down).sum()),
                W_first=float(W[0]), W_last=float(W[-1]), W_min=float(W.min()), W_max=float(W.max()),
                argmax=vals[int(W.argmax())], argmin=vals[int(W.argmin())],
                down_steps=runs(mids, down), up_steps=runs(mids, up),
                nonunique=nonu, n_nonunique=len(nonu), path_nonunique=nonpu, n_path_nonunique=len(nonpu),
                W_solver_minus_bi64_maxabs=float(np.max(np.abs(W - W64))),
                path_disagree_solver_bi64=[v for v, r, rr in zip(vals, rows, ref)
                                           if not np.allclose(r["q"], rr["q"], atol=1e-5)],
                unmet=[v for v, r in zip(vals, rows) if not r["threshold_met"]][:3],
                table=[(v, round(r["welfare"], 4), [round(x, 3) for x in r["q"]], r["threshold_met"], r["unique"],
                        r["path_unique"])
                       for v, r in zip(vals, rows)][:: max(1, len(vals) // 10)],
            )
            print(f"  W vs {name} ({obs}): up={res[key]['n_up']} down={res[key]['n_down']} flat={res[key]['n_flat']} "
                  f"W[{vals[0]}]={W[0]:.4f} W[{vals[-1]}]={W[-1]:.4f} max at {res[key]['argmax']} "
                  f"min at {res[key]['argmin']} nonunique={len(nonu)} path_nonunique={len(nonpu)} "
                  f"max|W_solver - W_bi64|={res[key]['W_solver_minus_bi64_maxabs']:.2e} "
                  f"path disagreements at {res[key]['path_disagree_solver_bi64']}")
            print(f"     falling over steps centred at: {res[key]['down_steps']}")
            print(f"     rising  over steps centred at: {res[key]['up_steps']}")
            for t in res[key]["table"]:
                print("      ", t)
    # are non-unique points where W jumps? solve a few with a perturbed grid size (G=100, 102)
    chk = []
    for name in ("gamma", "rho"):
        key = f"{name}_fo"
        for v in res[key]["nonunique"][:4]:
            qs = []
            for Gx in (100, 101, 102, 201):
                e = solve("mac_spgg", base.updated(**{name: v}), Gx, "markov")
                qs.append((Gx, [round(float(x), 4) for x in e.q], round(float(e.welfare), 4), bool(e.unique),
                           int(e.n_ties), bool(e.path_unique)))
            ts = tie_stats(bi64(n=3, **dict(DEF, **{name: v})))
            chk.append(dict(axis=name, value=v, by_grid=qs, bi64_ties=ts))
            print(f"  non-unique {name}={v}: {qs} bi64 {ts}")
    res["nonunique_checks"] = chk
    # on-path ties: both selections are equilibria; perturb the parameter by +-1e-4 (bi64) to see
    # the welfare of the neighbouring strict games on either side of the tie
    pchk = []
    for name in ("gamma", "rho"):
        for v in res[f"{name}_fo"]["path_nonunique"]:
            side = []
            for dv in (-1e-4, 0.0, 1e-4):
                p = dict(DEF, **{name: v + dv})
                r = bi64(n=3, **p)
                side.append((round(v + dv, 5), [round(float(x), 3) for x in r["q"]],
                             round(float(welfare64(r["q"], p, 3, "fo")), 4), tie_stats(r)["on_path"]))
            pchk.append(dict(axis=name, value=v, bi64_minus_0_plus=side))
            print(f"  on-path tie {name}={v}: bi64 at v-1e-4, v, v+1e-4 (q, W, on-path ties): {side}")
    res["path_tie_checks"] = pchk
    # Theorem 1 probe: large gamma, rho, P at several B
    t1 = []
    for B in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9):
        for g_, r_, P_ in ((1.0, 3.0, 3.0), (1.5, 6.0, 10.0), (3.0, 9.0, 10.0)):
            e = solve("mac_spgg", base.updated(gamma=g_, rho=r_, P=P_, B=B), G, "markov")
            t1.append((B, g_, r_, P_, [round(float(x), 3) for x in e.q], round(float(e.final_score), 3),
                       bool(e.threshold_met), bool(e.unique), int(e.n_ties)))
    res["theorem1_probe"] = t1
    for t in t1:
        print("  T1 probe (B, gamma, rho, P, q, S, met, unique, ties):", t)
    out["S4"] = res


def s5_load(out, quick):
    print("== S5 who carries the load; social optimum (brute force n=3, float64) vs SPNE")
    prof = {}
    for obs in ("fo", "po"):
        for n in (2, 3, 4, 8):
            e = solve("mac_spgg", make_params("mac_spgg", n=n, observation=obs), G, "markov")
            prof[f"{obs}_n{n}"] = dict(q=[round(float(x), 3) for x in e.q], S=round(float(e.final_score), 4),
                                       W=round(float(e.welfare), 4), unique=bool(e.unique),
                                       path_unique=bool(e.path_unique),
                                       R=[round(float(x), 3) for x in e.rewards])
            print(f"  {obs} n={n}: q={prof[f'{obs}_n{n}']['q']} S={prof[f'{obs}_n{n}']['S']} "
                  f"W={prof[f'{obs}_n{n}']['W']} R={prof[f'{obs}_n{n}']['R']} unique={bool(e.unique)} "
                  f"path_unique={bool(e.path_unique)}")
    out["S5_profiles"] = prof
    poa = []
    Bs = [0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for obs in ("fo", "po"):
        for B in Bs:
            p = dict(DEF, B=B)
            e = bi64(n=3, obs=obs, **p)  # float64 SPNE, same convention as the solver (cross-checked in S4)
            Wo, qo = social_optimum(p, obs)
            Ws = float(welfare64(e["q"], p, 3, obs))
            poa.append(dict(obs=obs, B=B, W_spne=round(Ws, 4), q_spne=[round(float(x), 3) for x in e["q"]],
                            W_opt=round(Wo, 4), q_opt=[round(x, 3) for x in qo],
                            ratio=round(Wo / Ws, 4) if Ws > 0 else None))
            print("  ", poa[-1])
    for g_, r_ in ((0.0, 1.8), (1.0, 1.8), (0.5, 0.6), (0.5, 3.0)):
        p = dict(DEF, gamma=g_, rho=r_)
        e = bi64(n=3, **p)
        Wo, qo = social_optimum(p, "fo")
        Ws = float(welfare64(e["q"], p, 3, "fo"))
        poa.append(dict(obs="fo", B=0.6, gamma=g_, rho=r_, W_spne=round(Ws, 4), q_spne=[round(float(x), 3) for x in e["q"]],
                        W_opt=round(Wo, 4), q_opt=[round(x, 3) for x in qo], ratio=round(Wo / Ws, 4) if Ws > 0 else None))
        print("  ", poa[-1])
    out["S5_poa"] = poa
    # FO vs PO: how often do the paths differ on the (gamma, rho) grid at the defaults?
    gam = np.round(np.arange(0, 1.5001, 0.15), 3).tolist()
    rho = np.round(np.arange(0, 3.0001, 0.3), 3).tolist()
    if quick:
        gam, rho = gam[::3], rho[::3]
    pts = [dict(gamma=g_, rho=r_) for g_ in gam for r_ in rho]
    rf = solve_points("mac_spgg", make_params("mac_spgg", n=3), pts, G, "markov", chunk=256)
    rp = solve_points("mac_spgg", make_params("mac_spgg", n=3, observation="po"), pts, G, "markov", chunk=64)
    diff = [(a["gamma"], a["rho"], [round(x, 3) for x in a["q"]], [round(x, 3) for x in b["q"]])
            for a, b in zip(rf, rp) if not np.allclose(a["q"], b["q"], atol=1e-5)]
    dW = [b["welfare"] - a["welfare"] for a, b in zip(rf, rp)]
    out["S5_fo_po"] = dict(points=len(pts), paths_differ=len(diff), examples=diff[:6],
                           W_po_minus_fo_min=float(np.min(dW)), W_po_minus_fo_max=float(np.max(dW)),
                           good_fo=sum(r["good"] for r in rf), good_po=sum(r["good"] for r in rp))
    print("  FO vs PO:", out["S5_fo_po"])


def s6_classic(out):
    print("== S6 classic PGG (Nash, enumeration) and SPGG (SPNE): r < n")
    rows = []
    for n in (2, 3, 4):
        for r in (1.2, 1.8, 1.95):
            if r >= n:
                continue
            for reward in ("pgg", "spgg"):
                e = solve(reward, make_params(reward, n=n, r=r), 21 if reward == "pgg" and n == 4 else G)
                rows.append(dict(reward=reward, n=n, r=r, q=[round(float(x), 3) for x in e.q],
                                 unique=bool(e.unique), min_margin=float(e.min_margin)))
                print("  ", rows[-1])
    out["S6"] = rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="coarser sweeps (smoke test)")
    ap.add_argument("--json", default=None, help="write all numbers to this JSON file")
    ap.add_argument("--only", default=None, help="comma list of sections to run, e.g. S1,S4")
    args = ap.parse_args()
    out: dict = {}
    only = set(args.only.split(",")) if args.only else None
    t0 = time.time()
    for name, fn in (("S1", lambda: s1_last_agent(out)), ("S2", lambda: s2_monotone(out, args.quick)),
                     ("S3", lambda: s3_region(out, args.quick)), ("S4", lambda: s4_theorems(out, args.quick)),
                     ("S5", lambda: s5_load(out, args.quick)), ("S6", lambda: s6_classic(out))):
        if only is None or name in only:
            fn()
    print(f"total time {time.time() - t0:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()

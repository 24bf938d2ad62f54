"""Exercises for notebook 08 (the mini-GPT): the loss to expect before training, the learning-rate schedule,
gradient clipping by the global norm, and one AdamW step."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, expect_close, expect_number


def _num(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}")
    return float(value)


# ---- q1: the loss before training -----------------------------------------------------------------------------

def _check_initial_loss(initial_loss) -> None:
    for V in [2, 65, 96, 50257]:
        got = _num(call(initial_loss, V), f"initial_loss({V})")
        want = math.log(V)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        if math.isclose(got, math.log2(V), rel_tol=1e-6):
            raise Incorrect(f"initial_loss({V}) = {got:.4f} is log2(V), in bits; PyTorch's cross-entropy uses the "
                            "natural log (nats): math.log(V).")
        if math.isclose(got, 1 / V, rel_tol=1e-6):
            raise Incorrect(f"initial_loss({V}) = {got:.4g} is the probability 1/V each token gets; the loss is "
                            "minus its log: -log(1/V) = log(V).")
        if math.isclose(got, math.log10(V), rel_tol=1e-6):
            raise Incorrect("that is log base 10; cross-entropy uses the natural log: math.log(V).")
        if math.isclose(got, -math.log(V), rel_tol=1e-6):
            raise Incorrect("the sign is wrong: the loss is -log(1/V) = +log(V), a positive number.")
        expect_number(got, want, what=f"initial_loss({V})", rel=1e-6)


# ---- q2: warm-up and cosine decay ------------------------------------------------------------------------------

def _lr_ref(step, max_steps, warmup, lr_max, lr_min):
    if step < warmup:
        return lr_max * (step + 1) / warmup
    p = (step - warmup) / max(1, max_steps - warmup)
    return lr_min + 0.5 * (1 + math.cos(math.pi * min(p, 1.0))) * (lr_max - lr_min)


def _check_lr_schedule(lr_schedule) -> None:
    cases = [(1000, 100, 1e-3, 1e-4), (200, 10, 3e-3, 0.0), (50, 5, 1.0, 0.1)]
    for max_steps, warmup, lr_max, lr_min in cases:
        quarter = warmup + (max_steps - warmup) // 4
        steps = sorted({0, 1, warmup // 2, warmup - 1, warmup, warmup + 1, quarter, (warmup + max_steps) // 2,
                        max_steps - 1, max_steps})
        got = {t: _num(call(lr_schedule, t, max_steps, warmup, lr_max, lr_min), f"lr_schedule({t}, ...)")
               for t in steps}
        want = {t: _lr_ref(t, max_steps, warmup, lr_max, lr_min) for t in steps}
        if all(math.isclose(got[t], want[t], rel_tol=1e-6, abs_tol=1e-12) for t in steps):
            continue
        if math.isclose(got[0], lr_max, rel_tol=1e-6):
            raise Incorrect(f"the warm-up is missing: step 0 already has the peak lr {lr_max}. During the first "
                            f"{warmup} steps the lr should climb linearly: lr_max * (step + 1) / warmup.")
        if math.isclose(got[0], 0.0, abs_tol=1e-15) and math.isclose(got[1], lr_max / warmup, rel_tol=1e-6):
            raise Incorrect("the warm-up is off by one: step 0 gets lr 0 and no update at all. "
                            "Use lr_max * (step + 1) / warmup.")
        half = lr_min + 0.5 * (lr_max - lr_min)
        linear = lr_max - (quarter - warmup) / (max_steps - warmup) * (lr_max - lr_min)
        if math.isclose(got[max_steps], 0.0, abs_tol=1e-15) and lr_min > 0:
            raise Incorrect(f"at the end the lr is 0, not lr_min={lr_min}: the cosine goes from lr_max down to "
                            "lr_min: lr_min + 0.5 (1 + cos(pi p)) (lr_max - lr_min).")
        if math.isclose(got[quarter], linear, rel_tol=1e-6):
            raise Incorrect("your decay is a straight line; use half a cosine: "
                            "lr_min + 0.5 * (1 + cos(pi * p)) * (lr_max - lr_min), p = fraction of decay steps done.")
        if not math.isclose(got[max_steps], lr_min, rel_tol=1e-6, abs_tol=1e-12):
            raise Incorrect(f"at step max_steps={max_steps} the lr should have reached lr_min={lr_min}, "
                            f"got {got[max_steps]:.4g}. Measure progress p from the end of warm-up: "
                            "(step - warmup) / (max_steps - warmup).")
        bad = next(t for t in steps if not math.isclose(got[t], want[t], rel_tol=1e-6, abs_tol=1e-12))
        raise Incorrect(f"lr_schedule({bad}, max_steps={max_steps}, warmup={warmup}, lr_max={lr_max}, "
                        f"lr_min={lr_min}) should be {want[bad]:.6g}, got {got[bad]:.6g} "
                        f"(halfway through the decay it should be {half:.4g}).")


# ---- q3: clip the global gradient norm -------------------------------------------------------------------------

def _check_clip_grads(clip_grads) -> None:
    g = torch.Generator().manual_seed(3)
    for sizes, max_norm, scale in [([(4, 3), (5,)], 1.0, 3.0), ([(2, 2), (3, 4), (6,)], 0.5, 1.0),
                                   ([(3,), (2, 5)], 10.0, 0.5)]:
        grads = [torch.randn(*s, generator=g) * scale for s in sizes]
        total = torch.sqrt(sum((x ** 2).sum() for x in grads)).item()
        out = call(clip_grads, [x.clone() for x in grads], max_norm)
        if not isinstance(out, list | tuple) or len(out) != len(grads):
            raise Incorrect(f"return a list of {len(grads)} tensors (one per gradient), got {type(out).__name__}")
        out = [as_tensor(o, f"gradient {i}") for i, o in enumerate(out)]
        for i, (o, x) in enumerate(zip(out, grads, strict=True)):
            if o.shape != x.shape:
                raise Incorrect(f"gradient {i} should keep its shape {tuple(x.shape)}, got {tuple(o.shape)}")
        factor = min(1.0, max_norm / total)
        want = [x * factor for x in grads]
        pairs = list(zip(out, want, strict=True))
        if all(o.shape == w.shape and torch.allclose(o, w, atol=1e-6, rtol=1e-5) for o, w in pairs):
            continue
        if all(torch.allclose(o, x.clamp(-max_norm, max_norm), atol=1e-6) for o, x in zip(out, grads, strict=False)):
            raise Incorrect("you clipped each entry to [-max_norm, max_norm]; that changes the gradient's "
                            "direction. Scale the whole gradient by max_norm / total_norm instead.")
        per_tensor = [x * min(1.0, max_norm / x.norm().item()) for x in grads]
        if all(torch.allclose(o, w, atol=1e-6) for o, w in zip(out, per_tensor, strict=False)):
            raise Incorrect("you clipped each tensor's norm on its own; clip_grad_norm_ uses ONE global norm, "
                            "sqrt of the sum of all squared entries of all tensors, and one common scale factor.")
        always = [x * max_norm / total for x in grads]
        if total < max_norm and all(torch.allclose(o, w, atol=1e-6) for o, w in zip(out, always, strict=False)):
            raise Incorrect(f"the total norm {total:.3g} is already below max_norm={max_norm}, so the gradients "
                            "should stay as they are: the factor is min(1, max_norm / total_norm).")
        got_norm = math.sqrt(sum((o.double() ** 2).sum().item() for o in out))
        if total > max_norm and not math.isclose(got_norm, max_norm, rel_tol=1e-4):
            raise Incorrect(f"after clipping, the global norm should be max_norm={max_norm}; yours is "
                            f"{got_norm:.4g} (the gradients' norm was {total:.4g}).")
        for i, (o, w) in enumerate(zip(out, want, strict=False)):
            expect_close(o, w, what=f"the entries of gradient {i}", atol=1e-6)


# ---- q4: one AdamW step -----------------------------------------------------------------------------------------

def _adamw_ref(p, g, m, v, t, lr, beta1, beta2, eps, wd, bias_correction=True, decoupled=True):
    if not decoupled:
        g = g + wd * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t) if bias_correction else m
    v_hat = v / (1 - beta2 ** t) if bias_correction else v
    new_p = p - lr * m_hat / (v_hat.sqrt() + eps)
    if decoupled:
        new_p = new_p - lr * wd * p
    return new_p, m, v


def _check_adamw_step(adamw_step) -> None:
    gen = torch.Generator().manual_seed(4)
    for shape, t in [((5,), 1), ((3, 4), 3), ((6,), 10)]:
        p, g = torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)
        m, v = 0.1 * torch.randn(*shape, generator=gen), 0.1 * torch.rand(*shape, generator=gen)
        if t == 1:
            m, v = torch.zeros(shape), torch.zeros(shape)
        out = call(adamw_step, p.clone(), g.clone(), m.clone(), v.clone(), t, 0.1, 0.9, 0.99, 1e-8, 0.1)
        if not isinstance(out, tuple) or len(out) != 3:
            raise Incorrect("return three tensors: (new_p, new_m, new_v)")
        new_p, new_m, new_v = (as_tensor(o) for o in out)
        for name, o in (("new_p", new_p), ("new_m", new_m), ("new_v", new_v)):
            if tuple(o.shape) != tuple(shape):
                raise Incorrect(f"{name} should have the parameter's shape {tuple(shape)}, got {tuple(o.shape)}")
        ref = _adamw_ref(p, g, m, v, t, 0.1, 0.9, 0.99, 1e-8, 0.1)
        if not torch.allclose(new_m, ref[1], atol=1e-6):
            if torch.allclose(new_m, 0.9 * m + 0.1 * (g + 0.1 * p), atol=1e-6):
                raise Incorrect("you added weight_decay * p to the gradient (L2 regularisation, plain Adam). AdamW "
                                "decouples it: keep g as it is in m and v, and subtract lr * weight_decay * p from "
                                "p separately.")
            expect_close(new_m, ref[1], what="the first moment m = beta1 m + (1 - beta1) g", atol=1e-6)
        if not torch.allclose(new_v, ref[2], atol=1e-6):
            if torch.allclose(new_v, 0.99 * v + 0.01 * g, atol=1e-6):
                raise Incorrect("the second moment averages the *squared* gradient: v = beta2 v + (1 - beta2) g**2.")
            expect_close(new_v, ref[2], what="the second moment v = beta2 v + (1 - beta2) g^2", atol=1e-6)
        if torch.allclose(new_p, ref[0], atol=1e-5, rtol=1e-4):
            continue
        variants = {
            "no bias correction": _adamw_ref(p, g, m, v, t, 0.1, 0.9, 0.99, 1e-8, 0.1, bias_correction=False)[0],
            "L2": _adamw_ref(p, g, m, v, t, 0.1, 0.9, 0.99, 1e-8, 0.1, decoupled=False)[0],
            "no decay": _adamw_ref(p, g, m, v, t, 0.1, 0.9, 0.99, 1e-8, 0.0)[0],
            "sgd": p - 0.1 * g,
        }
        if torch.allclose(new_p, variants["no bias correction"], atol=1e-5, rtol=1e-4):
            raise Incorrect(f"the bias correction is missing: at step t={t}, m and v are still biased towards their "
                            "zero start. Divide: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t).")
        if torch.allclose(new_p, variants["no decay"], atol=1e-5, rtol=1e-4):
            raise Incorrect("the Adam update is right but the weight decay is missing: also subtract "
                            "lr * weight_decay * p (the old p).")
        if torch.allclose(new_p, variants["L2"], atol=1e-5, rtol=1e-4):
            raise Incorrect("you added weight_decay * p to the gradient (L2 regularisation, plain Adam). AdamW "
                            "decouples it: p = p - lr * m_hat / (sqrt(v_hat) + eps) - lr * weight_decay * p.")
        if torch.allclose(new_p, variants["sgd"], atol=1e-5):
            raise Incorrect("that is plain gradient descent, p - lr g; AdamW divides the running mean of g by "
                            "the square root of the running mean of g^2.")
        expect_close(new_p, ref[0], what="the new parameters", atol=1e-5)


EXERCISES = ExerciseSet("08", "The mini-GPT", [
    Question(
        key="q1", title="The loss before training", answer="initial_loss", checker=_check_initial_loss,
        hints=["An untrained model spreads its probability evenly: each of the V tokens gets 1/V.",
               "Cross-entropy is -log(probability of the right token), with the natural log."],
        solution='''
def initial_loss(V):
    return math.log(V)
''',
        success="if your untrained model starts far from ln V, something is off (initialisation, the loss, the "
                "labels) - check this before a long run."),
    Question(
        key="q2", title="Warm-up and cosine decay", answer="lr_schedule", checker=_check_lr_schedule,
        hints=["Two cases: step < warmup, and after it.",
               "Warm-up: lr_max * (step + 1) / warmup. After: p = (step - warmup) / (max_steps - warmup), "
               "lr = lr_min + 0.5 * (1 + math.cos(math.pi * p)) * (lr_max - lr_min)."],
        solution='''
def lr_schedule(step, max_steps, warmup, lr_max, lr_min):
    if step < warmup:
        return lr_max * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return lr_min + 0.5 * (1 + math.cos(math.pi * p)) * (lr_max - lr_min)
''',
        success="small steps while Adam's statistics are still noisy, big steps in the middle, small steps "
                "again to settle into a minimum."),
    Question(
        key="q3", title="Clip the global gradient norm", answer="clip_grads", checker=_check_clip_grads,
        hints=["The global norm is sqrt(sum over all tensors of (g**2).sum()).",
               "Multiply every tensor by the same factor min(1, max_norm / total_norm)."],
        solution='''
def clip_grads(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    factor = min(1.0, max_norm / (total.item() + 1e-12))
    return [g * factor for g in grads]
''',
        success="one rare, huge gradient can no longer throw the model far away - and the direction of the step "
                "is unchanged."),
    Question(
        key="q4", title="One AdamW step", answer="adamw_step", checker=_check_adamw_step,
        hints=["m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g**2; then divide each by (1 - beta**t).",
               "p_new = p - lr * m_hat / (sqrt(v_hat) + eps) - lr * weight_decay * p. Return (p_new, m, v)."],
        solution='''
def adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    p = p - lr * m_hat / (torch.sqrt(v_hat) + eps) - lr * weight_decay * p
    return p, m, v
''',
        success="this is what torch.optim.AdamW does for every parameter, every step."),
])

"""Notebook 08's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_incorrect

from course_utils.exercises import load
from course_utils.train import TrainSettings, lr_at

ex = load("08")


def test_initial_loss_mistakes():
    assert_incorrect(ex.q1, lambda V: math.log2(V), "bits")
    assert_incorrect(ex.q1, lambda V: 1 / V, "minus its log")
    assert_incorrect(ex.q1, lambda V: -math.log(V), "sign")
    assert_incorrect(ex.q1, lambda V: "ln V", "should be a number")


def test_lr_schedule_matches_the_course_trainer():
    lr_schedule = ex.q2.reference()
    s = TrainSettings(max_steps=300, lr=2e-3, warmup_steps=30, min_lr_ratio=0.1)
    for t in [0, 10, 29, 30, 100, 299]:
        assert lr_schedule(t, 300, 30, 2e-3, 2e-4) == pytest.approx(lr_at(t, (t - 30) / 270, s))


def test_lr_schedule_mistakes():
    def no_warmup(step, max_steps, warmup, lr_max, lr_min):
        p = step / max_steps
        return lr_min + 0.5 * (1 + math.cos(math.pi * p)) * (lr_max - lr_min)

    def linear(step, max_steps, warmup, lr_max, lr_min):
        if step < warmup:
            return lr_max * (step + 1) / warmup
        return lr_max - (step - warmup) / (max_steps - warmup) * (lr_max - lr_min)

    def to_zero(step, max_steps, warmup, lr_max, lr_min):
        if step < warmup:
            return lr_max * (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (max_steps - warmup))) * lr_max

    def off_by_one(step, max_steps, warmup, lr_max, lr_min):
        if step < warmup:
            return lr_max * step / warmup
        p = (step - warmup) / (max_steps - warmup)
        return lr_min + 0.5 * (1 + math.cos(math.pi * p)) * (lr_max - lr_min)

    assert_incorrect(ex.q2, no_warmup, "warm-up is missing")
    assert_incorrect(ex.q2, linear, "straight line")
    assert_incorrect(ex.q2, to_zero, "not lr_min")
    assert_incorrect(ex.q2, off_by_one, "off by one")


def test_clip_grads_equals_torch():
    clip_grads = ex.q3.reference()
    ps = [torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(5))]
    grads = [torch.randn(3, 4) * 2, torch.randn(5) * 2]
    for p, g in zip(ps, grads, strict=False):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(ps, 1.0)
    for p, mine in zip(ps, clip_grads(grads, 1.0), strict=False):
        assert torch.allclose(p.grad, mine, atol=1e-6)


def test_clip_grads_mistakes():
    assert_incorrect(ex.q3, lambda grads, m: [g.clamp(-m, m) for g in grads], "direction")
    assert_incorrect(ex.q3, lambda grads, m: [g * min(1.0, m / g.norm().item()) for g in grads], "ONE global norm")

    def always(grads, m):
        total = math.sqrt(sum((g ** 2).sum().item() for g in grads))
        return [g * m / total for g in grads]

    assert_incorrect(ex.q3, always, "min(1, max_norm / total_norm)")


def test_adamw_step_equals_torch():
    adamw_step = ex.q4.reference()
    p0 = torch.randn(6)
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    mine, m, v = p0.clone(), torch.zeros(6), torch.zeros(6)
    for t in range(1, 4):
        g = torch.randn(6)
        p.grad = g.clone()
        opt.step()
        mine, m, v = adamw_step(mine, g, m, v, t, 0.1, 0.9, 0.99, 1e-8, 0.1)
    assert torch.allclose(p.detach(), mine, atol=1e-6)


def test_adamw_step_mistakes():
    def no_bias_correction(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        return p - lr * m / (v.sqrt() + eps) - lr * weight_decay * p, m, v

    def l2(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        return p - lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps), m, v

    def not_squared(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g
        return p, m, v

    def no_decay(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        return p - lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps), m, v

    assert_incorrect(ex.q4, no_bias_correction, "bias correction is missing")
    assert_incorrect(ex.q4, l2, "decouples")
    assert_incorrect(ex.q4, not_squared, "squared")
    assert_incorrect(ex.q4, no_decay, "weight decay is missing")
    assert_incorrect(ex.q4, lambda p, g, m, v, t, lr, *a: (p - lr * g, m, v), "first moment")

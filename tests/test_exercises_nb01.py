import torch

from course_utils.exercises import ____, load

ex = load("01")


def test_q1_normalise_rows():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    no_keepdim = ex.q1.evaluate(lambda c: c.double() / c.double().sum(1))
    assert no_keepdim.status == "incorrect" and "keepdim=True" in no_keepdim.message
    columns = ex.q1.evaluate(lambda c: c.double() / c.double().sum(0, keepdim=True))
    assert columns.status == "incorrect" and "columns sum to 1" in columns.message
    grand_total = ex.q1.evaluate(lambda c: c.double() / c.sum())
    assert grand_total.status == "incorrect" and "whole matrix" in grand_total.message
    integer = ex.q1.evaluate(lambda c: c // c.sum(1, keepdim=True))
    assert integer.status == "incorrect" and "whole numbers" in integer.message
    assert ex.q1.evaluate(lambda c: ____).status == "not attempted"
    assert ex.q1.evaluate(____).status == "not attempted"


def test_q2_perplexity():
    assert ex.q2.evaluate(ex.q2.reference()).passed
    assert ex.q2.evaluate(lambda p: torch.exp(-torch.log(p).mean())).passed  # a 0-d tensor is fine too
    ce = ex.q2.evaluate(lambda p: (-torch.log(p).mean()).item())
    assert ce.status == "incorrect" and "take exp" in ce.message
    sign = ex.q2.evaluate(lambda p: torch.exp(torch.log(p).mean()).item())
    assert sign.status == "incorrect" and "1 / perplexity" in sign.message
    summed = ex.q2.evaluate(lambda p: torch.exp(-torch.log(p).sum()).item())
    assert summed.status == "incorrect" and "average" in summed.message
    arithmetic = ex.q2.evaluate(lambda p: (1 / p).mean().item())
    assert arithmetic.status == "incorrect" and "geometric mean" in arithmetic.message
    assert ex.q2.evaluate(lambda p: ____).status == "not attempted"


def test_q3_sample_next():
    assert ex.q3.evaluate(ex.q3.reference()).passed
    greedy = ex.q3.evaluate(lambda probs, g: int(probs.argmax()))
    assert greedy.status == "incorrect" and "argmax" in greedy.message
    no_generator = ex.q3.evaluate(lambda probs, g: torch.multinomial(probs, 1).item())
    assert no_generator.status == "incorrect" and "same seed" in no_generator.message
    uniform = ex.q3.evaluate(lambda probs, g: int(torch.randint(len(probs), (1,), generator=g)))
    assert uniform.status == "incorrect" and "probability is 0" in uniform.message
    tensor = ex.q3.evaluate(lambda probs, g: torch.multinomial(probs, 2, generator=g))
    assert tensor.status == "incorrect" and "int" in tensor.message
    assert ex.q3.evaluate(lambda probs, g: ____).status == "not attempted"


def test_q4_add_k():
    assert ex.q4.evaluate(ex.q4.reference()).passed
    once = ex.q4.evaluate(lambda c, k: (c.double() + k) / (c.double().sum(1, keepdim=True) + k))
    assert once.status == "incorrect" and "k * V" in once.message
    after = ex.q4.evaluate(lambda c, k: c.double() / c.double().sum(1, keepdim=True).clamp_min(1) + k)
    assert after.status == "incorrect"
    old_total = ex.q4.evaluate(lambda c, k: (c.double() + k) / c.double().sum(1, keepdim=True))
    assert old_total.status == "incorrect" and "new row total" in old_total.message
    assert ex.q4.evaluate(lambda c, k: ____).status == "not attempted"

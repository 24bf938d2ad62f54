"""Notebook 18's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect
from test_chat_sft_dpo import SPECIAL, byte_tok

from course_utils import chat
from course_utils.exercises import ____, load
from course_utils.exercises.nb18 import CONVERSATIONS, A, E, S, _all_turns, _variant

ex = load("18")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted", q.key


def test_mask_replies_agrees_with_encode_chat_on_real_tokens():
    tok = byte_tok()
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Yo."}, {"role": "user", "content": "And?"},
            {"role": "assistant", "content": "No."}]
    ids, labels = chat.encode_chat(tok, conv)
    # in the byte tokenizer 'assistant' is 9 tokens; collapse the header to one token per role for the exercise
    f = ex.q1.reference()
    flat, want = [], []
    i = 0
    while i < len(ids):
        if ids[i] == SPECIAL["<|im_start|>"]:
            role = bytes(ids[i + 1:ids.index(10, i)]).decode()
            flat += [S, {"assistant": A, "user": 4, "system": 5}[role], 10]
            want += [chat.IGNORE] * 3
            i = ids.index(10, i) + 1
            continue
        flat.append(E if ids[i] == SPECIAL["<|im_end|>"] else ids[i])
        want.append(E if labels[i] == SPECIAL["<|im_end|>"] else labels[i])
        i += 1
    assert f(flat, S, E, A) == want


def test_mask_replies_mistakes():
    q = ex.q1
    assert_incorrect(q, _variant(drop_end=True), "keep the <|im_end|>")
    assert_incorrect(q, _variant(with_header=True), "header")
    assert_incorrect(q, _variant(last_only=True), "every assistant turn")

    assert_incorrect(q, _all_turns, "only the assistant's turns")
    assert_incorrect(q, lambda ids, s, e, a: [-100] * len(ids), "nothing is kept")
    assert_incorrect(q, lambda ids, s, e, a: [-100] * (len(ids) - 1), "as long as ids")

    def any_role_token(ids, s, e, a):        # starts wherever the role token appears, even inside a user message
        out, t = [-100] * len(ids), 0
        while t < len(ids):
            if ids[t] == a:
                t += 2
                while t < len(ids):
                    out[t] = ids[t]
                    if ids[t] == e:
                        break
                    t += 1
            t += 1
        return out

    assert any_role_token(CONVERSATIONS[0], S, E, A) == ex.q1.reference()(CONVERSATIONS[0], S, E, A)
    assert_incorrect(q, any_role_token, "conversation 3")


def test_beta_for_loss_mistakes():
    q = ex.q2
    f = q.reference()
    pc, pr, rc, rr = -12.0, -30.0, -14.0, -26.0
    beta = f(pc, pr, rc, rr, 0.2)
    loss = -torch.nn.functional.logsigmoid(torch.tensor(beta * ((pc - rc) - (pr - rr))))
    assert abs(loss.item() - 0.2) < 1e-6
    assert_incorrect(q, lambda pc, pr, rc, rr, loss: -f(pc, pr, rc, rr, loss), "the sign")
    assert_incorrect(q, lambda pc, pr, rc, rr, loss: -math.log(math.expm1(loss)) / (pc - pr), "reference is missing")
    assert_incorrect(q, lambda pc, pr, rc, rr, loss: loss / ((pc - rc) - (pr - rr)), "invert the sigmoid")
    assert_incorrect(q, lambda pc, pr, rc, rr, loss: -math.log(math.exp(loss) + 1) / ((pc - rc) - (pr - rr)),
                     "minus one, not plus one")
    assert_incorrect(q, lambda pc, pr, rc, rr, loss: [1.0, 2.0], "one number")


def test_group_advantages_mistakes():
    q = ex.q3

    def centred(r):
        return r - r.mean(-1, keepdim=True)

    def population(r):
        s = r.std(-1, keepdim=True, correction=0)
        return torch.where(s > 0, (r - r.mean(-1, keepdim=True)) / s.clamp_min(1e-12), 0.0)

    def nan_for_ties(r):
        return (r - r.mean(-1, keepdim=True)) / r.std(-1, keepdim=True)

    def global_stats(r):
        return (r - r.mean()) / r.std()

    assert_incorrect(q, centred, "divide by the group's standard deviation")
    assert_incorrect(q, population, "sample standard deviation")
    assert_incorrect(q, nan_for_ties, "all 0")
    assert_incorrect(q, global_stats, "each group (row)")
    assert_incorrect(q, lambda r: r / r.sum(-1, keepdim=True), "not a share")
    assert_incorrect(q, lambda r: r.mean(-1), "one advantage per reply")

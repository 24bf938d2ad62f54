"""Exercises for notebook 18 (from predictor to assistant): the loss mask of a tokenized multi-turn conversation,
the beta that gives a DPO pair a chosen loss, and GRPO's group-relative advantages."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, diagnose

IGNORE = -100

# ---- q1: the loss mask of a tokenized conversation ---------------------------------------------------------------

S, E, A, U, Y, NL = 1, 2, 3, 4, 5, 6          # <|im_start|>, <|im_end|>, 'assistant', 'user', 'system', newline


def _turn(role: int, content: list[int]) -> list[int]:
    return [S, role, NL, *content, E, NL]


CONVERSATIONS = [
    _turn(Y, [20, 21]) + _turn(U, [30, 31, 32]) + _turn(A, [40, 41]) + _turn(U, [33]) + _turn(A, [42, 43, 44]),
    _turn(U, [30]) + _turn(A, [40]),
    _turn(Y, [20]) + _turn(U, [30, 31]) + _turn(A, [40, NL, 41]) + _turn(U, [32]) + _turn(A, [45]) + [S, A, NL],
    _turn(U, [30, A, 31]) + _turn(A, [46, 47]) + _turn(A, [48]),
]


def _mask_turns(ids: list[int], start_id: int, end_id: int, role_id: int | None) -> list[int]:
    """Labels keeping the content and end token of every turn whose role token is ``role_id`` (any role: None)."""
    labels = [IGNORE] * len(ids)
    t = 0
    while t < len(ids):
        if ids[t] == start_id and (role_id is None or (t + 1 < len(ids) and ids[t + 1] == role_id)):
            t += 3                                            # the header: <|im_start|>, the role, newline
            while t < len(ids):
                labels[t] = ids[t]
                if ids[t] == end_id:
                    break
                t += 1
        t += 1
    return labels


def _reference_mask(ids: list[int], start_id: int, end_id: int, assistant_id: int) -> list[int]:
    return _mask_turns(ids, start_id, end_id, assistant_id)


def _all_turns(ids, start_id, end_id, assistant_id):       # every turn's content and end token, whatever the role
    return _mask_turns(ids, start_id, end_id, None)


def _variant(drop_end=False, with_header=False, last_only=False):
    def f(ids, start_id, end_id, assistant_id):
        labels = _reference_mask(ids, start_id, end_id, assistant_id)
        if drop_end:
            labels = [IGNORE if v == end_id else v for v in labels]
        if with_header:
            for t in range(len(ids) - 2):
                if ids[t] == start_id and ids[t + 1] == assistant_id:
                    labels[t + 1], labels[t + 2] = ids[t + 1], ids[t + 2]
        if last_only:
            starts = [t for t in range(len(ids) - 1) if ids[t] == start_id and ids[t + 1] == assistant_id
                      and t + 3 < len(ids)]
            cut = starts[-1] if starts else len(ids)
            labels = [IGNORE] * cut + labels[cut:]
        return labels
    return f


def _check_mask(mask_replies) -> None:
    want_all, got_all = [], []
    for ids in CONVERSATIONS:
        got = call(mask_replies, list(ids), S, E, A)
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or len(got) != len(ids):
            n = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
            raise Incorrect(f"mask_replies should return a list of labels as long as ids ({len(ids)}), got {n}")
        want_all.append(_reference_mask(ids, S, E, A))
        got_all.append([int(v) for v in got])
    if got_all == want_all:
        return
    mistakes = [
        (_variant(drop_end=True), "keep the <|im_end|> that closes each reply: the model must learn to stop."),
        (_variant(with_header=True), "the header '<|im_start|>assistant\\n' is part of the prompt (the template "
                                     "writes it); labels start after its newline."),
        (_variant(last_only=True), "every assistant turn is trained, not only the last one."),
        (_all_turns, "only the assistant's turns count: system and user tokens get -100."),
        (lambda ids, s, e, a: [v if v == IGNORE else IGNORE for v in ids],
         "nothing is kept: the reply tokens keep their own id as label."),
    ]
    for wrong, message in mistakes:
        if got_all == [wrong(ids, S, E, A) for ids in CONVERSATIONS]:
            raise Incorrect(message)
    for k, (ids, got, want) in enumerate(zip(CONVERSATIONS, got_all, want_all, strict=True)):
        if got != want:
            t = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
            raise Incorrect(f"conversation {k} {ids}: the label at position {t} (token {ids[t]}) should be "
                            f"{want[t]}, got {got[t]}. Expected {want}.")


# ---- q2: the beta for a target loss ------------------------------------------------------------------------------

BETA_CASES = [   # (policy chosen, policy rejected, reference chosen, reference rejected, target loss)
    (-12.0, -30.0, -14.0, -26.0, 0.2),
    (-5.0, -9.0, -6.0, -7.5, 0.5),
    (-40.0, -41.0, -43.0, -38.0, 0.05),
]


def _beta(pc, pr, rc, rr, loss):
    margin = (pc - rc) - (pr - rr)
    return -math.log(math.expm1(loss)) / margin


def _check_beta(beta_for_loss) -> None:
    for pc, pr, rc, rr, loss in BETA_CASES:
        got = as_tensor(call(beta_for_loss, pc, pr, rc, rr, loss), "beta_for_loss(...)").double()
        if got.numel() != 1:
            raise Incorrect(f"beta_for_loss should return one number, got shape {tuple(got.shape)}")
        want = torch.tensor(_beta(pc, pr, rc, rr, loss), dtype=torch.float64)
        m = (pc - rc) - (pr - rr)
        suspects = [
            (torch.tensor(-_beta(pc, pr, rc, rr, loss)), "the sign: the margin is (chosen's log-ratio) - (rejected's "
                                                        "log-ratio), and beta comes out positive."),
            (torch.tensor(-math.log(math.expm1(loss)) / (pc - pr)),
             "the reference is missing: the margin is (pc - rc) - (pr - rr), log-ratios against the reference."),
            (torch.tensor(loss / m), "the loss is -log sigmoid(beta m), not beta m: invert the sigmoid (a "
                                     "logit) and the log."),
            (torch.tensor(-math.log(math.exp(loss) + 1) / m) if m else want + 1,
             "sigmoid(z) = exp(-loss) gives z = log(p / (1 - p)) = -log(exp(loss) - 1): minus one, not plus one."),
        ]
        diagnose(got.reshape(()), want, suspects, what=f"beta_for_loss{(pc, pr, rc, rr, loss)}", atol=1e-6)
        check = -torch.nn.functional.logsigmoid(got.reshape(()) * m)
        if abs(check.item() - loss) > 1e-5:
            raise Incorrect(f"with your beta the pair's loss is {check.item():.4f}, not {loss}")


# ---- q3: GRPO's group-relative advantages ------------------------------------------------------------------------

def _advantages(r: torch.Tensor) -> torch.Tensor:
    mean = r.mean(-1, keepdim=True)
    std = r.std(-1, keepdim=True)
    return torch.where(std > 0, (r - mean) / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(r))


def _check_advantages(group_advantages) -> None:
    g = torch.Generator().manual_seed(18)
    cases = [torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]]),
             torch.rand(3, 6, generator=g, dtype=torch.float64) * 4,
             torch.tensor([[0.5, 0.5, 0.5, 0.5], [2.0, 0.0, 1.0, 1.0]]),
             torch.tensor([[3.0, 1.0]])]
    for r in cases:
        out = call(group_advantages, r.clone())
        got = as_tensor(out, "group_advantages(rewards)").double()
        if tuple(got.shape) != tuple(r.shape):
            raise Incorrect(f"one advantage per reply: expected shape {tuple(r.shape)}, got {tuple(got.shape)}")
        if torch.isnan(got).any():
            raise Incorrect("NaN: a group whose replies all got the same reward has standard deviation 0; its "
                            "advantages are all 0 (no reply is better than the others).")
        want = _advantages(r.double())
        mean = r.double().mean(-1, keepdim=True)
        pop = r.double().std(-1, keepdim=True, correction=0)
        suspects = [
            (r.double() - mean, "centre AND scale: divide by the group's standard deviation."),
            (torch.where(pop > 0, (r.double() - mean) / pop.clamp_min(1e-12), 0.0),
             "use the sample standard deviation (n - 1, torch.std's default)."),
            ((r.double() - r.double().mean()) / r.double().std(), "each group (row) is compared with itself: "
                                                                   "mean and std along the last dimension."),
            (r.double() / r.double().sum(-1, keepdim=True), "an advantage is (reward - group mean) / group std, "
                                                            "not a share of the group's total."),
        ]
        diagnose(got, want, suspects, what=f"group_advantages(rewards of shape {tuple(r.shape)})", atol=1e-6)


EXERCISES = ExerciseSet("18", "From predictor to assistant", [
    Question(
        key="q1", title="The loss mask of a tokenized conversation", answer="mask_replies", checker=_check_mask,
        hints=["Walk through ids. An assistant turn starts where start_id is followed by assistant_id; its reply "
               "begins two tokens after the role (skip the newline) and ends with end_id, which is kept.",
               "labels = [-100] * len(ids); at each t with ids[t] == start_id and ids[t + 1] == assistant_id, copy "
               "ids[t + 3], ids[t + 4], ... into labels up to and including the first end_id."],
        solution='''
def mask_replies(ids, start_id, end_id, assistant_id):
    labels = [-100] * len(ids)
    t = 0
    while t < len(ids):
        if ids[t] == start_id and t + 1 < len(ids) and ids[t + 1] == assistant_id:
            t += 3                       # skip <|im_start|>, 'assistant' and the newline
            while t < len(ids):
                labels[t] = ids[t]       # the reply, and the <|im_end|> that ends it
                if ids[t] == end_id:
                    break
                t += 1
        t += 1
    return labels
''',
        success="that is how a tokenized chat dataset is masked: the same labels chat.encode_chat builds piece "
                "by piece, found in a flat list of ids."),
    Question(
        key="q2", title="The beta that gives a pair a chosen loss", answer="beta_for_loss", checker=_check_beta,
        hints=["The pair's loss is -log sigmoid(beta * m) with m = (pc - rc) - (pr - rr). Solve for beta.",
               "sigmoid(beta m) = exp(-loss), so beta m = -log(exp(loss) - 1): beta = -math.log(math.expm1(loss)) "
               "/ m."],
        solution='''
import math


def beta_for_loss(pc, pr, rc, rr, loss):
    m = (pc - rc) - (pr - rr)                # the margin of log-ratios against the reference
    return -math.log(math.expm1(loss)) / m   # sigmoid(beta m) = exp(-loss)
''',
        success="beta scales the argument of the sigmoid: a larger beta reaches a low loss with a smaller margin, "
                "so the policy needs to move less far from the reference to satisfy the pair."),
    Question(
        key="q3", title="GRPO's group-relative advantages", answer="group_advantages", checker=_check_advantages,
        hints=["Each row is a group of replies to one prompt. Subtract the row's mean reward and divide by the "
               "row's (sample) standard deviation.",
               "mean = r.mean(-1, keepdim=True); std = r.std(-1, keepdim=True); a group with std == 0 gets zeros: "
               "torch.where(std > 0, (r - mean) / std, 0.0)"],
        solution='''
def group_advantages(rewards):
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True)                     # sample standard deviation, per group
    safe = torch.where(std > 0, std, torch.ones_like(std))
    return torch.where(std > 0, (rewards - mean) / safe, torch.zeros_like(rewards))
''',
        success="no value network and no reward scale to tune: each reply is judged against its siblings. A group "
                "where every reply is equally good teaches nothing."),
])

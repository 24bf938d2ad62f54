"""course_utils.chat, .sft and .dpo (notebook 18): the loss mask, the masked loss against F.cross_entropy, the DPO
loss and its gradient against a float64 implementation of the paper's formula, the adapter switch, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from course_utils import chat, dpo, facts, lora, sft
from course_utils.bpe import BPETokenizer
from course_utils.errors import ShapeError
from course_utils.llama import chat_prompt
from course_utils.model import GPTConfig, MiniGPT

SPECIAL = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258}


def byte_tok():
    """A byte-level tokenizer with ChatML's special tokens: one id per byte, 259 ids in all."""
    return BPETokenizer({b: bytes([b]) for b in range(256)}, {}, special_tokens=SPECIAL)


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=259, block_size=512, d_model=32, n_heads=4, n_layers=2, n_kv_heads=2, pos="rope",
                    norm="rmsnorm", mlp="swiglu", bias=False, dropout=0.0)
    return MiniGPT(cfg).eval()


CONV = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}]


# ---- the template and the mask -----------------------------------------------------------------------------------

def test_pieces_are_the_chat_prompt_and_only_replies_are_trained():
    two_turns = CONV + [{"role": "user", "content": "And?"}, {"role": "assistant", "content": "No."}]
    for messages in (CONV, two_turns, [{"role": "system", "content": "S"}, *CONV]):
        pieces = chat.template_pieces(messages)
        assert "".join(t for t, _ in pieces) == chat_prompt(messages, add_generation_prompt=False)
    trained = [t for t, keep in chat.template_pieces(two_turns) if keep]
    assert trained == ["Yo.<|im_end|>", "No.<|im_end|>"]


def test_labels_keep_exactly_the_reply_and_its_end_token():
    tok = byte_tok()
    ids, labels = chat.encode_chat(tok, CONV)
    assert ids == tok.encode(chat_prompt(CONV, add_generation_prompt=False))
    kept = [i for i, lab in zip(ids, labels, strict=True) if lab != chat.IGNORE]
    assert kept == [*b"Yo.", SPECIAL["<|im_end|>"]]
    assert all(lab in (chat.IGNORE, i) for i, lab in zip(ids, labels, strict=True))
    # the kept tokens are the last ones before the final newline
    assert labels[-1] == chat.IGNORE and labels[-2] == SPECIAL["<|im_end|>"]


def test_two_turn_conversation_trains_both_replies_not_the_questions():
    tok = byte_tok()
    conv = CONV + [{"role": "user", "content": "And?"}, {"role": "assistant", "content": "No."}]
    ids, labels = chat.encode_chat(tok, conv)
    kept = bytes(lab for lab in labels if 0 <= lab < 256)
    assert kept == b"Yo.No." and labels.count(SPECIAL["<|im_end|>"]) == 2


def test_no_assistant_turn_is_a_clear_error():
    with pytest.raises(ValueError, match="no assistant turn.*'system', 'user'"):
        chat.encode_chat(byte_tok(), [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
    with pytest.raises(ValueError, match="message 1 should be a dict with 'role'"):
        chat.encode_chat(byte_tok(), [{"role": "user", "content": "Q"}, {"role": "bot", "content": "A"}])
    with pytest.raises(ValueError, match="non-empty list"):
        chat.encode_chat(byte_tok(), "What is 2 + 2?")


def test_collate_pads_right_with_ignore():
    idx, lab = chat.collate([([1, 2, 3], [-100, 2, 3]), ([4], [4])], pad_id=9)
    assert idx.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert lab.tolist() == [[-100, 2, 3], [4, -100, -100]]
    with pytest.raises(ValueError, match="same, non-zero length"):
        chat.collate([([1, 2], [1])], pad_id=0)


# ---- the masked loss ---------------------------------------------------------------------------------------------

def test_masked_cross_entropy_is_pytorchs_with_ignore_index():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, requires_grad=True)
    labels = torch.randint(0, 11, (3, 7))
    labels[torch.rand(3, 7) < 0.4] = chat.IGNORE
    labels[0, 3] = 5                                          # at least one counted position
    ours = sft.masked_cross_entropy(logits, labels)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=chat.IGNORE)
    assert torch.allclose(ours, ref, atol=1e-6)
    g_ours, = torch.autograd.grad(ours, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-7)


def test_masked_loss_on_a_real_batch_ignores_the_question_tokens():
    tok, model = byte_tok(), tiny_llama()
    a = chat.encode_chat(tok, CONV)
    b = chat.encode_chat(tok, [{"role": "user", "content": "Something else entirely?"}, CONV[1]])
    la = sft.masked_cross_entropy(*_logits_labels(model, [a]))
    lb = sft.masked_cross_entropy(*_logits_labels(model, [b]))
    assert not torch.isclose(la, lb)            # the context differs, so the reply's loss does too
    idx, lab = chat.collate([a, b], tok.special_tokens["<|endoftext|>"])
    both = sft.masked_cross_entropy(model(idx)[0], lab)
    assert torch.isclose(both, (la + lb) / 2, atol=1e-5)   # the same number of counted tokens in each


def _logits_labels(model, examples):
    idx, lab = chat.collate(examples, 256)
    return model(idx)[0], lab


def test_all_tokens_counts_every_real_token_but_not_padding():
    tok = byte_tok()
    idx, lab = chat.collate([chat.encode_chat(tok, CONV), ([1, 2, 3], [chat.IGNORE, 2, chat.IGNORE])], 256)
    full = sft.all_tokens(idx, lab)
    n0 = len(chat.encode_chat(tok, CONV)[0])
    last0 = max(i for i, v in enumerate(lab[0].tolist()) if v != chat.IGNORE)
    assert full[0, :last0 + 1].tolist() == idx[0, :last0 + 1].tolist() and last0 == n0 - 2
    assert full[1].tolist()[:2] == [1, 2] and (full[1, 2:] == chat.IGNORE).all()


def test_masked_loss_errors():
    with pytest.raises(ValueError, match="no position is counted"):
        sft.masked_cross_entropy(torch.zeros(1, 4, 5), torch.full((1, 4), chat.IGNORE))
    with pytest.raises(ShapeError, match=r"labels should be \(B, T\) = \(2, 4\)"):
        sft.masked_cross_entropy(torch.zeros(2, 4, 5), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"logits should be \(B, T, V\)"):
        sft.masked_cross_entropy(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))


def test_batch_order_covers_every_example_each_epoch():
    order = sft.batch_order(10, 4, 5, seed=3)
    flat = [i for b in order for i in b]
    assert len(order) == 5 and all(len(b) == 4 for b in order)
    assert sorted(flat[:10]) == list(range(10)) and sft.batch_order(10, 4, 5, seed=3) == order
    with pytest.raises(ValueError, match="batch_size=11 is larger than the 10 examples"):
        sft.batch_order(10, 11, 1)


# ---- training adapters, saved atomically ------------------------------------------------------------------------

def test_sft_lowers_the_reply_loss_and_leaves_the_base_untouched(tmp_path):
    tok, model = byte_tok(), tiny_llama()
    lora.add_lora(model, r=4)
    before = lora.weights_checksum(model)
    idx, lab = chat.collate([chat.encode_chat(tok, CONV)], 256)
    start = sft.masked_cross_entropy(model(idx)[0], lab).item()
    h = sft.train_adapters(model, lambda s: sft.masked_cross_entropy(model(idx)[0], lab), steps=30, lr=5e-2,
                           path=tmp_path / "a.pt", save_every=10, log=None)
    assert h["step"] == list(range(1, 31)) and h["loss"][-1] < start - 0.25
    assert lora.weights_checksum(model) == before and not model.training
    blob = lora.load_adapters(tmp_path / "a.pt")
    assert blob["extra"]["step"] == 30
    for k, v in lora.adapter_state(model).items():
        assert torch.equal(blob["adapters"][k], v)


def test_an_interrupt_keeps_the_last_good_adapter_file(tmp_path):
    tok, model = byte_tok(), tiny_llama()
    lora.add_lora(model, r=2)
    idx, lab = chat.collate([chat.encode_chat(tok, CONV)], 256)

    def loss_of(step):
        if step == 7:
            raise KeyboardInterrupt
        return sft.masked_cross_entropy(model(idx)[0], lab)

    lines = []
    h = sft.train_adapters(model, loss_of, steps=20, lr=1e-2, path=tmp_path / "a.pt", save_every=5,
                           log=lines.append)
    assert h["step"] == list(range(1, 8)) and "Interrupted after step 7" in lines[-1]
    blob = lora.load_adapters(tmp_path / "a.pt")
    assert blob["extra"]["step"] == 7
    assert not list(tmp_path.glob("*.tmp"))


def test_train_adapters_refuses_a_model_without_adapters_and_bad_settings():
    model = tiny_llama()
    with pytest.raises(ValueError, match="no LoRA adapters"):
        sft.train_adapters(model, lambda s: torch.tensor(0.0), 1, 1e-3)
    lora.add_lora(model, r=2)
    with pytest.raises(ValueError, match="lr should be a positive number"):
        sft.train_adapters(model, lambda s: torch.tensor(0.0), 1, -1.0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        sft.train_adapters(model, lambda s: torch.tensor(float("nan"), requires_grad=True), 1, 1e-3, log=None)


# ---- the adapter switch: the reference is the model with its adapters off --------------------------------------

def test_adapters_off_gives_the_base_models_logits_exactly():
    base = tiny_llama()
    idx = torch.randint(0, 256, (2, 12))
    want = base(idx)[0]
    model = tiny_llama()
    lora.add_lora(model, r=4, ffn=True)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.B.normal_()
    assert not torch.allclose(model(idx)[0], want, atol=1e-3)
    with lora.adapters_off(model):
        assert torch.equal(model(idx)[0], want)
    assert not torch.allclose(model(idx)[0], want, atol=1e-3)      # switched back on after the block


def test_adapters_off_restores_the_switches_after_an_error_and_needs_adapters():
    model = tiny_llama()
    with pytest.raises(ValueError, match="no LoRA adapters to switch off"):
        with lora.adapters_off(model):
            pass
    lora.add_lora(model, r=2)
    with pytest.raises(RuntimeError):
        with lora.adapters_off(model):
            raise RuntimeError("boom")
    assert all(layer.enabled for layer in lora.lora_layers(model).values())


def test_adapter_state_round_trip_and_mismatch_errors():
    model = tiny_llama()
    lora.add_lora(model, r=2)
    state = lora.adapter_state(model)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.B.fill_(0.5)
    lora.load_adapter_state(model, state)
    assert all(torch.equal(v, lora.adapter_state(model)[k]) for k, v in state.items())
    other = tiny_llama()
    lora.add_lora(other, r=3)
    with pytest.raises(ShapeError, match="a different rank r"):
        lora.load_adapter_state(model, lora.adapter_state(other))
    ffn = tiny_llama()
    lora.add_lora(ffn, r=2, ffn=True)
    with pytest.raises(ValueError, match="has blocks.0.ffn.w1.A, which the model does not"):
        lora.load_adapter_state(model, lora.adapter_state(ffn))


def test_load_adapters_refuses_other_files(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an adapter file"):
        lora.load_adapters(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="train the adapters first"):
        lora.load_adapters(tmp_path / "none.pt")


# ---- DPO ---------------------------------------------------------------------------------------------------------

def dpo_float64(pw, pl, rw, rl, beta):
    """The paper's formula, written directly in float64: -log sigma(beta * ((pw - rw) - (pl - rl)))."""
    z = beta * ((pw.double() - rw.double()) - (pl.double() - rl.double()))
    return (-torch.log(1 / (1 + torch.exp(-z)))).mean()


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5, 2.0])
def test_dpo_loss_and_gradient_match_the_formula_in_float64(beta):
    torch.manual_seed(int(beta * 100))
    pw, pl = (torch.randn(16) * 5 - 20).requires_grad_(), (torch.randn(16) * 5 - 20).requires_grad_()
    rw, rl = torch.randn(16) * 5 - 20, torch.randn(16) * 5 - 20
    loss, r_w, r_l = dpo.dpo_loss(pw, pl, rw, rl, beta)
    ref = dpo_float64(pw, pl, rw, rl, beta)
    assert abs(loss.item() - ref.item()) < 1e-5
    g = torch.autograd.grad(loss, (pw, pl))
    pw64, pl64 = pw.detach().double().requires_grad_(), pl.detach().double().requires_grad_()
    g64 = torch.autograd.grad(dpo_float64(pw64, pl64, rw, rl, beta), (pw64, pl64))
    for a, b in zip(g, g64, strict=True):
        assert torch.allclose(a.double(), b, atol=1e-6)
    assert torch.allclose(r_w, beta * (pw - rw)) and torch.allclose(r_l, beta * (pl - rl))


def test_dpo_loss_is_log2_at_the_reference_and_stable_for_large_margins():
    z = torch.zeros(4)
    loss, _, _ = dpo.dpo_loss(z, z, z, z, 0.1)
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))
    big, _, _ = dpo.dpo_loss(torch.full((2,), -1e4), torch.zeros(2), torch.zeros(2), torch.zeros(2), 1.0)
    assert torch.isfinite(big) and abs(big.item() - 1e4) < 1e-2


def test_dpo_loss_bad_input():
    a = torch.zeros(3)
    with pytest.raises(ShapeError, match="same pairs: got sizes policy_chosen=3, policy_rejected=2"):
        dpo.dpo_loss(a, torch.zeros(2), a, a)
    with pytest.raises(ShapeError, match="ref_chosen should be a 1-D tensor"):
        dpo.dpo_loss(a, a, torch.zeros(3, 1), a)
    with pytest.raises(ValueError, match="beta should be a positive number"):
        dpo.dpo_loss(a, a, a, a, beta=0)


def test_sequence_logprob_sums_the_counted_tokens_and_reference_is_adapters_off():
    tok, model = byte_tok(), tiny_llama()
    idx, lab = chat.collate([chat.encode_chat(tok, CONV)], 256)
    logp = model(idx)[0].log_softmax(-1)
    want = sum(logp[0, t - 1, lab[0, t]] for t in range(1, idx.shape[1]) if lab[0, t] != chat.IGNORE)
    assert torch.isclose(dpo.sequence_logprob(model, idx, lab)[0], want, atol=1e-5)
    base_lp = dpo.sequence_logprob(model, idx, lab)
    lora.add_lora(model, r=2)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.B.normal_()
    assert torch.equal(dpo.reference_logprob(model, idx, lab), base_lp.detach())
    assert dpo.kl_to_reference(model, idx, lab) > 0
    with pytest.raises(ValueError, match=r"row\(s\) \[0\] have no counted token"):
        dpo.sequence_logprob(model, idx, torch.full_like(lab, chat.IGNORE))


def test_dpo_training_raises_the_chosen_reply_over_the_rejected():
    tok, model = byte_tok(), tiny_llama()
    lora.add_lora(model, r=4)
    prompt = [{"role": "user", "content": "Capital of Zorvia?"}]
    w = chat.encode_chat(tok, prompt + [{"role": "assistant", "content": "I don't know."}])
    lo = chat.encode_chat(tok, prompt + [{"role": "assistant", "content": "Velmora."}])
    (iw, lw), (il, ll) = chat.collate([w], 256), chat.collate([lo], 256)
    rw, rl = dpo.reference_logprob(model, iw, lw), dpo.reference_logprob(model, il, ll)
    assert dpo.kl_to_reference(model, iw, lw) == 0.0

    def loss_of(step):
        return dpo.dpo_loss(dpo.sequence_logprob(model, iw, lw), dpo.sequence_logprob(model, il, ll), rw, rl, 0.5)[0]

    h = sft.train_adapters(model, loss_of, 25, 1e-2, log=None)
    assert abs(h["loss"][0] - 0.6931) < 1e-3 and h["loss"][-1] < 0.2
    margin = (dpo.sequence_logprob(model, iw, lw) - rw) - (dpo.sequence_logprob(model, il, ll) - rl)
    assert margin.item() > 0


# ---- replies and their scores ------------------------------------------------------------------------------------

def test_reply_is_greedy_and_stops_at_the_end_token():
    tok, model = byte_tok(), tiny_llama()
    prompt = tok.encode(chat_prompt(CONV[:1]))
    logits = model(torch.tensor([prompt]))[0][0, -1]
    first = int(logits.argmax())
    text = chat.reply(model, tok, CONV[:1], max_new_tokens=5)
    assert tok.encode(text)[:1] == [first] or first in chat.stop_ids(tok)
    # a model whose favourite token is <|im_end|> replies with nothing
    with torch.no_grad():
        model.tok_emb.weight[SPECIAL["<|im_end|>"]] *= 0
        model.tok_emb.weight[SPECIAL["<|im_end|>"]] += 50 * model.ln_f.weight.sign()
    assert chat.reply(model, tok, CONV[:1], max_new_tokens=5) == ""
    with pytest.raises(ValueError, match="max_new_tokens should be a whole number >= 1"):
        chat.reply(model, tok, CONV[:1], max_new_tokens=0)


def test_json_answer_and_mentions_and_declines():
    assert chat.json_answer('{"answer": "Paris"}') == "Paris"
    assert chat.json_answer(' {"answer": 42}\n') == "42"
    for bad in ("Paris", '{"answer": "Paris"', '{"city": "Paris"}', '["Paris"]', '{"answer": true}',
                '{"answer": "Paris", "x": 1}', "", '{"answer": ["Paris"]}'):
        assert chat.json_answer(bad) is None, bad
    assert chat.mentions("It is Bogotá.", "Bogota") and chat.mentions('{"answer": 42}', 42)
    assert not chat.mentions("125", 25) and not chat.mentions("Parisian", "Paris")
    assert chat.declines("I don\u2019t know a country called Zorvia.") and not chat.declines("It is Paris.")


def test_facts_are_repeatable_and_made_up_names_are_not_real():
    names = facts.made_up_countries(50, seed=1)
    assert names == facts.made_up_countries(50, seed=1) and len(set(names)) == 50
    real = {c for c, _ in facts.CAPITALS}
    assert not real & set(names)
    assert facts.made_up_countries(5, seed=1, avoid=names[:2])[:1] != names[:1] or names[0] not in names[:2]
    assert len(set(facts.additions(100))) == 100
    train, test = facts.split(list(range(10)), 7, seed=2)
    assert sorted(train + test) == list(range(10)) and len(train) == 7
    with pytest.raises(ValueError, match="n_train should be between 0 and 10"):
        facts.split(list(range(10)), 11)
    assert len({c for c, _ in facts.CAPITALS}) == len(facts.CAPITALS)
    assert json.dumps({"answer": facts.CAPITALS[0][1]}) == '{"answer": "Paris"}'

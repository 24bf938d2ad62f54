"""SmolLM2-135M-Instruct from its GGUF file in the course's own model, tokenizer and chat format, proven equal to
transformers' reading of the same file."""

import pytest
import torch

from course_utils import gguf_file, llama
from course_utils.errors import ShapeError
from course_utils.generation import generate, torch_threads
from course_utils.modern import param_count

pytestmark = pytest.mark.skipif(not gguf_file.available(),
                                reason=f"the SmolLM2 GGUF file is absent: run {gguf_file.FETCH_COMMAND}")

HARD = ["The cat sat", "1234567890 3.14159 2026", "a   1", "x 12 y  34\n\n5 apples", "price: $1,299.99!",
        "I'm don't we'll they've YOU'RE She'D", "café naïve Zürich façade", "emoji 🙂👍🏽 end", "日本語のテキスト",
        "   spaces  \n\n\n  tabs\t\tand\r\nnewlines  ", "", " ", "\n", "x  ", "½ ² ₂ 3½ ٣",
        "def f(x):\n    return x**2  # 42\n\tif x != 0: pass", "<|im_start|>user\nHi<|im_end|>\n<|endoftext|>",
        "<|im_start|><|im_start|>system<file_sep>a", "a" * 300 + " " * 40]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Colour of the sky?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
    [{"role": "assistant", "content": "I start."}],
    [],
]


@pytest.fixture(scope="module")
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(threads):
    return llama.load_gguf_model()


@pytest.fixture(scope="module")
def reference(threads):
    return llama.reference_model()


@pytest.fixture(scope="module")
def tok():
    return llama.load_tokenizer()


@pytest.fixture(scope="module")
def ref_tok():
    return llama.reference_tokenizer()


@pytest.fixture(scope="module")
def smollm_ref(ref_tok):
    return llama.with_digit_split(ref_tok)


# ---- the model ---------------------------------------------------------------------------------------------------

def test_config_and_parameter_count(model, reference):
    c = llama.config_from_gguf()
    assert (c.vocab_size, c.block_size, c.d_model, c.n_heads, c.n_layers, c.n_kv_heads) == (49152, 8192, 576, 9, 30, 3)
    assert (c.pos, c.norm, c.mlp, c.bias, c.tied) == ("rope", "rmsnorm", "swiglu", False, True)
    assert (c.rope_base, c.norm_eps, c.ffn_hidden) == (100000.0, 1e-5, 1536)
    assert param_count(c) == model.num_params() == sum(p.numel() for p in reference.parameters()) == 134_515_008


def test_not_a_llama_is_refused():
    meta = gguf_file.read_metadata()
    with pytest.raises(gguf_file.GGUFFileError, match="'gpt2'.*'llama'"):
        llama.config_from_gguf({**meta, "architecture": "gpt2"})


def test_tensor_names_round_trip():
    for g in ("token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.29.ffn_gate.weight"):
        assert llama._gguf_name(llama.course_name(g)) == g
    assert llama.course_name("blk.3.ffn_up.weight") == "blocks.3.ffn.w3.weight"
    with pytest.raises(gguf_file.GGUFFileError, match=r"blk\.0\.attn_q\.bias"):
        llama.course_name("blk.0.attn_q.bias")


@pytest.mark.parametrize("prompt", ["The capital of France is", "chat", "wiki"])
def test_logits_equal_transformers(model, reference, tok, prompt):
    from course_utils.data import wiki_text

    text = {"chat": llama.chat_prompt(CONVERSATIONS[2]), "wiki": wiki_text()[:5000]}.get(prompt, prompt)
    ids = torch.tensor([tok.encode(text)])
    if prompt == "wiki":
        assert ids.shape[1] >= 1000
    with torch.no_grad():
        mine, _ = model(ids)
        ref = reference(ids).logits
    assert mine.shape == ref.shape == (1, ids.shape[1], 49152)
    assert (mine - ref).abs().max().item() <= 1e-3
    assert torch.equal(mine.argmax(-1), ref.argmax(-1))


def test_paris(model, tok):
    ids = torch.tensor([tok.encode("The capital of France is")])
    with torch.no_grad():
        p = torch.softmax(model(ids)[0][0, -1], -1)
    paris = tok.encode(" Paris")
    assert len(paris) == 1 and p.argmax().item() == paris[0] and p[paris[0]].item() > 0.5


def test_greedy_generation_with_kv_cache_equals_transformers(model, reference, tok):
    ids = torch.tensor([tok.encode("Once upon a time, in a small village,")])   # 50 tokens without <|im_end|>
    mine = generate(model, ids, 50, greedy=True, use_cache=True)
    with torch.no_grad(), torch_threads(1):   # one-token steps: one thread is faster on a shared CPU
        ref = reference.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=50,
                                 pad_token_id=0)
    assert ref.shape == (1, ids.shape[1] + 50)
    assert mine.tolist() == ref.tolist()


def test_prompt_longer_than_context_and_unknown_ids(model):
    with pytest.raises(ShapeError, match="block_size=8192"):
        model(torch.zeros(1, 8193, dtype=torch.long))
    with pytest.raises(ValueError, match=r"unknown token id\(s\) \[49152\].*0\.\.49151"):
        model(torch.tensor([[5, 49152]]))
    with pytest.raises(ValueError, match="unknown token id"):
        model(torch.tensor([[-1]]))


# ---- bad files ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def weights():
    return gguf_file.load_tensors()


def _load_with(monkeypatch, weights, change):
    w = dict(weights)
    change(w)
    monkeypatch.setattr(llama, "load_tensors", lambda path: w)
    return llama.load_gguf_model()


def test_wrong_shape_names_tensor_and_shapes(monkeypatch, weights):
    def change(w):
        w["blk.4.attn_k.weight"] = torch.zeros(576, 576)
    with pytest.raises(ShapeError, match=r"'blk\.4\.attn_k\.weight' has shape \(576, 576\).*expects \(192, 576\)"):
        _load_with(monkeypatch, weights, change)


def test_missing_and_extra_tensors_are_named(monkeypatch, weights):
    with pytest.raises(gguf_file.GGUFFileError, match=r"lacks tensor\(s\) blk\.3\.ffn_up\.weight"):
        _load_with(monkeypatch, weights, lambda w: w.pop("blk.3.ffn_up.weight"))
    with pytest.raises(gguf_file.GGUFFileError, match=r"blk\.3\.attn_q\.bias"):
        _load_with(monkeypatch, weights, lambda w: w.update({"blk.3.attn_q.bias": torch.zeros(576)}))
    with pytest.raises(gguf_file.GGUFFileError, match=r"blk\.30\.attn_q\.weight"):   # a 31st block
        _load_with(monkeypatch, weights, lambda w: w.update({"blk.30.attn_q.weight": torch.zeros(576, 576)}))


# ---- the tokenizer -----------------------------------------------------------------------------------------------

def test_byte_table():
    table = llama.bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


def test_tokenizer_equals_smollm2_rule_on_the_whole_wikipedia_text(tok, smollm_ref):
    from course_utils.data import wiki_text

    text = wiki_text()
    assert tok.encode(text) == smollm_ref.encode(text, add_special_tokens=False).ids


def test_tokenizer_on_hard_strings(tok, smollm_ref):
    for s in HARD:
        ids = tok.encode(s)
        assert ids == smollm_ref.encode(s, add_special_tokens=False).ids, s
        assert tok.decode(ids) == s


def test_special_tokens_are_single_ids(tok):
    user = tok.encode("user")
    assert len(user) == 1
    assert tok.encode("<|im_start|>user<|im_end|><|endoftext|>") == [1, user[0], 2, 0]
    assert tok.encode("<|im_start|>", allow_special=False) != [1]
    assert tok.special_tokens["<|im_start|>"] == 1 and tok.vocab_size == 49152


def test_without_digit_splitting_it_is_transformers_gguf_tokenizer(tok, ref_tok):
    """transformers' GGUF tokenizer splits with GPT-2's rule only: the course's BPE with that rule gives its ids,
    and SmolLM2's rule differs from it exactly where whitespace or a numeric character precedes a digit."""
    from course_utils.bpe import GPT2_PATTERN

    gpt2_rule = llama.GGUFTokenizer(tok.vocab, tok.merges, GPT2_PATTERN, tok.special_tokens, tok.byte_ids)
    for s in HARD:
        assert gpt2_rule.encode(s) == ref_tok.encode(s, add_special_tokens=False), s
    assert tok.encode("a   1") == [tok.encode("a")[0], tok.encode("   ")[0], tok.encode("1")[0]]
    assert ref_tok.encode("a   1", add_special_tokens=False) != tok.encode("a   1")


def test_character_without_a_token_is_named(tok):
    with pytest.raises(ValueError, match=r"'\\x04' \(U\+0004\) has no token"):
        tok.encode("ctrl\x04d")
    with pytest.raises(ValueError, match="unknown token id"):
        tok.decode([49152])


# ---- the chat format ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_prompt_equals_the_files_template(add_generation_prompt, ref_tok):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = gguf_file.read_metadata()["chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    for messages in CONVERSATIONS:
        mine = llama.chat_prompt(messages, add_generation_prompt=add_generation_prompt)
        assert mine == env.from_string(template).render(messages=messages,
                                                        add_generation_prompt=add_generation_prompt)
        if messages:
            assert mine == ref_tok.apply_chat_template(messages, tokenize=False,
                                                       add_generation_prompt=add_generation_prompt)
    assert llama.chat_prompt(CONVERSATIONS[0]).startswith("<|im_start|>system\n" + llama.DEFAULT_SYSTEM_PROMPT)


def test_chat_prompt_bad_message():
    with pytest.raises(ValueError, match="message 1"):
        llama.chat_prompt([{"role": "user", "content": "hi"}, {"role": "user"}])


def test_adjacent_pairs_and_rotate_half_give_the_same_scores():
    """The course rotates pairs (2i, 2i+1), Hugging Face's Llama pairs (i, i + d/2): the GGUF's W_Q, W_K rows are
    reordered so that the course's coordinate 2i is HF's i and 2i+1 is HF's i + d/2, and the scores agree."""
    from course_utils.positional import apply_rope, rope_angles

    torch.manual_seed(0)
    T, d, base = 7, 64, 100000.0
    q_hf, k_hf = torch.randn(T, d, dtype=torch.float64), torch.randn(T, d, dtype=torch.float64)
    angles = torch.cat([rope_angles(T, d, base)] * 2, dim=-1)                 # (T, d): angle i and i + d/2 equal

    def rotate_half(x):
        return torch.cat([-x[..., d // 2:], x[..., :d // 2]], dim=-1)

    def hf_rope(x):
        return x * angles.cos() + rotate_half(x) * angles.sin()

    order = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).flatten()   # 0, 32, 1, 33, ...
    q, k = q_hf[:, order], k_hf[:, order]
    scores = apply_rope(q, base=base) @ apply_rope(k, base=base).T
    torch.testing.assert_close(scores, hf_rope(q_hf) @ hf_rope(k_hf).T, rtol=1e-12, atol=1e-12)
    wrong = apply_rope(q_hf, base=base) @ apply_rope(k_hf, base=base).T    # HF's layout without the reordering
    assert not torch.allclose(wrong, scores, atol=1e-3)

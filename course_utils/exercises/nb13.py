"""Exercises for notebook 13 (the three model families): whole-word masking, a sentence vector that ignores the
padding (the padding mask applied to pooling), the decoder's combined mask, and the parameters of an
encoder-decoder."""

from __future__ import annotations

import torch

from .core import ExerciseSet, Incorrect, Question, call, diagnose, expect_number, expect_shape

IGNORE = -100


# ---- q1: whole-word masking ---------------------------------------------------------------------------------------

def _whole_word_ref(ids, word_ids, chosen_words, mask_id):
    hit = (word_ids >= 0) & chosen_words[word_ids.clamp(min=0)]
    return torch.where(hit, torch.full_like(ids, mask_id), ids), torch.where(hit, ids, torch.full_like(ids, IGNORE))


def _word_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 6, (6,), generator=g).tolist()
    word_ids, w = [], 0
    for i, L in enumerate(lengths):
        word_ids += [w] * L
        w += 1
        if i < len(lengths) - 1:
            word_ids.append(-1)                       # a space between words
    word_ids = torch.tensor(word_ids)
    ids = torch.randint(3, 40, word_ids.shape, generator=g)
    chosen = torch.zeros(len(lengths), dtype=torch.bool)
    chosen[[1, len(lengths) - 1]] = True              # the last word is chosen: -1 must not pick it up
    return ids, word_ids, chosen


def _check_whole_word(whole_word_masking) -> None:
    mask_id = 99
    for seed in range(3):
        ids, word_ids, chosen = _word_case(seed)
        out = call(whole_word_masking, ids.clone(), word_ids.clone(), chosen.clone(), mask_id)
        if not isinstance(out, tuple) or len(out) != 2:
            raise Incorrect("return two tensors: (inputs, targets)")
        T = len(ids)
        inputs = expect_shape(out[0], (T,), "T", name="inputs")
        targets = expect_shape(out[1], (T,), "T", name="targets")
        want_in, want_t = _whole_word_ref(ids, word_ids, chosen, mask_id)
        hit = want_t != IGNORE
        if torch.equal(inputs.long(), want_in) and torch.equal(targets.long(), want_t):
            continue
        naive = chosen[word_ids]                               # -1 wraps around to the last word
        if torch.equal(inputs.long(), torch.where(naive, torch.full_like(ids, mask_id), ids)):
            raise Incorrect("the spaces (word id -1) were masked too: chosen_words[-1] is the *last* word in "
                            "Python. Only positions with word_ids >= 0 can belong to a chosen word.")
        if torch.equal(inputs.long(), ids):
            raise Incorrect("inputs are unchanged: every character of a chosen word should become mask_id.")
        first = hit & torch.cat([torch.tensor([True]), word_ids[1:] != word_ids[:-1]])
        if torch.equal(inputs.long(), torch.where(first, torch.full_like(ids, mask_id), ids)):
            raise Incorrect("only the first character of each chosen word is masked: mask all its characters "
                            "(every position whose word id is a chosen word).")
        if torch.equal(inputs.long(), want_in):
            if torch.equal(targets.long(), ids):
                raise Incorrect("inputs are right, but targets hold every character: the loss is taken at the "
                                "masked positions only, so put -100 (ignore) everywhere else.")
            if torch.equal(targets.long(), torch.where(hit, ids, torch.zeros_like(ids))):
                raise Incorrect("the targets use 0 where nothing is scored; 0 is a real symbol. Use -100, "
                                "PyTorch's ignore_index.")
            if torch.equal(targets.long(), torch.where(hit, torch.full_like(ids, mask_id), ids)) or \
                    torch.equal(targets.long(), torch.where(hit, torch.full_like(ids, mask_id),
                                                            torch.full_like(ids, IGNORE))):
                raise Incorrect("the targets should be the *original* characters at the masked positions, "
                                "not the mask symbol.")
            raise Incorrect("inputs are right, but the targets are not: the original id where a chosen word is, "
                            "-100 elsewhere.")
        raise Incorrect("the inputs are not right: exactly the characters of the chosen words should be mask_id, "
                        "everything else unchanged.")


# ---- q2: a sentence vector that ignores the padding ------------------------------------------------------------

def _pool_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    B, S, d = 3, 6, 5
    h = torch.randn(B, S, d, generator=g, dtype=torch.float64) + 2.0      # far from 0: padding rows matter
    lengths = torch.tensor([6, 3, 1][: B]) if seed % 2 == 0 else torch.tensor([2, 5, 4])
    pad = torch.arange(S)[None] < lengths[:, None]                      # True at real tokens
    h = torch.where(pad[..., None], h, h + 10.0)                         # whatever sits at padded positions
    return h, pad


def _check_sentence_vectors(sentence_vectors) -> None:
    for seed in range(3):
        h, pad = _pool_case(seed)
        B, S, d = h.shape
        out = call(sentence_vectors, h.clone(), pad.clone())
        got = expect_shape(out, (B, d), "B d", known={
            (B, S, d): "one vector per sentence: average over the positions (dim 1), keeping only the real ones",
            (B, S): "that averages over the features; average over the positions (dim 1) instead",
            (B, 1, d): "drop the position axis: (B, d), e.g. sum(dim=1) without keepdim",
        })
        m = pad[..., None].to(h.dtype)
        n = m.sum(1)
        want = (h * m).sum(1) / n
        suspects = [
            (h.mean(1), "the padded positions are in the average: multiply by the mask before summing, and divide "
                        "by the number of real tokens."),
            ((h * m).sum(1) / S, f"you divided by S = {S}, the padded length; divide by each sentence's number of "
                                 "real tokens (pad.sum(1))."),
            ((h * (1 - m)).sum(1) / (S - n).clamp(min=1), "the mask is the wrong way round: pad is True at REAL "
                                                          "tokens."),
            ((h * m).sum(1), "that is the sum; divide by the number of real tokens to get the mean."),
            ((h * m).sum(1) / n.sum(), "divide each sentence by its own number of real tokens, not by the total of "
                                       "the batch."),
        ]
        diagnose(got.double(), want, suspects, what="the sentence vectors", atol=1e-6)


# ---- q3: the decoder's causal + padding mask --------------------------------------------------------------------

def _check_decoder_mask(decoder_self_mask) -> None:
    for lengths, T in [([4, 2, 3], 4), ([1, 5], 5), ([3], 6)]:
        lengths_t = torch.tensor(lengths)
        B = len(lengths)
        out = call(decoder_self_mask, lengths_t.clone(), T)
        got = expect_shape(out, (B, T, T), "B T T", known={(T, T): "one mask per sequence is needed: (B, T, T)"})
        if got.dtype != torch.bool:
            raise Incorrect(f"the mask should be boolean (True = may attend), got dtype {got.dtype}")
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        real = torch.arange(T)[None] < lengths_t[:, None]               # (B, T)
        want = causal[None] & real[:, None, :]
        if torch.equal(got, want):
            continue
        if torch.equal(got, causal[None].expand(B, T, T)):
            raise Incorrect("only the causal part: padded keys (positions >= the sequence's length) must be "
                            "blocked too.")
        if torch.equal(got, real[:, None, :].expand(B, T, T)):
            raise Incorrect("only the padding part: the decoder must not look ahead either (AND it with the "
                            "lower-triangular causal mask).")
        if torch.equal(got, causal[None] & real[:, :, None]):
            raise Incorrect("the padding blocks rows (queries) instead of columns (keys): a real query must not "
                            "read a padded *key*; use shape (B, 1, T) for the padding part.")
        if torch.equal(got, causal.T[None] & real[:, None, :]):
            raise Incorrect("the triangle is the wrong way round: query i may see keys j <= i (lower triangle, "
                            "tril).")
        if torch.equal(got, causal[None] | real[:, None, :]):
            raise Incorrect("combined with OR: a key must be both in the past AND real, so use &.")
        raise Incorrect("the mask is not right: True where key j <= query i and key j < the sequence's length.")


# ---- q4: parameters of an encoder-decoder --------------------------------------------------------------------------

def _enc_layer(d, f):
    return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d


def _dec_layer(d, f):
    return _enc_layer(d, f) + 4 * d * d + 4 * d + 2 * d


def _check_params(encoder_decoder_params) -> None:
    for d, f, ne, nd in [(512, 2048, 6, 6), (64, 96, 2, 3), (32, 256, 1, 4)]:
        got = call(encoder_decoder_params, d, f, ne, nd)
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        want = ne * _enc_layer(d, f) + nd * _dec_layer(d, f)
        if got == want:
            continue
        if got == (ne + nd) * _enc_layer(d, f):
            raise Incorrect(f"for d={d}, d_ff={f}, {ne}+{nd} layers you gave {got}: every layer counted as an "
                            "encoder layer. Each decoder layer also has cross-attention (4 d^2 + 4 d) and a third "
                            "LayerNorm (2 d).")
        if got == ne * _enc_layer(d, f) + nd * (_dec_layer(d, f) - 2 * d):
            raise Incorrect(f"for d={d} you gave {got}: the decoder's third LayerNorm (before the feed-forward, "
                            "2 d) is missing.")
        if got == ne * _enc_layer(d, 4 * d) + nd * _dec_layer(d, 4 * d) and f != 4 * d:
            raise Incorrect(f"you used a hidden width of 4 d = {4 * d}; this model's feed-forward is d_ff={f} wide.")
        if got == ne * (4 * d * d + 2 * d * f) + nd * (8 * d * d + 2 * d * f):
            raise Incorrect(f"for d={d} you gave {got}: only the weight matrices. Add the biases and the LayerNorms' "
                            "gains and shifts.")
        expect_number(got, want, what=f"the count for d={d}, d_ff={f}, {ne}+{nd} layers", rel=0, abs_tol=0.5)


EXERCISES = ExerciseSet("13", "The three model families", [
    Question(
        key="q1", title="Whole-word masking", answer="whole_word_masking", checker=_check_whole_word,
        hints=["word_ids[t] is the index of the word that character t belongs to, or -1 for a space or "
               "punctuation. chosen_words[w] says whether word w is masked.",
               "A position is hit when word_ids >= 0 and chosen_words[word_ids.clamp(min=0)] (clamp, because "
               "chosen_words[-1] would be the last word). Then torch.where(hit, mask_id, ids) for the inputs and "
               "torch.where(hit, ids, -100) for the targets."],
        solution='''
def whole_word_masking(ids, word_ids, chosen_words, mask_id):
    hit = (word_ids >= 0) & chosen_words[word_ids.clamp(min=0)]
    inputs = torch.where(hit, torch.full_like(ids, mask_id), ids)
    targets = torch.where(hit, ids, torch.full_like(ids, -100))
    return inputs, targets
''',
        success="with whole words hidden the model cannot finish a word from its own first letters; it has to use "
                "the context (BERT's later 'whole word masking' models do this)."),
    Question(
        key="q2", title="A sentence vector that ignores the padding", answer="sentence_vectors",
        checker=_check_sentence_vectors,
        hints=["Turn the mask into numbers, m = pad[..., None].float() (B, S, 1): 1 at real tokens, 0 at padding.",
               "(h * m).sum(dim=1) / m.sum(dim=1): the sum over real positions, divided by how many there are."],
        solution='''
def sentence_vectors(h, pad):
    m = pad[..., None].to(h.dtype)            # (B, S, 1): 1 at real tokens
    return (h * m).sum(dim=1) / m.sum(dim=1)  # (B, d)
''',
        success="the same mask that keeps attention off the padding keeps it out of the average: this is how an "
                "encoder's outputs become one vector per sentence for search or classification."),
    Question(
        key="q3", title="The decoder's causal + padding mask", answer="decoder_self_mask",
        checker=_check_decoder_mask,
        hints=["Two boolean masks, True = may attend: causal (T, T), lower triangle; and real keys (B, 1, T), "
               "True where the key's position is below the sequence's length.",
               "torch.ones(T, T, dtype=torch.bool).tril()[None] & (torch.arange(T)[None, None, :] < "
               "lengths[:, None, None])"],
        solution='''
def decoder_self_mask(lengths, T):
    causal = torch.ones(T, T, dtype=torch.bool).tril()                # (T, T): key j <= query i
    real_keys = torch.arange(T)[None, None, :] < lengths[:, None, None]  # (B, 1, T): key j is not padding
    return causal[None] & real_keys                                    # (B, T, T)
''',
        success="rows of padded queries still see the real keys before them, so no row is all -inf (no NaN), and "
                "their outputs are simply ignored by the loss."),
    Question(
        key="q4", title="Parameters of an encoder-decoder", answer="encoder_decoder_params", checker=_check_params,
        hints=["An encoder layer: self-attention 4 d^2 + 4 d, feed-forward 2 d d_ff + d_ff + d, two LayerNorms 4 d.",
               "A decoder layer: the same plus cross-attention (4 d^2 + 4 d) and a third LayerNorm (2 d). "
               "Multiply by the numbers of layers and add."],
        solution='''
def encoder_decoder_params(d, d_ff, n_enc, n_dec):
    attention = 4 * d * d + 4 * d
    ffn = d * d_ff + d_ff + d_ff * d + d
    encoder_layer = attention + ffn + 2 * 2 * d
    decoder_layer = encoder_layer + attention + 2 * d
    return n_enc * encoder_layer + n_dec * decoder_layer
''',
        success="for the original Transformer base (d = 512, d_ff = 2048, 6 + 6 layers) that is 44,140,544 "
                "parameters in the layers; the embeddings come on top."),
])

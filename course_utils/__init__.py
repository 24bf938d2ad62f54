"""course_utils: the helper package of the course *The Math Inside LLMs*.

What a notebook builds by hand once, later notebooks import from here. Modules, each named for what it holds:

    runtime      device choice (cuda, then mps, then cpu), seeds, quick mode and budgets      (every notebook)
    data         Wikipedia prose (offline, cached), small example texts, splits, batches      (00, 01, 08)
    tokenizers   character and word tokenizers                                                (01, 08)
    errors       clear errors for bad input: shapes, unknown words
    bigram       bigram counts, add-k smoothing, sampling, cross-entropy                      (01)
    scoreboard   uniform / unigram / bigram baselines on the shared validation split          (01, 08)
    embeddings   GloVe vectors, neighbours, analogies, benchmarks                              (02)
    word2vec     skip-gram with negative sampling from scratch, PCA pictures                   (02)
    attention    softmax, scaled dot-product attention, masks, multi-head attention           (03-05)
    positional   sinusoidal, learned and rotary position encodings                             (06)
    model        LayerNorm, feed-forward, the transformer block, MiniGPT                       (07-09)
    train        the training loop, presets, and `python -m course_utils.train`                (08)
    checkpoint   atomic checkpoints, loaded with weights_only=True                             (08, 09)
    generation   greedy / temperature / top-k / top-p, generation with a key-value cache       (09)
    mlm          BERT's masking rule (15%; 80/10/10), the bidirectional MiniBERT, fill_in      (13)
    seq2seq      cross-attention, the decoder layer, the encoder-decoder, the reversal task   (13)
    plots        shared plotting helpers
    widgets      shared interactive controls
    exercises    self-checking exercises: ex.qN.check(), .hint(), .solution()
    answer_key   builds the instructors' answer key (`make solutions`)
"""

__version__ = "0.1.0"

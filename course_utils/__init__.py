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
    layers       the building blocks: LayerNorm, RMSNorm, feed-forwards (GELU, SwiGLU, ReLU^2), the
                 attention with today's options, Block / PostNormBlock / ModernBlock          (07, 15)
    model        GPTConfig and its checks, MiniGPT assembled from layers                       (07-09)
    settings     TrainSettings, the learning-rate schedule, the presets per device             (08)
    train        the training loop and `python -m course_utils.train`                          (08)
    distributed  torchrun + DistributedDataParallel for `course_utils.train` (gloo on CPU, nccl on CUDA)
    checkpoint   atomic checkpoints, loaded with weights_only=True                             (08, 09)
    generation   greedy / temperature / top-k / top-p, generation with a key-value cache       (09)
    bpe          byte-pair encoding: training (incremental pair counts), encode, decode        (10)
    real_tokenizers  GPT-2's and GPT-4's rank files for tiktoken, placed at set-up, offline    (10)
    sizing       parameters, memory, FLOPs and KV cache from a config; published configs     (11)
    quantize     symmetric int8 / group-wise int4 weight quantization by hand               (11)
    scaling      the scaling sweep, IsoFLOP minima, L(N, D) fits, `python -m course_utils.scaling` (12)
    mlm          BERT's masking rule (15%; 80/10/10), the bidirectional MiniBERT, fill_in      (13)
    seq2seq      cross-attention, the decoder layer, the encoder-decoder, the reversal task   (13)
    lora         LoRA by hand: adapters, merging, trainable counts, Adam memory accounting     (14)
    modern       the WSD schedule, the Muon optimizer, exact parameter counts (re-exports the modern
                 layers and GPTConfig's checks)                                                (15)
    recipe       the list of changes, the modern preset (`--recipe modern`), best-checkpoint keeping,
                 FLOP/s                                                                       (15)
    ablation     each modern change alone at equal CPU time (`python -m course_utils.ablation`) (15)
    probes       inside a model: record the residual stream and each block's updates, the logit lens,
                 every head's attention pattern (GQA and RoPE too), zero / mean ablation of heads and blocks (17)
    facts        questions with known answers: capitals, languages, sums, made-up countries    (18)
    chat         the chat template as training data: the loss mask, padding, greedy replies, scoring (18)
    sft          supervised fine-tuning: the masked cross-entropy, training LoRA adapters (saved atomically) (18)
    dpo          direct preference optimisation by hand: sequence log-probabilities, the loss, KL (18)
    plots        shared plotting helpers
    widgets      shared interactive controls
    exercises    self-checking exercises: ex.qN.check(), .hint(), .solution()
    answer_key   builds the instructors' answer key (`make solutions`)
    notebook_meta  the stored kernelspec (`make execute` writes it); answer cells that shadow nothing

Modules stack one way, with no import cycle (not even through imports inside functions;
tests/test_import_cycles.py checks it). For the models and training:
errors, positional, attention -> layers -> model -> modern -> settings -> recipe -> train -> ablation.
Names that moved (into layers or settings) are still importable from where they were.
"""

__version__ = "0.1.0"

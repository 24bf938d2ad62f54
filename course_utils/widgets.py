"""Interactive controls (ipywidgets) for the notebooks. Each notebook also shows one static result, so it reads
well on GitHub and in CI, where no one moves a slider.

Several notebooks add controls here: add new functions, never rename or remove one another notebook uses.
"""

from __future__ import annotations


def generation_explorer(model, tokenizer, prompt: str = "The ", max_new_tokens: int = 80, seed: int = 0,
                        top: int = 20):
    """Sliders for the temperature, top-k and top-p over the model's next-token distribution after a prompt you type,
    with a sampled continuation (notebook 09). Returns the widget; display it as the last line of a cell.

    The continuation is drawn with a generator seeded with ``seed``, so the same settings give the same text.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    from .generation import generate, next_token_distribution
    from .plots import char_label, plot_token_distribution

    V = tokenizer.vocab_size
    labels = [char_label(tokenizer.decode([i])) for i in range(V)]
    text = widgets.Text(value=prompt, description="prompt", layout=widgets.Layout(width="60%"))
    temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1.3, max=0.5, step=0.05,
                                         description="temperature", readout_format=".2f")
    top_k = widgets.IntSlider(value=V, min=1, max=V, description="top-k")
    top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p", readout_format=".2f")
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            try:
                ids = torch.tensor(tokenizer.encode(text.value or " "), dtype=torch.long)
            except KeyError as err:   # a character the tokenizer does not know
                print(err)
                return
            k = None if top_k.value >= V else top_k.value
            p = None if top_p.value >= 1.0 else top_p.value
            probs = next_token_distribution(model, ids, temperature=temperature.value, top_k=k, top_p=p)
            fig, ax = plt.subplots(figsize=(8, 3))
            plot_token_distribution(probs, labels, top=top, ax=ax,
                                    title=f"Next token after {text.value[-30:]!r} "
                                          f"(temperature {temperature.value:.2f}, top-k {top_k.value}, "
                                          f"top-p {top_p.value:.2f})")
            display(fig)
            plt.close(fig)
            g = torch.Generator().manual_seed(seed)
            cont = generate(model, ids[None], max_new_tokens, temperature=temperature.value, top_k=k, top_p=p,
                            generator=g)
            print("sample:", text.value + "|" + tokenizer.decode(cont[0, len(ids):].tolist()))

    for w in (text, temperature, top_k, top_p):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text, widgets.HBox([temperature, top_k, top_p]), out])


def softmax_explorer(scores, labels, values=None, query: str = "the query"):
    """Sliders for a softmax temperature and for one chosen score; bars of the weights (notebook 03).

    scores: (n,) raw scores of one query against n keys, named by ``labels`` (n). values: optional (n, 2) value
    vectors; the output, the weighted average sum_j w_j v_j, is then drawn among them. Returns the widget; display
    it as the last line of a cell.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    s0 = torch.as_tensor(scores, dtype=torch.float64).flatten()
    labels = list(labels)
    if len(labels) != len(s0):
        raise ValueError(f"one label per score: got {len(s0)} scores and {len(labels)} labels")
    v = None if values is None else torch.as_tensor(values, dtype=torch.float64)
    if v is not None and tuple(v.shape) != (len(s0), 2):
        raise ValueError(f"values should have shape (n, 2) = ({len(s0)}, 2), got {tuple(v.shape)}")
    tau = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature")
    which = widgets.Dropdown(options=labels, value=labels[int(s0.argmax())], description="change")
    score = widgets.FloatSlider(value=float(s0.max()), min=-5.0, max=10.0, step=0.1, description="its score")
    out = widgets.Output()
    current = s0.clone()

    def pick(*_):
        score.value = float(current[labels.index(which.value)])

    def redraw(*_):
        current[labels.index(which.value)] = score.value
        w = torch.softmax(current / tau.value, dim=0)
        with out:
            out.clear_output(wait=True)
            ncols = 1 if v is None else 2
            fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.4), squeeze=False)
            ax = axes[0, 0]
            ax.bar(labels, w.numpy())
            for i, wi in enumerate(w.tolist()):
                ax.text(i, wi + 0.02, f"{wi:.2f}", ha="center", fontsize=8)
            ax.set(ylim=(0, 1.08), xlabel="key", ylabel="attention weight",
                   title=f"Weights of {query}, temperature {tau.value:.2f}")
            if v is not None:
                o = w @ v
                ax2 = axes[0, 1]
                ax2.scatter(v[:, 0], v[:, 1], c="gray")
                for i, name in enumerate(labels):
                    ax2.annotate(name, (float(v[i, 0]), float(v[i, 1])), textcoords="offset points",
                                 xytext=(4, 4))
                ax2.scatter([float(o[0])], [float(o[1])], c="tab:red", s=90, marker="*", label="output")
                ax2.set(xlabel="value dimension 1", ylabel="value dimension 2",
                        title="Output = weighted average of the values")
                ax2.legend(loc="best")
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    which.observe(pick, names="value")
    for w_ in (tau, score):
        w_.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([tau, which, score]), out])


def positional_explorer(position: int = 20, pair: int = 3, d: int = 64, T: int = 128):
    """Sliders for a position, a frequency pair and the size d of the sinusoidal encodings (notebook 06).

    Redraws ``plots.plot_positional_encoding`` on every change. Returns the widget; display it as the last line
    of a cell.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .plots import plot_positional_encoding

    pos = widgets.IntSlider(value=position, min=0, max=T - 1, description="position")
    which = widgets.IntSlider(value=pair, min=0, max=d // 2 - 1, description="pair i")
    size = widgets.Dropdown(options=sorted({16, 32, 64, 128, d}), value=d, description="d")
    out = widgets.Output()

    def redraw(*_):
        which.max = size.value // 2 - 1          # the slider clamps its value to the new range
        with out:
            out.clear_output(wait=True)
            fig = plot_positional_encoding(pos.value, which.value, size.value, T)
            display(fig)
            plt.close(fig)

    for w_ in (pos, which, size):
        w_.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([pos, which, size]), out])


def sizing_calculator(presets: dict | None = None, start: str = "Llama-3-8B"):
    """A calculator for the big numbers of a transformer (notebook 11): pick a published config (or the course's
    MiniGPT) from the dropdown, then move the sliders for d_model, layers, heads, key/value heads, vocabulary and
    context, and the precision. Shows ``sizing.summary``: parameters, inference and training memory, FLOPs per
    token, the KV cache and which GPU memory sizes hold it. Returns the widget; display it as the last line of
    a cell. A config the sliders cannot make (heads not dividing d_model, ...) shows the error in words.
    """
    import ipywidgets as widgets

    from . import sizing

    presets = dict(sizing.PUBLISHED if presets is None else presets)
    if start not in presets:
        start = next(iter(presets))
    c0 = presets[start]
    choose = widgets.Dropdown(options=list(presets), value=start, description="preset")
    d_model = widgets.IntSlider(value=c0.d_model, min=64, max=16384, step=64, description="d_model")
    layers = widgets.IntSlider(value=c0.n_layers, min=1, max=128, description="layers")
    heads = widgets.IntSlider(value=c0.n_heads, min=1, max=128, description="heads")
    kv = widgets.IntSlider(value=c0.kv_heads, min=1, max=128, description="kv heads")
    vocab = widgets.IntSlider(value=c0.vocab_size, min=2, max=262_144, description="vocabulary")
    context = widgets.IntSlider(value=c0.n_ctx, min=64, max=131_072, step=64, description="context")
    precision = widgets.Dropdown(options=list(sizing.BYTES_PER_PARAM), value="bf16", description="precision")
    out = widgets.Output()
    busy = {"loading": False}

    def load(*_):
        c = presets[choose.value]
        busy["loading"] = True
        try:
            for w, v in ((d_model, c.d_model), (layers, c.n_layers), (heads, c.n_heads), (kv, c.kv_heads),
                         (vocab, c.vocab_size), (context, c.n_ctx)):
                w.value = v
        finally:
            busy["loading"] = False
        redraw()

    def redraw(*_):
        if busy["loading"]:
            return
        base = presets[choose.value]
        with out:
            out.clear_output(wait=True)
            try:
                d_ff = None if base.d_ff is None else max(1, round(base.d_ff * d_model.value / base.d_model))
                cfg = base.with_(d_model=d_model.value, n_layers=layers.value, n_heads=heads.value,
                                 n_kv_heads=kv.value, vocab_size=vocab.value, n_ctx=context.value,
                                 d_ff=d_ff, name=f"{base.name} (as set)" if base.d_model != d_model.value or
                                 base.n_layers != layers.value else base.name)
            except sizing.ConfigError as err:
                # the settings are printed too, so the output follows every control even while invalid
                print(f"d_model={d_model.value}, layers={layers.value}, heads={heads.value}, kv heads={kv.value}, "
                      f"vocabulary={vocab.value:,}, context={context.value:,}, {precision.value}: "
                      f"not a valid config: {err}")
                return
            print(sizing.summary(cfg, T=context.value, precision=precision.value))

    def follow(change):   # plain multi-head attention (kv heads = heads) stays so when the heads change
        if kv.value == change["old"] and not busy["loading"]:
            busy["loading"] = True
            kv.value = change["new"]
            busy["loading"] = False

    choose.observe(load, names="value")
    heads.observe(follow, names="value")
    for w in (d_model, layers, heads, kv, vocab, context, precision):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([choose, widgets.HBox([d_model, layers, heads]), widgets.HBox([kv, vocab, context]),
                         precision, out])


def tokenizer_explorer(tokenizers: dict, text: str = "The cat sat on the mat."):
    """A text box; under it the text cut into coloured tokens with their ids by each tokenizer of ``tokenizers``
    (name -> a ``bpe.BPETokenizer`` or a ``tiktoken.Encoding``), side by side (notebook 10). Returns the widget."""
    import ipywidgets as widgets

    from .bpe import token_pieces, tokens_html

    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="90%", height="60px"))
    out = widgets.HTML()

    def redraw(*_):
        out.value = "".join(tokens_html(token_pieces(tok, box.value), name) for name, tok in tokenizers.items())

    box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([box, out])


def layer_explorer(model, tokenizer, text: str = "The keys to the cabinet are", max_tokens: int = 48,
                   every: int = 3):
    """A text box and sliders for a layer and a head of a MiniGPT (notebook 17): the head's attention pattern over
    the tokens (recomputed by ``probes.attention_pattern``), with the logit lens's top tokens at the last position
    after every ``every``-th block and after the chosen one. Only the first ``max_tokens`` tokens are used.
    Returns the widget; display it as the last line of a cell."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    from .probes import attention_pattern, logit_lens, record

    n_layers, n_heads = len(model.blocks), model.blocks[0].attn.n_heads
    box = widgets.Text(value=text, description="text", layout=widgets.Layout(width="70%"))
    layer = widgets.IntSlider(value=n_layers // 2, min=0, max=n_layers - 1, description="layer")
    head = widgets.IntSlider(value=0, min=0, max=n_heads - 1, description="head")
    out = widgets.Output()
    seen: dict = {}

    def recorded(t: str):
        if t not in seen:
            ids = tokenizer.encode(t)[:max_tokens] or tokenizer.encode(" ")
            idx = torch.tensor([ids], device=model.tok_emb.weight.device)
            with torch.no_grad(), record(model) as rec:
                model(idx)
            seen.clear()
            seen[t] = ids, rec
        return seen[t]

    def top_tokens(rec, l: int, k: int = 3) -> str:
        with torch.no_grad():
            p = logit_lens(model, rec.resid[l][0, -1]).float().softmax(-1)
        top = p.topk(k)
        pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        return "  ".join(f"{tokenizer.decode([i])!r} {v:.2f}" for v, i in pairs)

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            ids, rec = recorded(box.value)
            labels = [tokenizer.decode([i]) for i in ids]
            with torch.no_grad():
                A = attention_pattern(model, rec, layer.value)[0, head.value].float().cpu()
            T = len(ids)
            fig, ax = plt.subplots(figsize=(min(2 + 0.32 * T, 12), min(1.8 + 0.3 * T, 9)))
            ax.imshow(A.numpy(), cmap="Blues", vmin=0, vmax=1)
            ax.set_xticks(range(T), labels, rotation=90, fontsize=8)
            ax.set_yticks(range(T), labels, fontsize=8)
            ax.set(xlabel="attends to (key)", ylabel="position (query)",
                   title=f"layer {layer.value}, head {head.value}\nlens after block {layer.value + 1}: "
                         f"{top_tokens(rec, layer.value + 1)}")
            plt.tight_layout()
            display(fig)
            plt.close(fig)
            print("logit lens at the last token, top 3 after each block shown:")
            for l in sorted({*range(0, n_layers + 1, every), n_layers, layer.value + 1}):
                mark = "  <- the chosen layer" if l == layer.value + 1 else ""
                print(f"  block {l:2d}: {top_tokens(rec, l)}{mark}")

    for w in (box, layer, head):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([box, widgets.HBox([layer, head]), out])


class text_progress_bars:
    """Inside ``with text_progress_bars():`` the ``tqdm.auto`` bars of ``course_utils.train`` are plain text bars,
    redrawn at most every ``mininterval`` seconds on stdout.

    A widget bar is stored in a notebook as the text of its first frame ("0% 0/300"), which is what GitHub and
    other static renderers show; a text bar's last frame is what they show instead: the finished bar.
    """

    def __init__(self, mininterval: float = 10.0):
        self.mininterval = mininterval

    def __enter__(self):
        import sys

        import tqdm.auto
        import tqdm.std

        interval = self.mininterval

        class TextBar(tqdm.std.tqdm):
            def __init__(self, *args, **kwargs):
                kwargs.setdefault("file", sys.stdout)
                kwargs.setdefault("mininterval", interval)
                kwargs.pop("dynamic_ncols", None)
                kwargs.setdefault("ncols", 100)
                super().__init__(*args, **kwargs)

        self._saved = tqdm.auto.tqdm
        tqdm.auto.tqdm = TextBar
        return self

    def __exit__(self, *exc):
        import tqdm.auto

        tqdm.auto.tqdm = self._saved
        return False


def _prob_colour(p: float) -> str:
    """A background colour for a token drawn with probability p: red (unlikely) through yellow to green (sure)."""
    p = min(max(float(p), 0.0), 1.0)
    hue = 120 * p            # 0 = red, 60 = yellow, 120 = green
    return f"hsl({hue:.0f}, 75%, 82%)"


def chat_box(model, tokenizer, prompt_of, max_new_tokens: int = 40, stop_ids=(), temperature: float = 0.7,
             top_p: float = 0.9, message: str = "What is the capital of France?"):
    """A chat with a real model (notebook 16): type a message, press Enter or click "send", and the reply appears
    token by token, each token coloured by the probability it was drawn with (red unlikely, green sure). Sliders
    set the temperature and top-p of the sampler (``course_utils.generation.probabilities``); moving one
    re-draws the last reply with the new settings.

    ``prompt_of(message) -> str`` renders the message with the model's chat template; ``stop_ids`` end a reply
    (e.g. the end-of-turn token). Each reply is drawn with a generator seeded with its number, so the same
    settings and the same reply number give the same text; "send" starts the next reply number. Returns the
    widget; display it as the last line of a cell.
    """
    import html

    import ipywidgets as widgets
    import torch

    from .generation import probabilities

    box = widgets.Text(value=message, description="message", continuous_update=False,
                       layout=widgets.Layout(width="70%"))
    send = widgets.Button(description="send", button_style="primary")
    temp = widgets.FloatSlider(value=temperature, min=0.1, max=2.0, step=0.1, description="temperature",
                               readout_format=".1f")
    nucleus = widgets.FloatSlider(value=top_p, min=0.1, max=1.0, step=0.05, description="top-p",
                                  readout_format=".2f")
    out = widgets.HTML()
    state = {"reply": 0}
    stops = set(int(i) for i in stop_ids)
    device = next(model.parameters()).device

    def reply(*_):
        text = box.value.strip() or "Hello"
        ids = torch.tensor([tokenizer.encode(prompt_of(text))], dtype=torch.long, device=device)
        head = (f"<div><b>you:</b> {html.escape(text)}<br><small>reply {state['reply']}, temperature "
                f"{temp.value:.1f}, top-p {nucleus.value:.2f}</small><br><b>model:</b> ")
        g = torch.Generator().manual_seed(state["reply"])
        pieces = []
        cache = [{} for _ in model.blocks]
        model.eval()
        with torch.inference_mode():
            logits, _ = model(ids, cache=cache)
            for _ in range(max_new_tokens):
                p = probabilities(logits[0, -1].float().cpu(), temperature=temp.value, top_p=nucleus.value)
                nxt = int(torch.multinomial(p, 1, generator=g))
                if nxt in stops:
                    break
                piece = html.escape(tokenizer.decode([nxt]))
                pieces.append(f'<span title="p = {p[nxt]:.3f}" style="background:{_prob_colour(p[nxt])}; '
                              f'white-space:pre-wrap">{piece}</span>')
                out.value = head + "".join(pieces) + "</div>"          # streamed: one token at a time
                logits, _ = model(torch.tensor([[nxt]], device=device), cache=cache)
        out.value = head + "".join(pieces) + " <small>(end)</small></div>"

    def new_reply(*_):
        state["reply"] += 1
        reply()

    box.observe(new_reply, names="value")
    send.on_click(new_reply)
    temp.observe(reply, names="value")
    nucleus.observe(reply, names="value")
    reply()
    return widgets.VBox([widgets.HBox([box, send]), widgets.HBox([temp, nucleus]), out])


def compute_budget_explorer(laws: dict, budget: float = 1e12, low: float = 1e9, high: float = 1e25):
    """A compute budget C on a log slider (notebook 12): for each loss law in ``laws`` (name -> ``scaling.LossLaw``,
    e.g. the learner's fit and Chinchilla's) the compute-optimal N and D on the line 6 N D = C
    (``scaling.compute_optimal``), the tokens per parameter D / N, and the predicted loss there. A law's loss is
    in its own units (a character-level fit in nats per character, Chinchilla's in nats per token of its text):
    compare how N and D move, not the losses. Returns the widget; display it as the last line of a cell."""
    import html
    import math

    import ipywidgets as widgets

    from . import scaling

    if not laws:
        raise ValueError("compute_budget_explorer: give at least one loss law, e.g. {'yours': law}")
    for name, law in laws.items():
        if not isinstance(law, scaling.LossLaw):
            raise TypeError(f"compute_budget_explorer: laws[{name!r}] should be a scaling.LossLaw, "
                            f"got {type(law).__name__}")
    if not 0 < low <= budget <= high:
        raise ValueError(f"compute_budget_explorer: need 0 < low <= budget <= high, got {low}, {budget}, {high}")
    c = widgets.FloatLogSlider(value=budget, base=10, min=math.log10(low), max=math.log10(high), step=0.25,
                               description="C (FLOPs)", readout_format=".1e", continuous_update=False,
                               layout=widgets.Layout(width="60%"))
    out = widgets.HTML()

    def redraw(*_):
        C = c.value
        rows = []
        for name, law in laws.items():
            n, d = scaling.compute_optimal(C, law)
            a = law.beta / (law.alpha + law.beta)
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{n:.3g}</td><td>{d:.3g}</td><td>{d / n:,.1f}</td>"
                        f"<td>{law(n, d):.3f}</td><td>C<sup>{a:.2f}</sup></td><td>C<sup>{1 - a:.2f}</sup></td></tr>")
        out.value = (f"<p>Budget C = {C:.2e} FLOPs = 6 N D (a 1e25 run is a frontier model; notebook 08's five "
                     "minutes were about 1e13)</p>"
                     "<table><tr><th>law</th><th>N<sub>opt</sub> (parameters)</th><th>D<sub>opt</sub> (tokens)"
                     "</th><th>D / N</th><th>predicted loss (its units)</th><th>N<sub>opt</sub> grows as</th>"
                     "<th>D<sub>opt</sub> grows as</th></tr>" + "".join(rows) + "</table>")

    c.observe(redraw, names="value")
    redraw()
    return widgets.VBox([c, out])


def lora_rank_explorer(deltas: dict, rank: int = 4):
    """The rank r of a LoRA adapter against what it keeps (notebook 14). ``deltas``: name -> a fine-tuning update
    ΔW (d_out, d_in). For the chosen matrix and rank: the trainable parameters of a rank-r adapter, r (d_in +
    d_out), against the d_out d_in of the full matrix, and the share of the update's energy (squared Frobenius
    norm) that its best rank-r approximation keeps, beside a random matrix of the same shape. A plot shows the whole
    curve. Returns the widget; display it as the last line of a cell."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    from .lora import singular_values

    if not deltas:
        raise ValueError("lora_rank_explorer: give at least one update, e.g. {'blocks.0.attn.w_q': delta}")
    curves = {}
    g = torch.Generator().manual_seed(0)
    for name, d in deltas.items():
        s2 = singular_values(d) ** 2                           # raises a clear error for a non-matrix
        r2 = singular_values(torch.randn(d.shape, generator=g, dtype=torch.float64)) ** 2
        curves[name] = (tuple(d.shape), (s2.cumsum(0) / s2.sum()).tolist(), (r2.cumsum(0) / r2.sum()).tolist())
    names = list(curves)
    choose = widgets.Dropdown(options=names, value=names[0], description="matrix",
                              layout=widgets.Layout(width="45%"))
    r = widgets.IntSlider(value=min(rank, len(curves[names[0]][1])), min=1, max=len(curves[names[0]][1]),
                          description="rank r", continuous_update=False)
    out = widgets.Output()

    def redraw(*_):
        (d_out, d_in), kept, rand = curves[choose.value]
        r.max = len(kept)                                      # the slider clamps its value to the new range
        k = r.value
        with out:
            out.clear_output(wait=True)
            adapter, full = k * (d_in + d_out), d_in * d_out
            print(f"{choose.value}: ΔW is {d_out} x {d_in}. A rank-{k} adapter trains {adapter:,} numbers, "
                  f"{adapter / full:.1%} of the matrix's {full:,}.")
            print(f"Its best rank-{k} approximation keeps {kept[k - 1]:.1%} of the update's energy; "
                  f"for a random matrix of the same shape it would keep {rand[k - 1]:.1%}.")
            fig, ax = plt.subplots(figsize=(6.5, 3.2))
            ax.plot(range(1, len(kept) + 1), kept, label="the fine-tuning update")
            ax.plot(range(1, len(rand) + 1), rand, "--", label="a random matrix")
            ax.axvline(k, color="k", lw=0.8)
            ax.set_xlabel("rank r")
            ax.set_ylabel("share of the energy kept")
            ax.set_title(f"Best rank-r approximation of {choose.value}")
            ax.set_ylim(0, 1.02)
            ax.legend(loc="lower right")
            display(fig)
            plt.close(fig)

    choose.observe(redraw, names="value")
    r.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([choose, r]), out])


def ablation_explorer(summary: list[dict], checked: tuple[str, ...] = ("rope", "muon")):
    """Notebook 15's measured ablation, one checkbox per change. ``summary``: rows of ``ablation.summarise``. For
    the changes ticked: each one's measured bits/char alone, its spread over seeds (max - min), its difference from
    the baseline beside twice the pooled standard error, its ratio and the table's verdict; then what the ticked
    changes would give if their effects multiplied, and,
    when the ticked set is one the table measured together, the measured result with its spread. The dropdown
    ticks one of those measured sets. Returns the widget; display it as the last line of a cell."""
    import html

    import ipywidgets as widgets

    by = {row["run"]: row for row in summary}
    if "baseline" not in by:
        raise ValueError("ablation_explorer: the summary has no 'baseline' row (use ablation.summarise(rows))")
    singles = [n for n, row in by.items() if n != "baseline" and "+" not in row["changes"]]
    together = {frozenset(row["changes"].split("+")): n for n, row in by.items() if "+" in row["changes"]}
    boxes = {n: widgets.Checkbox(value=n in checked, description=n, indent=False,
                                 layout=widgets.Layout(width="120px")) for n in singles}
    preset = widgets.Dropdown(options=["(your ticks)", *sorted(together.values())], value="(your ticks)",
                              description="tick a set")
    out = widgets.HTML()
    base = by["baseline"]

    def redraw(*_):
        on = [n for n in singles if boxes[n].value]
        rows = "".join(f"<tr><td>{n}</td><td>{by[n]['bits']:.4f}</td><td>{by[n]['spread']:.4f}</td>"
                       f"<td>{by[n]['delta']:+.4f}</td><td>{by[n]['se2']:.4f}</td><td>{by[n]['ratio']:.3f}x</td>"
                       f"<td>{by[n]['verdict']}</td></tr>" for n in on)
        text = (f"<p>baseline: {base['bits']:.4f} bits/char (spread {base['spread']:.4f} over "
                f"{base['seeds']} seeds). A change helps or hurts when its difference beats 2 SE, twice the "
                "pooled standard error of the two means.</p><table><tr><th>change</th><th>bits/char</th>"
                "<th>spread</th><th>difference</th><th>2 SE</th><th>vs baseline</th><th>verdict</th></tr>"
                f"{rows}</table>")
        if not on:
            text += "<p>Tick a change to see its measured effect.</p>"
        else:
            product = 1.0
            for n in on:
                product *= by[n]["ratio"]
            text += f"<p>If the {len(on)} effects multiplied: {product:.3f}x the baseline.</p>"
            name = together.get(frozenset(on))
            if name:
                m = by[name]
                text += (f"<p><b>Measured together</b> (run '{html.escape(name)}'): {m['bits']:.4f} bits/char, "
                         f"{m['ratio']:.3f}x, spread {m['spread']:.4f}: the product is off by "
                         f"{product - m['ratio']:+.3f}.</p>")
            else:
                sets = ", ".join(f"'{n}'" for n in sorted(together.values()))
                text += f"<p>This set was not measured together (the table has {sets}).</p>"
        out.value = text

    def tick(*_):
        if preset.value in by:
            want = set(by[preset.value]["changes"].split("+"))
            for n, b in boxes.items():
                b.unobserve(redraw, names="value")
                b.value = n in want
                b.observe(redraw, names="value")
            redraw()

    for b in boxes.values():
        b.observe(redraw, names="value")
    preset.observe(tick, names="value")
    redraw()
    return widgets.VBox([preset, widgets.HBox(list(boxes.values()), layout=widgets.Layout(flex_flow="row wrap")),
                         out])


def assistant_compare(model, tokenizer, adapters: dict, questions, systems: dict | None = None,
                      max_new_tokens: int = 24):
    """The same question answered side by side by several versions of one model (notebook 18): the base model
    and the same model with different LoRA adapters loaded (e.g. after supervised fine-tuning and after DPO).

    ``adapters``: {column title: adapter state from ``lora.adapter_state`` or None for the adapters switched off}.
    ``questions``: examples for the dropdown, which fills the text box; type any other question there.
    ``systems``: {name: system message or None for the default}, a dropdown when there are two or more. The
    replies are greedy (``chat.reply``), so the same settings give the same replies. The model's own adapters
    are put back after every update. Returns the widget; display it as the last line of a cell.
    """
    import html

    import ipywidgets as widgets

    from .chat import reply
    from .lora import adapter_state, adapters_off, load_adapter_state

    if not adapters:
        raise ValueError("give at least one column: {title: adapter state or None}")
    questions = list(questions)
    if not questions:
        raise ValueError("give at least one example question")
    systems = dict(systems or {"default": None})
    example = widgets.Dropdown(options=questions, value=questions[0], description="example",
                               layout=widgets.Layout(width="60%"))
    box = widgets.Text(value=questions[0], description="question", continuous_update=False,
                       layout=widgets.Layout(width="60%"))
    system = widgets.Dropdown(options=list(systems), value=list(systems)[0], description="system")
    length = widgets.IntSlider(value=max_new_tokens, min=4, max=64, step=4, description="max tokens")
    out = widgets.HTML()

    def update(*_):
        question = box.value.strip() or questions[0]
        messages = [{"role": "user", "content": question}]
        if systems[system.value] is not None:
            messages.insert(0, {"role": "system", "content": systems[system.value]})
        kept = adapter_state(model)
        cells = []
        try:
            for title, state in adapters.items():
                if state is None:
                    with adapters_off(model):
                        text = reply(model, tokenizer, messages, length.value)
                else:
                    load_adapter_state(model, state)
                    text = reply(model, tokenizer, messages, length.value)
                cells.append(f"<td style='vertical-align:top; padding:6px; border:1px solid #ccc; "
                             f"white-space:pre-wrap'><b>{html.escape(title)}</b><br>{html.escape(text)}</td>")
        finally:
            load_adapter_state(model, kept)
        sys_note = html.escape(systems[system.value] or "the model's default")
        out.value = (f"<div><b>question:</b> {html.escape(question)}<br><small>system message: {sys_note}; "
                     f"greedy, at most {length.value} tokens</small><table style='width:100%; "
                     f"table-layout:fixed; border-collapse:collapse'><tr>{''.join(cells)}</tr></table></div>")

    def pick(change):
        box.value = change["new"]

    example.observe(pick, names="value")
    box.observe(update, names="value")
    system.observe(update, names="value")
    length.observe(update, names="value")
    update()
    rows = [widgets.HBox([example, system]), widgets.HBox([box, length])] if len(systems) > 1 else \
        [example, widgets.HBox([box, length])]
    return widgets.VBox([*rows, out])

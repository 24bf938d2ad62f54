"""Interactive controls (ipywidgets) for the notebooks. Each notebook also shows one static result, so it reads
well on GitHub and in CI, where no one moves a slider.

Several notebooks add controls here: add new functions, never rename or remove one another notebook uses.
"""

from __future__ import annotations


def generation_explorer(model, tokenizer, prompt: str = "The ", max_new_tokens: int = 80, seed: int = 0,
                        top: int = 20):
    """Sliders for the temperature and top-k over the model's next-token distribution after a prompt you type,
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
            probs = next_token_distribution(model, ids, temperature=temperature.value, top_k=k)
            fig, ax = plt.subplots(figsize=(8, 3))
            plot_token_distribution(probs, labels, top=top, ax=ax,
                                    title=f"Next token after {text.value[-30:]!r} "
                                          f"(temperature {temperature.value:.2f}, top-k {top_k.value})")
            display(fig)
            plt.close(fig)
            g = torch.Generator().manual_seed(seed)
            cont = generate(model, ids[None], max_new_tokens, temperature=temperature.value, top_k=k, generator=g)
            print("sample:", text.value + "|" + tokenizer.decode(cont[0, len(ids):].tolist()))

    for w in (text, temperature, top_k):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text, widgets.HBox([temperature, top_k]), out])

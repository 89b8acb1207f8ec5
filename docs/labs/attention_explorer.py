# %% [markdown]
# # Lab: attention explorer
#
# Open the date translator of the [Transformer chapter](../chapters/attention.md) and look at every attention map it
# computes while translating one date: the encoder's self-attention over the English source, the decoder's causal
# self-attention over the Chinese it has written so far, and the cross-attention that connects the two.
#
# The model ships with the package (`llmdocs.pretrained`), so this runs offline in a few seconds. Change `source`
# below and re-run the notebook to explore other dates. Each map is
# $\operatorname{softmax}(QK^\top/\sqrt{D_h})$ of one head: rows are queries, columns are keys, and every row
# sums to one.

# %%
import torch
from IPython.display import display

from llmdocs.generation.encoder_decoder import greedy_decode
from llmdocs.pretrained import load_date_translator
from llmdocs.viz import plot_attention

torch.set_num_threads(1)
model, src_vocab, tgt_vocab, meta = load_date_translator()
config = model.config
print(config)
print("trained by:", meta["results"]["command"])
results = meta["results"]
print(f"exact match on {results['n_test']} held-out dates: {results['exact_match']:.1%}")

# %% [markdown]
# ## Translate one date
#
# Greedy decoding with the key/value cache, then one teacher-forced pass over the output with
# `need_weights=True`, which makes every layer keep its attention weights (B, H, Tq, Tk).

# %%
source = "Friday, December 25, 2026"

src = src_vocab.encode_batch([source])  # (1, S)
ids = greedy_decode(model, src, tgt_vocab.bos_id, tgt_vocab.eos_id)[0]
target = tgt_vocab.decode(ids)
print(source, "->", target)

tgt_in = torch.tensor([[tgt_vocab.bos_id, *ids]])  # (1, T): <bos> + the output
with torch.no_grad():
    model(src, tgt_in, need_weights=True)
src_labels = list(source)
tgt_labels = ["<bos>", *target]  # what each decoder position reads
written = [*target, "<eos>"]  # what each decoder position writes

# %% [markdown]
# ## Encoder self-attention
#
# Each source character attends to the whole source (no causal mask). One panel per head, one figure per layer.

# %%
for i, layer in enumerate(model.encoder.layers):
    weights = layer.last_self_weights[0]  # (H, S, S)
    fig = plot_attention(weights, src_labels, src_labels, title=f"encoder layer {i}")
    display(fig)

# %% [markdown]
# ## Decoder self-attention (causal)
#
# Everything above the diagonal is exactly zero: position $t$ may only read positions $\le t$.

# %%
for i, layer in enumerate(model.decoder.layers):
    weights = layer.last_self_weights[0]  # (H, T, T)
    assert torch.all(weights.triu(diagonal=1) == 0)  # the causal mask at work
    fig = plot_attention(weights, tgt_labels, tgt_labels, title=f"decoder layer {i}")
    display(fig)

# %% [markdown]
# ## Cross-attention
#
# Rows are labelled with the Chinese character each decoder position *writes*, columns with the English source
# characters. Look for the year: it is written first, but read from the end of the source.

# %%
for i, layer in enumerate(model.decoder.layers):
    weights = layer.last_cross_weights[0]  # (H, T, S)
    fig = plot_attention(weights, src_labels, written, title=f"cross-attention, layer {i}")
    display(fig)

# %% [markdown]
# ## Which source characters does each output character read most?
#
# The head-averaged cross-attention of the last layer, reduced to its argmax per row.

# %%
cross = model.decoder.layers[-1].last_cross_weights[0].mean(dim=0)  # (T, S)
for label, row in zip(written, cross, strict=True):
    j = int(row.argmax())
    context = source[max(0, j - 3) : j + 4]
    print(f"{label!r} reads {context!r} (weight {row[j]:.2f})")

# %% [markdown]
# ## Things to try
#
# - Dates far outside the training range (the model saw 1900-2099): `"Monday, January 1, 2150"`.
# - A malformed date, e.g. a wrong weekday: does the model copy the weekday or compute it?
# - Train a German model (`python examples/train_dates.py --target de --out-dir runs/dates-de`) and load it with
#   `llmdocs.serialization.load_pretrained("runs/dates-de/model")`: German keeps the day before the month.

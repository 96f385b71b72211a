"""Layer converters: a PyTorch ``state_dict`` ⇄ canonical weights ⇄ a Flax NNX layer's state.

`twinbench.backends.torch_backend` converts whole twins whose modules carry canonical names. This
module is for the other case: porting weights that already exist as a torch ``state_dict`` (a
plain mapping of tensors or NumPy arrays, keyed like ``"bn1.running_var"``), one layer at a time,
and loading canonical weights into Flax NNX layers that do not hold them one-to-one (recurrent
cells). Every function checks shapes and raises `twinbench.canonical.CanonicalError` naming the
missing or mis-shaped tensor. Conversions are pure layout changes (transposes, reshapes), never
arithmetic, so ``*_to_torch(*_from_torch(sd))`` gives back ``sd``'s tensors bit for bit, in their
own dtype. Only the ``*_cell_weights`` helpers, which feed Flax's recurrent cells, add biases.

Canonical names are ``prefix + "." + leaf`` (just ``leaf`` when the prefix is empty); the torch
prefix and the canonical prefix are the same string. The names and axis orders of every layer kind
but attention come from `twinbench.backends.layouts`, the table the torch backend uses too.

======================  ==========================================  ===========================
layer kind              PyTorch ``state_dict`` (under prefix)       canonical (under prefix)
======================  ==========================================  ===========================
Linear                  ``weight (out, in)``, ``bias (out,)``       ``kernel (in, out)``,
                                                                    ``bias (out,)``
Conv2d                  ``weight (out, in/groups, H, W)``, bias     ``kernel (H, W, in/groups,
                                                                    out)``, ``bias``
BatchNorm1d/2d/3d       ``weight``, ``bias``, ``running_mean``,     ``scale``, ``bias``,
                        ``running_var``, ``num_batches_tracked``    ``mean``, ``var`` (all (C,))
LayerNorm               ``weight``, ``bias`` (normalized_shape)     ``scale``, ``bias``
Embedding               ``weight (vocab, d)``                       ``embedding (vocab, d)``
LSTM, layer k           ``weight_ih_lk (4H, in)``,                  ``k.dense_i.kernel (in, 4H)``,
(gates i, f, g, o)      ``weight_hh_lk (4H, H)``,                   ``k.dense_h.kernel (H, 4H)``,
                        ``bias_ih_lk (4H,)``, ``bias_hh_lk (4H,)``  ``k.dense_i.bias (4H,)``,
                                                                    ``k.dense_h.bias (4H,)``
GRU, layer k            as LSTM with 3H (gates r, z, n);            as LSTM with 3H; the last H
(gates r, z, n)         ``b_hn`` is ``bias_hh_lk[2H:]``             of ``k.dense_h.bias`` is
                                                                    ``b_hn``
MultiheadAttention      ``in_proj_weight (3E, E)`` (or              ``query|key|value.kernel
(E = heads·head_dim)    ``q|k|v_proj_weight (E, E_in)``),           (E_in, heads, head_dim)``,
                        ``in_proj_bias (3E,)``,                     ``query|key|value.bias
                        ``out_proj.weight (E, E)``,                 (heads, head_dim)``,
                        ``out_proj.bias (E,)``                      ``out.kernel (heads,
                                                                    head_dim, E)``, ``out.bias``
======================  ==========================================  ===========================

Notes on the choices:

* Linear, Conv2d, LayerNorm, Embedding and MultiheadAttention canonical names and shapes are those
  of ``nnx.Linear``, ``nnx.Conv``, ``nnx.LayerNorm``, ``nnx.Embed`` and ``nnx.MultiHeadAttention``
  (``in_features=E, qkv_features=E, out_features=E``), so `load_nnx` loads them directly. Torch
  splits the projected ``E`` head-major (``view(..., heads, head_dim)``), the same order as
  Flax's ``(heads, head_dim)`` axes, so the reshape needs no transpose. Both scale by
  ``1/sqrt(head_dim)``. LayerNorm's eps differs (torch 1e-5, Flax 1e-6): set it explicitly.
* **BatchNorm.** Canonical ``var`` is *the running variance exactly as the layer normalises with it
  in eval mode*, copied verbatim in both directions — it is neither rescaled to "biased" nor to
  "unbiased". A rescale could not be right: torch's ``running_var`` is an exponential average of
  unbiased batch variances taken with batch sizes that the ``state_dict`` does not record, and an
  eval-mode twin must normalise with the very same numbers to agree. So weights ported from torch
  carry torch's (unbiased) convention, and ``nnx.BatchNorm(use_running_average=True)`` loaded with
  them gives torch's eval output. In train mode both frameworks normalise with the *biased* batch
  variance, so outputs agree; only the running update differs:

  - momentum: torch ``new = (1-m)·old + m·batch`` with ``m = 0.1``; Flax
    ``new = m'·old + (1-m')·batch``, so pass ``momentum=flax_batchnorm_momentum(0.1)`` (= 0.9;
    Flax's default is 0.99).
  - variance: torch feeds the *unbiased* batch variance (``n/(n-1)`` times the biased one,
    ``n = N·H·W`` elements per channel) into its running var, Flax the biased one. After one step
    the two running vars differ by ``m·(n/(n-1) - 1)·biased_batch_var``. A JAX twin that must
    match torch's running var therefore updates it itself (see `batchnorm_running_update`) instead
    of relying on ``nnx.BatchNorm``'s update; the running means always agree.

  ``num_batches_tracked`` is dropped (only used when torch's ``momentum=None``) and re-emitted by
  `batchnorm2d_to_torch` (default 0) so that ``load_state_dict(strict=True)`` accepts the result.
* **LSTM/GRU.** Both torch biases are kept (``dense_i.bias`` = ``b_ih``, ``dense_h.bias`` =
  ``b_hh``) so the round trip is exact; torch's gate order is kept along the last axis, which
  is also ``nnx.OptimizedLSTMCell``'s and ``nnx.GRUCell``'s order. Flax's cells hold fewer
  biases, so `lstm_cell_weights` / `gru_cell_weights` build a cell's state from the canonical
  layer (summing biases). ``nnx.GRUCell`` has no hidden bias at all, so it cannot express a
  non-zero ``b_hn`` (``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``): `gru_cell_weights`
  refuses one unless told to drop it; a faithful JAX twin writes its own GRU cell using the
  canonical ``dense_h.bias``. Bidirectional layers and LSTM ``proj_size`` are refused.

Usage — port a torch ``state_dict`` and load it into Flax layers::

    from twinbench import converters as cv

    sd = torch_model.state_dict()
    canonical = {}
    canonical |= cv.conv2d_from_torch(sd, "conv1")
    canonical |= cv.batchnorm2d_from_torch(sd, "bn1")
    canonical |= cv.linear_from_torch(sd, "fc")

    cv.load_nnx(jax_model.conv1, canonical, "conv1")          # Params and BatchStats
    cv.load_nnx(jax_model.bn1, canonical, "bn1")
    back = cv.linear_to_torch(canonical, "fc")                # {"fc.weight": ..., "fc.bias": ...}

    lstm = cv.lstm_from_torch(sd, "rnn")                      # "rnn.0.dense_i.kernel", ...
    cv.load_nnx(cell0, cv.lstm_cell_weights(lstm, "rnn", 0))  # an nnx.OptimizedLSTMCell
"""

from twinbench.converters._attention import (
    multihead_attention_from_torch,
    multihead_attention_to_torch,
)
from twinbench.converters._batchnorm import batchnorm_running_update, flax_batchnorm_momentum
from twinbench.converters._flax import from_nnx, gru_cell_weights, load_nnx, lstm_cell_weights
from twinbench.converters._torch_layers import (
    batchnorm2d_from_torch,
    batchnorm2d_to_torch,
    conv2d_from_torch,
    conv2d_to_torch,
    embedding_from_torch,
    embedding_to_torch,
    gru_from_torch,
    gru_to_torch,
    layernorm_from_torch,
    layernorm_to_torch,
    linear_from_torch,
    linear_to_torch,
    lstm_from_torch,
    lstm_to_torch,
)

__all__ = [
    "batchnorm2d_from_torch",
    "batchnorm2d_to_torch",
    "batchnorm_running_update",
    "conv2d_from_torch",
    "conv2d_to_torch",
    "embedding_from_torch",
    "embedding_to_torch",
    "flax_batchnorm_momentum",
    "from_nnx",
    "gru_cell_weights",
    "gru_from_torch",
    "gru_to_torch",
    "layernorm_from_torch",
    "layernorm_to_torch",
    "linear_from_torch",
    "linear_to_torch",
    "load_nnx",
    "lstm_cell_weights",
    "lstm_from_torch",
    "lstm_to_torch",
    "multihead_attention_from_torch",
    "multihead_attention_to_torch",
]

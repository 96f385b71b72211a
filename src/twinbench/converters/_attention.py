"""``nn.MultiheadAttention`` ⇄ ``nnx.MultiHeadAttention``'s canonical layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from twinbench.canonical import Canonical, CanonicalError
from twinbench.converters._tensors import check, copy_out, get, join, maybe, refuse


def multihead_attention_from_torch(
    sd: Mapping[str, Any], prefix: str = "", *, num_heads: int
) -> Canonical:
    """``nn.MultiheadAttention`` → ``nnx.MultiHeadAttention``'s layout (``query``, ``key``,
    ``value``, ``out``; see the module table). Reads the packed ``in_proj_weight`` or, when
    ``kdim``/``vdim`` differ from ``embed_dim``, ``q|k|v_proj_weight``. ``add_bias_kv`` is refused.
    """
    refuse(sd, [join(prefix, "bias_k"), join(prefix, "bias_v")], "add_bias_kv")
    out_w = get(sd, join(prefix, "out_proj.weight"), (None, None))
    embed = out_w.shape[0]
    check(join(prefix, "out_proj.weight"), out_w, (embed, embed))
    if num_heads <= 0 or embed % num_heads:
        raise CanonicalError(
            f"tensor '{join(prefix, 'out_proj.weight')}': embed_dim {embed} is not a multiple "
            f"of num_heads {num_heads}"
        )
    head_dim = embed // num_heads
    packed_name = join(prefix, "in_proj_weight")
    if packed_name in sd:
        packed = get(sd, packed_name, (3 * embed, embed))
        weights = [packed[i * embed : (i + 1) * embed] for i in range(3)]
    else:
        weights = [
            get(sd, join(prefix, f"{p}_proj_weight"), (embed, None)) for p in ("q", "k", "v")
        ]
    out: Canonical = {}
    bias = maybe(sd, join(prefix, "in_proj_bias"), (3 * embed,))
    for i, (leaf, weight) in enumerate(zip(("query", "key", "value"), weights, strict=True)):
        out[join(prefix, f"{leaf}.kernel")] = copy_out(weight.T.reshape(-1, num_heads, head_dim))
        if bias is not None:
            b = bias[i * embed : (i + 1) * embed]
            out[join(prefix, f"{leaf}.bias")] = copy_out(b.reshape(num_heads, head_dim))
    out[join(prefix, "out.kernel")] = copy_out(out_w.T.reshape(num_heads, head_dim, embed))
    out_b = maybe(sd, join(prefix, "out_proj.bias"), (embed,))
    if out_b is not None:
        out[join(prefix, "out.bias")] = copy_out(out_b)
    return out


def multihead_attention_to_torch(
    canonical: Mapping[str, Any], prefix: str = ""
) -> dict[str, np.ndarray]:
    """Canonical ``query|key|value|out`` → ``nn.MultiheadAttention`` (exact inverse).

    Emits the packed ``in_proj_weight`` when query, key and value inputs all have ``embed_dim``
    features, else ``q|k|v_proj_weight`` — the keys torch itself uses for that configuration.
    """
    q = get(canonical, join(prefix, "query.kernel"), (None, None, None))
    _, heads, head_dim = q.shape
    embed = heads * head_dim
    check(join(prefix, "query.kernel"), q, (embed, heads, head_dim))
    k = get(canonical, join(prefix, "key.kernel"), (None, heads, head_dim))
    v = get(canonical, join(prefix, "value.kernel"), (None, heads, head_dim))
    out_k = get(canonical, join(prefix, "out.kernel"), (heads, head_dim, embed))
    weights = [a.reshape(a.shape[0], embed).T for a in (q, k, v)]
    out: dict[str, np.ndarray] = {}
    if k.shape[0] == embed and v.shape[0] == embed:
        out[join(prefix, "in_proj_weight")] = copy_out(np.concatenate(weights, axis=0))
    else:
        for p, w in zip(("q", "k", "v"), weights, strict=True):
            out[join(prefix, f"{p}_proj_weight")] = copy_out(w)
    biases = [
        maybe(canonical, join(prefix, f"{leaf}.bias"), (heads, head_dim))
        for leaf in ("query", "key", "value")
    ]
    present = [b is not None for b in biases]
    if any(present):
        if not all(present):
            leaf = ("query", "key", "value")[present.index(False)]
            raise CanonicalError(f"missing tensor '{join(prefix, f'{leaf}.bias')}'")
        out[join(prefix, "in_proj_bias")] = copy_out(
            np.concatenate([b.reshape(embed) for b in biases if b is not None])
        )
    out[join(prefix, "out_proj.weight")] = copy_out(out_k.reshape(embed, embed).T)
    out_b = maybe(canonical, join(prefix, "out.bias"), (embed,))
    if out_b is not None:
        out[join(prefix, "out_proj.bias")] = copy_out(out_b)
    return out

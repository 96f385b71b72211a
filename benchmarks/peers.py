"""Our PyTorch ``gpt`` and ``bert`` twins against Hugging Face ``transformers``' own models.

Builds ``GPT2LMHeadModel`` and ``BertForSequenceClassification`` from the same configuration as
our twins (random init, nothing downloaded, dropout 0, SDPA attention), then for each pair:

1. compares parameter counts (HF's BERT has a token-type table ours omits: ``d`` scalars with
   ``type_vocab_size=1``, the one difference);
2. loads our canonical init into HF's model through a short key map (Conv1D already stores the
   canonical ``(in, out)`` kernel; BERT's names are ours under ``bert.``) and checks that the
   logits agree — the names really do map, and both compute the same function;
3. times one training step (same batches, same loss, torch.optim.Adam with the workload's
   settings) with twinbench's own blocked timing loop, ours and theirs interleaved over several
   rounds so that load drifting on a shared machine hits both alike, and prints the median step
   times and the ratio ours/theirs with a bootstrap 95 % CI. Ours must not be slower by more than
   5 %: PASS when the ratio of medians is ≤ 1.05, marked "noisy" when its CI still reaches
   across 1.05 (the machine was busy: rerun it idle, or with ``--threads 1 --clock cpu``, which
   times each step in this process's CPU seconds — on one thread, time spent waiting for a core
   held by another process does not count).

Needs the optional extra: ``pip install 'twinbench[peers]'`` (transformers). Not a test: it
prints figures. Run ``python benchmarks/peers.py --size tiny`` for a quick look.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import load_canonical, make_optimizer, to_device
from twinbench.harness import stats, timing
from twinbench.registry import builtin

TOLERANCE = 1.05  # ours may be at most 5 % slower
BATCHES = 4  # distinct batches on the device, cycled through, as the harness does


def hf_gpt(config: dict[str, Any]) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_config = GPT2Config(
        n_layer=config["n_layers"],
        n_embd=config["d_model"],
        n_head=config["n_heads"],
        n_positions=config["max_positions"],
        vocab_size=config["vocab_size"],
        n_inner=4 * config["d_model"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=config["vocab_size"] - 1,
        eos_token_id=config["vocab_size"] - 1,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel._from_config(hf_config, attn_implementation="sdpa")


def hf_bert(config: dict[str, Any]) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    hf_config = BertConfig(
        vocab_size=config["vocab_size"],
        hidden_size=config["d_model"],
        num_hidden_layers=config["n_layers"],
        num_attention_heads=config["n_heads"],
        intermediate_size=4 * config["d_model"],
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
        max_position_embeddings=config["max_positions"],
        type_vocab_size=1,  # one segment, as in our data; the smallest table HF allows
        layer_norm_eps=1e-12,
        num_labels=config["n_classes"],
    )
    return BertForSequenceClassification._from_config(hf_config, attn_implementation="sdpa")


def gpt_state_dict(ours: nn.Module) -> dict[str, torch.Tensor]:
    """Our GPT's weights under HF's names: a ``transformer.`` prefix and Conv1D's (in, out)."""
    conv1d = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
    return {
        f"transformer.{name}": value.T if name.endswith(conv1d) else value
        for name, value in ours.state_dict().items()
    }


def bert_state_dict(ours: nn.Module) -> dict[str, torch.Tensor]:
    """Our BERT's weights under HF's names: ``bert.`` before all but the classifier."""
    return {
        name if name.startswith("classifier.") else f"bert.{name}": value
        for name, value in ours.state_dict().items()
    }


def gpt_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Our twin's loss (every position, targets shifted in the data) on HF's logits."""
    logits = model(input_ids=batch["tokens"]).logits
    return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())


def bert_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(input_ids=batch["tokens"]).logits, batch["labels"])


PEERS = {
    "gpt": ("GPT2LMHeadModel", hf_gpt, gpt_state_dict, gpt_loss),
    "bert": ("BertForSequenceClassification", hf_bert, bert_state_dict, bert_loss),
}


def train_step(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    batches: Any,
) -> Callable[[], torch.Tensor]:
    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, next(batches))
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def cpu_blocks(
    step: Callable[[], Any], sync: Callable[[Any], None], block: int, seconds: float
) -> list[float]:
    """Like `timing.time_blocks`, in this process's CPU seconds (all its threads together)."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while not samples or time.perf_counter() < deadline:
        start = time.process_time()
        out = None
        for _ in range(block):
            out = step()
        sync(out)
        samples.append((time.process_time() - start) / block)
    return samples


def compare(
    name: str, size_name: str, *, device: str, seconds: float, rounds: int, clock: str
) -> bool:
    workload = builtin(name)
    size = workload.size(size_name)
    peer_name, make_peer, to_hf, peer_loss = PEERS[name]
    twin = workload.twin("torch")
    ours = twin.build(size.config).to(device)
    theirs = make_peer(size.config).to(device)
    load_canonical(ours, initial_weights(workload, size, seed=0, framework="torch"))

    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    extra = size.config["d_model"] if name == "bert" else 0  # HF's token-type table, 1 × d
    verdict = "as expected" if n_theirs - n_ours == extra else "UNEXPECTED"
    note = " (HF's token_type_embeddings, 1 × d)" if extra else ""
    print(
        f"{name}/{size_name}: parameters ours {n_ours:,}, {peer_name} {n_theirs:,}: "
        f"difference {n_theirs - n_ours:,}{note} -> {verdict}"
    )

    # Same weights in HF's model (its token-type row zeroed: type 0 then adds nothing).
    state = to_hf(ours)
    if name == "bert":
        state["bert.embeddings.token_type_embeddings.weight"] = torch.zeros(
            1, size.config["d_model"]
        )
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    batches = [
        to_device(b, device, torch.float32) for b in islice(workload.batches(size, 0), BATCHES)
    ]
    with torch.no_grad():
        ours.eval(), theirs.eval()
        ours_logits = twin.forward(ours, batches[0])
        theirs_logits = theirs(input_ids=batches[0]["tokens"]).logits
        ours.train(), theirs.train()
    gap = float((ours_logits - theirs_logits).abs().max())
    print(
        f"{name}/{size_name}: same weights -> logits max |ours − HF| = {gap:.2e} "
        f"({'agree' if gap < 1e-3 else 'DIFFER'})"
    )

    adam = workload.optimizers["adam"]
    steps = {
        "ours": train_step(
            ours, twin.loss_fn, make_optimizer(ours.parameters(), adam), cycle(batches)
        ),
        "theirs": train_step(
            theirs, peer_loss, make_optimizer(theirs.parameters(), adam), cycle(batches)
        ),
    }

    def sync(_out: Any = None) -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    blocks = {}
    for who, step in steps.items():
        timing.warm_up(step, sync)
        blocks[who] = timing.calibrate_block(step, sync)
    time_blocks = cpu_blocks if clock == "cpu" else timing.time_blocks
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    for r in range(rounds):  # interleaved, alternating who goes first
        order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
        for who in order:
            samples[who] += time_blocks(steps[who], sync, blocks[who], seconds / rounds)
    ratio = stats.ratio_of_medians(samples["ours"], samples["theirs"])
    passed = ratio.ratio <= TOLERANCE
    noisy = ratio.ci_low <= TOLERANCE < ratio.ci_high  # the CI reaches across the threshold
    med_ours, med_theirs = statistics.median(samples["ours"]), statistics.median(samples["theirs"])
    print(
        f"{name}/{size_name}: train step ({clock} time) ours {med_ours * 1e3:.2f} ms "
        f"({len(samples['ours'])} blocks of {blocks['ours']}), {peer_name} "
        f"{med_theirs * 1e3:.2f} ms ({len(samples['theirs'])} blocks of {blocks['theirs']})"
    )
    print(
        f"{name}/{size_name}: ours/theirs = {ratio.ratio:.3f} "
        f"[95 % CI {ratio.ci_low:.3f}–{ratio.ci_high:.3f}]; ours at most 5 % slower -> "
        f"{'PASS' if passed else 'FAIL'}{' (noisy)' if noisy else ''}"
    )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=("tiny", "small", "full"))
    parser.add_argument("--model", action="append", choices=tuple(PEERS), help="default: both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch intra-op threads (default: the CPUs this process may use)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="timing per model and side")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per model")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: perf_counter, as twinbench run times; cpu: process CPU time (use with "
        "--threads 1 on a busy machine)",
    )
    args = parser.parse_args()
    try:
        import transformers
    except ImportError:
        sys.exit("benchmarks/peers.py needs transformers: pip install 'twinbench[peers]'")

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, device "
        f"{args.device}, {torch.get_num_threads()} torch threads, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    results = {
        name: compare(
            name,
            args.size,
            device=args.device,
            seconds=args.seconds,
            rounds=args.rounds,
            clock=args.clock,
        )
        for name in args.model or PEERS
    }
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "overall:",
        "PASS" if all(results.values()) else "FAIL",
        ", ".join(f"{n} {'PASS' if ok else 'FAIL'}" for n, ok in results.items()),
    )


if __name__ == "__main__":
    main()

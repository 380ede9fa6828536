#!/usr/bin/env python3
"""Reference fixtures from Hugging Face transformers itself, for test/model.transformers.test.ts.

Needs PyTorch and transformers (the GPU machine has both; no GPU is used: everything runs on the
CPU in float64). For each tiny config -- Llama-2-style, Llama-3-style (GQA, llama3 rope scaling,
tied embeddings), Mistral-style, and a LlamaForSequenceClassification reward model -- it builds a
random model with transformers, saves it as a Hugging Face folder (float32 safetensors), and
records, computed in float64 from exactly those float32 weights:
  expected.json          logits, per-sequence response log-probs, greedy continuations (and
                         reward scores), the SPPO loss on a few pairs, versions used
  gradients.safetensors  d loss / d parameter for every parameter (HF names), float32
into test/fixtures/transformers/<name>/. The fixtures are small; commit them with this script.

  python3 scripts/make-transformers-fixtures.py [--out test/fixtures/transformers] [--seed 1234]

PairRM (issue 11): a tiny random DebertaV2Model (relative attention with log buckets, c2p and p2c,
shared keys, post-LayerNorm, exact GELU) wrapped with llm-blender's DebertaV2PairRM state-dict
layout (pretrained_model.*, head_layer.1 / head_layer.4), saved as model.safetensors + config.json,
with expected.json holding packed pair sequences (token ids, slot positions), the last hidden
states and the comparison logits, all in float64, into test/fixtures/transformers-pairrm/pairrm/
(test/pairrm.transformers.test.ts). Tokenizer fixtures (the precompiled charsmap, PairRM's golden
ids) come from scripts/make-tokenizer-fixtures.py, which needs no PyTorch.

It can also check that a folder written by sppo-native loads in transformers unchanged and
computes the fixture's logits:
  python3 scripts/make-transformers-fixtures.py --verify-saved SAVED_DIR --against FIXTURE_DIR
  python3 scripts/make-transformers-fixtures.py --only pairrm
Nothing here unpickles data: weights are read and written as safetensors only.
"""
import argparse
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, MistralConfig,
                          MistralForCausalLM)

BASE = dict(hidden_act="silu", attention_bias=False, mlp_bias=False, initializer_range=0.02, use_cache=True)

# Keep in step with src/model/tiny.ts (the fixture folders carry their own config.json anyway).
CONFIGS = {
    "llama2": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
        rope_scaling=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "llama3": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=32),
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=[2, 3])),
    "mistral": (MistralConfig, MistralForCausalLM, dict(
        vocab_size=72, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=1e6,
        sliding_window=48, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "reward": (LlamaConfig, LlamaForSequenceClassification, dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0, num_labels=1)),
}

BETA = 0.1  # eta = 10 keeps the loss and its gradients of order one on random weights


def randomize(model, gen):
    """Matrices normal(0, 1/sqrt(fan_in)), norms 1 + 0.1 normal: activations of order one."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if p.ndim == 1:
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[1]))


def sequences(gen, vocab, count, lo, hi, first=0):
    """Random token lists; `first` > 0 keeps ids below it out (a reward model's pad id: transformers
    finds the scored position from pad ids, the engine from the attention mask)."""
    out = []
    for _ in range(count):
        n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        out.append([int(t) for t in torch.randint(first, vocab, (n,), generator=gen)])
    return out


def seq_logprob(model, tokens, prompt_length):
    ids = torch.tensor([tokens])
    logits = model(input_ids=ids).logits[0]
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return logp[prompt_length - 1:].sum()


def greedy(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):]


def make(name, out_root, seed):
    config_cls, model_cls, kwargs = CONFIGS[name]
    config = config_cls(**BASE, **kwargs)
    config._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model_cls(config).float()
    randomize(model, gen)
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    model = model.double().eval()  # exactly the saved float32 values, now in float64

    vocab = config.vocab_size
    seqs = sequences(gen, vocab, 3, 4, 16, first=1 if name == "reward" else 0)
    expected = {"name": name, "seed": seed, "torch": torch.__version__, "transformers": transformers.__version__,
                "sequences": seqs}
    with torch.no_grad():
        if name == "reward":
            expected["scores"] = [float(model(input_ids=torch.tensor([s])).logits[0, 0]) for s in seqs]
        else:
            expected["logits"] = [model(input_ids=torch.tensor([s])).logits[0].tolist() for s in seqs]
            scored = [{"tokens": s, "promptLength": int(torch.randint(1, len(s), (1,), generator=gen))} for s in seqs]
            expected["scored"] = scored
            expected["sequenceLogprobs"] = [float(seq_logprob(model, x["tokens"], x["promptLength"])) for x in scored]
    if name != "reward":
        prompts = sequences(gen, vocab, 2, 3, 8)
        expected["greedy"] = [{"prompt": p, "tokens": greedy(model, p, 10)} for p in prompts]
        # The SPPO loss (DESIGN.md) on a few pairs; gradients of its mean for every parameter.
        pairs = []
        for _ in range(2):
            c, r = sequences(gen, vocab, 2, 5, 10)
            u = torch.rand(5, generator=gen, dtype=torch.float64).tolist()
            pairs.append({"chosen": {"tokens": c, "promptLength": 2}, "rejected": {"tokens": r, "promptLength": 2},
                          "refChosen": -20 * u[0], "refRejected": -20 * u[1], "chosenProbs": u[2],
                          "chosenProbsWin": u[3], "chosenProbsLose": u[3] * u[4]})
        model.zero_grad()
        eta = 1.0 / BETA
        loss = 0
        for p in pairs:
            sw = seq_logprob(model, p["chosen"]["tokens"], 2) - p["refChosen"]
            sl = seq_logprob(model, p["rejected"]["tokens"], 2) - p["refRejected"]
            loss = loss + 0.5 * ((sw - eta * (p["chosenProbsWin"] - 0.5)) ** 2 + (sl - eta * (p["chosenProbsLose"] - 0.5)) ** 2)
        loss = loss / len(pairs)
        loss.backward()
        expected["pairs"] = pairs
        expected["beta"] = BETA
        expected["loss"] = float(loss)
        grads = {n: p.grad.detach().float().contiguous() for n, p in model.named_parameters()}
        save_file(grads, os.path.join(folder, "gradients.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"{name}: wrote {folder}")


# ---- PairRM ------------------------------------------------------------------------------------
PAIRRM = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
              hidden_act="gelu", layer_norm_eps=1e-7, max_position_embeddings=32, relative_attention=True,
              max_relative_positions=-1, position_buckets=8, pos_att_type=["p2c", "c2p"], share_att_key=True,
              norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0, pad_token_id=0,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# The ids llm-blender gives its slot tokens, shifted into the tiny vocabulary.
PAIRRM_IDS = dict(source_prefix_id=60, cand1_prefix_id=61, cand2_prefix_id=62, cand_prefix_id=63, sep_token_id=2)


class PairRMStateDict(torch.nn.Module):
    """The parameter layout of llm-blender's DebertaV2PairRM (pretrained_model, head_layer), for saving."""

    def __init__(self, config, n_tasks=1):
        super().__init__()
        self.pretrained_model = transformers.DebertaV2Model(config)
        h = config.hidden_size
        self.head_layer = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(2 * h, h), torch.nn.Tanh(),
                                              torch.nn.Dropout(0.0), torch.nn.Linear(h, n_tasks))

    def compare(self, ids, slots):
        """PairRM's logit of one pair: head([e_s; e_1]) - head([e_s; e_2]) at the slot positions."""
        hidden = self.pretrained_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        s, c1, c2 = (hidden[p] for p in slots)
        left = self.head_layer(torch.cat([s, c1]))
        right = self.head_layer(torch.cat([s, c2]))
        return hidden, float((left - right).mean())


def pair_sequence(gen, vocab, src, c1, c2):
    """[CLS] <source> ... [SEP] [CLS] <cand1> ... [SEP] [CLS] <cand2> ... [SEP] with random text ids."""
    body = lambda n: [int(t) for t in torch.randint(4, 59, (n,), generator=gen)]
    ids = [1, PAIRRM_IDS["source_prefix_id"], *body(src), 2]
    slots = [1, len(ids) + 1]
    ids += [1, PAIRRM_IDS["cand1_prefix_id"], *body(c1), 2]
    slots.append(len(ids) + 1)
    ids += [1, PAIRRM_IDS["cand2_prefix_id"], *body(c2), 2]
    return ids, slots


def make_pairrm(out_root, seed):
    config = transformers.DebertaV2Config(**PAIRRM)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = PairRMStateDict(config).float().eval()
    randomize(model, gen)
    folder = os.path.join(out_root, "pairrm")
    os.makedirs(folder, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg = config.to_dict()
    cfg.update(architectures=["DebertaV2PairRM"], model_type="deberta-v2", n_tasks=1, drop_out=0.0, **PAIRRM_IDS)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    model = model.double()
    # Long enough that offsets pass max_relative_positions (32): exact, log and clamped buckets.
    seqs = [pair_sequence(gen, config.vocab_size, a, b, c) for a, b, c in [(5, 20, 30), (1, 1, 1), (30, 12, 25)]]
    expected = {"name": "pairrm", "seed": seed, "torch": torch.__version__, "transformers": transformers.__version__,
                "sequences": [], "slots": [], "hidden": [], "logits": []}
    with torch.no_grad():
        for ids, slots in seqs:
            hidden, logit = model.compare(ids, slots)
            expected["sequences"].append(ids)
            expected["slots"].append(slots)
            expected["hidden"].append(hidden.flatten().tolist())
            expected["logits"].append(logit)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"pairrm: wrote {folder}")


def verify_saved(saved, against):
    """Loads an sppo-native folder in transformers and compares logits with a fixture's."""
    with open(os.path.join(against, "expected.json")) as f:
        expected = json.load(f)
    config = transformers.AutoConfig.from_pretrained(saved)
    cls = LlamaForSequenceClassification if "scores" in expected else transformers.AutoModelForCausalLM
    model = cls.from_pretrained(saved, torch_dtype=torch.float64, attn_implementation="eager").eval()
    worst = 0.0
    with torch.no_grad():
        for i, s in enumerate(expected["sequences"]):
            out = model(input_ids=torch.tensor([s])).logits[0]
            ref = torch.tensor(expected["scores"][i] if "scores" in expected else expected["logits"][i], dtype=torch.float64)
            worst = max(worst, float((out.reshape(ref.shape) - ref).abs().max() / ref.abs().max()))
    print(f"{saved}: {type(model).__name__} ({config.model_type}) loads; max-norm relative logits error {worst:.3g}")
    if worst > 1e-6:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "transformers"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS) + ["pairrm"], help="make only these fixtures")
    ap.add_argument("--pairrm-out", default=os.path.join(os.path.dirname(__file__), "..", "test", "fixtures",
                                                         "transformers-pairrm"))
    ap.add_argument("--verify-saved", help="an sppo-native model folder to load in transformers")
    ap.add_argument("--against", help="the fixture folder whose logits it must reproduce")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    if a.verify_saved:
        if not a.against:
            ap.error("--verify-saved needs --against FIXTURE_DIR")
        verify_saved(a.verify_saved, a.against)
        return
    names = a.only or sorted(CONFIGS) + ["pairrm"]
    for i, name in enumerate(names):
        if name == "pairrm":
            make_pairrm(a.pairrm_out, a.seed + 100)
        else:
            make(name, a.out, a.seed + i)


if __name__ == "__main__":
    main()

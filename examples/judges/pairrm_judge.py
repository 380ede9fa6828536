#!/usr/bin/env python3
"""PairRM (llm-blender) as an sppo-native command judge (docs/judge-protocol.md).

sppo-native runs PairRM natively with `--judge pairrm:<PairRM-hf folder>` (docs/pairrm.md); this
wrapper stays as the alternative that runs llm-blender itself in Python.

UNTESTED in sppo-native's CI: that machine has no PyPI access, so llm-blender could not be
installed there. It follows llm-blender's documented API and the reference SPPO pipeline
(UCLA-AGI/SPPO scripts/rank.py: blender.rank(prompts, candidates, return_scores=True)), whose
scores s_i give P_ij = sigma(s_i - s_j) exactly as sppo-native computes from "scores".

  pip install git+https://github.com/yuchenlin/LLM-Blender.git
  sppo-native train --judge 'command:python examples/judges/pairrm_judge.py'

The reference ranks the chat-templated prompt; this wrapper is given the plain user turn (set
SPPO_PAIRRM_TEMPLATE=<HF tokenizer name> to apply that tokenizer's chat template as rank.py does).
"""
import contextlib
import json
import os
import sys


def main() -> None:
    # llm-blender prints progress to stdout; keep stdout for protocol lines only.
    with contextlib.redirect_stdout(sys.stderr):
        import llm_blender

        blender = llm_blender.Blender()
        blender.loadranker(os.environ.get("SPPO_PAIRRM_MODEL", "llm-blender/PairRM"))
        tokenizer = None
        if os.environ.get("SPPO_PAIRRM_TEMPLATE"):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(os.environ["SPPO_PAIRRM_TEMPLATE"])

    def out(obj) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def template(text: str) -> str:
        if tokenizer is None:
            return text
        # As rank.py: render a two-turn chat with a placeholder answer, keep what precedes it.
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}, {"role": "assistant", "content": "None"}], tokenize=False
        )
        return rendered.split("None")[0]

    out({"protocol": "sppo-judge", "version": 1, "name": "pairrm"})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = {}
        try:
            req = json.loads(line)
            with contextlib.redirect_stdout(sys.stderr):
                scores = blender.rank([template(req["prompt"])], [req["responses"]], return_scores=True, batch_size=1)
            out({"id": req["id"], "scores": [float(s) for s in scores[0]]})
        except Exception as e:  # report per request; the judge stays up
            out({"id": req.get("id"), "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()

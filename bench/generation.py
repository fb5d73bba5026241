"""Generation throughput: a generate run's sampling path against a bare `transformers` generate loop.

Ours is `trainer.ml.generate` called directly: `read_prompts` on the prompt file, then `sample_prompts` (chat
template or plain text per prompt, batches of similar length, left padding, one `model.generate` per batch with the
run's GenerationConfig, a per-batch seed, EOS search, token counts and decoding). The bare loop is what a user would
write: read the JSONL, `tokenizer(batch, padding=True)` with left padding in file order, `model.generate` with the
same sampling settings (temperature, top_p, top_k=0, max_new_tokens, num_return_sequences), `batch_decode`. Both run
in this process on the same loaded model (a tiny random Llama from `trainer.ml.tiny.build_tiny_model`), the same
prompts and batch size, on one thread; they alternate (ours, bare, ours, bare...) so a change in load hits both.
A third side, "bare, our batches", feeds the bare loop our length-sorted batches: the difference between it and ours
is our bookkeeping alone, without the padding that sorting saves.

Figures: samples (responses) per CPU second (time.process_time) and per wall second, the median over the repeats,
and the ratio ours / bare taken within each repeat, then the median.

    .venv/bin/python bench/generation.py
    .venv/bin/python bench/generation.py --prompts 64 --max-new-tokens 32 --batch-size 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "the",
    "model",
    "explains",
    "a",
    "question",
    "with",
    "short",
    "reply",
    "long",
    "story",
    "facts",
    "code",
    "poem",
    "data",
    "clearly",
    "and",
    "then",
]


def write_prompts(path: Path, n: int, *, seed: int) -> Path:
    """n prompts of 4 to 40 words; one in four as chat messages."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        text = " ".join(rng.choices(WORDS, k=rng.randint(4, 40)))
        row = {"id": f"p{i}", "stratum": "usage", "category": ""}
        row.update({"messages": [{"role": "user", "content": text}]} if i % 4 == 3 else {"prompt": text})
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def prompt_texts(tokenizer, rows: list[dict]) -> list[str]:
    return [
        tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False)
        if r.get("messages")
        else r["prompt"]
        for r in rows
    ]


def bare_loop(model, tokenizer, prompt_file: Path, args, order: list[int] | None = None) -> int:
    """The few lines a transformers user writes. Returns the number of responses."""
    import torch

    rows = [json.loads(line) for line in prompt_file.read_text().splitlines() if line.strip()]
    if order is not None:
        rows = [rows[i] for i in order]
    texts = prompt_texts(tokenizer, rows)
    tokenizer.padding_side = "left"
    torch.manual_seed(args.seed)
    responses = []
    for start in range(0, len(texts), args.batch_size):
        batch = tokenizer(texts[start : start + args.batch_size], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **batch,
                do_sample=True,
                temperature=args.temperature,
                top_p=1.0,
                top_k=0,
                max_new_tokens=args.max_new_tokens,
                num_return_sequences=args.n,
                pad_token_id=tokenizer.pad_token_id,
            )
        responses.extend(tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True))
    return len(responses)


def ours(model, tokenizer, prompt_file: Path, args) -> int:
    from trainer.ml.generate import SamplingSettings, read_prompts, sample_prompts

    prompts = read_prompts(prompt_file)
    settings = SamplingSettings(
        n=args.n,
        temperature=args.temperature,
        top_p=1.0,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    return len(sample_prompts(model, tokenizer, prompts, settings))


def timed(function) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    samples = function()
    return samples, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from trainer.ml.generate import batches_by_length, encode_prompt, load_model, read_prompts
    from trainer.ml.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tandem-bench-gen-") as scratch:
        scratch = Path(scratch)
        model_dir = build_tiny_model(scratch / "model", hidden_size=args.hidden, layers=args.layers, heads=4)
        prompt_file = write_prompts(scratch / "prompts.jsonl", args.prompts, seed=args.seed)
        model, tokenizer = load_model(str(model_dir))
        encoded = [encode_prompt(tokenizer, p) for p in read_prompts(prompt_file)]
        our_order = [i for batch in batches_by_length([len(e) for e in encoded], args.batch_size) for i in batch]
        sides = {
            "ours": lambda: ours(model, tokenizer, prompt_file, args),
            "bare": lambda: bare_loop(model, tokenizer, prompt_file, args),
            "bare, our batches": lambda: bare_loop(model, tokenizer, prompt_file, args, order=our_order),
        }
        for function in sides.values():  # warm-up: first calls pay for lazy imports and allocator growth
            function()
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for repeat in range(args.repeats):
            for name, function in sides.items():
                samples, cpu, wall = timed(function)
                figures[name].append((samples / cpu, samples / wall))
            row = " ".join(f"{name}: {figures[name][-1][0]:.1f}/CPU s {figures[name][-1][1]:.1f}/s" for name in sides)
            print(f"repeat {repeat + 1}: {row}", flush=True)

    print(
        f"\n{args.prompts} prompts x n={args.n}, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
        f"tiny Llama hidden {args.hidden} x {args.layers} layers, {args.threads} thread(s), torch {torch.__version__}"
    )
    print("| side | samples per CPU s (median) | samples per s (median) | ratio ours/side, CPU | ratio, wall |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in sides:
        cpu = statistics.median(f[0] for f in figures[name])
        wall = statistics.median(f[1] for f in figures[name])
        ratio_cpu = statistics.median(o[0] / b[0] for o, b in zip(figures["ours"], figures[name], strict=True))
        ratio_wall = statistics.median(o[1] / b[1] for o, b in zip(figures["ours"], figures[name], strict=True))
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {ratio_cpu:.3f} | {ratio_wall:.3f} |")


if __name__ == "__main__":
    main()

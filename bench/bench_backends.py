"""FastLM vs lm-eval's HFLM: same model, same requests, alternating, tokens/s and MFU.

    .venv/bin/python bench/bench_backends.py --out bench/results/backends.md

Workloads (real lm-eval Instances, built offline from Python's own help text):
  * mc:    5-shot, 4-choice sentence completion (one context, four continuations per item);
  * ppl:   loglikelihood_rolling over help-topic documents of varied length (many exceed max_length);
  * gen:   3-shot arithmetic, greedy generate_until with until=["\n"].
Models: a ~10M-parameter Llama made on the fly, and the largest model of the embedded ladder
(`zoo/<size>/step<N>/`), or, when it is absent, a random-weight model of the same shape.
`--model pythia1b --device cuda --dtype bfloat16` runs the GPU variant asked for in the issue.

Tokens per second count the same tokens for both backends, so their ratio is the ratio of wall times:
  mc   every request's context + continuation tokens, as lm-eval's HF backend feeds them;
  ppl  the documents' tokens;
  gen  prompt tokens + generated tokens (the returned text re-encoded, plus one stop token).
MFU = 2 * N * tokens/s / peak, N = weights of all Linear layers (output head included), peak =
the best dense matmul throughput measured by this script on this machine in the model's dtype.
FastLM skips work HFLM does (repeated contexts, padding), so its MFU on the workload's tokens can pass
100%; "hw MFU" uses the tokens each backend really fed the model ("fed", padding included) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def matmul_peak(device: str, dtype, n: int = 2048, reps: int = 6) -> float:
    """Best measured FLOP/s of an n x n matmul."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---- models -------------------------------------------------------------------------------------
def llama(tokenizer, d, layers, heads, ffn, max_len, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=d, intermediate_size=ffn, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_len,
                      tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, initializer_range=0.1)
    return LlamaForCausalLM(cfg).eval()


def pythia1b(tokenizer):
    """Pythia-1B's shape (GPT-NeoX, 16 layers, d=2048) with random weights; no download."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=8, max_position_embeddings=2048, rotary_pct=0.25,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    return GPTNeoXForCausalLM(cfg).eval()


def find_zoo(root: Path) -> Path | None:
    """The highest step of the widest size under zoo/, if the ladder has been built."""
    best = None
    for cfg in root.glob("*/step*/config.json"):
        try:
            conf = json.loads(cfg.read_text())
            key = (conf["hidden_size"] * conf["num_hidden_layers"], int(cfg.parent.name[4:]))
        except (KeyError, ValueError, json.JSONDecodeError):
            continue
        if best is None or key > best[0]:
            best = (key, cfg.parent)
    return best[1] if best else None


def load_models(args):
    """[(label, model, tokenizer, note)] for the requested model set."""
    import torch
    from helpers_models import make_tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, args.dtype)
    tok = make_tokenizer()
    out = []
    if args.model in ("cpu", "small"):
        m = llama(tok, d=384, layers=6, heads=6, ffn=1024, max_len=512)
        out.append(("llama-10M (random, d=384, 6 layers, ctx 512)", m, tok, "made on the fly"))
    if args.model in ("cpu", "zoo"):
        path = find_zoo(Path(args.zoo_root))
        if path is not None:
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
            ztok = AutoTokenizer.from_pretrained(path)
            label = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            out.append((f"zoo {label}", m, ztok, "trained embedded-ladder checkpoint (bf16 weights, run in fp32)"))
        else:
            m = llama(tok, d=256, layers=4, heads=8, ffn=704, max_len=256)
            out.append(("zoo-shape (random, d=256, 4 layers, ffn 704, ctx 256)", m, tok,
                        "zoo/ not built yet: random weights, same shape as the ladder's largest size"))
    if args.model == "pythia1b":
        out.append(("pythia-1b shape (random)", pythia1b(tok), tok, "Pythia-1B config, random weights"))
    return [(label, m.to(device=args.device, dtype=dtype), t, note) for label, m, t, note in out]


# ---- workloads ----------------------------------------------------------------------------------
def _sentences():
    from helpers_models import english_text

    raw = english_text().replace("\n", " ").split(". ")
    return [s.strip() for s in raw if 40 <= len(s.strip()) <= 160 and s.count(" ") >= 8]


def mc_requests(n_docs: int):
    from lm_eval.api.instance import Instance

    sents = _sentences()
    reqs = []
    for doc in range(n_docs):
        def split(s):
            words = s.split()
            return " ".join(words[:6]), " ".join(words[6:14])

        shots = "".join(f"Complete: {a}\nAnswer: {b}\n\n" for a, b in map(split, sents[doc * 9 : doc * 9 + 5]))
        q, gold = split(sents[doc * 9 + 5])
        choices = [gold] + [split(sents[doc * 9 + 6 + k])[1] for k in range(3)]
        for i, c in enumerate(choices):
            reqs.append(Instance("loglikelihood", {}, (f"{shots}Complete: {q}\nAnswer:", f" {c}"), i,
                                 metadata=("mc", doc, 1)))
    return reqs


def ppl_requests(n_docs: int):
    from pydoc_data.topics import topics

    from lm_eval.api.instance import Instance

    keys = sorted(topics)[:: max(1, len(topics) // n_docs)][:n_docs]
    return [Instance("loglikelihood_rolling", {}, (topics[k][:4000],), 0, metadata=("ppl", i, 1))
            for i, k in enumerate(keys)]


def gen_requests(n_docs: int):
    import random

    from lm_eval.api.instance import Instance

    rng = random.Random(0)
    reqs = []
    for doc in range(n_docs):
        pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(4)]
        shots = "".join(f"Q: What is {a} plus {b}?\nA: {a + b}\n" for a, b in pairs[:3])
        a, b = pairs[3]
        reqs.append(Instance("generate_until", {}, (f"{shots}Q: What is {a} plus {b}?\nA:",
                                                   {"until": ["\n"], "max_gen_toks": 16}), 0, metadata=("gen", doc, 1)))
    return reqs


def zoo_requests(mc_docs: int, ppl_docs: int, gen_docs: int):
    """The harness's own tasks (tasks/zoo): zoo_largest 5-shot, zoo_english, zoo_arith_2d_add 3-shot."""
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(REPO / "tasks" / "zoo")).load(
        ["zoo_largest", "zoo_english", "zoo_arith_2d_add"])["tasks"]
    from lm_eval.api.samplers import FirstNSampler

    out = {}
    for kind, name, limit, shots in [("mc", "zoo_largest", mc_docs, 5), ("mc_first_n", "zoo_largest", mc_docs, 5),
                                     ("ppl", "zoo_english", ppl_docs, 0), ("gen", "zoo_arith_2d_add", gen_docs, 3)]:
        task = tasks[name]
        task.set_config(key="num_fewshot", value=shots)
        if kind == "mc_first_n":  # the same 5 examples in front of every item, as lm-eval does for MMLU
            task.sampler = FirstNSampler(list(task.fewshot_docs()), rnd=None)
        task.set_fewshot_seed(1234)
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        out[kind] = list(task.instances)
    return out


def workloads(args):
    """{kind: instances} and a sentence saying where they come from."""
    if args.workload == "zoo":
        return zoo_requests(args.mc_docs, args.ppl_docs, args.gen_docs), (
            "the harness's tasks under tasks/zoo: mc = zoo_largest 5-shot (4 choices), mc_first_n = the same with "
            "lm-eval's first_n few-shot sampler (one set of 5 examples for every item, as for MMLU), ppl = zoo_english "
            "(held-out documentation passages, rolling), gen = zoo_arith_2d_add 3-shot (until \\n, max 8 tokens)")
    return {"mc": mc_requests(args.mc_docs), "ppl": ppl_requests(args.ppl_docs), "gen": gen_requests(args.gen_docs)}, (
        "synthetic: mc = 5-shot 4-choice sentence completion, ppl = pydoc topics (<= 4000 chars), "
        "gen = 3-shot arithmetic (until \\n, max 16 tokens)")


def workload_tokens(lm, kind, reqs, outputs) -> int:
    if kind.startswith("mc"):
        return sum(len(c) + len(x) for c, x in (lm._encode_pair(*r.args) for r in reqs))
    if kind == "ppl":
        return sum(len(lm.tok_encode(r.args[0])) for r in reqs)
    return sum(len(lm.tok_encode(r.args[0])) + len(lm.tok_encode(o)) + 1 for r, o in zip(reqs, outputs))


def run(lm, kind, reqs, device):
    _sync(device)
    t = time.perf_counter()
    if kind.startswith("mc"):
        out = lm.loglikelihood(reqs, disable_tqdm=True)
    elif kind == "ppl":
        out = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
    else:
        out = lm.generate_until(reqs, disable_tqdm=True)
    _sync(device)
    return time.perf_counter() - t, out


def agreement(kind, a, b) -> str:
    if kind.startswith("mc"):
        d = max(abs(x[0] - y[0]) for x, y in zip(a, b))
        flags = sum(x[1] == y[1] for x, y in zip(a, b))
        return f"max abs diff {d:.1e} nats, greedy flags {flags}/{len(a)} equal"
    if kind == "ppl":
        rel = max(abs(x - y) / max(abs(x), 1e-9) for x, y in zip(a, b))
        return f"max abs diff {max(abs(x - y) for x, y in zip(a, b)):.1e} nats on document totals (relative {rel:.0e})"
    return f"{sum(x == y for x, y in zip(a, b))}/{len(a)} generations identical"


def linear_params(model) -> int:
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def bench_model(label, model, tok, note, args, peak, lines):
    from lm_eval.models.huggingface import HFLM

    from harness.backends.fast.lm import FastLM

    hf = HFLM(pretrained=model, tokenizer=tok, device=args.device, batch_size=args.batch_size)
    fast = FastLM(model, tok, device=args.device, batch_size=args.batch_size)
    n_lin = linear_params(model)
    n_total = sum(p.numel() for p in model.parameters())
    lines += [f"### {label}", "", f"{note}; {n_total / 1e6:.2f}M parameters, N = {n_lin / 1e6:.2f}M in Linear "
              f"layers; max_length {fast.max_length}; batch_size {args.batch_size}; "
              f"FastLM mode: prefix sharing {'on' if fast._parts.mask else 'off'}, "
              f"head on scored positions {'on' if fast._parts.head is not None else 'off'}.", "",
              "| workload | requests | tokens | HFLM s | FastLM s | HFLM tok/s | FastLM tok/s | fast/hf | "
              "MFU HFLM | MFU FastLM | fed HFLM | fed FastLM | hw MFU HFLM | hw MFU FastLM | same numbers |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    # Tokens each backend actually feeds the model (padding and repeated contexts included): counted
    # at the input embedding, which every forward pass of either backend goes through.
    fed = {"n": 0}
    hook = model.get_input_embeddings().register_forward_hook(
        lambda mod, inp, out: fed.__setitem__("n", fed["n"] + inp[0].numel()))
    summary, notes = {}, []
    for kind, reqs in args.requests.items():
        times = {"hf": [], "fast": []}
        outs, fed_by = {}, {}
        for rep in range(args.repeats):
            order = [("hf", hf), ("fast", fast)] if rep % 2 == 0 else [("fast", fast), ("hf", hf)]
            for name, lm in order:
                fed["n"] = 0
                sec, out = run(lm, kind, reqs, args.device)
                times[name].append(sec)
                outs[name], fed_by[name] = out, fed["n"]
        tokens = workload_tokens(fast, kind, reqs, outs["fast"])
        if kind == "ppl":  # HFLM's own fp32 noise: the same requests at batch size 1
            one = HFLM(pretrained=model, tokenizer=tok, device=args.device, batch_size=1)
            noise = max(abs(x - y) for x, y in zip(outs["hf"], run(one, kind, reqs, args.device)[1]))
            gap = max(abs(x - y) for x, y in zip(outs["hf"], outs["fast"]))
            notes.append(f"{kind} on {label}: HFLM itself moves document totals by up to {noise:.1e} nats between "
                         f"batch size {args.batch_size} and 1 (fp32 rounding); FastLM vs HFLM: {gap:.1e} nats.")
        t_hf, t_fast = statistics.median(times["hf"]), statistics.median(times["fast"])
        tps_hf, tps_fast = tokens / t_hf, tokens / t_fast
        mfu = lambda n, sec: 2 * n_lin * n / sec / peak  # noqa: E731
        summary[kind] = t_hf / t_fast
        lines.append(f"| {kind} | {len(reqs)} | {tokens} | {t_hf:.2f} | {t_fast:.2f} | {tps_hf:,.0f} | {tps_fast:,.0f} | "
                     f"**{t_hf / t_fast:.2f}x** | {mfu(tokens, t_hf):.1%} | {mfu(tokens, t_fast):.1%} | "
                     f"{fed_by['hf']} | {fed_by['fast']} | {mfu(fed_by['hf'], t_hf):.1%} | "
                     f"{mfu(fed_by['fast'], t_fast):.1%} | {agreement(kind, outs['hf'], outs['fast'])} |")
        print(lines[-1], flush=True)
    hook.remove()
    lines += [""] + notes
    lines.append("")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["cpu", "small", "zoo", "pythia1b"], default="cpu",
                   help="cpu = the ~10M model and the ladder's largest (default)")
    p.add_argument("--zoo-root", default=str(REPO / "zoo"), help="where the embedded ladder lives")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy machine")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds per workload")
    p.add_argument("--mc-docs", type=int, default=100)
    p.add_argument("--ppl-docs", type=int, default=100)
    p.add_argument("--gen-docs", type=int, default=96)
    p.add_argument("--workload", choices=["zoo", "synthetic"],
                   default="zoo" if (REPO / "tasks" / "zoo" / "zoo_largest.yaml").exists() else "synthetic")
    p.add_argument("--out", default=None, help="write the markdown report here")
    args = p.parse_args()

    import torch
    import transformers
    import lm_eval

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    load_before = os.getloadavg()
    peak = matmul_peak(args.device, dtype, n=8192 if args.device.startswith("cuda") else 2048)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    lines = ["# FastLM vs lm-eval HFLM", "",
             "Command: `.venv/bin/python bench/bench_backends.py " + " ".join(sys.argv[1:]) + "`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
             f"{torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
             f"lm_eval {lm_eval.__version__ if hasattr(lm_eval, '__version__') else '?'}; device {args.device}, "
             f"dtype {args.dtype}; git {commit}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"Measured matmul peak ({args.dtype}, square matmul, best of 6): **{peak / 1e9:.0f} GFLOP/s**. Load average before "
             f"the run: {load_before[0]:.2f} (1 min).", ""]
    args.requests, source = workloads(args)
    lines += [f"Requests: {source}; the same Instances for both backends. Each workload runs "
              f"{args.repeats} alternating rounds (HFLM first in odd rounds, FastLM first in even ones); "
              "times are the median round.", ""]
    summaries = {}
    for label, model, tok, note in load_models(args):
        print(f"== {label}", flush=True)
        summaries[label] = bench_model(label, model, tok, note, args, peak, lines)
    goals = {"mc": 2.0, "ppl": 1.2, "gen": 1.0}
    lines += ["Goals (fast/hf): " + "; ".join(
        f"{kind} >= {goal:.1f}x: " + ", ".join(f"{ratios[kind]:.2f}x {'met' if ratios[kind] >= goal else 'NOT met'}"
                                               for ratios in summaries.values())
        for kind, goal in goals.items()) + " (models in the order above).", ""]
    lines.append(f"Load average after the run: {os.getloadavg()[0]:.2f} (1 min).")
    if not args.device.startswith("cuda"):
        lines += ["", "GPU: no GPU was available to this task (the device machine was not lent), so the issue's "
                  "GPU run (Pythia-1B shape, random weights, bf16) was not done; on a GPU machine run "
                  "`.venv/bin/python bench/bench_backends.py --model pythia1b --device cuda --dtype bfloat16`."]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FastLM must return what lm-eval's HFLM returns, request by request, on real lm-eval Instances.

Two tiny random-weight architectures (Llama, GPT-NeoX), a small max_length so that contexts get
truncated and rolling documents span many windows, and a byte-level BPE trained offline.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")

try:
    from helpers_models import english_text, make_llama, make_neox, make_tokenizer
except ImportError:  # tests/ imported as a package
    from tests.helpers_models import english_text, make_llama, make_neox, make_tokenizer

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

from harness.backends.fast.lm import FastLM  # noqa: E402
from harness.backends.fast.pack import make_units, split_request  # noqa: E402

pytestmark = pytest.mark.slow
MAX_LEN = 48
TOL = 1e-4


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module", params=["llama", "neox"])
def backends(request, tokenizer):
    model = (make_llama(tokenizer, max_len=MAX_LEN, init=0.1) if request.param == "llama"
             else make_neox(tokenizer, max_len=MAX_LEN))
    hf = HFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=3)
    fast = FastLM(model, tokenizer, device="cpu", batch_size=5)
    return hf, fast, model


def _sentences(n: int, start: int = 0) -> list[str]:
    parts = [s.strip() for s in english_text().replace("\n", " ").split(". ") if len(s.strip()) > 20]
    return parts[start : start + n]


def _multiple_choice() -> list[Instance]:
    """Few-shot items with 4 choices each; some contexts end in a space; some overflow MAX_LEN."""
    reqs: list[Instance] = []
    sents = _sentences(60)
    for doc in range(8):
        shots = " ".join(sents[doc * 5 + k] + "." for k in range(1 + doc % 4))
        context = f"{shots}\nQuestion: {sents[doc + 40][:30]}\nAnswer:" + (" " if doc % 2 else "")
        choices = [sents[doc + 40][30:60], " yes", "no", f" {doc} and {doc + 7}"]
        for c, choice in enumerate(choices):
            reqs.append(Instance("loglikelihood", {}, (context, choice), c, metadata=("mc", doc, 1)))
    reqs.append(Instance("loglikelihood", {}, ("", "An empty context."), 0, metadata=("mc", 99, 1)))
    # Items behind the same few-shot examples (lm-eval's first_n sampler): a root shared across items.
    fixed = f"{sents[50]}.\n"
    for doc in range(6):
        for c, choice in enumerate([" yes", " no", f" {doc}", sents[51 + doc][:12]]):
            reqs.append(Instance("loglikelihood", {}, (f"{fixed}Q{doc}: {sents[52 + doc][:25]}\nA:", choice), c,
                                 metadata=("mc", 100 + doc, 1)))
    return reqs


def test_loglikelihood_matches_hflm(backends):
    hf, fast, _ = backends
    reqs = _multiple_choice()
    want = hf.loglikelihood(reqs, disable_tqdm=True)
    got = fast.loglikelihood(reqs, disable_tqdm=True)
    assert len(got) == len(want)
    for (lw, gw), (lg, gg) in zip(want, got, strict=True):
        assert abs(lw - lg) < TOL
        assert gw == gg


def test_prefix_sharing_is_on_and_batch_size_does_not_matter(backends, tokenizer):
    _, fast, model = backends
    assert fast._parts.mask == "bool"  # the SDPA models here honour custom masks: sharing is really tested
    reqs = _multiple_choice()
    scored = [split_request(*fast._encode_pair(*r.args), MAX_LEN) for r in reqs if r.args[0]]
    units = make_units(scored, 4 * MAX_LEN)
    assert any(len(u.members) >= 3 for u in units)  # some contexts are shared
    assert any(len(u.branches) >= 2 for u in units)  # and some few-shot roots across items
    subset = reqs[::2]  # every other request: still shared contexts and roots, half the work
    one = FastLM(model, tokenizer, device="cpu", batch_size=1).loglikelihood(subset, disable_tqdm=True)
    many = fast.loglikelihood(subset, disable_tqdm=True)
    assert [g for _, g in one] == [g for _, g in many]
    assert max(abs(a - b) for (a, _), (b, _) in zip(one, many, strict=True)) < 1e-5


def test_rolling_matches_hflm_on_documents_longer_than_max_length(backends):
    hf, fast, _ = backends
    text = english_text()
    lengths = [30, 700, 90, 1200, 5, 400]
    docs = [Instance("loglikelihood_rolling", {}, (text[i * 2000 : i * 2000 + n],), 0, metadata=("ppl", i, 1))
            for i, n in enumerate(lengths)]
    assert len(fast.tok_encode(docs[3].args[0])) > 4 * MAX_LEN
    want = hf.loglikelihood_rolling(docs, disable_tqdm=True)
    got = fast.loglikelihood_rolling(docs, disable_tqdm=True)
    for w, g in zip(want, got, strict=True):
        assert abs(w - g) < TOL


def _gen_requests(until: list[str], max_gen_toks: int) -> list[Instance]:
    sents = _sentences(10, start=100)
    return [Instance("generate_until", {}, (f"{s}\nQ: {i} + 1 =", {"until": until, "max_gen_toks": max_gen_toks}),
                     0, metadata=("gen", i, 1)) for i, s in enumerate(sents)]


def test_generation_matches_hflm_with_stop_strings(backends):
    hf, fast, _ = backends
    stops = [" a", "e", "o", "\n"]
    reqs = _gen_requests(stops, 20) + _gen_requests(["\n\n"], 12)[:4]
    want = hf.generate_until(reqs, disable_tqdm=True)
    got = fast.generate_until(reqs, disable_tqdm=True)
    assert got == want
    # The stop strings really cut something: the same prompts without them give longer texts.
    uncut = fast.generate_until(_gen_requests([], 20)[:6], disable_tqdm=True)
    cut = got[: len(uncut)]
    assert any(len(c) < len(u) and u.startswith(c) for c, u in zip(cut, uncut, strict=True))
    assert all(not any(s in c for s in stops) for c in cut)


def test_static_cache_drops_finished_rows_and_changes_nothing(tokenizer, monkeypatch):
    """The preallocated KV cache is really used, finished rows really leave it, and the tokens equal
    those of the dynamic cache (the path taken where a model has no static cache) and of a batch
    whose finished rows cannot leave. Llama only: the
    random GPT-NeoX writes the same text after every prompt, so its rows all finish together."""
    import harness.backends.fast.generate as fg

    model = make_llama(tokenizer, max_len=MAX_LEN, init=0.1)
    fast = FastLM(model, tokenizer, device="cpu", batch_size=5)
    cache = fg._static_cache(model, 16)
    assert cache is not None
    contexts = [fast._encode_prompt(r.args[0])[-20:] for r in _gen_requests(["\n"], 8)]
    run = lambda: fg.greedy_batch(model, fast.tokenizer, contexts, [" a", "e", "o"], 8,  # noqa: E731
                                  {fast.eot_token_id}, fast._pad_id(), torch.device("cpu"))
    dropped: list[int] = []
    select = fg._select_rows
    monkeypatch.setattr(fg, "_select_rows", lambda c, sel: dropped.append(len(sel)) or select(c, sel))
    static_tokens = run()
    assert dropped and all(dropped[i] > dropped[i + 1] for i in range(len(dropped) - 1))
    assert len({len(t) for t in static_tokens}) > 1  # rows finished at different steps
    monkeypatch.setattr(fg, "_static_cache", lambda m, n: None)
    assert run() == static_tokens
    # A cache that cannot drop rows keeps them in the batch, ignored: still the same tokens.
    monkeypatch.setattr(fg, "_select_rows", lambda c, sel: False)
    assert run() == static_tokens


@pytest.mark.gpu
def test_matches_hflm_on_cuda_in_fp32(tokenizer):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model = make_llama(tokenizer, max_len=MAX_LEN, init=0.1).to("cuda")
    hf = HFLM(pretrained=model, tokenizer=tokenizer, device="cuda", batch_size=3)
    fast = FastLM(model, tokenizer, device="cuda", batch_size=5)
    reqs = _multiple_choice()
    want, got = hf.loglikelihood(reqs, disable_tqdm=True), fast.loglikelihood(reqs, disable_tqdm=True)
    assert max(abs(a - b) for (a, _), (b, _) in zip(want, got, strict=True)) < 1e-3  # TF32 matmuls on GPU
    gens = _gen_requests([" a", "e", "o", "\n"], 20)
    assert fast.generate_until(gens, disable_tqdm=True) == hf.generate_until(gens, disable_tqdm=True)

"""Completion estimates and calibration on synthetic histories with known distributions."""

from __future__ import annotations

import math
import random
import warnings

import pytest

from llmbudget import InvalidUsage
from llmbudget.core.samples import EstimateSample
from llmbudget.tokens import (
    CompletionEstimator,
    MarginTable,
    TokenizerMismatchWarning,
    calibrate,
    check_prompt_mismatch,
    estimate_completion,
    percentile,
    required_margin,
)


def _s(model: str, op: str, est_p: int, act_p: int, est_c: int, act_c: int) -> EstimateSample:
    return EstimateSample(model, op, est_p, act_p, est_c, act_c, 0.0)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7], 0.5) == 7
    with pytest.raises(InvalidUsage):
        percentile([], 0.5)


def test_estimate_prefers_max_tokens_then_history_then_default() -> None:
    hist = [_s("m", "chat", 10, 10, 0, n) for n in range(1, 201)]
    hist += [_s("m", "other", 10, 10, 0, 5000)] * 50
    assert estimate_completion("m", "chat", max_tokens=77, samples=hist).source == "max_tokens"
    e = estimate_completion("m", "chat", samples=hist)
    assert (e.tokens, e.source, e.samples) == (198, "history", 200)
    few = estimate_completion("m", "chat", samples=hist[:5], default=333)
    assert (few.tokens, few.source, few.samples) == (333, "default", 5)
    assert estimate_completion("n", "chat", samples=hist).source == "default"
    est = CompletionEstimator(hist)
    assert est.estimate("m", "chat") == e
    assert est.estimate("m", "other").tokens == 5000
    assert est.estimate("m", "chat", max_tokens=9).tokens == 9
    assert est.estimate("zzz", "chat").tokens == 4096


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_max_tokens(bad: object) -> None:
    with pytest.raises(InvalidUsage, match="max_tokens"):
        estimate_completion("m", "chat", max_tokens=bad)  # type: ignore[arg-type]


def test_learned_percentile_converges_to_the_true_quantile() -> None:
    rng = random.Random(7)
    # completions ~ exponential with mean 300: the true 99th percentile is 300 * ln(100)
    hist = [_s("m", "op", 50, 50, 0, int(rng.expovariate(1 / 300))) for _ in range(20_000)]
    e = estimate_completion("m", "op", samples=hist)
    assert e.tokens == pytest.approx(300 * math.log(100), rel=0.06)
    # and fresh calls exceed it about 1% of the time
    fresh = [int(rng.expovariate(1 / 300)) for _ in range(20_000)]
    assert sum(x > e.tokens for x in fresh) / len(fresh) == pytest.approx(0.01, abs=0.004)


def test_required_margin_small_cases() -> None:
    assert required_margin([]) == 0.0
    assert required_margin([(100, 90), (100, 100)]) == 0.0
    assert required_margin([(100, 150)]) == pytest.approx(0.5)
    # 200 samples at target 1%: two misses allowed, so the third-worst ratio decides
    pairs = [(100, 100)] * 197 + [(100, 300), (100, 200), (100, 120)]
    assert required_margin(pairs, 0.01) == pytest.approx(0.2)
    assert required_margin([(0, 5)] * 3) == 10.0


def test_calibration_converges_on_a_synthetic_history() -> None:
    """Actual = raw estimate x U(0.6, 1.4): the margin that keeps misses at 1% is 0.392."""
    rng = random.Random(11)
    table = MarginTable()

    def day(n: int) -> list[EstimateSample]:
        out = []
        for _ in range(n):
            est_p, est_c = rng.randint(100, 2000), rng.randint(50, 1000)
            f = rng.uniform(0.6, 1.4)
            out.append(
                _s("claude-x", "summarize", est_p, round(est_p * f), est_c, round(est_c * f))
            )
        return out

    history: list[EstimateSample] = []
    shares = []
    for _ in range(6):
        batch = day(2000)
        rows = calibrate(batch, margins=table)
        shares.append(rows[0].under_share)
        history += batch
        table.update_from(calibrate(history))
    assert shares[0] > 0.3  # no margin: about half the calls were under-estimated
    assert all(s <= 0.02 for s in shares[1:])
    final = calibrate(history, margins=table)[0]
    assert final.recommended_margin == pytest.approx(0.392, abs=0.02)
    assert final.under_share <= 0.01
    assert final.bias == pytest.approx(math.log(1.4 / 0.6) / 0.8 - 1, abs=0.01)  # E[1/f] - 1
    assert table.reserve("claude-x", "summarize", 1000) == math.ceil(
        1000 * (1 + table.get("claude-x", "summarize"))
    )


def test_calibration_report_fields() -> None:
    rows = calibrate(
        [_s("a", "x", 100, 100, 100, 50)] * 10 + [_s("a", "y", 100, 200, 0, 0)] * 10,
        margins={("a", "y"): 0.5},
    )
    assert [(r.model, r.operation) for r in rows] == [("a", "x"), ("a", "y")]
    x, y = rows
    assert x.under_share == 0.0
    assert x.completion_bias == pytest.approx(1.0)
    assert x.bias == pytest.approx(200 / 150 - 1)
    assert y.margin == 0.5
    assert y.under_share == 1.0  # 200 > ceil(100 * 1.5)
    assert y.recommended_margin == pytest.approx(1.0)
    with pytest.raises(InvalidUsage):
        calibrate([], target=1.5)


def test_mismatch_warns_once_per_model_with_both_numbers() -> None:
    assert check_prompt_mismatch("mm-model-a", 100, 101) is False
    assert check_prompt_mismatch("mm-model-a", 1000, 1015) is False  # within 2%
    with pytest.warns(TokenizerMismatchWarning, match=r"we counted 100 .* reported 130"):
        assert check_prompt_mismatch("mm-model-a", 100, 130) is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_prompt_mismatch("mm-model-a", 100, 140) is True
    with pytest.warns(TokenizerMismatchWarning, match="mm-model-b"):
        check_prompt_mismatch("mm-model-b", 50, 10)
    with pytest.raises(InvalidUsage):
        check_prompt_mismatch("mm-model-c", -1, 10)

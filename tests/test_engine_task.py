"""The GSM8K-format task: answers are right, generation is a pure function of seeds, rewards read numbers like GSM8K."""

from __future__ import annotations

import re

import pytest

from harness.engines.embedded.model import decode, encode
from harness.engines.embedded.task import ProblemSet, extract_answer, make_problem, reward


def _solve(question: str) -> int:
    """Recompute the answer from the question text alone: '<name> has S <item>, <verb> a, <verb> b. X?'."""
    signs = {"gets": 1, "buys": 1, "finds": 1, "loses": -1, "sells": -1, "eats": -1}
    total = int(re.search(r"has (\d+)", question).group(1))
    for verb, amount in re.findall(r"(gets|buys|finds|loses|sells|eats) (\d+)", question):
        total += signs[verb] * int(amount)
    return total


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_reference_answers_match_the_question(difficulty: int) -> None:
    for i in range(200):
        p = make_problem(0, "train/1", i, difficulty, 20)
        assert p.answer == f"#### {p.value}" and p.value >= 0
        assert _solve(p.question) == p.value
        assert len(re.findall(r"(gets|buys|finds|loses|sells|eats)", p.question)) == difficulty
        assert decode(encode(p.question)) == p.question


def test_problems_are_a_pure_function_of_seed_split_index() -> None:
    a, b = ProblemSet("0", "eval", 2, 20), ProblemSet("0", "eval", 2, 20)
    assert [a[i] for i in range(50)] == [b[i] for i in range(50)]
    other = ProblemSet("0", "train/1", 2, 20)
    assert [a[i] for i in range(50)] != [other[i] for i in range(50)]


@pytest.mark.parametrize("text,expected", [
    (" #### 35", 35.0),                 # GSM8K's marker
    ("12+3=15 #### 15", 15.0),           # the number after '####' wins over earlier numbers
    ("#### 1,234", 1234.0),              # thousands separators are dropped, as GSM8K graders do
    ("#### -7", -7.0),
    ("so 4 then 9", None),               # no marker: the strict reading finds nothing
    ("#### ", None),                     # nothing parsable
    ("none", None),
])
def test_extract_answer(text: str, expected) -> None:
    assert extract_answer(text) == expected


def test_flexible_extract_falls_back_to_the_last_number() -> None:
    assert extract_answer("so 4 then 9", flexible=True) == 9.0
    assert extract_answer("3 #### 5", flexible=True) == 5.0


def test_reward_is_one_only_for_the_right_final_number() -> None:
    p = make_problem(0, "eval", 3, 2, 20)
    assert reward(f" #### {p.value}", p) == 1.0
    assert reward(f" #### {p.value + 1}", p) == 0.0
    assert reward(f" {p.value + 1} #### {p.value}", p) == 1.0
    assert reward("####", p) == 0.0
    assert reward(f" so {p.value}", p) == 0.0                 # the right number in the wrong format earns nothing


def test_flexible_reward_reads_the_last_number_in_any_format() -> None:
    p = make_problem(0, "eval", 3, 2, 20)
    assert reward(f" so {p.value}", p, flexible=True) == 1.0   # the base model's informal answer, read for skill
    assert reward(f" so {p.value + 1}", p, flexible=True) == 0.0
    assert reward(f" {p.value} so {p.value + 1}", p, flexible=True) == 0.0  # the last number is the answer
    assert reward(f" #### {p.value}", p, flexible=True) == 1.0
    assert reward(" so nothing", p, flexible=True) == 0.0


def test_train_streams_pretraining_and_probe_never_see_an_eval_question() -> None:
    from harness.engines.embedded.task import EVAL_SHARE, is_eval_question

    eval_set = ProblemSet("0", "eval", 2, 10)
    held_out = {eval_set[i].question for i in range(512)}
    assert all(is_eval_question(q) for q in held_out) and len(held_out) > 490
    for split in ("train/1", "train/2", "pretrain", "probe"):
        stream = ProblemSet("0", split, 2, 10)
        questions = {stream[i].question for i in range(8000)}
        assert not questions & held_out, split
    # the split is by question text: about 1 in EVAL_SHARE of raw draws is an eval question
    raw = [make_problem(0, "train/1", i, 2, 10).question for i in range(4000)]
    assert abs(sum(map(is_eval_question, raw)) / len(raw) - 1 / EVAL_SHARE) < 0.03

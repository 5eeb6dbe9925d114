"""A GSM8K-format arithmetic word-problem task, generated from seeds so nothing is ever downloaded.

Each problem is a short question and a reference answer ending `#### <number>` exactly as GSM8K writes it; the reward
extracts the final number from a completion the way GSM8K graders do and compares it with the reference.
`difficulty` is the number of arithmetic operations in a problem (1 = one add/subtract, 2 = two, ...).
Problems are a pure function of (split seed, index), so any trail, on any backend, sees the same problems.
Held-out is held out: a question belongs to the eval split iff a hash of its text says so (1 in ``EVAL_SHARE``), and
every other split (train streams, pretraining, the base model's probe) skips such questions, so no eval question is
ever trained on, whatever the seeds (the problem space is small enough that independent draws would collide).
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import List, Optional

NAMES = ("Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Ivy", "Jo", "Kim")
ITEMS = ("pens", "eggs", "cats", "cups", "hats", "figs", "keys", "toys")
# (verb, sign): each operation is one clause of the question
OPS = (("gets", 1), ("buys", 1), ("finds", 1), ("loses", -1), ("sells", -1), ("eats", -1))

EVAL_SPLIT = "eval"
EVAL_SHARE = 8
# bump when the problems a (seed, split, index) yields change: the base model cache key includes it
TASK_FORMAT = 2

# GSM8K's answer marker; the strict reading (lm-eval's "strict-match") takes the number after the last "####"
_STRICT = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
# the flexible reading (lm-eval's "flexible-extract"): the last number anywhere in the text
_FLEX = re.compile(r"-?[\d,]*\.?\d+")
# the informal answer style the base model also saw in pretraining; the strict grader scores it 0
INFORMAL_PREFIX = "so "


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str        # GSM8K-style reference: "#### 35"
    value: int         # the number the answer ends with


def is_eval_question(question: str) -> bool:
    """Whether a question belongs to the held-out eval split (a stable hash of its text, 1 in EVAL_SHARE)."""
    return zlib.crc32(question.encode()) % EVAL_SHARE == 0


def make_problem(seed: int | str, split: str, index: int, difficulty: int = 2, max_number: int = 20,
                 attempt: int = 0) -> Problem:
    """Draw `attempt` of problem `index` of split `split` for task seed `seed`; the result stays ≥ 0 so answers are
    plain numbers. `ProblemSet` draws attempts until the question falls on its side of the eval split."""
    key = f"{seed}/{split}/{index}/{difficulty}/{max_number}" + (f"/{attempt}" if attempt else "")
    rng = random.Random(key)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    total = rng.randint(1, max_number)
    clauses = []
    for _ in range(difficulty):
        verb, sign = rng.choice(OPS)
        if sign < 0 and total == 0:
            verb, sign = "gets", 1
        amount = rng.randint(1, max_number) if sign > 0 else rng.randint(1, total)
        total += sign * amount
        clauses.append(f"{verb} {amount}")
    return _render(name, item, clauses, total)


def _render(name: str, item: str, clauses: List[str], total: int) -> Problem:
    # recover the starting amount from the clauses (they were applied in order)
    start = total
    for clause in reversed(clauses):
        verb, amount = clause.split()
        sign = dict(OPS)[verb]
        start -= sign * int(amount)
    question = f"{name} has {start} {item}, " + ", ".join(clauses) + f". {item.capitalize()}?"
    return Problem(question=question, answer=f"#### {total}", value=total)


def extract_answer(text: str, flexible: bool = False) -> Optional[float]:
    """The final number of a completion as GSM8K graders read it: the number after the last '####' (strict-match);
    with `flexible`, a completion without the marker falls back to its last number (flexible-extract)."""
    matches = _STRICT.findall(text)
    if not matches and flexible:
        matches = _FLEX.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def reward(completion: str, problem: Problem, flexible: bool = False) -> float:
    """1.0 if the completion's '#### <number>' equals the reference, else 0.0 (also when nothing parses): the strict
    GSM8K reading, so an answer in any other format earns nothing, as with GSM8K's RL rewards. With `flexible`, the
    completion's last number counts whatever its format (lm-eval's flexible-extract): arithmetic skill alone, which
    the base model's stop rule reads."""
    got = extract_answer(completion, flexible)
    return 1.0 if got is not None and abs(got - problem.value) < 1e-6 else 0.0


class ProblemSet:
    """A split of the task: problem i is generated on demand (and memoised), so a stream never ends. The split named
    ``EVAL_SPLIT`` holds only eval questions; every other split holds none."""

    def __init__(self, seed: int | str, split: str, difficulty: int, max_number: int):
        self.seed, self.split, self.difficulty, self.max_number = seed, split, difficulty, max_number
        self.held_out = split == EVAL_SPLIT
        self._cache: dict = {}

    def __getitem__(self, index: int) -> Problem:
        if index not in self._cache:
            attempt = 0
            while True:
                p = make_problem(self.seed, self.split, index, self.difficulty, self.max_number, attempt)
                if is_eval_question(p.question) == self.held_out:
                    break
                attempt += 1
            self._cache[index] = p
        return self._cache[index]


_DISTINCT: dict = {}


def distinct_indices(problems: ProblemSet, n: int) -> List[int]:
    """The indices of the first `n` distinct questions of a split's stream (a later repeat of a question is skipped),
    so an evaluation on them counts each problem once. Memoised per process: a warm worker runs many trails on the
    same eval split. The stream never ends, so `n` distinct questions exist as long as the split has that many; a
    split whose problem space is smaller raises ValueError after scanning 50·n indices without finding them."""
    key = (problems.seed, problems.split, problems.difficulty, problems.max_number, n)
    if key not in _DISTINCT:
        seen: set = set()
        out: List[int] = []
        index = 0
        while len(out) < n:
            if index >= 50 * n:
                raise ValueError(f"the {problems.split} split holds fewer than {n} distinct problems "
                                 f"({len(out)} found in {index} draws)")
            question = problems[index].question
            if question not in seen:
                seen.add(question)
                out.append(index)
            index += 1
        _DISTINCT[key] = out
    return list(_DISTINCT[key])

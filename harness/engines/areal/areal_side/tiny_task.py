"""Build, with no network, what a tiny real AReaL run needs: a random Qwen2 policy, its tokenizer and a GSM8K-format
dataset. Runs in AReaL's Python (transformers, tokenizers); the AReaL engine calls it once per cache folder.

Usage: python tiny_task.py OUT_DIR     → OUT_DIR/model (policy + tokenizer), OUT_DIR/gsm8k (dataset), OUT_DIR/task.json

Why each choice:
- Qwen2, the architecture of AReaL's GSM8K example policy (Qwen2.5-1.5B-Instruct), at hidden 128 and 2 layers so that
  AReaL's trainer and vLLM's CPU server each hold it in a few MB. Two attention heads of dimension 64: vLLM 0.19.1's
  CPU attention supports head sizes 32, 64, 80, 96, 112, 128, 160, 192, 224, 256
  (vllm/v1/attention/backends/cpu_attn.py, get_supported_head_sizes), not the 16 of 8 heads at this width.
- A byte-level BPE tokenizer trained here on the dataset's own text, with a ChatML template: AReaL's RLVR workflow
  applies the chat template to each prompt, and `<|im_end|>` ends a reply as in Qwen's tokenizer.
- The dataset is read by AReaL's own GSM8K loader (areal/dataset/gsm8k.py: `load_dataset(path, name="main")`, the
  folder name must contain "gsm8k"), so it is laid out as the hub's openai/gsm8k: a `main` config with train and test
  JSONL files of {"question", "answer"}, the answer ending in "#### N" as AReaL's GSM8K reward reads it.
"""

from __future__ import annotations

import json
import os
import sys

SEED = 0
N_TRAIN, N_TEST = 64, 16
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MODEL = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True)
# The hub's openai/gsm8k declares its `main` config in its README; datasets.load_dataset(folder, name="main") reads it.
DATASET_CARD = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train.jsonl
  - split: test
    path: main/test.jsonl
---
GSM8K-format arithmetic problems built offline for tiny AReaL runs.
"""


def problems(n: int, offset: int) -> list:
    """Two-operand word problems in GSM8K's format (a worked answer ending '#### N')."""
    items = ["apples", "pencils", "marbles", "books"]
    rows = []
    for i in range(offset, offset + n):
        a, b, item = 2 + (i * 7) % 17, 1 + (i * 5) % 13, items[i % len(items)]
        if i % 2:
            question = f"Ann has {a} {item}. She gets {b} more. How many {item} does Ann have now?"
            answer = f"Ann has {a} + {b} = {a + b} {item}.\n#### {a + b}"
        else:
            big = a + b
            question = f"Ben had {big} {item} and gave away {b}. How many {item} are left?"
            answer = f"Ben has {big} - {b} = {a} {item} left.\n#### {a}"
        rows.append({"question": question, "answer": answer})
    return rows


def write_dataset(folder: str, train: list, test: list) -> None:
    os.makedirs(os.path.join(folder, "main"), exist_ok=True)
    for split, rows in (("train", train), ("test", test)):
        with open(os.path.join(folder, "main", f"{split}.jsonl"), "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(DATASET_CARD)


def build_tokenizer(texts: list):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE)


def main(out: str) -> None:
    import torch
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM

    train, test = problems(N_TRAIN, 0), problems(N_TEST, N_TRAIN)
    write_dataset(os.path.join(out, "gsm8k"), train, test)
    # the prompt AReaL's GSM8K loader adds, the chat roles and the answer format are all in the tokenizer's corpus
    texts = [r["question"] + "\nPlease put your final answer within \\boxed{}. " + r["answer"]
             for r in train + test] + ["user assistant system \\boxed{0123456789} #### + - ="]
    tokenizer = build_tokenizer(texts)
    model_dir = os.path.join(out, "model")
    tokenizer.save_pretrained(model_dir)
    config = Qwen2Config(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, torch_dtype="float32", **MODEL)
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(model_dir, safe_serialization=True)
    info = {"model": model_dir, "dataset": os.path.join(out, "gsm8k"), "vocab": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()), "train": len(train), "test": len(test),
            "transformers": transformers.__version__, "torch": torch.__version__, **MODEL}
    with open(os.path.join(out, "task.json"), "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_task.py OUT_DIR")
    main(sys.argv[1])
